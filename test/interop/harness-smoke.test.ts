/**
 * Proves the interop harness with strongSwan on both sides: two charons (kernel-libipsec, so
 * CHILD_SAs are really installed) negotiate over IPv4 and IPv6, traffic crosses the IPv4 tunnel,
 * and a delete from B leaves A without SAs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, LAB_ADDR, parseViciPretty, requireInterop, toSwanSas, waitFor } from './harness.ts';
import type { Charon, Lab, Side, SwanSa } from './harness.ts';

const PSK = 'lab-preshared-key-0123456789';

function swanctlConf(me: Side): string {
  const peer: Side = me === 'a' ? 'b' : 'a';
  const ts4 = { a: '198.51.100.0/25', b: '198.51.100.128/25' };
  const ts6 = { a: '2001:db8:a::/64', b: '2001:db8:b::/64' };
  const conn = (name: string, child: string, local: string, remote: string, lts: string, rts: string) => `
  ${name} {
    version = 2
    local_addrs = ${local}
    remote_addrs = ${remote}
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = psk
      id = ${me}.lab
    }
    remote {
      auth = psk
      id = ${peer}.lab
    }
    children {
      ${child} {
        local_ts = ${lts}
        remote_ts = ${rts}
        esp_proposals = aes256gcm16
      }
    }
  }`;
  return `connections {${conn('lab4', 'net4', LAB_ADDR[me].v4, LAB_ADDR[peer].v4, ts4[me], ts4[peer])}${conn('lab6', 'net6', LAB_ADDR[me].v6, LAB_ADDR[peer].v6, ts6[me], ts6[peer])}
}
secrets {
  ike-lab {
    id-a = a.lab
    id-b = b.lab
    secret = "${PSK}"
  }
}
`;
}

function only(sas: SwanSa[], name: string, side: Side): SwanSa {
  const found = sas.filter((s) => s.name === name);
  assert.equal(found.length, 1, `side ${side}: expected one IKE_SA ${name}, got ${JSON.stringify(sas.map((s) => `${s.name}:${s.state}`))}`);
  return found[0];
}

/** Both sides see the same IKE_SA and CHILD_SA: states, SPIs crosswise, algorithms, addresses, TS. */
async function assertPair(a: Charon, b: Charon, ike: string, child: string, addrs: { a: string; b: string }, ts: { a: string; b: string }): Promise<void> {
  const sa = only(await a.listSas(), ike, 'a');
  const sb = only(await b.listSas(), ike, 'b');
  for (const [side, s] of [['a', sa], ['b', sb]] as const) {
    assert.equal(s.state, 'ESTABLISHED', `side ${side} IKE_SA state`);
    assert.equal(s.version, '2');
    assert.equal(s.encrAlg, 'AES_GCM_16');
    assert.equal(s.encrKeysize, 256);
    assert.equal(s.integAlg, undefined, 'AEAD has no integrity algorithm');
    assert.equal(s.prfAlg, 'PRF_HMAC_SHA2_256');
    assert.equal(s.dhGroup, 'CURVE_25519');
    assert.match(s.spiI, /^[0-9a-f]{16}$/);
    assert.match(s.spiR, /^[0-9a-f]{16}$/);
    assert.equal(s.children.length, 1, `side ${side}: one CHILD_SA`);
  }
  assert.equal(sa.initiator, true);
  assert.equal(sb.initiator, false);
  assert.equal(sa.spiI, sb.spiI);
  assert.equal(sa.spiR, sb.spiR);
  assert.equal(sa.localHost, addrs.a);
  assert.equal(sa.remoteHost, addrs.b);
  assert.equal(sb.localHost, addrs.b);
  assert.equal(sb.remoteHost, addrs.a);
  assert.equal(sa.localId, 'a.lab');
  assert.equal(sa.remoteId, 'b.lab');
  assert.equal(sb.localId, 'b.lab');
  assert.equal(sb.remoteId, 'a.lab');
  // kernel-libipsec forces UDP encapsulation, so IKE moves to 4500 as well
  assert.equal(sa.localPort, 4500);
  assert.equal(sb.localPort, 4500);

  const ca = sa.children[0];
  const cb = sb.children[0];
  for (const [side, c] of [['a', ca], ['b', cb]] as const) {
    assert.equal(c.name, child, `side ${side} CHILD_SA name`);
    assert.equal(c.state, 'INSTALLED', `side ${side} CHILD_SA state`);
    assert.equal(c.mode, 'TUNNEL');
    assert.equal(c.protocol, 'ESP');
    assert.equal(c.encap, true);
    assert.equal(c.encrAlg, 'AES_GCM_16');
    assert.equal(c.encrKeysize, 256);
    assert.equal(c.integAlg, undefined);
    assert.equal(c.dhGroup, undefined, 'no PFS group was proposed');
    assert.match(c.spiIn, /^[0-9a-f]{8}$/);
    assert.match(c.spiOut, /^[0-9a-f]{8}$/);
  }
  assert.notEqual(ca.spiIn, ca.spiOut);
  assert.equal(ca.spiIn, cb.spiOut, 'A inbound SPI is B outbound SPI');
  assert.equal(ca.spiOut, cb.spiIn, 'A outbound SPI is B inbound SPI');
  assert.deepEqual(ca.localTs, [ts.a]);
  assert.deepEqual(ca.remoteTs, [ts.b]);
  assert.deepEqual(cb.localTs, [ts.b]);
  assert.deepEqual(cb.remoteTs, [ts.a]);
}

/** Sends UDP datagrams from A's inner address to a socat listener on B's inner address until one arrives. */
async function assertTunnelCarries(lab: Lab, family: 4 | 6): Promise<void> {
  const dst = family === 4 ? LAB_ADDR.b.inner4 : LAB_ADDR.b.inner6;
  const src = family === 4 ? LAB_ADDR.a.inner4 : LAB_ADDR.a.inner6;
  const port = family === 4 ? 5004 : 5006;
  const bracket = (a: string) => (family === 6 ? `[${a}]` : a);
  const marker = `through-esp-v${family}-${process.pid}`;
  const rx = lab.spawn('b', 'socat', ['-u', `UDP${family}-RECV:${port},bind=${bracket(dst)}`, 'STDOUT']);
  try {
    await waitFor(`datagram over the IPv${family} tunnel`, async () => {
      const r = await lab.exec('a', 'socat', ['-u', 'STDIN', `UDP${family}-SENDTO:${bracket(dst)}:${port},bind=${bracket(src)}`], { input: `${marker}\n`, timeoutMs: 5000 });
      assert.equal(r.code, 0, r.stderr);
      return rx.waitForLine(new RegExp(marker), 500);
    }, 8000, 0);
  } finally {
    await rx.kill();
  }
}

test('parseViciPretty/toSwanSas read swanctl --list-sas --pretty output', () => {
  // shape as printed by swanctl 5.9.8 --list-sas --pretty; the DN value contains spaces and '='
  const dump = [
    'list-sa event {',
    '  lab {',
    '    uniqueid = 7',
    '    version = 2',
    '    state = ESTABLISHED',
    '    local-host = 2001:db8::1',
    '    local-port = 500',
    '    local-id = C=XX, O=IKE Lab, CN=a.lab',
    '    initiator = yes',
    '    initiator-spi = 4b922a82bc8161cb',
    '    responder-spi = e0c6c940f1996e8f',
    '    encr-alg = AES_CBC',
    '    encr-keysize = 128',
    '    integ-alg = HMAC_SHA2_256_128',
    '    child-sas {',
    '      net-3 {',
    '        name = net',
    '        state = INSTALLED',
    '        encap = no',
    '        spi-in = e748549e',
    '        spi-out = 0f97fa07',
    '        local-ts = [',
    '          198.51.100.0/25',
    '          2001:db8:a::/64',
    '        ]',
    '        remote-ts = [',
    '        ]',
    '      }',
    '    }',
    '  }',
    '}',
    'list-sas reply {',
    '}',
    '',
  ].join('\n');
  const msgs = parseViciPretty(dump);
  assert.deepEqual(msgs.map((m) => m.label), ['list-sa event', 'list-sas reply']);
  const sas = toSwanSas(msgs);
  assert.equal(sas.length, 1);
  const s = sas[0];
  assert.equal(s.name, 'lab');
  assert.equal(s.localId, 'C=XX, O=IKE Lab, CN=a.lab');
  assert.equal(s.localPort, 500);
  assert.equal(s.initiator, true);
  assert.equal(s.spiR, 'e0c6c940f1996e8f');
  assert.equal(s.encrKeysize, 128);
  assert.equal(s.integAlg, 'HMAC_SHA2_256_128');
  assert.equal(s.prfAlg, undefined);
  assert.equal(s.children.length, 1);
  assert.equal(s.children[0].name, 'net');
  assert.equal(s.children[0].uniqueId, '');
  assert.equal(s.children[0].encap, false);
  assert.deepEqual(s.children[0].localTs, ['198.51.100.0/25', '2001:db8:a::/64']);
  assert.deepEqual(s.children[0].remoteTs, []);
  assert.deepEqual(toSwanSas(parseViciPretty('list-sas reply {\n}\n')), []);
  assert.throws(() => parseViciPretty('list-sa event {\n  lab {\n'), /truncated/);
  assert.throws(() => parseViciPretty('}\n'), /unbalanced/);
});

test('strongSwan <-> strongSwan through the harness: IPv4, IPv6, delete from B', { timeout: 60_000 }, async (t) => {
  if (!requireInterop(t)) return;
  const lab = await createLab({ tag: 'smoke' });
  t.after(() => lab.destroy());
  const [a, b] = await Promise.all([
    lab.startCharon('a', { swanctlConf: swanctlConf('a'), libipsec: true }),
    lab.startCharon('b', { swanctlConf: swanctlConf('b'), libipsec: true }),
  ]);
  assert.deepEqual(await a.listSas(), []);

  await t.test('IPv4: A initiates, both sides agree', async () => {
    await a.initiate('net4', { ike: 'lab4' });
    await assertPair(a, b, 'lab4', 'net4', { a: LAB_ADDR.a.v4, b: LAB_ADDR.b.v4 }, { a: '198.51.100.0/25', b: '198.51.100.128/25' });
    await assertTunnelCarries(lab, 4);
    const [ca] = only(await a.listSas('lab4'), 'lab4', 'a').children;
    const [cb] = only(await b.listSas('lab4'), 'lab4', 'b').children;
    assert.ok(ca.packetsOut >= 1, `A sent ESP packets (${ca.packetsOut})`);
    assert.ok(cb.packetsIn >= 1, `B received ESP packets (${cb.packetsIn})`);
  });

  await t.test('IPv6: A initiates, both sides agree', async () => {
    await a.initiate('net6', { ike: 'lab6' });
    await assertPair(a, b, 'lab6', 'net6', { a: LAB_ADDR.a.v6, b: LAB_ADDR.b.v6 }, { a: '2001:db8:a::/64', b: '2001:db8:b::/64' });
    await assertTunnelCarries(lab, 6);
  });

  await t.test('B terminates, A has no SA left', async () => {
    assert.equal((await a.listSas()).length, 2);
    await b.terminateIke('lab4');
    await b.terminateIke('lab6');
    assert.deepEqual(await b.listSas(), []);
    await waitFor('A to drop its IKE_SAs', async () => (await a.listSas()).length === 0, 5000);
    assert.match(a.log(), /received DELETE for IKE_SA lab4/);
    assert.match(a.log(), /received DELETE for IKE_SA lab6/);
  });
});

/**
 * vpp-iked against strongSwan 6.0.6 with ML-KEM (RFC 9370 additional key exchanges over
 * IKE_INTERMEDIATE, RFC 9242), charon 6 with kernel-libipsec:
 *
 *   netns a: charon 6          192.0.2.1 / 2001:db8::1
 *   netns b: vpp-iked (memory) 192.0.2.2 / 2001:db8::2
 *
 * Hybrid x25519 + ML-KEM-768 with either side initiating over IPv4 and IPv6, ML-KEM-768 as the only
 * key exchange, a CHILD_SA rekey with hybrid PFS and an IKE SA rekey with an additional key exchange
 * (IKE_FOLLOWUP_KE) from either side. Both sides must show the same SPIs and algorithms, and
 * strongSwan's log must show the exchanges (IKE_INTERMEDIATE, IKE_FOLLOWUP_KE) and the 1,249-byte
 * IKE_INTERMEDIATE request fragmented (RFC 7383) in either direction.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, LAB_ADDR, requireInterop6, waitFor } from './harness.ts';
import type { Charon, Lab, SwanChildSa, SwanSa } from './harness.ts';
import { startDaemon } from '../helpers/daemon.ts';
import type { DaemonHandle, IkeSaJson } from '../helpers/daemon.ts';

const PSK = 'interop-preshared-key-0123456789';

type Family = 4 | 6;
const ADDR = {
  4: { a: LAB_ADDR.a.v4, b: LAB_ADDR.b.v4 },
  6: { a: LAB_ADDR.a.v6, b: LAB_ADDR.b.v6 },
} as const;
const TS = {
  4: { a: '198.51.100.0/25', b: '198.51.100.128/25' },
  6: { a: '2001:db8:a::/64', b: '2001:db8:b::/64' },
} as const;

interface Pq {
  name: string;
  family: Family;
  ike: string;
  esp: string;
  /** strongSwan's and our IKE algorithms */
  ikeName: string;
}

const HYBRID = 'aes256gcm16-prfsha256-x25519-ke1_mlkem768';
const HYBRID_NAME = 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519/KE1_ML_KEM_768';
const CONNS: Pq[] = [
  { name: 'hyb4', family: 4, ike: HYBRID, esp: 'aes256gcm16', ikeName: HYBRID_NAME },
  { name: 'hyb6', family: 6, ike: HYBRID, esp: 'aes256gcm16', ikeName: HYBRID_NAME },
  { name: 'mlkem6', family: 6, ike: 'aes256gcm16-prfsha256-mlkem768', esp: 'aes256gcm16', ikeName: 'AES_GCM_16_256/PRF_HMAC_SHA2_256/ML_KEM_768' },
  { name: 'rekey', family: 4, ike: HYBRID, esp: 'aes256gcm16-x25519-ke1_mlkem768', ikeName: HYBRID_NAME },
];

function connections(me: 'a' | 'b', swan: boolean): string {
  const peer = me === 'a' ? 'b' : 'a';
  const out = ['connections {'];
  for (const c of CONNS) {
    out.push(
      `  ${c.name} {`,
      ...(swan ? ['    version = 2'] : []),
      `    local_addrs = ${ADDR[c.family][me]}`,
      `    remote_addrs = ${ADDR[c.family][peer]}`,
      `    proposals = ${c.ike}`,
      '    local {',
      '      auth = psk',
      `      id = ${me}-${c.name}.lab`,
      '    }',
      '    remote {',
      '      auth = psk',
      `      id = ${peer}-${c.name}.lab`,
      '    }',
      '    children {',
      '      net {',
      `        local_ts = ${TS[c.family][me]}`,
      `        remote_ts = ${TS[c.family][peer]}`,
      `        esp_proposals = ${c.esp}`,
      '      }',
      '    }',
      '  }',
    );
  }
  out.push('}', 'secrets {', '  ike-lab {', `    secret = "${PSK}"`, '  }', '}', '');
  return out.join('\n');
}

/** strongSwan 6 lists additional key exchanges as ake1..ake7 = method. */
function additional(raw: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (let i = 1; i <= 7; i++) {
    const v = raw[`ake${i}`];
    if (typeof v === 'string') out.push(`KE${i}_${v}`);
  }
  return out;
}

/** strongSwan's IKE_SA algorithms in our notation, additional key exchanges included. */
function swanIke(s: SwanSa): string {
  const encr = s.encrAlg === undefined ? undefined : s.encrKeysize === undefined ? s.encrAlg : `${s.encrAlg}_${s.encrKeysize}`;
  return [encr, s.integAlg, s.prfAlg, s.dhGroup, ...additional(s.raw)].filter((x) => x !== undefined).join('/');
}

function swanEsp(c: SwanChildSa): string {
  const encr = c.encrKeysize === undefined ? c.encrAlg : `${c.encrAlg}_${c.encrKeysize}`;
  return [encr, c.integAlg, c.dhGroup, ...additional(c.raw)].filter((x) => x !== undefined).join('/');
}

async function both(swan: Charon, ours: DaemonHandle, c: Pq, swanInitiated: boolean): Promise<{ s: SwanSa; o: IkeSaJson }> {
  const sw = (await swan.listSas(c.name)).filter((x) => x.state === 'ESTABLISHED');
  const us = (await ours.listSas(c.name)).filter((x) => x.state === 'ESTABLISHED');
  assert.equal(sw.length, 1, `strongSwan: one ESTABLISHED IKE_SA ${c.name}`);
  assert.equal(us.length, 1, `vpp-iked: one ESTABLISHED IKE SA ${c.name}`);
  const s = sw[0]!;
  const o = us[0]!;
  assert.equal(s.initiator, swanInitiated);
  assert.equal(o.spi_i, s.spiI, 'same initiator SPI');
  assert.equal(o.spi_r, s.spiR, 'same responder SPI');
  assert.equal(swanIke(s), c.ikeName, 'strongSwan IKE algorithms');
  assert.equal(o.proposal, c.ikeName, 'vpp-iked IKE algorithms');
  assert.equal(s.localHost, ADDR[c.family].a);
  assert.equal(s.remoteHost, ADDR[c.family].b);
  const sc = s.children.filter((x) => x.state === 'INSTALLED');
  assert.equal(sc.length, 1, 'strongSwan: one INSTALLED CHILD_SA');
  assert.equal(o.child_sas.length, 1, 'vpp-iked: one CHILD SA');
  assert.equal(sc[0]!.spiIn, o.child_sas[0]!.spi_out, 'CHILD SPIs crosswise');
  assert.equal(sc[0]!.spiOut, o.child_sas[0]!.spi_in, 'CHILD SPIs crosswise');
  return { s, o };
}

async function cleanSlate(swan: Charon, ours: DaemonHandle): Promise<void> {
  for (const s of await swan.listSas()) await swan.terminateIke(s.name, { allowFailure: true, timeoutMs: 5000 });
  for (const s of await ours.listSas()) await ours.ctl(['terminate', '--ike-id', String(s.id)]);
  await waitFor('both sides without SAs', async () => (await swan.listSas()).length === 0 && (await ours.listSas()).length === 0, 8000, 100);
}

test('vpp-iked <-> strongSwan 6.0.6: ML-KEM hybrids (RFC 9370 over IKE_INTERMEDIATE)', { timeout: 120_000 }, async (t: TestContext) => {
  if (!requireInterop6(t)) return;
  const started = Date.now();
  const lab: Lab = await createLab({ tag: 'pq' });
  t.after(() => lab.destroy());
  const [swan, ours] = await Promise.all([
    lab.startCharon('a', { swanctlConf: connections('a', true), libipsec: true, version: 6 }),
    startDaemon({ name: 'ours', parentDir: lab.dir, lab, side: 'b', listen: [LAB_ADDR.b.v4, LAB_ADDR.b.v6], conf: connections('b', false) }),
  ]);

  for (const c of CONNS.filter((x) => x.name !== 'rekey')) {
    await t.test(`${c.ike} IPv${c.family}: strongSwan 6 initiates`, async () => {
      await cleanSlate(swan, ours);
      const mark = swan.log().length;
      await swan.initiate('net', { ike: c.name });
      await both(swan, ours, c, true);
      const log = swan.log().slice(mark);
      if (c.ike.includes('ke1_')) {
        assert.match(log, /generating IKE_INTERMEDIATE request 1 \[ KE \]/);
        // strongSwan fragments its 1,249-byte request (we announced fragmentation): IntAuth over the reassembled message
        assert.match(log, /splitting IKE message \(1249 bytes\) into 2 fragments/);
        assert.match(log, /parsed IKE_INTERMEDIATE response 1 \[ KE \]/);
        assert.match(log, /generating IKE_AUTH request 2 /);
      } else {
        assert.doesNotMatch(log, /IKE_INTERMEDIATE/);
      }
      await ours.json(['terminate', '--ike', c.name]);
      await waitFor(`strongSwan to drop ${c.name}`, async () => (await swan.listSas(c.name)).length === 0, 8000, 100);
    });
    await t.test(`${c.ike} IPv${c.family}: vpp-iked initiates`, async () => {
      await cleanSlate(swan, ours);
      const mark = swan.log().length;
      const r = await ours.json<IkeSaJson>(['initiate', '--ike', c.name, '--child', 'net']);
      assert.equal(r.state, 'ESTABLISHED');
      await both(swan, ours, c, false);
      if (c.ike.includes('ke1_')) {
        // ours comes in fragments too
        assert.match(swan.log().slice(mark), /reassembled fragmented IKE message \(1249 bytes\)/);
        assert.match(swan.log().slice(mark), /parsed IKE_INTERMEDIATE request 1 \[ KE \]/);
      }
      await swan.terminateIke(c.name);
      await waitFor(`vpp-iked to drop ${c.name}`, async () => (await ours.listSas(c.name)).length === 0, 8000, 100);
    });
  }

  await t.test('CHILD_SA rekeys with hybrid PFS (x25519 + ML-KEM-768, IKE_FOLLOWUP_KE) and IKE SA rekeys with ML-KEM from either side', async () => {
    const c = CONNS.find((x) => x.name === 'rekey')!;
    const pfs = 'AES_GCM_16_256/CURVE_25519/KE1_ML_KEM_768';
    await cleanSlate(swan, ours);
    await swan.initiate('net', { ike: c.name });
    let { s, o } = await both(swan, ours, c, true);
    const ike0 = [o.spi_i, o.spi_r];
    const first = o.child_sas[0]!;

    // strongSwan rekeys the CHILD_SA: CREATE_CHILD_SA with KE, then IKE_FOLLOWUP_KE with ML-KEM
    let mark = swan.log().length;
    const r1 = await swan.swanctl(['--rekey', '--child', 'net']);
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    ({ s, o } = await waitFor('a new CHILD SA after strongSwan\'s rekey', async () => {
      const x = await both(swan, ours, c, true);
      return x.o.child_sas[0]!.spi_in !== first.spi_in && x;
    }, 10_000));
    assert.match(swan.log().slice(mark), /generating IKE_FOLLOWUP_KE request \d+ \[ KE N\(ADD_KE\) \]/);
    assert.equal(o.child_sas[0]!.proposal, pfs, 'vpp-iked ESP algorithms');
    assert.equal(swanEsp(s.children.find((x) => x.state === 'INSTALLED')!), pfs, 'strongSwan ESP algorithms');
    const second = o.child_sas[0]!;

    // we rekey it
    mark = swan.log().length;
    await ours.json(['rekey', '--child-id', String(second.id)]);
    ({ s, o } = await waitFor('a new CHILD SA after our rekey', async () => {
      const x = await both(swan, ours, c, true);
      return x.o.child_sas[0]!.spi_in !== second.spi_in && x;
    }, 10_000));
    assert.match(swan.log().slice(mark), /parsed IKE_FOLLOWUP_KE request \d+ \[ KE N\(ADD_KE\) \]/);
    assert.equal(o.child_sas[0]!.proposal, pfs);
    assert.equal(swanEsp(s.children.find((x) => x.state === 'INSTALLED')!), pfs);
    assert.deepEqual([o.spi_i, o.spi_r], ike0, 'CHILD rekeys keep the IKE SA');

    // strongSwan rekeys the IKE SA (the new one again hybrid), then we do
    mark = swan.log().length;
    const r2 = await swan.swanctl(['--rekey', '--ike', c.name]);
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    ({ s, o } = await waitFor('the IKE SA rekeyed by strongSwan', async () => {
      const x = await both(swan, ours, c, true);
      return x.o.spi_i !== ike0[0] && x;
    }, 10_000));
    assert.match(swan.log().slice(mark), /generating IKE_FOLLOWUP_KE request \d+ \[ KE N\(ADD_KE\) \]/);
    const ike1 = [o.spi_i, o.spi_r];
    mark = swan.log().length;
    await ours.json(['rekey', '--ike-id', String(o.id)]);
    await waitFor('the IKE SA rekeyed by vpp-iked', async () => {
      const x = await both(swan, ours, c, false);
      return x.o.spi_i !== ike1[0] && x;
    }, 10_000);
    assert.match(swan.log().slice(mark), /parsed IKE_FOLLOWUP_KE request \d+ \[ KE N\(ADD_KE\) \]/);
    await ours.json(['terminate', '--ike', c.name]);
    await waitFor(`strongSwan to drop ${c.name}`, async () => (await swan.listSas(c.name)).length === 0, 8000, 100);
  });

  t.diagnostic(`strongSwan 6 ML-KEM suite took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

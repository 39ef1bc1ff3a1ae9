/**
 * IKE fragmentation (RFC 7383) against a real strongSwan 5.9 (charon with kernel-libipsec, so IKE
 * floats to 4500 and the CHILD_SAs are really installed):
 *
 *   netns a: charon, charon.fragment_size = 500   192.0.2.1 / 2001:db8::1
 *   netns b: vpp-iked, daemon.fragment_size = 400 192.0.2.2 / 2001:db8::2
 *
 * Many traffic selectors make IKE_AUTH and CREATE_CHILD_SA larger than both sizes, so both sides
 * fragment them. Both roles, IPv4 and IPv6, and a CHILD_SA rekey from either side. Checked on both
 * sides: charon's log says it split and reassembled messages and every datagram it received from
 * us fits our fragment_size; our counters say the same, with no fragment dropped.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, LAB_ADDR, requireInterop, waitFor } from './harness.ts';
import type { Charon, Lab, SwanSa } from './harness.ts';
import { startDaemon } from '../helpers/daemon.ts';
import type { DaemonHandle, IkeSaJson } from '../helpers/daemon.ts';

const PSK = 'interop-fragments-key-0123456789';
const SWAN_SIZE = 500;
const OUR_SIZE = 400;

type Family = 4 | 6;
const ADDR = {
  4: { a: LAB_ADDR.a.v4, b: LAB_ADDR.b.v4 },
  6: { a: LAB_ADDR.a.v6, b: LAB_ADDR.b.v6 },
} as const;
/** Twelve selectors a side: IKE_AUTH and CREATE_CHILD_SA come to well over 500 bytes. */
const TS = {
  4: { a: Array.from({ length: 12 }, (_, i) => `198.51.100.${i * 8}/29`), b: Array.from({ length: 12 }, (_, i) => `198.51.100.${128 + i * 8}/29`) },
  6: { a: Array.from({ length: 12 }, (_, i) => `2001:db8:a:${i}::/64`), b: Array.from({ length: 12 }, (_, i) => `2001:db8:b:${i}::/64`) },
} as const;

function connections(me: 'a' | 'b', swan: boolean): string {
  const peer = me === 'a' ? 'b' : 'a';
  const out = ['connections {'];
  for (const f of [4, 6] as const) {
    out.push(
      `  frag${f} {`,
      ...(swan ? ['    version = 2'] : []),
      `    local_addrs = ${ADDR[f][me]}`,
      `    remote_addrs = ${ADDR[f][peer]}`,
      '    proposals = aes256gcm16-prfsha256-x25519',
      '    fragmentation = yes',
      `    local {\n      auth = psk\n      id = ${me}-frag${f}.lab\n    }`,
      `    remote {\n      auth = psk\n      id = ${peer}-frag${f}.lab\n    }`,
      '    children {',
      '      net {',
      `        local_ts = ${TS[f][me].join(', ')}`,
      `        remote_ts = ${TS[f][peer].join(', ')}`,
      '        esp_proposals = aes256gcm16',
      '      }',
      '    }',
      '  }',
    );
  }
  out.push('}', 'secrets {', '  ike-lab {', `    secret = "${PSK}"`, '  }', '}', '');
  return out.join('\n');
}

const OURS_DAEMON = `daemon {\n  fragment_size = ${OUR_SIZE}\n  retransmit_timeout = 1s\n  retransmit_base = 1.4\n  retransmit_tries = 3\n}\n`;
/** charon's fragment size, and its packet log (net = 2 logs received packets with their sizes). */
const SWAN_EXTRA = `charon {\n  fragment_size = ${SWAN_SIZE}\n  filelog {\n    lab {\n      net = 2\n    }\n  }\n}\n`;

interface FragStats {
  fragments_sent: number;
  fragments_received: number;
  messages_fragmented: number;
  messages_reassembled: number;
  fragments_dropped: Record<string, number>;
}

/** What charon's log says about fragments, from line `from` on. */
function swanFragments(log: string, from: number, family: Family) {
  const lines = log.split('\n').slice(from);
  const ours = ADDR[family].b;
  const received = lines
    .map((l) => /received packet: from (\S+)\[\d+\] to \S+ \((\d+) bytes\)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === ours)
    .map((m) => Number(m[2]));
  return {
    split: lines.filter((l) => /splitting IKE message \(\d+ bytes\) into \d+ fragments/.test(l)).length,
    reassembled: lines.filter((l) => /reassembled fragmented IKE message/.test(l)).length,
    received,
  };
}

function lineCount(s: string): number {
  return s.split('\n').length - 1;
}

async function stats(ours: DaemonHandle): Promise<FragStats> {
  return ours.json<FragStats>(['stats']);
}

async function cleanSlate(swan: Charon, ours: DaemonHandle): Promise<void> {
  for (const s of await swan.listSas()) await swan.terminateIke(s.name, { allowFailure: true, timeoutMs: 5000 });
  for (const s of await ours.listSas()) await ours.ctl(['terminate', '--ike-id', String(s.id)]);
  await waitFor('both sides without SAs', async () => (await swan.listSas()).length === 0 && (await ours.listSas()).length === 0, 8000, 100);
}

/** Both sides have the tunnel up with the same SPIs; returns both views. */
async function assertUp(swan: Charon, ours: DaemonHandle, name: string): Promise<{ s: SwanSa; o: IkeSaJson }> {
  let s: SwanSa | undefined;
  let o: IkeSaJson | undefined;
  await waitFor(
    `${name} up on both sides`,
    async () => {
      s = (await swan.listSas(name))[0];
      o = (await ours.listSas(name))[0];
      return s?.state === 'ESTABLISHED' && o?.state === 'ESTABLISHED' && s.children.some((c) => c.state === 'INSTALLED') && o.child_sas.some((c) => c.state === 'INSTALLED');
    },
    8000,
    100,
  );
  assert.ok(s && o);
  assert.equal(o.spi_i, s.spiI);
  assert.equal(o.spi_r, s.spiR);
  const sc = s.children.filter((c) => c.state === 'INSTALLED');
  const oc = o.child_sas.filter((c) => c.state === 'INSTALLED');
  assert.equal(sc.length, 1);
  assert.equal(oc.length, 1);
  assert.equal(sc[0]!.spiIn, oc[0]!.spi_out);
  assert.equal(sc[0]!.spiOut, oc[0]!.spi_in);
  assert.equal(sc[0]!.localTs.length, 12, 'all selectors negotiated');
  return { s, o };
}

test('IKE fragmentation with strongSwan 5.9: both roles, IPv4 and IPv6, IKE_AUTH and CREATE_CHILD_SA', { timeout: 120_000 }, async (t: TestContext) => {
  if (!requireInterop(t)) return;
  const lab: Lab = await createLab({ tag: 'frag' });
  t.after(() => lab.destroy());
  // kernel-libipsec routes each remote selector from an address inside the matching local selector.
  const addrs = [...TS[4].a.slice(1).map((n) => `${n.replace(/\.(\d+)\/29$/, (_, x: string) => `.${Number(x) + 1}`)}/32`), ...TS[6].a.slice(1).map((n) => n.replace('::/64', '::1/128'))];
  const r = await lab.exec('a', 'sh', ['-c', addrs.map((x) => `ip addr add ${x} dev lo`).join(' && ')]);
  assert.equal(r.code, 0, r.stderr);
  const [swan, ours] = await Promise.all([
    lab.startCharon('a', { swanctlConf: connections('a', true), libipsec: true, extraStrongswanConf: SWAN_EXTRA }),
    startDaemon({ name: `frag-${Date.now()}`, parentDir: lab.dir, lab, side: 'b', listen: [LAB_ADDR.b.v4, LAB_ADDR.b.v6], conf: OURS_DAEMON + connections('b', false) }),
  ]);
  t.after(() => ours.stop());

  const cases: { family: Family; swanInitiates: boolean; rekeyBy: 'swan' | 'ours' }[] = [
    { family: 4, swanInitiates: true, rekeyBy: 'ours' },
    { family: 6, swanInitiates: false, rekeyBy: 'swan' },
    { family: 6, swanInitiates: true, rekeyBy: 'ours' },
    { family: 4, swanInitiates: false, rekeyBy: 'swan' },
  ];
  for (const c of cases) {
    const name = `frag${c.family}`;
    await t.test(`IPv${c.family}: ${c.swanInitiates ? 'strongSwan' : 'vpp-iked'} initiates, ${c.rekeyBy === 'swan' ? 'strongSwan' : 'vpp-iked'} rekeys the CHILD_SA`, async () => {
      await cleanSlate(swan, ours);
      const from = lineCount(swan.log());
      const before = await stats(ours);
      if (c.swanInitiates) await swan.initiate('net', { ike: name });
      else await ours.json(['initiate', '--ike', name, '--child', 'net']);
      const { o } = await assertUp(swan, ours, name);
      const afterAuth = await stats(ours);
      const authLog = swanFragments(swan.log(), from, c.family);
      // IKE_AUTH: each side split its message and reassembled the other's.
      assert.ok(authLog.split >= 1, 'strongSwan fragmented its IKE_AUTH message');
      assert.ok(authLog.reassembled >= 1, "strongSwan reassembled vpp-iked's IKE_AUTH message");
      assert.ok(afterAuth.messages_fragmented > before.messages_fragmented, 'vpp-iked fragmented its IKE_AUTH message');
      assert.ok(afterAuth.messages_reassembled > before.messages_reassembled, "vpp-iked reassembled strongSwan's IKE_AUTH message");
      // CREATE_CHILD_SA (CHILD_SA rekey with the twelve selectors each way), fragmented both ways too.
      const old = o.child_sas.find((x) => x.state === 'INSTALLED')!;
      const mid = lineCount(swan.log());
      if (c.rekeyBy === 'ours') await ours.ctl(['rekey', '--child-id', String(old.id)]);
      else await swan.swanctl(['--rekey', '--child', 'net']);
      await waitFor(
        'the CHILD_SA rekeyed on both sides',
        async () => {
          const oo = (await ours.listSas(name))[0];
          const ss = (await swan.listSas(name))[0];
          const oc = oo?.child_sas.filter((x) => x.state === 'INSTALLED') ?? [];
          const sc = ss?.children.filter((x) => x.state === 'INSTALLED') ?? [];
          return oc.length === 1 && oc[0]!.spi_in !== old.spi_in && sc.length === 1 && sc[0]!.spiOut === oc[0]!.spi_in;
        },
        10_000,
        100,
      );
      const after = await stats(ours);
      const rekeyLog = swanFragments(swan.log(), mid, c.family);
      assert.ok(rekeyLog.split >= 1 && rekeyLog.reassembled >= 1, 'strongSwan split and reassembled CREATE_CHILD_SA');
      assert.ok(after.messages_fragmented > afterAuth.messages_fragmented && after.messages_reassembled > afterAuth.messages_reassembled, 'so did vpp-iked');
      // Every datagram strongSwan received from us fits our fragment_size (IP and UDP headers off).
      const all = swanFragments(swan.log(), from, c.family).received;
      assert.ok(all.length > 4, `strongSwan logged the packets it received (${all.length})`);
      const max = OUR_SIZE - (c.family === 4 ? 20 : 40) - 8;
      assert.ok(all.every((n) => n <= max), `datagrams from vpp-iked: ${all.join(', ')} bytes, at most ${max}`);
      assert.ok(Object.values(after.fragments_dropped).every((n) => n === 0), `no fragment dropped: ${JSON.stringify(after.fragments_dropped)}`);
    });
  }
});

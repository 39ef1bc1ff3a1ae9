/**
 * `log_level = debug` shows the engine's per-message decisions: exchanges started and answered,
 * responses received, and every dropped message with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { pair } from '../helpers/engine-pair.ts';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level }, stream), lines };
}

test('debug level: a handshake, a rekey and a delete show each request and answer; drops say why', async () => {
  const cap = capture('debug');
  const env = pair({ logB: cap.log });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const sa = [...env.a.engine.table.values()][0]!;
  env.a.engine.rekeyChild(sa, sa.children[0]!);
  await env.w.run();
  // A datagram that is not IKE at all, and one for an unknown IKE SA.
  // An IKE_AUTH request (exchange type 35 at byte 18) with SPIs nobody has.
  const stray = env.w.log.find((p) => p.remote.addr === '192.0.2.2' && p.data[18] === 35)!;
  env.b.engine.receive({ addr: '192.0.2.2', port: 500 }, { addr: '192.0.2.1', port: 500 }, Buffer.from('not an IKE message'));
  env.b.engine.receive({ addr: '192.0.2.2', port: 500 }, { addr: '192.0.2.1', port: 500 }, Buffer.concat([Buffer.alloc(16, 0x11), stray.data.subarray(16)]));
  env.a.engine.deleteIke(sa);
  await env.w.run();
  const msgs = cap.lines.filter((l) => l.level === 20).map((l) => `${String(l.msg)} ${String(l.exchange ?? '')}`.trim());
  for (const want of ['IKE_SA_INIT answered', 'request received IKE_AUTH', 'request answered IKE_AUTH', 'request received CREATE_CHILD_SA', 'request answered CREATE_CHILD_SA', 'request received INFORMATIONAL', 'request answered INFORMATIONAL']) {
    assert.ok(msgs.includes(want), `debug line '${want}' in ${JSON.stringify(msgs)}`);
  }
  const drops = cap.lines.filter((l) => l.msg === 'message dropped' || l.msg === 'dropped malformed message');
  assert.ok(drops.length >= 2, 'both stray datagrams are reported');
  assert.ok(drops.every((d) => typeof d.why === 'string' || typeof d.err === 'string'), 'each drop says why');
  // Nothing secret in any line.
  const text = JSON.stringify(cap.lines);
  assert.ok(!text.includes('lab-preshared-key'), 'the PSK never appears');
});

test('info level: the same run logs no debug line', async () => {
  const cap = capture('info');
  const env = pair({ logB: cap.log });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  assert.ok(cap.lines.some((l) => l.msg === 'IKE SA established'));
  assert.equal(cap.lines.filter((l) => (l.level as number) < 30).length, 0);
});

test('the IKE SA established line: identities, proposals, and the CHILD_SA of IKE_AUTH when there is one', async () => {
  const cap = capture('info');
  const env = pair({ logA: cap.log });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const line = cap.lines.find((l) => l.msg === 'IKE SA established')!;
  assert.equal(line.local_id, 'a.lab');
  assert.equal(line.remote_id, 'b.lab');
  assert.equal(line.peer, '192.0.2.2');
  assert.equal(line.proposal, 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519');
  assert.equal(line.child, 'net');
  assert.match(String(line.child_spi_in), /^[0-9a-f]{8}$/);
  assert.deepEqual(line.child_local_ts, ['10.1.0.0/16']);
  assert.deepEqual(line.child_remote_ts, ['10.2.0.0/16']);

  // without a CHILD_SA (childless, RFC 6023) the child_ fields are left out
  const cap2 = capture('info');
  const env2 = pair({ logA: cap2.log, a: { children: [] } });
  await Promise.all([env2.a.engine.initiate('lab'), env2.w.run()]);
  const bare = cap2.lines.find((l) => l.msg === 'IKE SA established')!;
  assert.ok(bare, 'established without a CHILD_SA');
  assert.deepEqual(Object.keys(bare).filter((k) => k.startsWith('child')), []);
});

/**
 * Responses that are authenticated but cannot be used as they are (found against libreswan 4.10):
 * an empty KE payload where the chosen proposal has no key exchange is tolerated; anything else that
 * cannot be used fails its exchange at once, with a log line that says why, instead of being
 * retransmitted into the peer's response cache until the IKE SA is given up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { child, pair, type Wire } from '../helpers/engine-pair.ts';
import { captureLog, openMessage, resealMessage } from '../helpers/rewrite.ts';
import { parseProposals } from '../../src/ikev2/crypto/proposals.ts';
import { ExchangeType, PayloadType } from '../../src/ikev2/constants.ts';
import type { Payload } from '../../src/ikev2/codec/types.ts';
import type { OutPacket } from '../../src/ikev2/engine/engine.ts';
import type { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';

const TS_A = { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] };
const TS_B = { localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] };

function only(n: { engine: { table: { values(): IterableIterator<IkeSa> } } }): IkeSa {
  const all = [...n.engine.table.values()];
  assert.equal(all.length, 1);
  return all[0]!;
}

/** b's responses of `exchange` reach a rewritten by `edit` (sealed again with b's keys). */
function rewriteResponses(w: Wire, exchange: number, from: () => IkeSa, to: () => IkeSa, edit: (chain: Buffer, payloads: Payload[]) => Buffer | Payload[]): OutPacket[] {
  const rewritten: OutPacket[] = [];
  w.filter = (p) => {
    if (p.local.addr !== '192.0.2.2' || p.data[18] !== exchange || (p.data[19]! & 0x20) === 0) return 'deliver';
    const data = resealMessage(from(), to(), p.data, edit);
    const forged = { ...p, data };
    rewritten.push(forged);
    w.queue.push({ p: forged, deliverAt: w.sched.now() });
    return 'drop';
  };
  return rewritten;
}

function withEmptyKe(payloads: Payload[]): Payload[] {
  const i = payloads.findIndex((p) => p.type === PayloadType.NONCE);
  return [...payloads.slice(0, i + 1), { type: PayloadType.KE, critical: false, group: 31, data: Buffer.alloc(0) }, ...payloads.slice(i + 1)];
}

test('libreswan pfs=no: an empty KE payload in a CHILD_SA rekey response whose chosen proposal has no key exchange is tolerated', async () => {
  const env = pair({
    a: { children: [child('net', { ...TS_A, espProposals: parseProposals('aes256gcm16-x25519,aes256gcm16', 'esp') })] },
    b: { children: [child('net', { ...TS_B, espProposals: parseProposals('aes256gcm16', 'esp') })] },
  });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const sa = only(env.a);
  const first = sa.children[0]!;
  const rewritten = rewriteResponses(env.w, ExchangeType.CREATE_CHILD_SA, () => only(env.b), () => sa, (_c, p) => withEmptyKe(p));
  env.a.engine.rekeyChild(sa, first);
  await env.w.run();
  assert.equal(rewritten.length, 1, 'the rekey response carried an empty KE payload');
  const ke = openMessage(sa, rewritten[0]!.data).payloads.find((p) => p.type === PayloadType.KE);
  assert.ok(ke?.type === PayloadType.KE && ke.data.length === 0);
  assert.equal(sa.children.length, 1);
  assert.notEqual(sa.children[0]!.id, first.id, 'rekeyed');
  assert.equal(sa.children[0]!.state, 'INSTALLED');
  assert.equal(env.a.engine.stats.retransmitsSent, 0, 'no retransmission');
  const bsa = only(env.b);
  assert.equal(bsa.children.length, 1);
  assert.equal(bsa.children[0]!.spiOut, sa.children[0]!.spiIn, 'both sides agree on the new SPIs');
  assert.equal(env.a.dp.installed.size, 1);
  assert.equal(env.b.dp.installed.size, 1);
});

test('an empty KE payload where the chosen proposal needs a key exchange fails the rekey at once; the CHILD_SA the peer made is deleted', async () => {
  const cap = captureLog();
  const env = pair({
    logA: cap.log,
    a: { children: [child('net', { ...TS_A, espProposals: parseProposals('aes256gcm16-x25519', 'esp') })] },
    b: { children: [child('net', { ...TS_B, espProposals: parseProposals('aes256gcm16-x25519', 'esp') })] },
  });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const sa = only(env.a);
  const first = sa.children[0]!;
  rewriteResponses(env.w, ExchangeType.CREATE_CHILD_SA, () => only(env.b), () => sa, (_c, p) =>
    p.map((x) => (x.type === PayloadType.KE ? { ...x, data: Buffer.alloc(0) } : x)),
  );
  env.a.engine.rekeyChild(sa, first);
  await env.w.run();
  const failed = cap.lines.find((l) => l.msg === 'CHILD SA failed');
  assert.match(String(failed?.reason), /bad KE payload/);
  assert.equal(env.a.engine.stats.retransmitsSent, 0, 'failed at once, not retransmitted');
  assert.deepEqual(sa.children.map((c) => [c.id, c.state]), [[first.id, 'INSTALLED']], 'the old CHILD_SA stays');
  assert.ok(first.rekeyAt > env.w.sched.now(), 'its rekey is retried later');
  const bsa = only(env.b);
  assert.deepEqual(bsa.children.map((c) => c.spiOut), [first.spiIn], 'b deleted the CHILD_SA it had made');
  assert.equal(env.b.dp.installed.size, 1);
  assert.equal(env.a.dp.pendingSpis, 0);
  // Once the peer answers properly, the retried rekey completes.
  env.w.filter = () => 'deliver';
  await env.w.advance(60_000, 1000);
  assert.notEqual(sa.children[0]!.id, first.id);
  assert.equal(env.a.dp.installed.size, 1);
  assert.equal(env.b.dp.installed.size, 1);
});

test('a CREATE_CHILD_SA response whose payloads do not parse fails the exchange at once with a log line saying why', async () => {
  const cap = captureLog();
  const env = pair({ logA: cap.log });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const sa = only(env.a);
  const first = sa.children[0]!;
  rewriteResponses(env.w, ExchangeType.CREATE_CHILD_SA, () => only(env.b), () => sa, (_c, p) =>
    p.map((x) => (x.type === PayloadType.NONCE ? { ...x, data: Buffer.alloc(5) } : x)),
  );
  env.a.engine.rekeyChild(sa, first);
  await env.w.run();
  const line = cap.lines.find((l) => l.msg === 'response unusable, exchange failed');
  assert.ok(line, 'logged');
  assert.match(String(line.reason), /nonce length 5/);
  assert.equal(line.exchange, 'CREATE_CHILD_SA');
  assert.equal(env.a.engine.stats.retransmitsSent, 0);
  assert.equal(sa.active, undefined);
  assert.deepEqual(sa.children.map((c) => c.id), [first.id]);
  assert.deepEqual(only(env.b).children.map((c) => c.spiOut), [first.spiIn], 'the CHILD_SA b made is deleted (our SPI named it)');
  assert.equal(env.b.dp.installed.size, 1);
  assert.equal(env.a.dp.pendingSpis, 0);
});

test('an IKE_AUTH response that does not parse deletes the IKE SA at once, with a Delete to the peer', async () => {
  const cap = captureLog();
  const env = pair({ logA: cap.log });
  let aSa: IkeSa | undefined;
  rewriteResponses(env.w, ExchangeType.IKE_AUTH, () => only(env.b), () => aSa!, (chain) => Buffer.concat([chain.subarray(0, chain.length - 3)]));
  const p = env.a.engine.initiate('lab');
  p.catch(() => undefined);
  // The forging needs a's SA (its keys open b's answer): capture it once IKE_SA_INIT is done.
  const filter = env.w.filter;
  env.w.filter = (pkt) => {
    aSa ??= [...env.a.engine.table.values()][0];
    return filter(pkt);
  };
  await env.w.run();
  await assert.rejects(p);
  const line = cap.lines.find((l) => l.msg === 'response unusable, exchange failed');
  assert.equal(line?.exchange, 'IKE_AUTH');
  assert.equal(env.a.engine.stats.retransmitsSent, 0);
  assert.equal(env.a.engine.table.size, 0);
  assert.equal(env.b.engine.table.size, 0, 'b deleted its IKE SA on our Delete');
  assert.equal(env.a.dp.installed.size, 0);
  assert.equal(env.b.dp.installed.size, 0);
  assert.equal(env.a.dp.pendingSpis, 0);
});

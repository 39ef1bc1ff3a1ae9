/**
 * Stopping with exchanges of ours in flight: the final Delete waits for the exchange to complete, so
 * it carries the message ID the peer (window size 1) expects and the peer removes the IKE SA too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pair, settle } from '../helpers/engine-pair.ts';
import type { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';

type Env = ReturnType<typeof pair>;

async function established(): Promise<{ env: Env; sa: IkeSa; sb: IkeSa }> {
  const env = pair({ a: { rekeyTime: 0 }, b: { rekeyTime: 0 } });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const sa = [...env.a.engine.table.values()][0]!;
  const sb = [...env.b.engine.table.values()][0]!;
  assert.equal(sa.state, 'ESTABLISHED');
  assert.equal(sb.state, 'ESTABLISHED');
  return { env, sa, sb };
}

/** Neither side holds an IKE SA or a CHILD_SA any more, and the peer heard of it by our Delete. */
function bothGone(env: Env, rxInvalidBefore: number): void {
  assert.equal([...env.a.engine.table.values()].filter((s) => !s.dead).length, 0, 'we hold no IKE SA');
  assert.equal([...env.b.engine.table.values()].filter((s) => !s.dead).length, 0, 'the peer holds no IKE SA');
  assert.equal(env.a.dp.installed.size, 0, 'our dataplane is empty');
  assert.equal(env.b.dp.installed.size, 0, 'the peer dataplane is empty');
  assert.ok(env.b.events.some((e) => e.type === 'ike-down' && e.reason === 'deleted by peer'), 'the peer took our Delete');
  // A request out of the peer's window would be counted as invalid and ignored.
  assert.equal(env.b.engine.stats.rxInvalid, rxInvalidBefore, 'no request of ours was out of the peer window');
}

test('stop while our CREATE_CHILD_SA is unanswered: the Delete follows its response with the message ID the peer expects', async () => {
  const { env, sa, sb } = await established();
  const invalid = env.b.engine.stats.rxInvalid;
  env.w.delayMs = 100;
  env.a.engine.rekeyChild(sa, sa.children[0]!);
  await settle();
  assert.equal(sa.active?.task.kind, 'child-create', 'the CHILD_SA rekey is in flight');
  const mid = sa.active.mid;
  const drained = env.a.engine.shutdown(true);
  assert.ok(!sa.dead, 'the IKE SA waits for the exchange in flight');
  // Only the CREATE_CHILD_SA request is on the wire: no Delete went ahead of its response.
  assert.equal(env.w.queue.length, 1);
  await env.w.advance(1_000, 50);
  await drained;
  assert.ok(sa.dead && sb.dead);
  assert.equal(sb.recvMid, mid + 2, 'the peer took the rekey and then the Delete');
  bothGone(env, invalid);
});

test('stop while our request is lost once: its retransmission is answered, then the Delete goes', async () => {
  const { env, sa, sb } = await established();
  const invalid = env.b.engine.stats.rxInvalid;
  let dropped = 0;
  env.w.filter = (p) => (p.local.addr === '192.0.2.1' && dropped++ === 0 ? 'drop' : 'deliver');
  env.a.engine.rekeyChild(sa, sa.children[0]!);
  await settle();
  assert.equal(sa.active?.task.kind, 'child-create');
  const drained = env.a.engine.shutdown(true);
  await env.w.run();
  assert.ok(!sa.dead && !sb.dead, 'waiting for the retransmission');
  await env.w.advance(5_000, 250);
  await drained;
  assert.equal(env.a.engine.stats.retransmitsSent, 1);
  bothGone(env, invalid);
});

test('stop while our IKE SA rekey is unanswered: the peer is told of the new IKE SA and the old one', async () => {
  const { env, sa, sb } = await established();
  const invalid = env.b.engine.stats.rxInvalid;
  env.w.delayMs = 100;
  assert.ok(env.a.engine.rekeyIke(sa));
  await settle();
  assert.equal(sa.active?.task.kind, 'ike-rekey');
  const drained = env.a.engine.shutdown(true);
  await env.w.advance(1_000, 50);
  await drained;
  // The peer removed the new IKE SA and the old one (a rekeyed IKE SA goes without an ike-down event).
  const gone = env.b.events.filter((e) => e.type === 'ike-down' && e.reason === 'deleted by peer');
  assert.equal(gone.length, 1);
  assert.notEqual(gone[0]!.sa, sb, 'the new IKE SA');
  assert.ok(sb.dead, 'the old IKE SA');
  bothGone(env, invalid);
});

test('stop while the peer does not answer: at the deadline the Delete goes anyway and the stop completes', async () => {
  const { env, sa } = await established();
  env.w.filter = () => 'drop';
  env.a.engine.rekeyChild(sa, sa.children[0]!);
  await settle();
  const drained = env.a.engine.shutdown(true);
  let done = false;
  void drained.then(() => (done = true));
  await env.w.advance(3_000, 500);
  assert.ok(!done && !sa.dead, 'still waiting before the deadline');
  const sent = env.w.log.length;
  assert.equal(env.a.engine.abandonShutdown(), 1);
  await drained;
  assert.ok(sa.dead);
  assert.equal(env.w.log.length, sent + 1, 'one Delete sent at the deadline');
  assert.equal(env.a.engine.table.size, 0);
  assert.equal(env.a.dp.installed.size, 0);
  assert.equal(env.a.dp.pendingSpis, 0, 'the SPI the unanswered rekey allocated is released');
});

test('stop while the peer does not answer and the retransmissions give up: the rekey\'s SPI is released', async () => {
  const { env, sa } = await established();
  env.w.filter = () => 'drop';
  env.a.engine.rekeyChild(sa, sa.children[0]!);
  await settle();
  assert.equal(env.a.dp.pendingSpis, 1, 'the rekey holds an SPI of ours');
  const drained = env.a.engine.shutdown(true);
  await env.w.advance(400_000, 5_000);
  await drained;
  assert.ok(sa.dead);
  assert.equal(env.a.dp.installed.size, 0);
  assert.equal(env.a.dp.pendingSpis, 0, 'no SPI left allocated');
});

test('stop with nothing in flight: every Delete goes at once and the stop completes at once', async () => {
  const { env, sb } = await established();
  const invalid = env.b.engine.stats.rxInvalid;
  await env.a.engine.shutdown(true);
  assert.equal(env.a.engine.table.size, 0);
  await env.w.run();
  assert.ok(sb.dead);
  bothGone(env, invalid);
});

test('operator terminate while our CREATE_CHILD_SA is unanswered: the Delete follows its response', async () => {
  const { env, sa, sb } = await established();
  const invalid = env.b.engine.stats.rxInvalid;
  env.w.delayMs = 100;
  env.a.engine.rekeyChild(sa, sa.children[0]!);
  await settle();
  assert.equal(sa.active?.task.kind, 'child-create');
  env.a.engine.deleteIke(sa);
  assert.equal(env.w.queue.length, 1, 'no Delete ahead of the response');
  await env.w.advance(1_000, 50);
  assert.ok(sa.dead && sb.dead);
  bothGone(env, invalid);
});

test('stopping: IKE_SA_INIT requests are not answered and nothing is initiated', async () => {
  const { env } = await established();
  await env.b.engine.shutdown(true);
  await env.w.run();
  const sent = env.w.log.length;
  await assert.rejects(env.b.engine.initiate('lab'), /stopping/);
  // The peer starts a new IKE SA: its IKE_SA_INIT goes unanswered.
  void env.a.engine.initiate('lab').catch(() => undefined);
  await env.w.advance(1_000, 100);
  assert.ok(env.w.log.length > sent, 'the peer sent its IKE_SA_INIT');
  assert.equal([...env.b.engine.table.values()].length, 0, 'the stopped engine holds no IKE SA');
  assert.ok(env.w.log.slice(sent).every((p) => p.local.addr !== '192.0.2.2'), 'the stopped engine sent nothing');
});

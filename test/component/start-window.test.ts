/**
 * The start queue's window (EngineOptions.startLimitHalfOpen, `daemon.start_limit_half_open`): of
 * the connections with start_action = start, at most that many IKE SAs wait for their peer's answers
 * at once; the next ones start as those come up or fail, or once the oldest reaches its first
 * retransmission (a peer that does not answer holds a slot for retransmit_timeout at most); 0 starts
 * all at once. `Engine.starts` shows the queue.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExchangeType } from '../../src/ikev2/constants.ts';
import type { EngineOptions } from '../../src/ikev2/engine/engine.ts';
import { parseProposals } from '../../src/ikev2/crypto/proposals.ts';
import { Wire, child, config, conn, psk } from '../helpers/engine-pair.ts';

const A = '192.0.2.1';
const B = '192.0.2.2';
const N = 10;

/** `refused`: connections c0.. that offer only an IKE proposal the peer refuses (NO_PROPOSAL_CHOSEN). */
function hubAndPeer(engineA: Partial<EngineOptions>, refused = 0) {
  const w = new Wire();
  const secret = psk([], 'start-window-preshared-key');
  const conns = Array.from({ length: N }, (_, i) =>
    conn(`c${i}`, {
      localAddrs: [A],
      remoteAddrs: [B],
      local: { auth: 'psk', id: `c${i}.lab`, certs: [], cacerts: [] },
      remote: { auth: 'psk', id: 'b.lab', certs: [], cacerts: [] },
      children: [child('net', { localTs: [`10.1.${i}.0/24`], remoteTs: ['10.2.0.0/16'], startAction: 'start' })],
      ...(i < refused ? { proposals: parseProposals('aes128-sha256-modp3072', 'ike') } : {}),
    }),
  );
  const a = w.add(A, config(conns, [secret]), { engine: engineA });
  const b = w.add(
    B,
    config([conn('any', { local: { auth: 'psk', id: 'b.lab', certs: [], cacerts: [] }, children: [child('net', { localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] })] })], [secret]),
  );
  /** IKE SAs `a` started (distinct SPIs of its IKE_SA_INIT requests). */
  const started = (): number => new Set(w.log.filter((p) => p.local.addr === A && p.data[18] === ExchangeType.IKE_SA_INIT).map((p) => p.data.subarray(0, 8).toString('hex'))).size;
  const connecting = (): number => [...a.engine.table.values()].filter((s) => s.state === 'CONNECTING').length;
  const established = (): number => [...a.engine.table.values()].filter((s) => s.state === 'ESTABLISHED').length;
  return { w, a, b, started, connecting, established };
}

test('at most start_limit_half_open IKE SAs wait for answers at once; the next start as those come up', async () => {
  const { w, a, started, connecting, established } = hubAndPeer({ startLimitHalfOpen: 3 });
  let most = 0;
  w.afterDelivery = () => void (most = Math.max(most, connecting()));
  a.engine.startConnections();
  assert.equal(started(), 3, 'three started');
  assert.deepEqual(a.engine.starts, { waiting: N - 3, in_flight: 3, limit: 3 });
  await w.run();
  await w.advance(2000, 100);
  assert.equal(established(), N, 'all up');
  assert.equal(started(), N, 'each started once');
  assert.equal(most, 3, 'never more than three waiting for answers');
  assert.deepEqual(a.engine.starts, { waiting: 0, in_flight: 0, limit: 3 });
});

test('peers that do not answer hold their slots until the first retransmission, then the next connections start', async () => {
  const { w, a, started, established } = hubAndPeer({ startLimitHalfOpen: 3, retransmitTimeout: 4 });
  w.filter = () => 'drop';
  a.engine.startConnections();
  await w.run();
  await w.advance(3900, 100);
  assert.equal(started(), 3, 'nothing more before the first retransmission');
  await w.advance(200, 100);
  assert.equal(started(), 6, 'the next three once the first three are due to retransmit');
  assert.equal(a.engine.starts.in_flight, 3);
  await w.advance(8000, 100);
  assert.equal(started(), N, 'all started, three at a time');
  // the peer comes back: every connection comes up (those still retransmitting, and the rest)
  w.filter = () => 'deliver';
  await w.advance(200_000, 1000);
  assert.equal(established(), N);
  assert.equal(a.engine.table.size, N, 'one IKE SA per connection');
  assert.deepEqual(a.engine.starts, { waiting: 0, in_flight: 0, limit: 3 });
});

test('start_limit_half_open = 0 starts every connection at once', async () => {
  const { w, a, started, established } = hubAndPeer({ startLimitHalfOpen: 0 });
  w.filter = () => 'drop';
  a.engine.startConnections();
  assert.equal(started(), N);
  w.filter = () => 'deliver';
  await w.advance(200_000, 1000);
  assert.equal(established(), N);
});

test('a start that fails frees its slot at once', async () => {
  const { w, a, established } = hubAndPeer({ startLimitHalfOpen: 2 }, 2);
  a.engine.startConnections();
  await w.run();
  await w.advance(500, 100);
  // the two refused ones (retried later with backoff) did not hold the window until their first retransmission
  assert.equal(established(), N - 2);
  assert.equal(a.engine.starts.waiting, 0);
});

test('a configuration replaced while connections wait (a reload) starts them with the new one', async () => {
  const { w, a, started } = hubAndPeer({ startLimitHalfOpen: 2, retransmitTimeout: 4 });
  w.filter = () => 'drop';
  a.engine.startConnections();
  await w.run();
  assert.equal(started(), 2);
  // the same connections as new objects, as a reload makes them (unchanged ones keep their names)
  const cfg = a.engine.config;
  a.engine.setConfig(config(cfg.connections.map((c) => ({ ...c })), [psk([], 'start-window-preshared-key')]));
  await w.advance(4100, 100);
  assert.equal(started(), 4, 'the waiting ones went on starting');
  assert.ok([...a.engine.table.values()].some((s) => s.conn === a.engine.config.get(s.conn!.name)), 'with the new configuration');
});

test('a connection terminated while it waits leaves the queue and never starts', async () => {
  const { w, a, started } = hubAndPeer({ startLimitHalfOpen: 2, retransmitTimeout: 4 });
  w.filter = () => 'drop';
  a.engine.startConnections();
  await w.run();
  assert.equal(a.engine.forgetConnection('c5'), true, 'c5 was waiting');
  assert.equal(a.engine.forgetConnection('c0'), false, 'c0 had started');
  assert.equal(a.engine.starts.waiting, N - 3);
  await w.advance(30_000, 500);
  assert.equal(started(), N - 1);
  assert.ok(![...a.engine.table.values()].some((s) => s.conn?.name === 'c5'));
});

test('timer housekeeping keeps the start window timer', async () => {
  const { w, a, started } = hubAndPeer({ startLimitHalfOpen: 1, retransmitTimeout: 4 });
  w.filter = () => 'drop';
  a.engine.startConnections();
  await w.run();
  assert.equal(started(), 1);
  // stale entries (no such SA) until the heap is worth compacting
  const sched = (a.engine as unknown as { ctx: { sched: { schedule(at: number, key: number, kind: number): void } } }).ctx.sched;
  for (let i = 0; i < 200; i++) sched.schedule(w.sched.now() + 1000, 900_000 + i, 1);
  a.engine.compactTimers();
  await w.advance(4100, 100);
  assert.equal(started(), 2, 'the next connection started at the first retransmission of the first');
});

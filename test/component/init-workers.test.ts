/**
 * IKE_SA_INIT answered with the key exchange and key derivation on worker threads (EngineOptions
 * .workers, `daemon.workers`): handshakes complete with the same keys on both sides, a retransmitted
 * request whose answer is still being computed is ignored (then answered from the cache), a KE value
 * the group refuses gets INVALID_SYNTAX and leaves no SA, and an SA that goes away while its keys are
 * computed gets no answer. Threads that start when load appears (`workersStartAt`, as the daemon
 * runs them) are not started by a few requests; until one has loaded, requests are answered on the
 * event loop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { Engine, type OutPacket } from '../../src/ikev2/engine/engine.ts';
import { FakeScheduler } from '../../src/common/clock.ts';
import { MemoryDataplane } from '../../src/dataplane/memory.ts';
import { decodeMessage } from '../../src/ikev2/codec/message.ts';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType } from '../../src/ikev2/constants.ts';
import { WIRE_VERSION, computeInitKeys, decodeJobs, decodeResults, encodeJobs, encodeResults, type InitKeyJob } from '../../src/ikev2/crypto/pool.ts';
import { conn, child, config, psk } from '../helpers/engine-pair.ts';

const silent = pino({ level: 'silent' });
const SECRET = psk([], 'workers-test-preshared-key');

function responder(workers: number, workersStartAt?: number, workersStopAfterMs?: number) {
  let out: OutPacket[] = [];
  const dp = new MemoryDataplane();
  const engine = new Engine({
    scheduler: new FakeScheduler(0),
    random: randomBytes,
    send: (p) => out.push(p),
    dataplane: dp,
    log: silent,
    port: 500,
    portNatT: 4500,
    ikeSaLimit: 100,
    workers,
    workersStopAfterMs,
    workersStartAt,
    localAddressFor: () => '192.0.2.2',
  });
  engine.setConfig(
    config(
      [conn('any', { local: { auth: 'psk', id: 'gw.lab', certs: [], cacerts: [] }, children: [child('net', { localTs: ['10.0.0.0/8'], remoteTs: ['dynamic'] })] })],
      [SECRET],
      100,
    ),
  );
  return { engine, dp, take: (): OutPacket[] => ((x) => ((out = []), x))(out) };
}

function initiator(i: number) {
  let out: OutPacket[] = [];
  const engine = new Engine({
    scheduler: new FakeScheduler(0),
    random: randomBytes,
    send: (p) => out.push(p),
    dataplane: new MemoryDataplane(),
    log: silent,
    port: 500,
    portNatT: 4500,
    ikeSaLimit: 4,
    localAddressFor: () => `10.0.0.${i + 1}`,
  });
  engine.setConfig(
    config(
      [conn('gw', { remoteAddrs: ['192.0.2.2'], local: { auth: 'psk', id: `c${i}.lab`, certs: [], cacerts: [] }, children: [child('net', { remoteTs: ['10.0.0.0/8'] })] })],
      [SECRET],
    ),
  );
  return { engine, take: (): OutPacket[] => ((x) => ((out = []), x))(out) };
}

/** Wait (real time: the workers are real threads) until `cond` holds. */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('the job and result encodings round-trip, and the worker computes what the event loop would', () => {
  const job: InitKeyJob = {
    group: 31,
    peerValue: randomBytes(32),
    prfId: 5,
    keymatLen: 168,
    ni: randomBytes(32),
    nr: randomBytes(48),
    spiI: randomBytes(8),
    spiR: randomBytes(8),
  };
  const back = decodeJobs(encodeJobs([{ id: 7, job }, { id: 0xffffffff, job: { ...job, group: 19, peerValue: randomBytes(64), ni: randomBytes(256), nr: randomBytes(16) } }]));
  assert.equal(back.length, 2);
  assert.equal(back[1]!.job.ni.length, 256, 'nonces up to 256 bytes (RFC 7296 §3.9)');
  assert.equal(back[1]!.job.nr.length, 16);
  assert.equal(back[0]!.id, 7);
  assert.deepEqual({ ...back[0]!.job }, job);
  assert.equal(back[1]!.id, 0xffffffff);
  assert.equal(back[1]!.job.peerValue.length, 64);
  const r = computeInitKeys(job);
  assert.ok(r.ok);
  assert.equal(r.keymat.length, 168);
  const results = decodeResults(encodeResults([{ id: 3, r }, { id: 4, r: { ok: false, invalid: true } }, { id: 5, r: { ok: false, invalid: false, error: 'x' } }]));
  assert.deepEqual(results.map((x) => [x.id, x.r.ok]), [[3, true], [4, false], [5, false]]);
  assert.ok(results[0]!.r.ok && results[0]!.r.keymat.equals(r.keymat) && results[0]!.r.publicValue.equals(r.publicValue));
  assert.ok(!results[1]!.r.ok && results[1]!.r.invalid);
  assert.ok(!results[2]!.r.ok && !results[2]!.r.invalid);
  // an x25519 value of the wrong length is refused
  assert.deepEqual(computeInitKeys({ ...job, peerValue: randomBytes(31) }), { ok: false, invalid: true });
});

test('with two worker threads, 24 concurrent handshakes establish on both sides, their IKE_SA_INITs sent in batches', async () => {
  const r = responder(2);
  try {
    const inits = Array.from({ length: 24 }, (_, i) => initiator(i));
    const ups = inits.map((x) => x.engine.initiate('gw'));
    for (let round = 0; round < 6; round++) {
      for (const x of inits) for (const p of x.take()) r.engine.receive(p.remote, p.local, p.data);
      // answers to IKE_SA_INIT come from the workers; IKE_AUTH answers at once
      await until(() => r.engine.workers.pending === 0, 'the workers');
      await new Promise((res) => setImmediate(res));
      for (const p of r.take()) {
        const to = inits.find((x) => `10.0.0.${inits.indexOf(x) + 1}` === p.remote.addr)!;
        to.engine.receive(p.remote, p.local, p.data);
      }
      await new Promise((res) => setImmediate(res));
    }
    const sas = await Promise.all(ups);
    assert.equal(sas.length, 24);
    const established = [...r.engine.table.values()].filter((s) => s.state === 'ESTABLISHED');
    assert.equal(established.length, 24);
    assert.equal(r.dp.installed.size, 24, 'one CHILD_SA each in the dataplane');
    const w = r.engine.workers;
    assert.equal(w.threads, 2);
    assert.equal(w.jobs, 24);
    assert.ok(w.batches < 24, `24 jobs in ${w.batches} batches`);
    // keys agree: the CHILD_SAs' keys match across the wire
    for (const [i, x] of inits.entries()) {
      const mine = x.engine.table.values().next().value!;
      const theirs = established.find((s) => s.spiI.equals(mine.spiI))!;
      assert.ok(theirs, `initiator ${i} has its SA on the responder`);
      assert.ok(mine.keys!.skD.equals(theirs.keys!.skD), 'same SK_d');
    }
  } finally {
    await r.engine.close();
  }
});

test('a retransmitted IKE_SA_INIT whose answer is being computed is ignored; once answered, it is answered again from the cache', async () => {
  const r = responder(1);
  try {
    const i = initiator(0);
    void i.engine.initiate('gw').catch(() => {});
    const [req] = i.take();
    r.engine.receive(req!.remote, req!.local, req!.data);
    r.engine.receive(req!.remote, req!.local, req!.data);
    assert.equal(r.engine.table.size, 1, 'one SA for both copies');
    assert.equal(r.take().length, 0, 'nothing sent before the keys are in');
    await until(() => r.engine.workers.pending === 0, 'the worker');
    await new Promise((res) => setImmediate(res));
    const first = r.take();
    assert.equal(first.length, 1, 'one answer for the two copies');
    const h = decodeMessage(first[0]!.data).header;
    assert.equal(h.exchange, ExchangeType.IKE_SA_INIT);
    assert.ok(h.flags & HeaderFlag.RESPONSE);
    r.engine.receive(req!.remote, req!.local, req!.data);
    const again = r.take();
    assert.equal(again.length, 1);
    assert.ok(again[0]!.data.equals(first[0]!.data), 'the same answer, from the cache');
    assert.equal(r.engine.stats.retransmitsAnswered, 1);
  } finally {
    await r.engine.close();
  }
});

test('a KE value the group refuses gets INVALID_SYNTAX from the worker path and leaves no SA', async () => {
  const r = responder(1);
  try {
    const i = initiator(0);
    void i.engine.initiate('gw').catch(() => {});
    const [req] = i.take();
    // x25519's all-zero point: the shared secret would be all zeros (RFC 8031 §2.3)
    const msg = decodeMessage(req!.data);
    const ke = msg.payloads.find((p) => p.type === PayloadType.KE);
    assert.ok(ke && ke.type === PayloadType.KE);
    const at = req!.data.indexOf(ke.data);
    const bad = Buffer.from(req!.data);
    bad.fill(0, at, at + ke.data.length);
    r.engine.receive(req!.remote, req!.local, bad);
    await until(() => r.engine.workers.pending === 0, 'the worker');
    await new Promise((res) => setImmediate(res));
    const out = r.take();
    assert.equal(out.length, 1);
    const resp = decodeMessage(out[0]!.data);
    const n = resp.payloads.find((p) => p.type === PayloadType.NOTIFY);
    assert.ok(n && n.type === PayloadType.NOTIFY && n.notifyType === NotifyType.INVALID_SYNTAX);
    assert.equal(r.engine.table.size, 0, 'no SA left');
    assert.equal(r.engine.gauges.ikeByState.CONNECTING, 0);
    assert.equal(r.engine.stats.rxInvalid, 1);
  } finally {
    await r.engine.close();
  }
});

test('an SA that goes away while its keys are computed gets no answer', async () => {
  const r = responder(1);
  try {
    const i = initiator(0);
    void i.engine.initiate('gw').catch(() => {});
    const [req] = i.take();
    r.engine.receive(req!.remote, req!.local, req!.data);
    assert.equal(r.engine.table.size, 1);
    r.engine.shutdown(false);
    assert.equal(r.engine.table.size, 0);
    await until(() => r.engine.workers.pending === 0, 'the worker');
    await new Promise((res) => setImmediate(res));
    assert.equal(r.take().length, 0);
  } finally {
    await r.engine.close();
  }
});

test('a pool whose workers cannot start becomes unusable and answers its jobs with an error (the engine then computes on the event loop)', async () => {
  const { InitCryptoPool } = await import('../../src/ikev2/crypto/pool.ts');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { pathToFileURL } = await import('node:url');
  const dir = mkdtempSync(join(tmpdir(), 'pool-'));
  const bad = join(dir, 'bad-worker.mjs');
  writeFileSync(bad, "throw new Error('cannot start');\n");
  const answers: string[] = [];
  const pool = new InitCryptoPool<string>(2, (t, r) => answers.push(`${t}:${r.ok ? 'ok' : r.invalid ? 'invalid' : r.error}`), pathToFileURL(bad));
  try {
    await until(() => !pool.usable, 'the workers to fail');
    assert.equal(pool.stats.workerRestarts, 0, 'a worker that never started is not restarted');
    pool.submit({ group: 31, peerValue: randomBytes(32), prfId: 5, keymatLen: 168, ni: randomBytes(32), nr: randomBytes(32), spiI: randomBytes(8), spiR: randomBytes(8) }, 'a');
    await until(() => answers.length === 1, 'the answer');
    assert.deepEqual(answers, ['a:no crypto worker could be started']);
  } finally {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a burst of IKE_SA_INITs goes to a worker in messages of at most MAX_BATCH jobs, each answered as it is computed', async () => {
  const { InitCryptoPool, MAX_BATCH } = await import('../../src/ikev2/crypto/pool.ts');
  const answers: string[] = [];
  const pool = new InitCryptoPool<number>(1, (t, r) => answers.push(`${t}:${r.ok ? 'ok' : 'failed'}`));
  try {
    const job = (): InitKeyJob => ({ group: 31, peerValue: randomBytes(32), prfId: 5, keymatLen: 168, ni: randomBytes(32), nr: randomBytes(32), spiI: randomBytes(8), spiR: randomBytes(8) });
    const n = 2 * MAX_BATCH + 5;
    // all submitted within one event-loop turn: one flush splits them
    for (let i = 0; i < n; i++) pool.submit(job(), i);
    await until(() => answers.length === n, 'the answers');
    assert.equal(pool.stats.batches, 3, `${n} jobs in three messages`);
    assert.equal(pool.stats.largestBatch, MAX_BATCH);
    assert.deepEqual(answers.sort(), Array.from({ length: n }, (_, i) => `${i}:ok`).sort());
  } finally {
    await pool.close();
  }
});

test('a pool that waits for load starts its threads only when enough jobs come within one second', async () => {
  const { InitCryptoPool } = await import('../../src/ikev2/crypto/pool.ts');
  const pool = new InitCryptoPool<string>(1, () => {}, undefined, { startAt: 3 });
  try {
    assert.equal(pool.running, 0, 'no thread before any load');
    assert.equal(pool.offer(0), false);
    assert.equal(pool.offer(500), false);
    assert.equal(pool.running, 0, 'two offers in a second are not load');
    assert.equal(pool.offer(1500), false, 'a new second counts from one again');
    assert.equal(pool.offer(1600), false);
    assert.equal(pool.running, 0);
    assert.equal(pool.offer(1700), false, 'the third offer in a second starts the threads, but none has loaded yet');
    assert.equal(pool.running, 1);
    await until(() => pool.offer(1800), 'the thread to load');
  } finally {
    await pool.close();
  }
});

/** One full handshake of a new initiator against `r`, packets delivered as they are sent. */
async function oneHandshake(r: ReturnType<typeof responder>, i: number): Promise<void> {
  const x = initiator(i);
  const up = x.engine.initiate('gw');
  for (let round = 0; round < 4; round++) {
    for (const p of x.take()) r.engine.receive(p.remote, p.local, p.data);
    await until(() => r.engine.workers.pending === 0, 'the workers');
    await new Promise((res) => setImmediate(res));
    for (const p of r.take()) x.engine.receive(p.remote, p.local, p.data);
    await new Promise((res) => setImmediate(res));
  }
  await up;
}

test('threads that wait for load: a few IKE_SA_INITs are answered on the event loop, more start the threads, which then take the requests', async () => {
  const r = responder(1, 4);
  try {
    for (let i = 0; i < 3; i++) await oneHandshake(r, i);
    assert.deepEqual([r.engine.workers.running, r.engine.workers.jobs], [0, 0], 'three handshakes: no thread started');
    await oneHandshake(r, 3);
    assert.equal(r.engine.workers.running, 1, 'the fourth IKE_SA_INIT in the same second starts the thread');
    assert.equal(r.engine.workers.jobs, 0, 'answered on the event loop while the thread loads');
    let i = 4;
    const end = Date.now() + 10_000;
    while (r.engine.workers.jobs === 0 && Date.now() < end) {
      await oneHandshake(r, i++);
      await new Promise((res) => setTimeout(res, 10));
    }
    assert.ok(r.engine.workers.jobs > 0, 'once loaded, the thread computes IKE_SA_INIT requests');
    const established = [...r.engine.table.values()].filter((s) => s.state === 'ESTABLISHED');
    assert.equal(established.length, i, 'every handshake completed, on either path');
    assert.equal(r.dp.installed.size, i);
  } finally {
    await r.engine.close();
  }
});

test('threads that waited for load stop once it is gone, and load starts them again', async () => {
  const r = responder(1, 4, 300);
  try {
    let i = 0;
    const loadUntilJobs = async (want: number): Promise<void> => {
      const end = Date.now() + 10_000;
      while (r.engine.workers.jobs < want && Date.now() < end) {
        await oneHandshake(r, i++);
        await new Promise((res) => setTimeout(res, 10));
      }
      assert.ok(r.engine.workers.jobs >= want, `the thread computed ${r.engine.workers.jobs} of ${want} IKE_SA_INITs`);
    };
    await loadUntilJobs(1);
    assert.equal(r.engine.workers.running, 1);
    await until(() => r.engine.workers.running === 0, 'the idle thread stopping', 3000);
    assert.equal(r.engine.workers.idle_stops, 1);
    const jobs = r.engine.workers.jobs;
    for (let k = 0; k < 3; k++) await oneHandshake(r, i++);
    assert.deepEqual([r.engine.workers.running, r.engine.workers.jobs], [0, jobs], 'a few handshakes: answered on the event loop, no thread');
    await loadUntilJobs(jobs + 1);
    assert.equal(r.engine.workers.running, 1, 'load started the thread again');
    const established = [...r.engine.table.values()].filter((s) => s.state === 'ESTABLISHED');
    assert.equal(established.length, i, 'every handshake completed');
  } finally {
    await r.engine.close();
  }
});

test('a crypto worker started by a daemon of another job layout refuses to run; one of this layout reports in', async () => {
  const script = new URL('../../src/ikev2/crypto/pool-worker.ts', import.meta.url);
  const other = new Worker(script, { workerData: { wire: WIRE_VERSION + 1 } });
  const [err] = (await once(other, 'error')) as [Error];
  assert.match(err.message, /another version/);
  const same = new Worker(script, { workerData: { wire: WIRE_VERSION } });
  const [ready] = (await once(same, 'message')) as [ArrayBuffer];
  assert.equal(ready.byteLength, 0, 'loaded: an empty batch of results');
  await same.terminate();
});

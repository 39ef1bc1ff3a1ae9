/**
 * The worker thread of InitCryptoPool (pool.ts): computes each job of a batch and answers the batch
 * with one message. A job that throws is answered with an error status, the others are unaffected.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { computeInitKeys, decodeJobs, encodeResults, WIRE_VERSION, type InitKeyResult } from './pool.ts';

const port = parentPort;
if (!port) throw new Error('pool-worker.ts runs as a worker thread');
// Started by a daemon of another version (its files replaced under it): never answer it; the pool
// counts a thread that fails before it is online as not started and computes on the event loop.
if ((workerData as { wire?: unknown } | null)?.wire !== WIRE_VERSION) throw new Error('crypto worker of another version than the daemon');

port.on('message', (ab: ArrayBuffer) => {
  const results: { id: number; r: InitKeyResult }[] = [];
  for (const { id, job } of decodeJobs(ab)) {
    let r: InitKeyResult;
    try {
      r = computeInitKeys(job);
    } catch (e) {
      r = { ok: false, invalid: false, error: e instanceof Error ? e.message : String(e) };
    }
    results.push({ id, r });
  }
  const out = encodeResults(results);
  port.postMessage(out, [out]);
});

// Loaded: an empty batch of results tells the pool so.
port.postMessage(new ArrayBuffer(0));

/**
 * The worker thread of InitCryptoPool (pool.ts): computes each job of a batch and answers the batch
 * with one message. A job that throws is answered with an error status, the others are unaffected.
 */
import { parentPort } from 'node:worker_threads';
import { computeInitKeys, decodeJobs, encodeResults, type InitKeyResult } from './pool.ts';

const port = parentPort;
if (!port) throw new Error('pool-worker.ts runs as a worker thread');

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

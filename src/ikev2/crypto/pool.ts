/**
 * A small pool of worker threads for the expensive pure part of answering an IKE_SA_INIT: our key
 * pair, the shared secret with the peer's KE value, SKEYSEED and prf+ for SK_* (RFC 7296 §2.14).
 * The event loop keeps parsing, SA state and everything else; on a machine with two cores both are
 * used.
 *
 * Jobs submitted in one turn of the event loop go to the workers as one message per worker: the
 * jobs packed into one ArrayBuffer, transferred (not copied); results come back the same way.
 * Nothing is kept per job but its token in a map until its result is in: no closure per call, one
 * result handler for the whole pool.
 *
 * Job:    u32 id | u16 group | u16 prf id | u16 keymat length | u16 peer value length | u16 Ni length |
 *         u16 Nr length | peer value | Ni | Nr | SPIi (8) | SPIr (8)
 * Result: u32 id | u8 status (0 ok, 1 invalid KE value, 2 error) | u16 public value length |
 *         u16 keymat length | public value | keymat
 */
import { Worker } from 'node:worker_threads';
import { respondKeyExchange } from './ke.ts';
import { Prf } from './prf.ts';
import { prfAlg } from './suites.ts';

/** What the responder needs from IKE_SA_INIT's crypto. */
export interface InitKeyJob {
  group: number;
  peerValue: Buffer;
  prfId: number;
  keymatLen: number;
  ni: Buffer;
  nr: Buffer;
  spiI: Buffer;
  spiR: Buffer;
}

/** Our KE value and SK_d | SK_ai | … | SK_pr; `invalid` when the peer's KE value is not valid for the group. */
export type InitKeyResult = { ok: true; publicValue: Buffer; keymat: Buffer } | { ok: false; invalid: true } | { ok: false; invalid: false; error: string };

/** The computation itself (what a worker runs; also the synchronous path). */
export function computeInitKeys(job: InitKeyJob): InitKeyResult {
  const alg = prfAlg(job.prfId);
  if (!alg) return { ok: false, invalid: false, error: `unknown PRF ${job.prfId}` };
  const dh = respondKeyExchange(job.group, job.peerValue);
  if (!dh) return { ok: false, invalid: true };
  const prf = new Prf(alg);
  const skeyseed = prf.compute(Buffer.concat([job.ni, job.nr]), dh.secret);
  const keymat = prf.plus(skeyseed, Buffer.concat([job.ni, job.nr, job.spiI, job.spiR]), job.keymatLen);
  return { ok: true, publicValue: dh.publicValue, keymat };
}

/**
 * The job and result layout's version. A worker refuses to run for a main thread of another one: the
 * threads stop when idle and start again from the files on disk, which an upgrade in place may have
 * replaced under a running daemon (bump this with any change to the layout above).
 */
export const WIRE_VERSION = 1;

const JOB_HEAD = 16;
/** The most jobs in one message to a worker (see flush). */
export const MAX_BATCH = 16;
const RESULT_HEAD = 9;

export function encodeJobs(jobs: readonly { id: number; job: InitKeyJob }[]): ArrayBuffer {
  let n = 0;
  for (const { job } of jobs) n += JOB_HEAD + job.peerValue.length + job.ni.length + job.nr.length + 16;
  const ab = new ArrayBuffer(n);
  const b = Buffer.from(ab);
  let o = 0;
  for (const { id, job } of jobs) {
    if (job.peerValue.length > 0xffff || job.ni.length > 0xffff || job.nr.length > 0xffff || job.spiI.length !== 8 || job.spiR.length !== 8) {
      throw new RangeError('bad IKE_SA_INIT job');
    }
    o = b.writeUInt32BE(id, o);
    o = b.writeUInt16BE(job.group, o);
    o = b.writeUInt16BE(job.prfId, o);
    o = b.writeUInt16BE(job.keymatLen, o);
    o = b.writeUInt16BE(job.peerValue.length, o);
    o = b.writeUInt16BE(job.ni.length, o);
    o = b.writeUInt16BE(job.nr.length, o);
    for (const part of [job.peerValue, job.ni, job.nr, job.spiI, job.spiR]) o += part.copy(b, o);
  }
  return ab;
}

export function decodeJobs(ab: ArrayBuffer): { id: number; job: InitKeyJob }[] {
  const b = Buffer.from(ab);
  const out: { id: number; job: InitKeyJob }[] = [];
  let o = 0;
  while (o < b.length) {
    const id = b.readUInt32BE(o);
    const group = b.readUInt16BE(o + 4);
    const prfId = b.readUInt16BE(o + 6);
    const keymatLen = b.readUInt16BE(o + 8);
    const peerLen = b.readUInt16BE(o + 10);
    const niLen = b.readUInt16BE(o + 12);
    const nrLen = b.readUInt16BE(o + 14);
    o += JOB_HEAD;
    const take = (n: number): Buffer => b.subarray(o, (o += n));
    const peerValue = take(peerLen);
    const ni = take(niLen);
    const nr = take(nrLen);
    const spiI = take(8);
    const spiR = take(8);
    out.push({ id, job: { group, prfId, keymatLen, peerValue, ni, nr, spiI, spiR } });
  }
  return out;
}

export function encodeResults(results: readonly { id: number; r: InitKeyResult }[]): ArrayBuffer {
  let n = 0;
  for (const { r } of results) n += RESULT_HEAD + (r.ok ? r.publicValue.length + r.keymat.length : 0);
  const ab = new ArrayBuffer(n);
  const b = Buffer.from(ab);
  let o = 0;
  for (const { id, r } of results) {
    o = b.writeUInt32BE(id, o);
    o = b.writeUInt8(r.ok ? 0 : r.invalid ? 1 : 2, o);
    o = b.writeUInt16BE(r.ok ? r.publicValue.length : 0, o);
    o = b.writeUInt16BE(r.ok ? r.keymat.length : 0, o);
    if (r.ok) {
      o += r.publicValue.copy(b, o);
      o += r.keymat.copy(b, o);
    }
  }
  return ab;
}

export function decodeResults(ab: ArrayBuffer): { id: number; r: InitKeyResult }[] {
  const b = Buffer.from(ab);
  const out: { id: number; r: InitKeyResult }[] = [];
  let o = 0;
  while (o < b.length) {
    const id = b.readUInt32BE(o);
    const status = b[o + 4]!;
    const pubLen = b.readUInt16BE(o + 5);
    const kmLen = b.readUInt16BE(o + 7);
    o += RESULT_HEAD;
    if (status === 0) {
      const publicValue = b.subarray(o, o + pubLen);
      const keymat = b.subarray(o + pubLen, o + pubLen + kmLen);
      o += pubLen + kmLen;
      out.push({ id, r: { ok: true, publicValue, keymat } });
    } else {
      out.push({ id, r: status === 1 ? { ok: false, invalid: true } : { ok: false, invalid: false, error: 'computation failed in the worker' } });
    }
  }
  return out;
}

/** The number of workers for `daemon.workers = auto`: one per core beyond the event loop's. */
export function autoWorkers(cores: number): number {
  return Math.max(0, cores - 1);
}

interface Slot<T> {
  worker: Worker;
  /** The worker's module loaded: it said so with an empty message (one that dies before is not replaced). */
  online: boolean;
  /** Jobs sent to this worker and not answered yet: id → token. */
  inFlight: Map<number, T>;
}

export interface PoolStats {
  jobs: number;
  batches: number;
  largestBatch: number;
  workerRestarts: number;
  /** Times the worker threads were stopped after `stopAfterMs` without a job. */
  idleStops: number;
}

export interface PoolOptions {
  /**
   * Start the worker threads only when load appears: once `startAt` jobs have been offered
   * (offer()) within one second. Until then, and until a worker has loaded, offer() says no and the
   * caller computes on the event loop; an idle or lightly loaded daemon never pays for the threads
   * (each costs about 25 MB). 0 (the default): the workers start with the pool.
   */
  startAt?: number;
  /**
   * With `startAt`: stop the worker threads again once they have had no job for this long (ms), so
   * the memory of a burst's threads goes back when the burst is over; load starts them again.
   * 0 (the default): they stay.
   */
  stopAfterMs?: number;
}

/**
 * The pool. `handler` receives every result with the token its job was submitted with; a job whose
 * worker died gets `{ ok: false, invalid: false, error }` (the worker is replaced).
 */
export class InitCryptoPool<T> {
  readonly size: number;
  readonly stats: PoolStats = { jobs: 0, batches: 0, largestBatch: 0, workerRestarts: 0, idleStops: 0 };
  private readonly slots: Slot<T>[] = [];
  private readonly handler: (token: T, r: InitKeyResult) => void;
  private queue: { id: number; job: InitKeyJob; token: T }[] = [];
  private flushing = false;
  private nextId = 1;
  private next = 0;
  private closed = false;
  private started = false;
  private readonly startAt: number;
  private readonly stopAfterMs: number;
  /** performance.now() of the last job submitted, and the timer that checks for idleness. */
  private lastJobAt = 0;
  private idleCheck: ReturnType<typeof setInterval> | undefined;
  /** Jobs offered in the current one-second window (before the workers start). */
  private demand = 0;
  private demandSince = -Infinity;

  /** The worker threads' module. */
  readonly script: URL;

  /** `script`: the worker's module (tests give another). */
  constructor(size: number, handler: (token: T, r: InitKeyResult) => void, script = new URL(import.meta.url.endsWith('.js') ? './pool-worker.js' : './pool-worker.ts', import.meta.url), o: PoolOptions = {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a pool needs at least one worker, not ${size}`);
    this.size = size;
    this.handler = handler;
    this.script = script;
    this.startAt = o.startAt ?? 0;
    this.stopAfterMs = this.startAt > 0 ? (o.stopAfterMs ?? 0) : 0;
    if (this.startAt <= 0) this.start();
  }

  /** Start the worker threads (a pool made without `startAt` starts them at once). */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.lastJobAt = performance.now();
    for (let i = 0; i < this.size; i++) this.slots.push(this.spawn());
    if (this.stopAfterMs > 0 && this.idleCheck === undefined) {
      this.idleCheck = setInterval(() => this.stopIfIdle(), Math.min(1000, this.stopAfterMs));
      this.idleCheck.unref();
    }
  }

  /** No job for stopAfterMs and none in flight: the threads go until load starts them again. */
  private stopIfIdle(): void {
    // a pool whose threads all failed to start stays as it is (the event loop computes)
    if (!this.started || this.slots.length === 0 || this.pending > 0 || performance.now() - this.lastJobAt < this.stopAfterMs) return;
    const slots = this.slots.splice(0);
    this.started = false;
    this.demand = 0;
    this.demandSince = -Infinity;
    this.stats.idleStops++;
    clearInterval(this.idleCheck);
    this.idleCheck = undefined;
    for (const s of slots) void s.worker.terminate();
  }

  /** Worker threads running (started and not lost). */
  get running(): number {
    return this.slots.length;
  }

  /** False once no worker is left (each failed to start): callers compute on the event loop instead. */
  get usable(): boolean {
    return !this.closed && (!this.started || this.slots.length > 0);
  }

  /**
   * Whether a job should be submitted now (`now` in ms). A pool that starts at once: while usable.
   * One that waits for load (`startAt`): counts the offer, starts the workers when the load is
   * reached, and says yes only once a worker has loaded.
   */
  offer(now: number): boolean {
    if (this.startAt <= 0) return this.usable;
    if (this.closed) return false;
    if (!this.started) {
      if (now - this.demandSince >= 1000) {
        this.demandSince = now;
        this.demand = 0;
      }
      if (++this.demand >= this.startAt) this.start();
      return false;
    }
    for (const s of this.slots) if (s.online) return true;
    return false;
  }

  /** Jobs submitted and not answered yet. */
  get pending(): number {
    let n = this.queue.length;
    for (const s of this.slots) n += s.inFlight.size;
    return n;
  }

  submit(job: InitKeyJob, token: T): void {
    if (this.closed) throw new Error('crypto pool is closed');
    this.start();
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    this.queue.push({ id, job, token });
    this.stats.jobs++;
    this.lastJobAt = performance.now();
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  /** Stop the workers; jobs not answered yet are answered with an error. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.idleCheck);
    this.idleCheck = undefined;
    const left = this.queue.map((q) => q.token);
    this.queue = [];
    for (const s of this.slots) {
      for (const t of s.inFlight.values()) left.push(t);
      s.inFlight.clear();
    }
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const t of left) this.handler(t, { ok: false, invalid: false, error: 'crypto pool closed' });
  }

  private spawn(): Slot<T> {
    const worker = new Worker(this.script, { workerData: { wire: WIRE_VERSION } });
    worker.unref();
    const slot: Slot<T> = { worker, online: false, inFlight: new Map() };
    worker.on('message', (ab: ArrayBuffer) => {
      slot.online = true;
      this.onResults(slot, ab);
    });
    worker.on('error', () => this.lost(slot));
    worker.on('exit', () => this.lost(slot));
    return slot;
  }

  /** A worker died: its jobs fail, a new worker takes its place. */
  private lost(slot: Slot<T>): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    const failed = [...slot.inFlight.values()];
    slot.inFlight.clear();
    if (!this.closed && slot.online) {
      this.slots[i] = this.spawn();
      this.stats.workerRestarts++;
    } else this.slots.splice(i, 1);
    for (const t of failed) this.handler(t, { ok: false, invalid: false, error: 'crypto worker exited' });
  }

  private flush(): void {
    this.flushing = false;
    if (this.closed || this.queue.length === 0) return;
    const q = this.queue;
    this.queue = [];
    if (this.slots.length === 0) {
      for (const x of q) this.handler(x.token, { ok: false, invalid: false, error: 'no crypto worker could be started' });
      return;
    }
    // Split over the workers, the one with the fewest jobs in flight first, in messages of at most
    // MAX_BATCH jobs: each message's results come back (and their responses go out) as soon as it is
    // computed, so the answers to a burst of IKE_SA_INITs leave spread out instead of all at once,
    // which a peer's receive buffer may not hold (one peer behind many SAs: a load balancer, a tester).
    const order = [...this.slots].sort((a, b) => a.inFlight.size - b.inFlight.size);
    const per = Math.min(MAX_BATCH, Math.ceil(q.length / order.length));
    for (let at = 0, w = 0; at < q.length; at += per, w++) {
      const slot = order[(w + this.next) % order.length]!;
      const part = q.slice(at, at + per);
      let ab: ArrayBuffer;
      try {
        ab = encodeJobs(part);
      } catch (e) {
        for (const x of part) this.handler(x.token, { ok: false, invalid: false, error: e instanceof Error ? e.message : String(e) });
        continue;
      }
      for (const x of part) slot.inFlight.set(x.id, x.token);
      slot.worker.postMessage(ab, [ab]);
      this.stats.batches++;
      if (part.length > this.stats.largestBatch) this.stats.largestBatch = part.length;
    }
    this.next = (this.next + 1) % order.length;
  }

  private onResults(slot: Slot<T>, ab: ArrayBuffer): void {
    for (const { id, r } of decodeResults(ab)) {
      const token = slot.inFlight.get(id);
      if (token === undefined) continue;
      slot.inFlight.delete(id);
      this.handler(token, r);
    }
  }
}

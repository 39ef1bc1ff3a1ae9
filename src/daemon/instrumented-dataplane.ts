/**
 * A Dataplane wrapper that counts calls and failures and times each operation (for the metrics
 * endpoint), knows how many operations are still running (so a graceful stop can wait for them), and
 * can be told to stop removing SAs (`daemon.stop_action = keep`). The back ends are not changed.
 */
import type {
  ChildCounters,
  ChildInstall,
  Dataplane,
  DataplaneFeatures,
  DataplaneListener,
  InstallResult,
  SaEndpoint,
} from '../dataplane/types.ts';

export const DATAPLANE_OPS = ['allocate_spi', 'install', 'update', 'remove', 'dump'] as const;
export type DataplaneOp = (typeof DATAPLANE_OPS)[number];

/** Upper bounds (seconds) of the latency histogram buckets; +Inf is implied. */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface OpStats {
  calls: number;
  errors: number;
  /** Observations per bucket (not cumulative); the last slot counts those above the largest bound. */
  readonly buckets: number[];
  /** Sum of durations in seconds. */
  sum: number;
}

function newOpStats(): OpStats {
  return { calls: 0, errors: 0, buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0), sum: 0 };
}

/** The connection state of a back end that talks to VPP (VppDataplane's client). */
export interface ConnectionState {
  readonly connected: boolean;
  on(event: 'connected' | 'disconnected', fn: () => void): unknown;
}

/** The back end's VPP connection, when it has one. */
export function connectionOf(dp: Dataplane): ConnectionState | undefined {
  const c = (dp as { client?: unknown }).client;
  if (c && typeof c === 'object' && typeof (c as { on?: unknown }).on === 'function' && typeof (c as { connected?: unknown }).connected === 'boolean') {
    return c as ConnectionState;
  }
  return undefined;
}

export class InstrumentedDataplane implements Dataplane {
  readonly inner: Dataplane;
  readonly ops: Readonly<Record<DataplaneOp, OpStats>> = {
    allocate_spi: newOpStats(),
    install: newOpStats(),
    update: newOpStats(),
    remove: newOpStats(),
    dump: newOpStats(),
  };
  /** remove() calls not passed on because SAs are being kept. */
  keptRemoves = 0;
  private running = 0;
  private idleWaiters: (() => void)[] = [];
  private keeping = false;

  constructor(inner: Dataplane) {
    this.inner = inner;
  }

  get name(): string {
    return this.inner.name;
  }

  /** Operations started and not yet finished. */
  get inFlight(): number {
    return this.running;
  }

  /** From now on remove() leaves the back end's SAs installed (stop with stop_action = keep). */
  keepInstalled(): void {
    this.keeping = true;
  }

  get keepingInstalled(): boolean {
    return this.keeping;
  }

  /** Resolves when no operation is running. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  features(): DataplaneFeatures {
    return this.inner.features();
  }

  setListener(l: DataplaneListener): void {
    this.inner.setListener(l);
  }

  allocateSpi(): Promise<number> {
    return this.timed(this.ops.allocate_spi, performance.now(), this.call(() => this.inner.allocateSpi()));
  }

  releaseSpi(spi: number): void {
    this.inner.releaseSpi(spi);
  }

  install(child: ChildInstall): Promise<InstallResult> {
    return this.timed(this.ops.install, performance.now(), this.call(() => this.inner.install(child)));
  }

  update(childId: number, local: SaEndpoint, remote: SaEndpoint, udpEncap: boolean): Promise<void> {
    return this.timed(this.ops.update, performance.now(), this.call(() => this.inner.update(childId, local, remote, udpEncap)));
  }

  remove(childId: number): Promise<void> {
    if (this.keeping) {
      this.keptRemoves++;
      return Promise.resolve();
    }
    return this.timed(this.ops.remove, performance.now(), this.call(() => this.inner.remove(childId)));
  }

  /** Counter reads are not timed: they are periodic reads of shared memory, not VPP operations. */
  counters(childIds: readonly number[]): Promise<Map<number, ChildCounters>> {
    return this.call(() => this.inner.counters(childIds));
  }

  dump(): Promise<unknown> {
    return this.timed(this.ops.dump, performance.now(), this.call(() => this.inner.dump()));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** A back end that throws instead of rejecting still yields a rejected promise. */
  private call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return f();
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private timed<T>(s: OpStats, t0: number, p: Promise<T>): Promise<T> {
    s.calls++;
    this.running++;
    return p.then(
      (v) => {
        this.finish(s, t0, false);
        return v;
      },
      (e: unknown) => {
        this.finish(s, t0, true);
        throw e;
      },
    );
  }

  private finish(s: OpStats, t0: number, failed: boolean): void {
    const secs = (performance.now() - t0) / 1000;
    if (failed) s.errors++;
    s.sum += secs;
    let i = 0;
    while (i < LATENCY_BUCKETS.length && secs > LATENCY_BUCKETS[i]!) i++;
    s.buckets[i]!++;
    if (--this.running === 0 && this.idleWaiters.length > 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }
}

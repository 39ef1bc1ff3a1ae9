/**
 * The IKEv2 engine: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL, for both roles.
 *
 * Pure protocol logic: time comes from the injected scheduler, randomness from the injected source,
 * packets go to the injected sink, IPsec SAs to the injected dataplane. Nothing here opens a socket.
 * All IKE SAs share one timer heap; work on one IKE SA is serialised (a message that arrives while a
 * dataplane call for that SA is in flight waits in a small bounded queue).
 *
 * This class is the engine's public face for the daemon and the tests. The protocol lives in the
 * modules beside it: the message layer (message.ts), the task manager (tasks.ts) and one module per
 * exchange or task (ike-init, ike-auth with its authenticators, child-create, child-rekey, ike-rekey,
 * informational, dpd, keep-up, teardown), all plain functions over one shared EngineContext.
 */
import type { IkeSa, ChildSa } from '../sa/ike-sa.ts';
import type { SaTable } from '../sa/table.ts';
import type { ConfigIndex } from '../sa/config-index.ts';
import { ConfigIndex as Index } from '../sa/config-index.ts';
import type { Config } from '../../config/types.ts';
import { NO_CREDENTIALS, type Credentials } from '../../config/credentials.ts';
import { certreqUnion } from './auth/pubkey.ts';
import { childEntry, EngineContext, type EngineOptions, type EngineStats, type Endpoint, type FragmentDrops } from './context.ts';
import { internalError, receive, retransmitDelay } from './message.ts';
import { onSaTimer, queueTask } from './tasks.ts';
import { initiate, initKeysReady } from './ike-init.ts';
import { InitCryptoPool } from '../crypto/pool.ts';
import { QUICK_RETRIES, rekeyChild } from './child-rekey.ts';
import { rekeyIke } from './ike-rekey.ts';
import { deleteChild } from './informational.ts';
import { forgetConnection, onRetryTimer, START_KEY, START_KIND, startConnections, startQueueView, startWindowTick } from './keep-up.ts';
import { abandonShutdown, deleteIke, destroy, shutdown } from './teardown.ts';
import { Timer } from '../sa/ike-sa.ts';
import { KEEPALIVE_KEY, KEEPALIVE_KIND, keepaliveTick } from './keepalive.ts';
import { TRAFFIC_KEY, TRAFFIC_KIND, trafficTick, type TrafficStats } from './traffic.ts';

export type { Endpoint, EngineEvent, EngineOptions, EngineStats, FragmentDrops, OutPacket } from './context.ts';

/** Timers that still run while the engine stops: they finish or end exchanges already under way. */
const STOP_TIMERS: ReadonlySet<number> = new Set([Timer.RETRANSMIT, Timer.HALF_OPEN, Timer.DEFRAG, Timer.FOLLOWUP]);

export class Engine {
  private readonly ctx: EngineContext;

  constructor(opts: EngineOptions) {
    const ctx = new EngineContext(opts);
    this.ctx = ctx;
    if (opts.workers) ctx.pool = new InitCryptoPool<IkeSa>(opts.workers, (sa, r) => initKeysReady(ctx, sa, r), undefined, { startAt: opts.workersStartAt, stopAfterMs: opts.workersStopAfterMs });
    ctx.sched.setHandler((key, kind, due) => this.onTimer(key, kind, due));
    opts.dataplane.setListener({
      replayed: (ids) => {
        // Re-added outbound SAs start their sequence numbers at 1 again, which the peer's replay
        // window would drop: replace each CHILD_SA (the dataplane paces the batches it reports).
        ctx.log.info({ children: ids.length }, 'dataplane replayed CHILD_SAs after a restart; rekeying them');
        for (const id of ids) {
          const e = childEntry(ctx, id);
          if (!e || e.sa.dead) continue;
          e.child.quickRetries = QUICK_RETRIES;
          rekeyChild(ctx, e.sa, e.child);
        }
      },
      failed: (childId, reason) => {
        const e = childEntry(ctx, childId);
        if (e) queueTask(ctx, e.sa, { kind: 'child-delete', child: e.child });
        ctx.log.warn({ child: childId, reason }, 'dataplane lost CHILD_SA');
      },
    });
  }

  /** The session table. */
  get table(): SaTable {
    return this.ctx.table;
  }

  /** IKE SAs by state and the number of CHILD SAs, kept current (for metrics). */
  get gauges(): EngineContext['gauges'] {
    return this.ctx.gauges;
  }

  get stats(): EngineStats {
    return this.ctx.stats;
  }

  /** Volume lifetimes: CHILD_SAs watched, counter reads, rekeys and deletes they caused. */
  get traffic(): TrafficStats & { watched: number; counters_unavailable: string | null } {
    const w = this.ctx.traffic;
    return { ...w.stats, watched: w.children.size, counters_unavailable: w.unavailable ?? null };
  }

  /** Received IKE fragments dropped, by reason. */
  get fragmentDrops(): Readonly<FragmentDrops> {
    return this.ctx.fragmentDrops;
  }

  /** Decrypted bytes of incomplete fragment sets held over all IKE SAs. */
  get reassemblyBytes(): number {
    return this.ctx.defragBytes;
  }

  get config(): ConfigIndex {
    return this.ctx.index;
  }

  /** Use a new configuration for new SAs; existing SAs keep the connection objects they were made from. */
  setConfig(cfg: Config): void {
    const ctx = this.ctx;
    ctx.index = new Index(cfg.connections, cfg.secrets);
    ctx.creds = cfg.credentials ?? NO_CREDENTIALS;
    ctx.pubkeyInUse = cfg.connections.some((c) => c.local.auth === 'pubkey' || c.remote.auth === 'pubkey');
    ctx.certreqAll = certreqUnion(ctx.creds);
  }

  /** Certificates, keys and trust in use. */
  get credentials(): Credentials {
    return this.ctx.creds;
  }

  /** The start queue: connections waiting to be started, IKE SAs started from it holding a slot, the limit. */
  get starts(): { waiting: number; in_flight: number; limit: number } {
    return startQueueView(this.ctx);
  }

  /**
   * Bring up every connection with a child whose start_action is `start`, and keep it up; with
   * `only`, just the connections named there (a reload starts added and changed ones, not those an
   * operator terminated).
   */
  startConnections(only?: ReadonlySet<string>): void {
    startConnections(this.ctx, only);
  }

  /**
   * Stop keeping a connection up (removed by reload, terminated by the operator); one still waiting
   * in the start queue leaves it (returns whether it was waiting).
   */
  forgetConnection(name: string): boolean {
    return forgetConnection(this.ctx, name);
  }

  /** A datagram for IKE arrived (non-ESP marker already removed by the transport). */
  receive(local: Endpoint, remote: Endpoint, data: Buffer): void {
    receive(this.ctx, local, remote, data);
  }

  /**
   * Bring up a connection (and one of its children, or the first one). Resolves when the IKE SA is
   * established, rejects when it fails. If an IKE SA for the connection exists, only the child is created.
   */
  initiate(connName: string, childName?: string): Promise<IkeSa> {
    return initiate(this.ctx, connName, childName);
  }

  /**
   * Wait until a CHILD_SA of config `childName` is installed on `sa`. Resolves at once when one is;
   * rejects when creating it fails or the IKE SA goes down.
   */
  waitForChild(sa: IkeSa, childName: string): Promise<ChildSa> {
    const c = sa.children.find((x) => x.name === childName && x.state === 'INSTALLED');
    if (c) return Promise.resolve(c);
    if (sa.dead) return Promise.reject(new Error(`IKE SA ${sa.id} went down`));
    return new Promise<ChildSa>((resolve, reject) => {
      const list = this.ctx.childWaiters.get(sa.id);
      const w = { name: childName, resolve, reject };
      if (list) list.push(w);
      else this.ctx.childWaiters.set(sa.id, [w]);
    });
  }

  /** Rekey an IKE SA (RFC 7296 §2.18); its CHILD_SAs move to the new one. */
  rekeyIke(sa: IkeSa): boolean {
    return rekeyIke(this.ctx, sa);
  }

  /** Rekey one CHILD_SA (make-before-break: the new SA is installed before the old one is deleted). */
  rekeyChild(sa: IkeSa, child: ChildSa): void {
    rekeyChild(this.ctx, sa, child);
  }

  /**
   * Delete an IKE SA and its CHILD_SAs, telling the peer. A reauthentication of it under way goes
   * too: it would otherwise carry the IKE SA's tunnels on.
   */
  deleteIke(sa: IkeSa): void {
    const next = sa.reauthBy;
    if (next && !next.dead) deleteIke(this.ctx, next);
    deleteIke(this.ctx, sa);
  }

  /** Delete one CHILD_SA, telling the peer. */
  deleteChild(childId: number): boolean {
    return deleteChild(this.ctx, childId);
  }

  findChild(childId: number): { sa: IkeSa; child: ChildSa } | undefined {
    return childEntry(this.ctx, childId);
  }

  /** Remove an IKE SA now: dataplane cleaned, waiters told, no message sent. */
  destroy(sa: IkeSa, reason: string): void {
    destroy(this.ctx, sa, reason);
  }

  /** Delay before retransmission n (0 = after the first send): timeout × base^n. */
  retransmitDelay(n: number): number {
    return retransmitDelay(this.ctx, n);
  }

  /** Periodic housekeeping: drop stale timer entries once they dominate the heap. */
  compactTimers(): void {
    const ctx = this.ctx;
    if (ctx.sched.pending > 4 * (ctx.table.size + 16)) {
      ctx.sched.compact((key, kind, at) => {
        if (key < 0) return ctx.keepUpById.has(-key);
        if (key === TRAFFIC_KEY && kind === TRAFFIC_KIND) return at === ctx.traffic.armedAt;
        if (key === START_KEY && kind === START_KIND) return at === ctx.starts.armedAt;
        if (key === KEEPALIVE_KEY && kind === KEEPALIVE_KIND) return at === ctx.keepalive.armedAt;
        const sa = ctx.table.get(key);
        return sa !== undefined && sa.timers[kind] === at;
      });
    }
  }

  /** Worker threads for IKE_SA_INIT (0 when it runs on the event loop) and their counters. */
  get workers(): { threads: number; running: number; jobs: number; batches: number; largest_batch: number; worker_restarts: number; idle_stops: number; pending: number } {
    const p = this.ctx.pool;
    return {
      threads: p?.size ?? 0,
      running: p?.running ?? 0,
      jobs: p?.stats.jobs ?? 0,
      batches: p?.stats.batches ?? 0,
      largest_batch: p?.stats.largestBatch ?? 0,
      worker_restarts: p?.stats.workerRestarts ?? 0,
      idle_stops: p?.stats.idleStops ?? 0,
      pending: p?.pending ?? 0,
    };
  }

  /** Stop the worker threads (after shutdown; answers still in flight are dropped). */
  async close(): Promise<void> {
    await this.ctx.pool?.close();
  }

  /**
   * Stop everything: delete every IKE SA (telling peers when `tellPeers`). An IKE SA with a request
   * of ours in flight sends its Delete once that exchange completes; the promise resolves when every
   * IKE SA is gone. Meanwhile only retransmissions and the peers' messages are processed.
   */
  shutdown(tellPeers: boolean): Promise<void> {
    return shutdown(this.ctx, tellPeers);
  }

  /** The stop deadline: IKE SAs still waiting for an exchange send their Delete now and go (returns how many). */
  abandonShutdown(): number {
    return abandonShutdown(this.ctx);
  }

  private onTimer(key: number, kind: number, due: number): void {
    const ctx = this.ctx;
    if (key < 0) return onRetryTimer(ctx, -key, due);
    if (key === TRAFFIC_KEY && kind === TRAFFIC_KIND) return trafficTick(ctx, due);
    if (key === START_KEY && kind === START_KIND) return startWindowTick(ctx, due);
    if (key === KEEPALIVE_KEY) return keepaliveTick(ctx, due);
    const sa = ctx.table.get(key);
    if (!sa || sa.dead || sa.timers[kind] !== due) return; // stale entry
    sa.timers[kind] = 0;
    // Stopping: the exchanges in flight run to their end, nothing new starts.
    if (ctx.stopped && !STOP_TIMERS.has(kind)) return;
    try {
      onSaTimer(ctx, sa, kind);
    } catch (e) {
      internalError(ctx, sa, e);
    }
  }
}

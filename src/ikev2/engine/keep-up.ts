/**
 * Keeping connections up: `start_action = start` connections are initiated and brought back after a
 * failure, a dead peer (`dpd_action = restart`) or a peer's delete (`close_action = start`), with
 * `keyingtries` and a capped, jittered backoff. One retry entry per connection in the shared timer heap
 * (keyed by a negative number), nothing per IKE SA.
 */
import { Timer, type IkeSa, type Task } from '../sa/ike-sa.ts';
import type { EngineContext, KeepUp } from './context.ts';
import type { ConnectionConfig } from '../../config/types.ts';
import { initiate } from './ike-init.ts';
import { destroy } from './teardown.ts';

/**
 * Bring up every connection with a child whose start_action is `start`, and keep it up; with
 * `only`, just the connections named there (a reload starts added and changed ones, not those an
 * operator terminated).
 */
export function startConnections(ctx: EngineContext, only?: ReadonlySet<string>): void {
  const todo = ctx.index.connections.filter((conn) => (!only || only.has(conn.name)) && conn.children.some((c) => c.startAction === 'start'));
  startSome(ctx, todo, 0);
}

/**
 * How long (scheduler ms) one turn of the event loop may spend initiating connections. Thousands of
 * `start_action = start` connections are initiated in turns of this length, so that the answers
 * coming back in the meantime are read between turns instead of piling up in the socket.
 */
export const START_SLICE_MS = 3;

function startSome(ctx: EngineContext, todo: readonly ConnectionConfig[], from: number): void {
  if (ctx.stopped) return;
  const until = ctx.sched.now() + START_SLICE_MS;
  let i = from;
  while (i < todo.length) {
    const conn = todo[i++]!;
    // a reload in between may have removed or replaced it (the reload starts what it adds or changes)
    if (ctx.index.get(conn.name) !== conn || ctx.keepUp.has(conn.name)) continue;
    keepUpEntry(ctx, conn.name);
    initiate(ctx, conn.name).catch((e: Error) => ctx.log.info({ conn: conn.name, err: e.message }, 'start failed'));
    if (ctx.sched.now() >= until) break;
  }
  if (i < todo.length) setImmediate(() => startSome(ctx, todo, i));
}

/** Stop keeping a connection up (removed by reload, terminated by the operator). */
export function forgetConnection(ctx: EngineContext, name: string): void {
  const st = ctx.keepUp.get(name);
  if (!st) return;
  ctx.keepUp.delete(name);
  ctx.keepUpById.delete(st.id);
}

function keepUpEntry(ctx: EngineContext, name: string): KeepUp {
  let st = ctx.keepUp.get(name);
  if (!st) {
    st = { id: ctx.nextKeepUpId++, tries: 0, retryAt: 0 };
    ctx.keepUp.set(name, st);
    ctx.keepUpById.set(st.id, name);
  }
  return st;
}

/** An IKE SA of the connection is up: its next failure starts the backoff from the beginning. */
export function keptUp(ctx: EngineContext, name: string): void {
  const st = ctx.keepUp.get(name);
  if (st) st.tries = 0;
}

/** A connection we keep up is due for another attempt (unless an SA for it exists by now). */
export function onRetryTimer(ctx: EngineContext, id: number, due: number): void {
  const name = ctx.keepUpById.get(id);
  const st = name === undefined ? undefined : ctx.keepUp.get(name);
  if (!name || !st || st.retryAt !== due) return;
  st.retryAt = 0;
  if (ctx.table.ofConnection(name).size === 0) initiate(ctx, name).catch(() => {});
}

/** The peer stopped answering: apply dpd_action / keyingtries. */
export function peerGone(ctx: EngineContext, sa: IkeSa, task: Task): void {
  const restart =
    sa.conn !== undefined &&
    sa.reauthOf === undefined &&
    (task.kind === 'ike-init' || task.kind === 'ike-int' || task.kind === 'ike-auth'
      ? ctx.keepUp.has(sa.conn.name)
      : sa.children.some((c) => c.cfg.dpdAction === 'restart' || c.cfg.closeAction === 'start') || ctx.keepUp.has(sa.conn.name));
  const name = sa.conn?.name;
  destroy(ctx, sa, 'peer not responding');
  if (restart && name) scheduleRetry(ctx, name);
}

/** Schedule another attempt when the connection is one we keep up. */
export function retryIfKeptUp(ctx: EngineContext, name: string): void {
  if (ctx.keepUp.has(name)) scheduleRetry(ctx, name);
}

export function scheduleRetry(ctx: EngineContext, name: string): void {
  const conn = ctx.index.get(name);
  if (!conn) return;
  const st = keepUpEntry(ctx, name);
  st.tries++;
  if (conn.keyingtries !== 0 && st.tries >= conn.keyingtries && !conn.children.some((c) => c.startAction === 'start' || c.dpdAction === 'restart')) {
    forgetConnection(ctx, name);
    return;
  }
  // Backoff: 1 s, 2 s, 4 s ... capped at 60 s, with jitter from the random source.
  const base = Math.min(60_000, 1000 * 2 ** Math.min(st.tries - 1, 6));
  const jitter = ctx.opts.random(2).readUInt16BE() % Math.max(1, Math.floor(base / 4));
  st.retryAt = ctx.sched.now() + base + jitter;
  if (ctx.debug) ctx.log.debug({ conn: name, tries: st.tries, in_ms: st.retryAt - ctx.sched.now() }, 'connection retry scheduled');
  ctx.sched.schedule(st.retryAt, -st.id, Timer.RETRY);
}

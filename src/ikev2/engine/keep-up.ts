/**
 * Keeping connections up: `start_action = start` connections are initiated and brought back after a
 * failure, a dead peer (`dpd_action = restart`) or a peer's delete (`close_action = start`), with
 * `keyingtries` and a capped, jittered backoff. One retry entry per connection in the shared timer heap
 * (keyed by a negative number), nothing per IKE SA.
 */
import { Timer, type IkeSa, type Task } from '../sa/ike-sa.ts';
import { randomMs, type EngineContext, type KeepUp, type StartSlot } from './context.ts';
import type { ConnectionConfig } from '../../config/types.ts';
import { initiate } from './ike-init.ts';
import { destroy } from './teardown.ts';

/**
 * Bring up every connection with a child whose start_action is `start`, and keep it up; with
 * `only`, just the connections named there (a reload starts added and changed ones, not those an
 * operator terminated). They join the start queue, worked through in turns of START_SLICE_MS within
 * the window of startLimitHalfOpen IKE SAs waiting for their peers' answers.
 */
export function startConnections(ctx: EngineContext, only?: ReadonlySet<string>): void {
  const q = ctx.starts;
  for (const conn of ctx.index.connections) {
    if ((!only || only.has(conn.name)) && startsItself(conn) && !q.queued.has(conn.name)) {
      q.todo.push(conn.name);
      q.queued.add(conn.name);
    }
  }
  startSome(ctx);
}

function startsItself(conn: ConnectionConfig): boolean {
  return conn.children.some((c) => c.startAction === 'start');
}

/**
 * How long (scheduler ms) one turn of the event loop may spend initiating connections. Thousands of
 * `start_action = start` connections are initiated in turns of this length, so that the answers
 * coming back in the meantime are read between turns instead of piling up in the socket.
 */
export const START_SLICE_MS = 3;

/** Timer entry of the start window (key 0 is shared by the engine's other global timers, by kind). */
export const START_KEY = 0;
export const START_KIND = 2;

/** Connections waiting and not yet started, and IKE SAs started from the queue still holding a slot. */
export function startQueueView(ctx: EngineContext): { waiting: number; in_flight: number; limit: number } {
  const q = ctx.starts;
  expireSlots(ctx, ctx.sched.now());
  return { waiting: q.queued.size, in_flight: q.open, limit: ctx.opts.startLimitHalfOpen };
}

function startSome(ctx: EngineContext): void {
  const q = ctx.starts;
  q.scheduled = false;
  if (ctx.stopped) return;
  const limit = ctx.opts.startLimitHalfOpen;
  const now = ctx.sched.now();
  expireSlots(ctx, now);
  const until = now + START_SLICE_MS;
  const firstRetransmit = ctx.opts.retransmitTimeout * 1000;
  while (q.next < q.todo.length && (limit === 0 || q.open < limit)) {
    const name = q.todo[q.next++]!;
    // taken out of the queue meanwhile (terminated, removed or changed by a reload)
    if (!q.queued.delete(name)) continue;
    // the configuration in effect now: a reload may have replaced it, or changed its start_action
    const conn = ctx.index.get(name);
    if (!conn || !startsItself(conn) || ctx.keepUp.has(name)) continue;
    keepUpEntry(ctx, name);
    const failed = (e: Error): void => ctx.log.info({ conn: name, err: e.message }, 'start failed');
    if (limit === 0) {
      initiate(ctx, name).catch(failed);
    } else {
      const slot = { due: now + firstRetransmit, open: true };
      q.slots.push(slot);
      q.open++;
      initiate(ctx, name).then(
        () => releaseSlot(ctx, slot),
        (e: Error) => {
          releaseSlot(ctx, slot);
          failed(e);
        },
      );
    }
    if (ctx.sched.now() >= until) break;
  }
  if (q.next >= q.todo.length) {
    q.todo = [];
    q.next = 0;
  } else if (limit === 0 || q.open < limit) wakeStarts(ctx);
  else armExpiry(ctx);
}

/** Another turn of startSome once this one is over (at most one scheduled). */
function wakeStarts(ctx: EngineContext): void {
  const q = ctx.starts;
  if (q.scheduled || q.next >= q.todo.length) return;
  q.scheduled = true;
  setImmediate(() => startSome(ctx));
}

/** A started IKE SA came up or failed: its slot goes to the next connection. */
function releaseSlot(ctx: EngineContext, slot: StartSlot): void {
  if (!slot.open) return;
  slot.open = false;
  ctx.starts.open--;
  expireSlots(ctx, ctx.sched.now());
  wakeStarts(ctx);
}

/** Slots at the front that are no longer open, or whose first retransmission is due, go. */
function expireSlots(ctx: EngineContext, now: number): void {
  const q = ctx.starts;
  while (q.head < q.slots.length) {
    const s = q.slots[q.head]!;
    if (s.open && s.due > now) break;
    if (s.open) {
      s.open = false;
      q.open--;
    }
    q.head++;
  }
  if (q.head === q.slots.length) {
    q.slots = [];
    q.head = 0;
  } else if (q.head > 1024 && q.head * 2 > q.slots.length) {
    q.slots = q.slots.slice(q.head);
    q.head = 0;
  }
}

/** The window is full: wake when its oldest open slot's first retransmission is due. */
function armExpiry(ctx: EngineContext): void {
  const q = ctx.starts;
  const s = q.slots[q.head];
  if (!s || q.armedAt === s.due) return;
  q.armedAt = s.due;
  ctx.sched.schedule(s.due, START_KEY, START_KIND);
}

/** The start window's timer entry fired (stale ones are harmless: startSome looks at the slots). */
export function startWindowTick(ctx: EngineContext, due: number): void {
  const q = ctx.starts;
  if (due === q.armedAt) q.armedAt = 0;
  startSome(ctx);
}

/**
 * Stop keeping a connection up (removed by reload, terminated by the operator); one still waiting in
 * the start queue leaves it (returns whether it was waiting).
 */
export function forgetConnection(ctx: EngineContext, name: string): boolean {
  const st = ctx.keepUp.get(name);
  if (st) {
    ctx.keepUp.delete(name);
    ctx.keepUpById.delete(st.id);
  }
  return ctx.starts.queued.delete(name);
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
  if (ctx.stopped) return;
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
  st.retryAt = ctx.sched.now() + base + randomMs(ctx, base / 4);
  if (ctx.debug) ctx.log.debug({ conn: name, tries: st.tries, in_ms: st.retryAt - ctx.sched.now() }, 'connection retry scheduled');
  ctx.sched.schedule(st.retryAt, -st.id, Timer.RETRY);
}

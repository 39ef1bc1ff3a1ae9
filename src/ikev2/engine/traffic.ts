/**
 * Volume lifetimes of CHILD_SAs (strongSwan's `rekey_bytes`, `life_bytes`, `rekey_packets`,
 * `life_packets`): the dataplane's SA counters are read every `daemon.traffic_poll` for the CHILD_SAs
 * that have such a limit, in one batch, and nothing is read for the others.
 *
 * No timer per CHILD_SA: one entry in the shared timer heap (key 0, kind TRAFFIC_KIND) and one set
 * of watched CHILD_SA ids. When a CHILD_SA's inbound or outbound SA has carried its rekey limit (less
 * the random part chosen when it was installed, as strongSwan's `rand_bytes`/`rand_packets`) it is
 * rekeyed as at its rekey time (collisions and retries as there); at its life limit it is deleted
 * with a Delete to the peer, as at its hard `life_time`. A limit is acted on at the first read that
 * finds it crossed.
 *
 * When the dataplane cannot read counters at all (CountersUnavailableError) the limits cannot be
 * enforced: that is logged once, with the reason, and again once when the counters are back.
 */
import type { ChildSa } from '../sa/ike-sa.ts';
import { CountersUnavailableError, type ChildCounters } from '../../dataplane/types.ts';
import { childEntry, type EngineContext } from './context.ts';
import { rekeyChild } from './child-rekey.ts';
import { queueTask } from './tasks.ts';

/** Scheduler key and kind of the poll (key 0 is shared with the keepalive wheel, kind 0). */
export const TRAFFIC_KEY = 0;
export const TRAFFIC_KIND = 1;

export interface TrafficStats {
  /** Counter reads done, and those that failed. */
  polls: number;
  pollFailures: number;
  /** CHILD_SAs rekeyed or deleted because of their volume limits. */
  rekeys: number;
  expiries: number;
}

export class TrafficWatch {
  readonly intervalMs: number;
  /** Ids of the CHILD_SAs with a volume limit. */
  readonly children = new Set<number>();
  /** A poll is in the heap, due at this time (0: none). */
  armedAt = 0;
  /** A read is under way (the next one waits for it). */
  reading = false;
  /** Why the counters cannot be read, while they cannot (logged once). */
  unavailable: string | undefined;
  readonly stats: TrafficStats = { polls: 0, pollFailures: 0, rekeys: 0, expiries: 0 };

  constructor(intervalS: number) {
    this.intervalMs = Math.max(1, Math.round(intervalS * 1000));
  }
}

/** strongSwan's apply_jitter(): rekey less a random value in 0..min(jitter + 1, rekey) (exclusive). */
export function applyJitter(ctx: EngineContext, rekey: number, jitter: number): number {
  if (rekey <= 0 || jitter <= 0) return rekey;
  const r = ctx.opts.random(4).readUInt32BE(0) / 0x1_0000_0000;
  return rekey - Math.floor(Math.min(jitter + 1, rekey) * r);
}

/** Volume limits of a freshly installed CHILD_SA: its rekey thresholds, and watching it when it has any limit. */
export function childVolumeLimits(ctx: EngineContext, child: ChildSa): void {
  const cc = child.cfg;
  child.rekeyBytes = applyJitter(ctx, cc.rekeyBytes, cc.randBytes);
  child.rekeyPackets = applyJitter(ctx, cc.rekeyPackets, cc.randPackets);
  if (child.rekeyBytes > 0 || child.rekeyPackets > 0 || cc.lifeBytes > 0 || cc.lifePackets > 0) watchTraffic(ctx, child.id);
}

export function watchTraffic(ctx: EngineContext, childId: number): void {
  const w = ctx.traffic;
  w.children.add(childId);
  if (w.armedAt === 0 && !w.reading) arm(ctx);
}

export function unwatchTraffic(ctx: EngineContext, childId: number): void {
  ctx.traffic.children.delete(childId);
}

function arm(ctx: EngineContext): void {
  const w = ctx.traffic;
  w.armedAt = ctx.sched.now() + w.intervalMs;
  ctx.sched.schedule(w.armedAt, TRAFFIC_KEY, TRAFFIC_KIND);
}

/** The poll's timer fired: one batched counter read for every watched CHILD_SA. */
export function trafficTick(ctx: EngineContext, due: number): void {
  const w = ctx.traffic;
  if (due !== w.armedAt) return; // stale entry
  w.armedAt = 0;
  if (w.children.size === 0 || ctx.stopped) return; // armed again by the next watched CHILD_SA
  w.reading = true;
  w.stats.polls++;
  const ids = [...w.children];
  let p: Promise<Map<number, ChildCounters>>;
  try {
    p = ctx.dp.counters(ids);
  } catch (e) {
    p = Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
  p.then(
    (m) => {
      if (w.unavailable !== undefined) {
        ctx.log.info({ children: ids.length }, 'SA counters can be read again: volume lifetimes are enforced');
        w.unavailable = undefined;
      }
      apply(ctx, m);
    },
    (e: unknown) => {
      w.stats.pollFailures++;
      const why = e instanceof Error ? e.message : String(e);
      if (e instanceof CountersUnavailableError) {
        if (w.unavailable === undefined) {
          ctx.log.warn(
            { children: ids.length, why },
            'SA counters cannot be read from the dataplane: rekey_bytes, life_bytes, rekey_packets and life_packets are not enforced',
          );
        }
        w.unavailable = why;
      } else if (ctx.debug) {
        ctx.log.debug({ why }, 'SA counter read failed, trying again at the next poll');
      }
    },
  ).finally(() => {
    w.reading = false;
    if (w.children.size > 0 && w.armedAt === 0 && !ctx.stopped) arm(ctx);
  });
}

/** Acts on what one read found. */
function apply(ctx: EngineContext, counts: Map<number, ChildCounters>): void {
  const w = ctx.traffic;
  for (const id of w.children) {
    const e = childEntry(ctx, id);
    if (!e || e.sa.dead) {
      w.children.delete(id);
      continue;
    }
    const c = counts.get(id);
    if (!c) continue;
    const { sa, child } = e;
    const cc = child.cfg;
    const bytes = Math.max(c.bytesIn, c.bytesOut);
    const packets = Math.max(c.packetsIn, c.packetsOut);
    if ((cc.lifeBytes > 0 && bytes >= cc.lifeBytes) || (cc.lifePackets > 0 && packets >= cc.lifePackets)) {
      if (child.state === 'DELETING' || child.state === 'DELETED') continue;
      w.children.delete(id);
      w.stats.expiries++;
      ctx.log.info({ ...logFields(sa.id, sa.conn?.name, child, c), life_bytes: cc.lifeBytes, life_packets: cc.lifePackets }, 'CHILD SA reached its life bytes/packets');
      queueTask(ctx, sa, { kind: 'child-delete', child });
      continue;
    }
    if (child.state !== 'INSTALLED') continue;
    if ((child.rekeyBytes > 0 && bytes >= child.rekeyBytes) || (child.rekeyPackets > 0 && packets >= child.rekeyPackets)) {
      ctx.log.info({ ...logFields(sa.id, sa.conn?.name, child, c), rekey_bytes: child.rekeyBytes, rekey_packets: child.rekeyPackets }, 'CHILD SA reached its rekey bytes/packets, rekeying');
      // once: a rekey that fails is retried on the time schedule (child-rekey.ts)
      child.rekeyBytes = 0;
      child.rekeyPackets = 0;
      if (cc.lifeBytes === 0 && cc.lifePackets === 0) w.children.delete(id);
      w.stats.rekeys++;
      rekeyChild(ctx, sa, child);
    }
  }
}

function logFields(ike: number, conn: string | undefined, child: ChildSa, c: ChildCounters): Record<string, unknown> {
  return { ike, conn, child: child.name, child_id: child.id, bytes_in: c.bytesIn, bytes_out: c.bytesOut, packets_in: c.packetsIn, packets_out: c.packetsOut };
}

/**
 * NAT-T keepalives (RFC 3948 §2.3, strongSwan's `keep_alive`): an IKE SA behind a NAT sends the one
 * byte 0xFF to its peer's NAT-T port when nothing else was sent to the peer for a while, so that the
 * NAT keeps its mapping.
 *
 * No timer per SA: the SAs that send keepalives sit in a wheel of slots, one per second of half the
 * interval. One entry in the shared timer heap visits one slot per second, so every SA is looked at
 * once per half interval and 50,000 SAs are spread over the slots (by SA id) instead of waking the
 * process all at the same instant. An SA sends when it sent nothing for at least half the interval,
 * so the gap between two packets to the peer never exceeds the interval.
 */
import type { IkeSa } from '../sa/ike-sa.ts';
import type { EngineContext } from './context.ts';

/** One slot is visited per tick. */
export const KEEPALIVE_TICK_MS = 1000;
/** Scheduler key of the wheel's tick (IKE SA ids start at 1, keep-up retries are negative). */
export const KEEPALIVE_KEY = 0;
export const KEEPALIVE_KIND = 0;

const KEEPALIVE_BYTE = Buffer.from([0xff]);

export class KeepaliveWheel {
  readonly intervalMs: number;
  /** Time (ms) one SA waits between two visits of its slot. */
  readonly periodMs: number;
  private readonly slots: Set<IkeSa>[];
  private next = 0;
  private members = 0;
  /** A tick is in the heap (due at `armedAt`). */
  armedAt = 0;

  constructor(intervalS: number) {
    this.intervalMs = Math.round(intervalS * 1000);
    const n = Math.max(1, Math.floor(intervalS / 2));
    this.slots = Array.from({ length: intervalS > 0 ? n : 0 }, () => new Set<IkeSa>());
    this.periodMs = n * KEEPALIVE_TICK_MS;
  }

  get size(): number {
    return this.members;
  }

  get enabled(): boolean {
    return this.slots.length > 0;
  }

  add(sa: IkeSa): boolean {
    const slot = this.slots[sa.id % this.slots.length]!;
    if (slot.has(sa)) return false;
    slot.add(sa);
    this.members++;
    return true;
  }

  remove(sa: IkeSa): void {
    if (this.slots.length === 0) return;
    if (this.slots[sa.id % this.slots.length]!.delete(sa)) this.members--;
  }

  /** The slot to visit now (and move on to the next one). */
  take(): Set<IkeSa> {
    const s = this.slots[this.next]!;
    this.next = (this.next + 1) % this.slots.length;
    return s;
  }

  /** Counted out of the set by the caller (it deletes while visiting). */
  dropped(): void {
    this.members--;
  }
}

/** Whether the SA should send keepalives: established, behind a NAT, keepalives configured. */
function wants(sa: IkeSa): boolean {
  return !sa.dead && sa.natHere && (sa.state === 'ESTABLISHED' || sa.state === 'REKEYING' || sa.state === 'DELETING');
}

/** Put an SA that is behind a NAT on the wheel (called when it is established or its NAT state changes). */
export function watchKeepalive(ctx: EngineContext, sa: IkeSa): void {
  const w = ctx.keepalive;
  if (!w.enabled || !wants(sa)) return;
  if (w.add(sa) && w.armedAt === 0) arm(ctx);
}

export function unwatchKeepalive(ctx: EngineContext, sa: IkeSa): void {
  ctx.keepalive.remove(sa);
}

function arm(ctx: EngineContext): void {
  const at = ctx.sched.now() + KEEPALIVE_TICK_MS;
  ctx.keepalive.armedAt = at;
  ctx.sched.schedule(at, KEEPALIVE_KEY, KEEPALIVE_KIND);
}

/** The wheel's tick: visit one slot, send what is due, re-arm while any SA is on the wheel. */
export function keepaliveTick(ctx: EngineContext, due: number): void {
  const w = ctx.keepalive;
  if (due !== w.armedAt) return; // stale entry
  w.armedAt = 0;
  const now = ctx.sched.now();
  const quietFor = w.intervalMs - w.periodMs;
  const slot = w.take();
  for (const sa of slot) {
    if (!wants(sa)) {
      slot.delete(sa);
      w.dropped();
      continue;
    }
    if (now - sa.lastOutbound < quietFor) continue;
    sa.lastOutbound = now;
    ctx.stats.keepalivesSent++;
    ctx.opts.send({ local: sa.local, remote: sa.remote, data: KEEPALIVE_BYTE, keepalive: true });
  }
  if (w.size > 0) arm(ctx);
}

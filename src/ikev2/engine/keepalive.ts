/**
 * NAT-T keepalives (RFC 3948 §2.3, strongSwan's `keep_alive`): an IKE SA behind a NAT sends the one
 * byte 0xFF to its peer's NAT-T port when nothing else was sent to the peer for `keep_alive`, so that
 * the NAT keeps its mapping.
 *
 * No timer per SA: the SAs sit in a timing wheel with one slot per second, each in the slot of the
 * second its keepalive is due. One entry in the shared timer heap ticks once a second and visits one
 * slot: an SA that sent nothing since is sent a keepalive and moves one interval on; an SA that sent
 * something meanwhile moves to the slot its new due time falls in. Each SA is looked at about once
 * per interval, and an SA's first keepalive is due at a random point of the second half of its first
 * interval, so thousands of SAs that came up together do not all send in the same second.
 */
import type { IkeSa } from '../sa/ike-sa.ts';
import type { EngineContext } from './context.ts';

export const KEEPALIVE_TICK_MS = 1000;
/** Scheduler key of the wheel's tick (IKE SA ids start at 1, keep-up retries are negative). */
export const KEEPALIVE_KEY = 0;
export const KEEPALIVE_KIND = 0;

const KEEPALIVE_BYTE = Buffer.from([0xff]);

export class KeepaliveWheel {
  readonly intervalMs: number;
  /** One slot per second of the interval, and one more, so a due time never wraps onto the slot being visited. */
  private readonly slots: Set<IkeSa>[];
  private members = 0;
  /** A tick is in the heap, due at this time (0: none). */
  armedAt = 0;

  constructor(intervalS: number) {
    this.intervalMs = Math.round(intervalS * 1000);
    const n = intervalS > 0 ? Math.ceil(this.intervalMs / KEEPALIVE_TICK_MS) + 1 : 0;
    this.slots = Array.from({ length: n }, () => new Set<IkeSa>());
  }

  get size(): number {
    return this.members;
  }

  get enabled(): boolean {
    return this.slots.length > 0;
  }

  /** The slot index of a time (ms). */
  slotOf(t: number): number {
    return Math.floor(t / KEEPALIVE_TICK_MS) % this.slots.length;
  }

  slot(i: number): Set<IkeSa> {
    return this.slots[i]!;
  }

  /** Puts the SA in slot `i` (taking it out of the one it was in). */
  place(sa: IkeSa, i: number): void {
    if (sa.keepaliveSlot === i) return;
    if (sa.keepaliveSlot >= 0) this.slots[sa.keepaliveSlot]!.delete(sa);
    else this.members++;
    this.slots[i]!.add(sa);
    sa.keepaliveSlot = i;
  }

  remove(sa: IkeSa): void {
    if (sa.keepaliveSlot < 0) return;
    this.slots[sa.keepaliveSlot]!.delete(sa);
    sa.keepaliveSlot = -1;
    this.members--;
  }
}

/** Whether the SA should send keepalives: alive, established, behind a NAT. */
function wants(sa: IkeSa): boolean {
  return !sa.dead && sa.natHere && (sa.state === 'ESTABLISHED' || sa.state === 'REKEYING' || sa.state === 'DELETING');
}

/** Put an SA that is behind a NAT on the wheel (when it is established, or a NAT appeared). */
export function watchKeepalive(ctx: EngineContext, sa: IkeSa): void {
  const w = ctx.keepalive;
  if (!w.enabled || !wants(sa) || sa.keepaliveSlot >= 0) return;
  const now = ctx.sched.now();
  const half = Math.floor(w.intervalMs / 2);
  const first = now + w.intervalMs - (half > 0 ? ctx.opts.random(4).readUInt32BE(0) % half : 0);
  // Due at `first` unless something is sent before: as if the last packet had gone out then.
  sa.lastOutbound = Math.min(sa.lastOutbound, first - w.intervalMs);
  w.place(sa, w.slotOf(Math.max(first, now + KEEPALIVE_TICK_MS)));
  if (w.armedAt === 0) arm(ctx, now);
}

export function unwatchKeepalive(ctx: EngineContext, sa: IkeSa): void {
  ctx.keepalive.remove(sa);
}

/** The next tick: at the start of the next second. */
function arm(ctx: EngineContext, now: number): void {
  const at = (Math.floor(now / KEEPALIVE_TICK_MS) + 1) * KEEPALIVE_TICK_MS;
  ctx.keepalive.armedAt = at;
  ctx.sched.schedule(at, KEEPALIVE_KEY, KEEPALIVE_KIND);
}

/** The wheel's tick: the SAs of this second's slot send, or move to where their due time now is. */
export function keepaliveTick(ctx: EngineContext, due: number): void {
  const w = ctx.keepalive;
  if (due !== w.armedAt) return; // stale entry
  w.armedAt = 0;
  const now = ctx.sched.now();
  const here = w.slotOf(due);
  for (const sa of [...w.slot(here)]) {
    if (!wants(sa)) {
      w.remove(sa);
      continue;
    }
    let next = sa.lastOutbound + w.intervalMs;
    if (next - now < KEEPALIVE_TICK_MS) {
      // Nothing sent for (about) the interval: a keepalive, at most a second early.
      sa.lastOutbound = now;
      ctx.stats.keepalivesSent++;
      ctx.opts.send({ local: sa.local, remote: sa.remote, data: KEEPALIVE_BYTE, keepalive: true });
      next = now + w.intervalMs;
    }
    w.place(sa, w.slotOf(next));
  }
  if (w.size > 0) arm(ctx, now);
}

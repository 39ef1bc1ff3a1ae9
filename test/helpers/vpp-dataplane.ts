/**
 * Helpers for the VPP back-end tests: CHILD_SA records, a dataplane wired to an in-process
 * emulator, hooks that record, fail or hold the emulator's answers, and timers the test fires.
 */
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator, type EmulatorHandle } from '../../src/vpp/emulator/server.ts';
import type { EmuCtx } from '../../src/vpp/emulator/tables.ts';
import { VppDataplane, type TimerSource, type VppDataplaneOptions } from '../../src/dataplane/vpp/index.ts';
import { FakeScheduler } from '../../src/common/clock.ts';
import type { ChildInstall, SaParams, TsRange } from '../../src/dataplane/types.ts';
import { saParams, type SaOpts } from './builders.ts';

let n = 0;
export function sockPath(): string {
  return join(tmpdir(), `vpp-dp-test-${process.pid}-${n++}.sock`);
}

export const ts4 = (start: string, end: string): TsRange => ({ family: 4, start, end, protocol: 0, startPort: 0, endPort: 65535 });
export const ts6 = (start: string, end: string): TsRange => ({ family: 6, start, end, protocol: 0, startPort: 0, endPort: 65535 });

export interface Opts {
  local?: string;
  remote?: string;
  lport?: number;
  rport?: number;
  encap?: boolean;
  mode?: ChildInstall['vppMode'];
  iface?: string;
  table?: number;
  localTs?: TsRange[];
  remoteTs?: TsRange[];
  replaces?: number;
  outboundAfterReplaced?: boolean;
  alg?: SaParams['alg'];
}

/** AES-GCM-16/256 with ESN, random keys, replay window 128, to 198.51.100.2 unless `o` says otherwise. */
function saOpts(o: Opts): SaOpts {
  return {
    local: o.local,
    remote: o.remote ?? '198.51.100.2',
    lport: o.lport,
    rport: o.rport,
    encap: o.encap,
    alg: o.alg ?? { encrId: 20, encrKeyBits: 256, integId: 0, esn: true },
    randomKeys: true,
    replayWindow: 128,
  };
}

export function child(id: number, spiIn: number, spiOut: number, o: Opts = {}): ChildInstall {
  const so = saOpts(o);
  const c: ChildInstall = {
    childId: id,
    ikeSaId: 1,
    connection: 'c',
    child: 'net',
    inbound: saParams(spiIn, true, so),
    outbound: saParams(spiOut, false, so),
    localTs: o.localTs ?? [ts4('10.0.0.0', '10.0.0.255')],
    remoteTs: o.remoteTs ?? [ts4('10.1.0.0', '10.1.0.255')],
    vppMode: o.mode ?? 'p2p',
    vppTable: o.table ?? 0,
    vppRoutes: true,
  };
  if (o.iface !== undefined) c.vppInterface = o.iface;
  if (o.replaces !== undefined) c.replaces = o.replaces;
  if (o.outboundAfterReplaced) c.outboundAfterReplaced = true;
  return c;
}

type Handler = (name: string, msg: unknown, ctx: EmuCtx) => void;

/** Wraps the emulator's current request handler (emu.state is replaced by a restart: hook after it). */
function wrap(emu: EmulatorHandle, f: (orig: Handler) => Handler): void {
  const state = emu.state;
  const orig = state.handle.bind(state);
  state.handle = f(orig);
}

/** Records every request the emulator handles, in order. */
export function record(emu: EmulatorHandle): { name: string; msg: Record<string, unknown> }[] {
  const log: { name: string; msg: Record<string, unknown> }[] = [];
  wrap(emu, (orig) => (name, msg, ctx) => {
    log.push({ name, msg: msg as Record<string, unknown> });
    orig(name, msg, ctx);
  });
  return log;
}

/** Makes the emulator answer the next `times` requests `name` with an error code. */
export function failWith(emu: EmulatorHandle, name: string, retval: number, times = 1): void {
  let left = times;
  wrap(emu, (orig) => (nm, msg, ctx) => {
    if (nm === name && left > 0) {
      left--;
      ctx.reply({ retval });
      return;
    }
    orig(nm, msg, ctx);
  });
}

/** Makes the emulator answer the `nth` (1-based) request `name` from now with an error code. */
export function failNth(emu: EmulatorHandle, name: string, retval: number, nth: number): void {
  let seen = 0;
  wrap(emu, (orig) => (nm, msg, ctx) => {
    if (nm === name && ++seen === nth) {
      ctx.reply({ retval });
      return;
    }
    orig(nm, msg, ctx);
  });
}

/** Makes the emulator ignore (never answer) the next `times` requests `name`, as a VPP that lost them. */
export function drop(emu: EmulatorHandle, name: string, times = 1): void {
  let left = times;
  wrap(emu, (orig) => (nm, msg, ctx) => {
    if (nm === name && left > 0) {
      left--;
      return;
    }
    orig(nm, msg, ctx);
  });
}

/**
 * Holds back the handling of every request `name` until release() (then handled in order).
 * `arrived` resolves when the first one comes in.
 */
export function hold(emu: EmulatorHandle, name: string): { arrived: Promise<void>; release: () => void; count: () => number } {
  const held: (() => void)[] = [];
  let holding = true;
  let seen!: () => void;
  const arrived = new Promise<void>((r) => (seen = r));
  wrap(emu, (orig) => (nm, msg, ctx) => {
    if (nm === name && holding) {
      held.push(() => orig(nm, msg, ctx));
      seen();
      return;
    }
    orig(nm, msg, ctx);
  });
  return {
    arrived,
    count: () => held.length,
    release: () => {
      holding = false;
      for (const f of held.splice(0)) f();
    },
  };
}

export async function setup(
  opts: { unnumbered?: string; policyIface?: string; dp?: Partial<VppDataplaneOptions>; requestTimeoutMs?: number; interfaces?: string[] } = {},
): Promise<{ emu: EmulatorHandle; dp: VppDataplane; socket: string; done: () => Promise<void> }> {
  const socket = sockPath();
  const emu = await startEmulator({ socket, interfaces: opts.interfaces ?? ['host-eth0', 'loop0'] });
  const dp = new VppDataplane({
    socket,
    clientOptions: { healthCheckMs: 0, reconnectMinMs: 20, reconnectMaxMs: 200, requestTimeoutMs: opts.requestTimeoutMs ?? 3000 },
    replayIntervalMs: 10,
    resyncRetryMinMs: 20,
    resyncRetryMaxMs: 100,
    ...(opts.unnumbered ? { unnumberedInterface: opts.unnumbered } : {}),
    ...(opts.policyIface ? { policyInterface: opts.policyIface } : {}),
    ...opts.dp,
  });
  await dp.start();
  return {
    emu,
    dp,
    socket,
    done: async () => {
      await dp.close();
      await emu.close();
    },
  };
}

/**
 * The back end's timers (resync backoff pauses, replayed() pacing) on a FakeScheduler's clock:
 * they fire when the test advances it.
 */
export class ManualTimers implements TimerSource {
  private readonly clock = new FakeScheduler();
  private readonly due = new Map<number, () => void>();
  private nextKey = 1;
  private waiters: (() => void)[] = [];

  constructor() {
    this.clock.setHandler((key) => {
      const fn = this.due.get(key);
      if (!fn) return; // cancelled
      this.due.delete(key);
      fn();
    });
  }

  after(ms: number, fn: () => void): () => void {
    const key = this.nextKey++;
    this.due.set(key, fn);
    this.clock.schedule(this.clock.now() + ms, key, 0);
    for (const w of this.waiters.splice(0)) w();
    return () => {
      this.due.delete(key);
    };
  }

  /** Timers set and neither fired nor cancelled. */
  get pending(): number {
    return this.due.size;
  }

  /** Resolves when a timer is pending (at once when one is). */
  armed(): Promise<void> {
    if (this.due.size > 0) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** Moves the clock forward by `ms`, firing what falls due, in order. */
  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** Fires every pending timer and the ones they set, in order. */
  runAll(): void {
    while (this.due.size > 0) this.clock.advance(3_600_000);
  }
}

/**
 * Waits until the dataplane is connected again and its resync is done (dump() waits for it). With
 * `timers` (the dataplane's), every timer set meanwhile fires at once: resync backoff pauses end
 * as they begin, and all replayed() batches come.
 */
export async function resynced(dp: VppDataplane, timers?: ManualTimers, timeoutMs = 5000): Promise<void> {
  if (!dp.client.connected) await once(dp.client, 'connected', { signal: AbortSignal.timeout(timeoutMs) });
  const done = dp.dump().then(() => true);
  if (timers) while (!(await Promise.race([done, timers.armed().then(() => false)]))) timers.runAll();
  await done;
  timers?.runAll();
}

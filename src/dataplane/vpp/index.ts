/**
 * The VPP dataplane: programs CHILD_SAs into FD.io VPP 26.10 over its binary API.
 *
 * Per CHILD_SA, by `vppMode`:
 * - p2p: an ipsec interface of its own (ipsec_itf_create, P2P, instance from `p2pInstanceBase` up),
 *   admin up, unnumbered to `unnumberedInterface` when configured, bound to `vppTable`; two SAs
 *   (ipsec_sad_entry_add_v2); ipsec_tunnel_protect_update; routes to the remote traffic selectors
 *   through the interface when `vppRoutes`.
 * - p2mp: one shared multipoint interface (`vppInterface`, e.g. "ipsec100", created when absent);
 *   one tunnel protection per peer, keyed by the next hop = the peer's outer address; routes to the
 *   remote selectors via that next hop. CHILD_SAs to the same peer share the protection (newest
 *   outbound SA, up to 4 inbound SAs).
 * - policy: one SPD per `vppTable` bound to `vppInterface`; PROTECT entries in both directions per
 *   selector pair; the SPD also gets BYPASS entries for IKE (UDP 500 and 4500, both directions) and
 *   a lowest-priority outbound BYPASS for everything else (VPP drops outbound packets that match no
 *   policy).
 *
 * Identifiers: VPP does not allocate SPIs or SA ids, so this back end does. Inbound SPIs are random,
 * never below 256, unique among live SAs and SPIs VPP already holds.
 *
 * Reserved ranges (operators must not use them for objects of their own in the same VPP):
 * - sad_ids 0x7e000001–0x7effffff: the top byte 0x7e (OUR_ID_PREFIX) marks an SA as vpp-iked's.
 * - SPD ids from the same range: one SPD per VRF table in policy mode, its id allocated from
 *   0x7e000001 up through a table → id map (any u32 table id gets its own SPD).
 * - p2p ipsec interfaces ipsec<p2pInstanceBase>..ipsec16383 (constructor option, default 1000).
 * At start and after VPP reconnects, objects in these ranges that belong to no known CHILD_SA are
 * removed: SAs and SPDs with the 0x7e prefix (an SPD's entries first: deleting an SPD in VPP does
 * not release the SAs its entries lock), tunnel protections that use such SAs, and p2p ipsec
 * interfaces in the instance range that have no tunnel protection or one that uses only 0x7e SAs.
 * An interface in the range protected with other SAs is an operator's: it is left alone and its
 * instance is not used. sad_ids of ours that VPP still holds after that (locked by something we
 * could not remove) are not handed out again.
 *
 * Protection groups: the CHILD_SAs that share one tunnel protection (p2p: the ones on the same
 * interface; p2mp: the ones to the same peer on the same interface). The protection's sa_out is the
 * outbound SA of the newest member, its sa_in the inbound SAs of the (up to 4) newest members. A
 * p2p interface lives as long as its group has members. Routes are shared by reference: a path is
 * added for its first user and deleted with its last.
 *
 * Make-before-break (ChildInstall.replaces): the new SAs are added and the new CHILD_SA joins the
 * replaced one's group (p2p: same interface; p2mp: same peer), so one protection update switches
 * the outbound direction to the new SA while both inbound SAs accept. The replaced CHILD_SA keeps its
 * inbound SA (and its now unused outbound SA) until remove(old): that updates the protection to the
 * remaining inbound SAs and then deletes the old SAs. In policy mode the new outbound PROTECT
 * entries get a higher priority than the old ones (100..199, wrapping), the old outbound entries are
 * deleted once the new ones are in, and the old inbound entries and SAs stay until remove(old). A
 * replaced CHILD_SA of another mode is left as it is until remove(old).
 * Any failure rolls back what the operation added and rejects with VPP's answer (VppApiError).
 *
 * VPP restart: when the API connection comes back, every installed CHILD_SA is checked and, when VPP
 * lost it, programmed again with the same SPIs, keys and ids (the members of one protection group
 * oldest first, so a replaced CHILD_SA that is not yet removed comes back next to its successor);
 * strays are removed; the listener's replayed() then gets the replayed ids (in paced batches),
 * because re-added outbound SAs start their sequence numbers at 1 again and need a rekey. An SPD
 * that VPP still has, with all its CHILD_SAs, is used again (bound to its interface again if it lost
 * the binding); one that VPP lost, or one of whose CHILD_SAs VPP lost, is rebuilt as a whole with
 * the same id. A CHILD_SA that cannot be programmed again is reported through failed(). A resync that fails as a whole (a
 * dump or a delete VPP refuses) is retried with backoff while the connection lasts; operations wait
 * until it is done. remove() while VPP is unreachable returns at once and is carried out (or, when
 * VPP lost the CHILD_SA, simply not replayed) when the connection is back; remove() during a replay
 * waits for it, and a CHILD_SA removed meanwhile is neither replayed nor reported.
 *
 * Layout of this folder: index.ts (this facade), state.ts (the shared state record, VPP calls,
 * coordination), ids.ts (SPIs, sad_ids, SPD ids, p2p instances), txn.ts (undo list, rollback,
 * parallel steps), sa.ts, interfaces.ts, routes.ts, groups.ts (protection groups), spd.ts (policy
 * SPDs), driver.ts with driver-p2p.ts, driver-p2mp.ts and driver-policy.ts (what differs per
 * vpp_mode), child.ts (install, update, remove), recovery.ts (start-up reconcile, resync, replay),
 * inspect.ts (vpp-ikectl vpp-sas).
 */

import type { ChildCounters, ChildInstall, Dataplane, DataplaneFeatures, DataplaneListener, InstallResult, SaEndpoint, VppMode } from '../types.ts';
import { vppDataplaneFeatures } from '../vpp-rules.ts';
import { VppClient, type VppClientOptions, type VppConnectedInfo, type VppLogger } from '../../vpp/client.ts';
import * as child from './child.ts';
import { SaCounterReader } from './counters.ts';
import { MAX_INSTANCES } from './ids.ts';
import { childView, inspect } from './inspect.ts';
import { endPause, onConnected, onDisconnected, start } from './recovery.ts';
import { newBackend, NOOP_LOG, REAL_TIMERS, type Backend, type TimerSource } from './state.ts';

export { isOurId, OUR_ID_PREFIX } from './ids.ts';
export type { TimerSource } from './state.ts';

export interface VppDataplaneOptions {
  /** VPP API socket. Default /run/vpp/api.sock. */
  socket?: string;
  /** pino-compatible logger. */
  log?: VppLogger;
  /** Use this client instead of creating one (its lifetime is then the caller's). */
  client?: VppClient;
  /** Options for the client this back end creates. */
  clientOptions?: Omit<VppClientOptions, 'socket' | 'logger'>;
  /** Interface whose address p2p/p2mp ipsec interfaces borrow (sw_interface_set_unnumbered). Unset: none. */
  unnumberedInterface?: string;
  /** policy mode: interface the SPD is bound to when the CHILD_SA names no vpp_interface. */
  policyInterface?: string;
  /**
   * First ipsec instance number for p2p interfaces (VPP allows 0–16383). Default 1000. Instances
   * from here up are reserved for vpp-iked (see the file header).
   */
  p2pInstanceBase?: number;
  /** replayed() is called with at most this many ids at a time. Default 200. */
  replayBatch?: number;
  /** Pause between replayed() batches (ms). Default 1000. */
  replayIntervalMs?: number;
  /** First and largest pause before a failed resync after a reconnect is tried again (ms). Defaults 500 and 10000. */
  resyncRetryMinMs?: number;
  resyncRetryMaxMs?: number;
  /**
   * After a VPP restart, how long the replay waits for the interfaces of VPP's own configuration its
   * CHILD_SAs need (the unnumbered lender, SPD interfaces) before it programs them anyway and reports
   * what fails. Default 60000; looked for every `interfaceWaitStepMs` (default 250).
   */
  interfaceWaitMs?: number;
  interfaceWaitStepMs?: number;
  /** Timers for the resync backoff and the replayed() pacing. Default: the process's setTimeout. */
  timers?: TimerSource;
  /**
   * The stats segment to read SA counters from. Default: VPP's own, the memfd named "stat segment"
   * in /proc/<vpe_pid>/fd (needs root or CAP_SYS_PTRACE to open).
   */
  statsSegment?: string;
}

export class VppDataplane implements Dataplane {
  readonly name = 'vpp';
  readonly client: VppClient;
  private readonly ownsClient: boolean;
  private readonly b: Backend;
  private readonly counterReader: SaCounterReader;

  constructor(options: VppDataplaneOptions = {}) {
    const log = options.log ?? NOOP_LOG;
    this.ownsClient = options.client === undefined;
    this.client =
      options.client ??
      new VppClient({ ...(options.clientOptions ?? {}), ...(options.socket !== undefined ? { socket: options.socket } : {}), logger: log });
    const base = options.p2pInstanceBase ?? 1000;
    if (!Number.isInteger(base) || base < 0 || base >= MAX_INSTANCES) throw new RangeError(`p2pInstanceBase must be 0..${MAX_INSTANCES - 1}, not ${base}`);
    const b = newBackend(
      this.client,
      log,
      {
        unnumberedInterface: options.unnumberedInterface,
        policyInterface: options.policyInterface,
        p2pInstanceBase: base,
        replayBatch: Math.max(1, options.replayBatch ?? 200),
        replayIntervalMs: options.replayIntervalMs ?? 1000,
        resyncRetryMinMs: Math.max(1, options.resyncRetryMinMs ?? 500),
        resyncRetryMaxMs: Math.max(1, options.resyncRetryMaxMs ?? 10_000),
        interfaceWaitMs: Math.max(0, options.interfaceWaitMs ?? 60_000),
        interfaceWaitStepMs: Math.max(1, options.interfaceWaitStepMs ?? 250),
      },
      options.timers ?? REAL_TIMERS,
    );
    this.b = b;
    this.counterReader = new SaCounterReader(b, options.statsSegment);
    this.client.on('disconnected', () => onDisconnected(b));
    this.client.on('connected', (info: VppConnectedInfo) => onConnected(b, info));
  }

  features(): DataplaneFeatures {
    return vppDataplaneFeatures();
  }

  /**
   * Work to do each time VPP comes back, before any CHILD_SA is programmed again (the punt transport
   * registers there first, so IKE on 4500 reaches us again before UDP-encapsulated SAs return).
   * A failure is logged; the replay goes on.
   */
  setBeforeResync(fn: () => Promise<void>): void {
    this.b.beforeResync = fn;
  }

  setListener(l: DataplaneListener): void {
    this.b.listener = l;
  }

  /** Counters for `vpp-ikectl stats`. */
  stats(): Record<string, number> {
    const r = this.counterReader;
    return {
      ...this.b.counters,
      children: this.b.children.size,
      in_flight: this.client.stats.inFlight,
      counter_reads: r.reads,
      counter_read_ms: Math.round(r.readMs * 1000) / 1000,
    };
  }

  /**
   * Connects to VPP (retrying until it answers; an incompatible API fails at once) and removes
   * objects that look like ours (left by an earlier run). A dump or delete that fails is retried
   * with backoff while the connection lasts.
   */
  start(): Promise<void> {
    return start(this.b);
  }

  async allocateSpi(): Promise<number> {
    if (this.b.closed) throw new Error('VPP dataplane is closed');
    const ids = this.b.ids;
    const spi = ids.spis.next();
    ids.allocatedSpis.add(spi);
    return spi;
  }

  releaseSpi(spi: number): void {
    this.b.ids.allocatedSpis.delete(spi);
  }

  install(c: ChildInstall): Promise<InstallResult> {
    return child.install(this.b, c);
  }

  update(childId: number, local: SaEndpoint, remote: SaEndpoint, udpEncap: boolean): Promise<void> {
    return child.update(this.b, childId, local, remote, udpEncap);
  }

  /**
   * Removes a CHILD_SA. While VPP is unreachable the removal is recorded and carried out by the
   * resync after the reconnect; during a replay it waits for the replay, which leaves this CHILD_SA out.
   */
  remove(childId: number): Promise<void> {
    return child.remove(this.b, childId);
  }

  /**
   * Packets and bytes of the CHILD_SAs' inbound and outbound SAs, from VPP's stats segment (one
   * consistent read for all of them). Rejects with CountersUnavailableError when the segment cannot
   * be opened or read.
   */
  counters(childIds: readonly number[]): Promise<Map<number, ChildCounters>> {
    return this.counterReader.read(childIds);
  }

  /**
   * What VPP holds, as VPP reports it (SAD from ipsec_sa_v5_dump without key material, tunnel
   * protections, ipsec interfaces, SPDs and the entries of ours), plus the CHILD_SAs we track.
   */
  dump(): Promise<unknown> {
    return inspect(this.b, this.name);
  }

  async close(): Promise<void> {
    const b = this.b;
    b.closed = true;
    this.counterReader.close();
    b.announceCancel?.();
    endPause(b);
    b.pendingRelease?.();
    if (this.ownsClient) await this.client.close();
  }

  /** The state tracked for a child (tests and diagnostics). */
  childState(childId: number): Readonly<{ saIn: number; saOut: number; interface?: string; swIfIndex?: number; mode: VppMode }> | undefined {
    return childView(this.b, childId);
  }
}

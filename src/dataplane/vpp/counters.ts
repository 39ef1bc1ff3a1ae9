/**
 * The traffic counters of installed CHILD_SAs, from VPP's stats segment (`/net/ipsec/sa`, indexed
 * by the stat_index each SA add reply carried). The segment is opened when counters are first
 * asked for on a connection (VPP's pid from control_ping_reply, its memfd through /proc; or the path
 * the back end was given) and again after every reconnect, since a restarted VPP has a new segment.
 * One counters() call is one consistent read of the segment for all the ids asked for.
 */
import { CountersUnavailableError, type ChildCounters } from '../types.ts';
import { fileSource, findStatsSegment, IPSEC_SA_COUNTERS, StatsSegment, StatsSegmentError, type SegmentSource } from '../../vpp/stats-segment.ts';
import { ready, req, type Backend } from './state.ts';

/** After a failure to open the segment, how long reads fail at once before it is tried again (ms). */
const REOPEN_AFTER_MS = 5000;

export class SaCounterReader {
  private readonly b: Backend;
  /** An explicit segment path (instead of VPP's memfd found through /proc). */
  private readonly path: string | undefined;
  private seg: StatsSegment | undefined;
  /** The connection the segment was opened on. */
  private gen = -1;
  private opening: Promise<StatsSegment> | undefined;
  /** The last failure to open the segment, on which connection and when (ms): not tried again for a while. */
  private failure: { error: CountersUnavailableError; gen: number; at: number } | undefined;
  /** Reads done, and their total time (ms), for `vpp-ikectl stats`. */
  reads = 0;
  readMs = 0;

  constructor(b: Backend, path: string | undefined) {
    this.b = b;
    this.path = path;
  }

  close(): void {
    this.seg?.close();
    this.seg = undefined;
  }

  private async segment(): Promise<StatsSegment> {
    const b = this.b;
    if (this.seg && this.gen === b.connGen) return this.seg;
    const f = this.failure;
    if (f && f.gen === b.connGen && performance.now() - f.at < REOPEN_AFTER_MS) throw f.error;
    this.opening ??= this.open()
      .catch((e: unknown) => {
        if (e instanceof CountersUnavailableError) this.failure = { error: e, gen: b.connGen, at: performance.now() };
        throw e;
      })
      .finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async open(): Promise<StatsSegment> {
    const b = this.b;
    const gen = b.connGen;
    this.close();
    let path = this.path;
    if (path === undefined) {
      const ping = await req(b, 'control_ping', {});
      const found = findStatsSegment(ping.vpe_pid);
      if ('error' in found) throw new CountersUnavailableError(found.error);
      path = found.path;
    }
    if (b.closed) throw new CountersUnavailableError('the VPP dataplane is closed');
    let seg: StatsSegment;
    let src: SegmentSource | undefined;
    try {
      src = fileSource(path);
      seg = new StatsSegment(src);
    } catch (e) {
      src?.close();
      const code = (e as NodeJS.ErrnoException).code;
      throw new CountersUnavailableError(`cannot open VPP's stats segment ${path}: ${code ?? (e as Error).message}`);
    }
    this.seg = seg;
    this.gen = gen;
    this.failure = undefined;
    return seg;
  }

  async read(childIds: readonly number[]): Promise<Map<number, ChildCounters>> {
    const b = this.b;
    await ready(b);
    let seg = await this.segment();
    // A read that ran while this one waited may have closed the segment (it could not make sense of
    // it): open it again rather than read through a closed descriptor.
    if (seg !== this.seg) seg = await this.segment();
    if (seg !== this.seg) throw new CountersUnavailableError("VPP's stats segment was closed while being opened");
    const t0 = performance.now();
    const ids: number[] = [];
    const indexes: number[] = [];
    for (const id of childIds) {
      const st = b.children.get(id);
      if (!st) continue;
      const si = b.statIndex.get(st.saIn);
      const so = b.statIndex.get(st.saOut);
      if (si === undefined || so === undefined) continue;
      ids.push(id);
      indexes.push(si, so);
    }
    const out = new Map<number, ChildCounters>();
    if (ids.length === 0) return out;
    let v;
    try {
      v = seg.readCombined(IPSEC_SA_COUNTERS, indexes);
    } catch (e) {
      if (e instanceof StatsSegmentError && !e.transient) {
        // a segment we cannot make sense of is opened again next time (VPP may have restarted)
        this.close();
        throw new CountersUnavailableError(`VPP's stats segment: ${e.message}`);
      }
      throw e;
    }
    for (let i = 0; i < ids.length; i++) {
      out.set(ids[i]!, { packetsIn: v.packets[2 * i]!, bytesIn: v.bytes[2 * i]!, packetsOut: v.packets[2 * i + 1]!, bytesOut: v.bytes[2 * i + 1]! });
    }
    this.reads++;
    this.readMs += performance.now() - t0;
    return out;
  }
}

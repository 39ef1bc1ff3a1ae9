/**
 * The VPP emulator's stats segment: a file laid out as VPP 26.10 lays out its stats segment
 * (src/vlib/stats/shared.h; see src/vpp/stats-segment.ts), holding the one counter the emulator
 * models, `/net/ipsec/sa` (combined, one thread, indexed by the SA's stat index). The file is named
 * "stat segment" and deleted once open, so /proc/<pid>/fd shows it as VPP's memfd is shown and the
 * VPP back end finds it through the pid control_ping_reply reports. Counters of SAs with a stat
 * index of `capacity` or more stay 0.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMBINED_SIZE, IPSEC_SA_COUNTERS, STAT_DIR_TYPE_COUNTER_VECTOR_COMBINED, STATS_ENTRY_SIZE } from '../stats-segment.ts';

/** The address the segment claims VPP mapped it at (pointers in it are relative to this). */
const BASE = 0x1_3000_0000;
const DIR_OFF = 4096;
const THREADS_OFF = DIR_OFF + STATS_ENTRY_SIZE + 64;
const COUNTERS_OFF = THREADS_OFF + 64;

export class EmuStatsSegment {
  readonly capacity: number;
  private fd: number;
  private epoch = 1;
  private readonly u64 = Buffer.alloc(16);

  constructor(capacity = 65_536) {
    this.capacity = capacity;
    const dir = mkdtempSync(join(tmpdir(), 'vpp-emulator-stats-'));
    const file = join(dir, 'stat segment');
    this.fd = openSync(file, 'w+');
    unlinkSync(file);
    rmdirSync(dir);
    const head = Buffer.alloc(COUNTERS_OFF);
    const w = (v: number, at: number): void => void head.writeBigUInt64LE(BigInt(v), at);
    w(2, 0); // version
    w(BASE, 8);
    w(this.epoch, 16);
    w(0, 24); // in_progress
    w(BASE + DIR_OFF, 32);
    head.writeUInt32LE(1, DIR_OFF - 8); // directory: one entry
    head.writeUInt32LE(STAT_DIR_TYPE_COUNTER_VECTOR_COMBINED, DIR_OFF);
    w(BASE + THREADS_OFF, DIR_OFF + 8);
    head.write(IPSEC_SA_COUNTERS, DIR_OFF + 16, 'latin1');
    head.writeUInt32LE(1, THREADS_OFF - 8); // one thread
    w(BASE + COUNTERS_OFF, THREADS_OFF);
    head.writeUInt32LE(capacity, COUNTERS_OFF - 8);
    writeSync(this.fd, head, 0, head.length, 0);
    // the counters, zero (a sparse file)
    writeSync(this.fd, Buffer.alloc(1), 0, 1, COUNTERS_OFF + capacity * COMBINED_SIZE - 1);
  }

  /** The segment as the emulator's process shows it (what a client opens). */
  get path(): string {
    return `/proc/${process.pid}/fd/${this.fd}`;
  }

  private at(statIndex: number): number | undefined {
    return this.fd >= 0 && Number.isInteger(statIndex) && statIndex >= 0 && statIndex < this.capacity ? COUNTERS_OFF + statIndex * COMBINED_SIZE : undefined;
  }

  /** Adds packets and bytes to an SA's counter (vlib_increment_combined_counter). */
  add(statIndex: number, packets: number, bytes: number): void {
    const at = this.at(statIndex);
    if (at === undefined) return;
    const { packets: p, bytes: b } = this.get(statIndex);
    this.put(at, p + packets, b + bytes);
  }

  /** An SA's counter as it stands. */
  get(statIndex: number): { packets: number; bytes: number } {
    const at = this.at(statIndex);
    if (at === undefined) return { packets: 0, bytes: 0 };
    readSync(this.fd, this.u64, 0, 16, at);
    return { packets: Number(this.u64.readBigUInt64LE(0)), bytes: Number(this.u64.readBigUInt64LE(8)) };
  }

  /** A new SA starts from zero (ipsec_sa_add_and_lock: vlib_zero_combined_counter). */
  zero(statIndex: number): void {
    const at = this.at(statIndex);
    if (at !== undefined) this.put(at, 0, 0);
  }

  /** Every counter back to zero and a new epoch (the tables were reset, as after a restart). */
  reset(): void {
    if (this.fd < 0) return;
    const zero = Buffer.alloc(64 * 1024);
    for (let off = 0; off < this.capacity * COMBINED_SIZE; off += zero.length) {
      writeSync(this.fd, zero, 0, Math.min(zero.length, this.capacity * COMBINED_SIZE - off), COUNTERS_OFF + off);
    }
    this.u64.writeBigUInt64LE(BigInt(++this.epoch), 0);
    writeSync(this.fd, this.u64, 0, 8, 16);
  }

  private put(at: number, packets: number, bytes: number): void {
    this.u64.writeBigUInt64LE(BigInt(packets), 0);
    this.u64.writeBigUInt64LE(BigInt(bytes), 8);
    writeSync(this.fd, this.u64, 0, 16, at);
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}

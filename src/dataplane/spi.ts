/**
 * Inbound SPI allocation shared by the dataplanes: random u32 values from node:crypto, drawn from a
 * 4 KiB buffer refilled when used up, never below 256 (RFC 4303 §2.1: 0 is never valid and 1..255
 * are reserved by IANA) and never one the caller reports as taken.
 */

import { randomBytes } from 'node:crypto';

export class SpiAllocator {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private readonly taken: (spi: number) => boolean;

  /** `taken` says whether an SPI is in use (allocated, installed, or held by someone else). */
  constructor(taken: (spi: number) => boolean) {
    this.taken = taken;
  }

  private random32(): number {
    if (this.pos + 4 > this.buf.length) {
      this.buf = randomBytes(4096);
      this.pos = 0;
    }
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** A random SPI ≥ 256 that `taken` does not claim. */
  next(): number {
    for (;;) {
      const spi = this.random32();
      if (spi >= 256 && !this.taken(spi)) return spi;
    }
  }
}

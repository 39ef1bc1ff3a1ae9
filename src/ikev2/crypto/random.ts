/**
 * Random bytes drawn from a source in blocks: nonces, SPIs, IVs and timer jitter take a few bytes
 * each, several times per IKE SA, and every call into node:crypto's CSPRNG has a fixed cost of a few
 * microseconds whatever the size. Small requests are served from a block of POOL_SIZE bytes taken
 * from the source at once; each answer is a fresh Buffer of its own (callers may keep or change it).
 */
import type { RandomSource } from '../../common/clock.ts';

export const POOL_SIZE = 1024;
/** Larger requests go straight to the source. */
const MAX_POOLED = 64;

export function pooledRandom(source: RandomSource): RandomSource {
  let pool: Buffer = Buffer.alloc(0);
  let pos = 0;
  return (n: number): Buffer => {
    if (n > MAX_POOLED) return source(n);
    if (pos + n > pool.length) {
      pool = source(POOL_SIZE);
      pos = 0;
    }
    const out = Buffer.allocUnsafe(n);
    pool.copy(out, 0, pos, pos + n);
    // what was handed out is not kept
    pool.fill(0, pos, pos + n);
    pos += n;
    return out;
  };
}

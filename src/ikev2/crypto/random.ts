/**
 * Random bytes drawn from a source in blocks: nonces, SPIs, IVs and timer jitter take a few bytes
 * each, several times per IKE SA, and every call into node:crypto's CSPRNG has a fixed cost of a few
 * microseconds whatever the size. Small requests are served from a block of POOL_SIZE bytes taken
 * from the source at once. Each answer is a view of its own bytes of the block, never handed out
 * twice (callers may keep or change it); a block is freed once every value cut from it is.
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
    const out = pool.subarray(pos, pos + n);
    pos += n;
    return out;
  };
}

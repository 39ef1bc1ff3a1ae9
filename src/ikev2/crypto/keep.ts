/**
 * Copies for values an IKE SA keeps for its lifetime (SPIs, nonces, keys). Small Buffers that node
 * makes with allocUnsafe, Buffer.from or Buffer.concat (the codec's decoded fields among them) are
 * views into a shared pool block of Buffer.poolSize bytes (64 KiB on Node 24): one such view kept
 * by a long-lived SA keeps the whole block alive. Kept values are copied into blocks of their own
 * instead, ARENA_SIZE bytes each and holding kept values only, so a block is shared by the values of
 * a few SAs (an ArrayBuffer per value would cost more than most values themselves) and freed once
 * they are all gone. Each value is a view of its own bytes, never handed out twice.
 */
export const ARENA_SIZE = 1024;
/** Larger values get memory of their own. */
const MAX_IN_ARENA = 256;
/** Every kept empty value is this one (nothing can be written into it). */
const EMPTY = Buffer.alloc(0);

let arena: Buffer = Buffer.allocUnsafeSlow(0);
let used = 0;

export function keep(b: Buffer): Buffer {
  const out = take(b.length);
  b.copy(out);
  return out;
}

/** keep() of the concatenation of the parts, without the intermediate Buffer. */
export function keepConcat(parts: readonly Buffer[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = take(n);
  let off = 0;
  for (const p of parts) off += p.copy(out, off);
  return out;
}

function take(n: number): Buffer {
  if (n === 0) return EMPTY;
  if (n > MAX_IN_ARENA) return Buffer.allocUnsafeSlow(n);
  if (used + n > arena.length) {
    arena = Buffer.allocUnsafeSlow(ARENA_SIZE);
    used = 0;
  }
  const out = arena.subarray(used, used + n);
  used += n;
  return out;
}

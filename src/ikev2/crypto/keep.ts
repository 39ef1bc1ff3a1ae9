/**
 * Copies for values an IKE SA keeps for its lifetime (SPIs, nonces, keys). Small Buffers that node
 * makes with allocUnsafe, Buffer.from or Buffer.concat (the codec's decoded fields among them) are
 * views into a shared pool block of Buffer.poolSize bytes (64 KiB on Node 24): one such view kept
 * by a long-lived SA keeps the whole block alive. A kept value gets memory of its own instead.
 */
export function keep(b: Buffer): Buffer {
  const out = Buffer.allocUnsafeSlow(b.length);
  b.copy(out);
  return out;
}

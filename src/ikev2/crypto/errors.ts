/** Error types of the IKEv2 crypto layer. */

/**
 * A cryptographic operation was refused: unsupported algorithm or group, a peer's key exchange
 * value that is malformed or invalid (wrong length, not on the curve, out of range, all-zero
 * shared secret), or a request outside the algorithm's limits.
 */
export class CryptoError extends Error {
  override readonly name: string = 'CryptoError';
}

/** A received SK/SKF payload failed its integrity check (ICV or AEAD tag mismatch). */
export class IntegrityError extends Error {
  override readonly name: string = 'IntegrityError';
}

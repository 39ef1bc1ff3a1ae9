/** The library's error type and constants shared by its modules. */

/** A certificate, key or CRL that cannot be used; the message is fit for a config error line. */
export class PkiError extends Error {
  override readonly name = 'PkiError';
}

/** RFC 7427 §4 / IANA "IKEv2 Hash Algorithms" (IDENTITY for EdDSA per RFC 8420). */
export const HASH_ALGORITHMS = {
  SHA1: 1,
  SHA2_256: 2,
  SHA2_384: 3,
  SHA2_512: 4,
  IDENTITY: 5,
} as const;

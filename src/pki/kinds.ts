/** Key algorithm and size checks shared by certificates and private keys. */
import type { KeyObject } from 'node:crypto';
import type { KeyKind } from './api.ts';
import { PkiError } from './errors.ts';

export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 8192;

const CURVES: Record<string, { kind: KeyKind; bits: number }> = {
  prime256v1: { kind: 'ecdsa-256', bits: 256 },
  secp384r1: { kind: 'ecdsa-384', bits: 384 },
  secp521r1: { kind: 'ecdsa-521', bits: 521 },
};

/** The kind and size of a public or private key; refuses what IKE signatures here cannot use. */
export function keyKind(key: KeyObject, what: string): { kind: KeyKind; bits: number } {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  switch (type) {
    case 'rsa': {
      const bits = d.modulusLength ?? 0;
      if (bits < RSA_MIN_BITS) throw new PkiError(`${what}: RSA key of ${bits} bits is too weak (at least ${RSA_MIN_BITS})`);
      if (bits > RSA_MAX_BITS) throw new PkiError(`${what}: RSA key of ${bits} bits is too large (at most ${RSA_MAX_BITS})`);
      // a huge public exponent would make every verification cost a private-key operation
      const e = d.publicExponent ?? 0n;
      if (e < 3n || e > 0xffffffffn || e % 2n === 0n) throw new PkiError(`${what}: RSA public exponent ${e} is not accepted (odd, 3 to 2^32-1)`);
      return { kind: 'rsa', bits };
    }
    case 'ec': {
      const c = CURVES[d.namedCurve ?? ''];
      if (!c) throw new PkiError(`${what}: elliptic curve ${d.namedCurve ?? '(unnamed)'} is not supported (P-256, P-384, P-521)`);
      return c;
    }
    case 'ed25519':
      return { kind: 'ed25519', bits: 256 };
    case 'ed448':
      return { kind: 'ed448', bits: 456 };
    case 'rsa-pss':
      throw new PkiError(`${what}: RSA keys restricted to RSASSA-PSS (id-RSASSA-PSS) are not supported; use an rsaEncryption key`);
    default:
      throw new PkiError(`${what}: ${type ?? 'unknown'} keys are not supported (RSA, ECDSA, Ed25519, Ed448)`);
  }
}

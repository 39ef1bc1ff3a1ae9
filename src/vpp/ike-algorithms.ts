/**
 * IKEv2 ESP transform ids (IANA "Transform Type 1/3" registries, RFC 7296 §3.3.2) mapped to the
 * algorithm enums of VPP's IPsec API (`ipsec_crypto_alg`, `ipsec_integ_alg` in ipsec_types.api,
 * version 3.0.1), whose values come from the generated definitions (defs.generated.ts).
 *
 * Only what VPP's ESP implementation runs is listed:
 * - AES-GCM with a 16-byte ICV only (ENCR 20); VPP has no 8- or 12-byte-ICV GCM and no CCM.
 * - AES-CBC, AES-CTR, ChaCha20-Poly1305, AES-GMAC (ENCR_NULL_AUTH_AES_GMAC), 3DES, NULL.
 *   DES is left out on purpose (RFC 8221: MUST NOT).
 * - Integrity: HMAC-MD5-96, HMAC-SHA1-96, HMAC-SHA2-256-128/384-192/512-256. VPP has no
 *   AES-XCBC or AES-CMAC for ESP.
 */

import { IpsecCryptoAlg, IpsecIntegAlg } from './defs.generated.ts';

const C = IpsecCryptoAlg;
const I = IpsecIntegAlg;

export interface VppCryptoMapping {
  /** VPP ipsec_crypto_alg value. */
  alg: number;
  /** Bytes of KEYMAT that form the cipher key. */
  keyBytes: number;
  /** Bytes of KEYMAT after the key that form the salt/nonce (sent as the u32 `salt`). */
  saltBytes: 0 | 4;
  /** The algorithm authenticates by itself (no separate integrity transform). */
  aead: boolean;
}

/** IANA ENCR id → (key bits → VPP mapping). */
const ENCR = new Map<number, ReadonlyMap<number, VppCryptoMapping>>([
  // ENCR_3DES (RFC 2451): 192-bit key.
  [3, new Map<number, VppCryptoMapping>([[192, { alg: C.IPSEC_API_CRYPTO_ALG_3DES_CBC, keyBytes: 24, saltBytes: 0, aead: false }]])],
  // ENCR_NULL (RFC 2410): no key.
  [11, new Map<number, VppCryptoMapping>([[0, { alg: C.IPSEC_API_CRYPTO_ALG_NONE, keyBytes: 0, saltBytes: 0, aead: false }]])],
  // ENCR_AES_CBC (RFC 3602).
  [12, new Map<number, VppCryptoMapping>([
    [128, { alg: C.IPSEC_API_CRYPTO_ALG_AES_CBC_128, keyBytes: 16, saltBytes: 0, aead: false }],
    [192, { alg: C.IPSEC_API_CRYPTO_ALG_AES_CBC_192, keyBytes: 24, saltBytes: 0, aead: false }],
    [256, { alg: C.IPSEC_API_CRYPTO_ALG_AES_CBC_256, keyBytes: 32, saltBytes: 0, aead: false }],
  ])],
  // ENCR_AES_CTR (RFC 3686 §5.1): KEYMAT = key || 4-byte nonce.
  [13, new Map<number, VppCryptoMapping>([
    [128, { alg: C.IPSEC_API_CRYPTO_ALG_AES_CTR_128, keyBytes: 16, saltBytes: 4, aead: false }],
    [192, { alg: C.IPSEC_API_CRYPTO_ALG_AES_CTR_192, keyBytes: 24, saltBytes: 4, aead: false }],
    [256, { alg: C.IPSEC_API_CRYPTO_ALG_AES_CTR_256, keyBytes: 32, saltBytes: 4, aead: false }],
  ])],
  // ENCR_AES_GCM_16 (RFC 4106 §8.1): KEYMAT = key || 4-byte salt.
  [20, new Map<number, VppCryptoMapping>([
    [128, { alg: C.IPSEC_API_CRYPTO_ALG_AES_GCM_128, keyBytes: 16, saltBytes: 4, aead: true }],
    [192, { alg: C.IPSEC_API_CRYPTO_ALG_AES_GCM_192, keyBytes: 24, saltBytes: 4, aead: true }],
    [256, { alg: C.IPSEC_API_CRYPTO_ALG_AES_GCM_256, keyBytes: 32, saltBytes: 4, aead: true }],
  ])],
  // ENCR_NULL_AUTH_AES_GMAC (RFC 4543 §7.1): KEYMAT = key || 4-byte salt.
  [21, new Map<number, VppCryptoMapping>([
    [128, { alg: C.IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_128, keyBytes: 16, saltBytes: 4, aead: true }],
    [192, { alg: C.IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_192, keyBytes: 24, saltBytes: 4, aead: true }],
    [256, { alg: C.IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_256, keyBytes: 32, saltBytes: 4, aead: true }],
  ])],
  // ENCR_CHACHA20_POLY1305 (RFC 7634 §2): 256-bit key || 4-byte salt.
  [28, new Map<number, VppCryptoMapping>([[256, { alg: C.IPSEC_API_CRYPTO_ALG_CHACHA20_POLY1305, keyBytes: 32, saltBytes: 4, aead: true }]])],
]);

/** IANA INTEG id → VPP integ alg and key length. */
const INTEG = new Map<number, { alg: number; keyBytes: number }>([
  [0, { alg: I.IPSEC_API_INTEG_ALG_NONE, keyBytes: 0 }],
  [1, { alg: I.IPSEC_API_INTEG_ALG_MD5_96, keyBytes: 16 }], // AUTH_HMAC_MD5_96 (RFC 2403)
  [2, { alg: I.IPSEC_API_INTEG_ALG_SHA1_96, keyBytes: 20 }], // AUTH_HMAC_SHA1_96 (RFC 2404)
  [12, { alg: I.IPSEC_API_INTEG_ALG_SHA_256_128, keyBytes: 32 }], // AUTH_HMAC_SHA2_256_128 (RFC 4868)
  [13, { alg: I.IPSEC_API_INTEG_ALG_SHA_384_192, keyBytes: 48 }], // AUTH_HMAC_SHA2_384_192 (RFC 4868)
  [14, { alg: I.IPSEC_API_INTEG_ALG_SHA_512_256, keyBytes: 64 }], // AUTH_HMAC_SHA2_512_256 (RFC 4868)
]);

/** The VPP crypto mapping for an IKE ENCR transform, or undefined when VPP cannot run it. */
export function vppCryptoFor(encrId: number, keyBits: number): VppCryptoMapping | undefined {
  return ENCR.get(encrId)?.get(keyBits);
}

/** The VPP integrity mapping for an IKE INTEG transform, or undefined when VPP cannot run it. */
export function vppIntegFor(integId: number): { alg: number; keyBytes: number } | undefined {
  return INTEG.get(integId);
}

/** Every ESP ENCR transform VPP runs, as "id:keybits". */
export function vppSupportedEncr(): string[] {
  const out: string[] = [];
  for (const [id, sizes] of ENCR) for (const bits of sizes.keys()) out.push(`${id}:${bits}`);
  return out;
}

/** Every ESP INTEG transform VPP runs (0 = none, for AEAD). */
export function vppSupportedInteg(): number[] {
  return [...INTEG.keys()];
}

export interface EspAlgCheck {
  encrId: number;
  encrKeyBits: number;
  integId: number;
}

/**
 * Checks that an algorithm set and its key material can be programmed into VPP. Returns a reason
 * string when not (unsupported transform, wrong key length, AEAD with integrity, ...), else undefined.
 */
export function checkEspKeys(alg: EspAlgCheck, encKeyLen: number, integKeyLen: number): string | undefined {
  const c = vppCryptoFor(alg.encrId, alg.encrKeyBits);
  if (!c) return `ENCR ${alg.encrId} with ${alg.encrKeyBits}-bit key is not supported by VPP`;
  const i = vppIntegFor(alg.integId);
  if (!i) return `INTEG ${alg.integId} is not supported by VPP`;
  if (c.aead && alg.integId !== 0) return `ENCR ${alg.encrId} is combined-mode and takes no INTEG transform`;
  if (!c.aead && alg.integId === 0 && alg.encrId === 11) return 'ENCR_NULL needs an integrity transform';
  // ipsec_sa_crypto_integ_map (VPP ipsec_sa.c) has no AES-CTR with HMAC-MD5-96.
  if (alg.encrId === 13 && alg.integId === 1) return 'VPP does not run AES-CTR with HMAC-MD5-96';
  if (encKeyLen !== c.keyBytes + c.saltBytes) {
    return `encryption key is ${encKeyLen} bytes, ENCR ${alg.encrId}/${alg.encrKeyBits} needs ${c.keyBytes + c.saltBytes}`;
  }
  if (integKeyLen !== i.keyBytes) {
    return `integrity key is ${integKeyLen} bytes, INTEG ${alg.integId} needs ${i.keyBytes}`;
  }
  return undefined;
}

/**
 * The one table of IKEv2 transforms vpp-iked supports: IANA transform id, strongSwan proposal
 * keyword(s), node:crypto algorithm name, key/IV/ICV sizes and the VPP API enum used to install
 * the matching ESP SA (`ipsec_crypto_alg` / `ipsec_integ_alg` in ipsec_types.api).
 *
 * Sizes are in bytes unless the field name says bits.
 */
import { EncrId, IntegId, KeId, PrfId } from '../constants.ts';

export interface EncrAlg {
  /** IANA ENCR transform id. */
  id: number;
  /** Key size in bits (the KEY_LENGTH attribute for AES; 256 for ChaCha20-Poly1305). */
  keyBits: number;
  /** Canonical strongSwan keyword (e.g. "aes256gcm16"). */
  keyword: string;
  /** Other strongSwan keywords accepted for the same transform. */
  aliases: readonly string[];
  /** strongSwan's list-sas name (e.g. "AES_GCM_16_256"). */
  name: string;
  aead: boolean;
  /** Bytes of explicit IV in each SK payload / ESP packet. */
  ivLen: number;
  /** Bytes of integrity check value produced by the AEAD (0 for CBC: the INTEG transform adds it). */
  icvLen: number;
  /** Cipher block size for padding (1 for AEAD stream modes). */
  blockSize: number;
  /** Bytes of salt appended to the key in the keying material (RFC 4106 / RFC 7634: 4). */
  saltLen: number;
  /** Cipher key bytes (keyBits / 8). */
  keyLen: number;
  /** Bytes taken from KEYMAT / SK_e* for this transform: keyLen + saltLen. */
  keymatLen: number;
  /** Whether the wire transform carries the KEY_LENGTH attribute (AES yes, ChaCha20 no: RFC 7634 §3). */
  keyLengthAttr: boolean;
  /** node:crypto cipher name. */
  cipher: string;
  /** VPP ipsec_crypto_alg value, or null when VPP's ESP cannot do this transform. */
  vppCryptoAlg: number | null;
}

export interface PrfAlg {
  id: number;
  keyword: string;
  name: string;
  /** node:crypto hash name used with HMAC. */
  hash: string;
  /** Output bytes. */
  outLen: number;
  /** Preferred key bytes (RFC 7296 §2.13: SK_d, SK_pi, SK_pr have this length; = outLen for HMAC). */
  preferredKeyLen: number;
}

export interface IntegAlg {
  id: number;
  keyword: string;
  aliases: readonly string[];
  name: string;
  hash: string;
  /** Key bytes (RFC 4868: equal to the hash output length). */
  keyLen: number;
  /** Truncated ICV bytes. */
  icvLen: number;
  /** The PRF strongSwan implies for an IKE proposal that names this integrity algorithm but no PRF. */
  impliedPrf: number;
  /** VPP ipsec_integ_alg value, or null if VPP lacks it. */
  vppIntegAlg: number | null;
}

export interface KeGroupInfo {
  id: number;
  keyword: string;
  aliases: readonly string[];
  name: string;
  kind: 'modp' | 'ecp' | 'x25519' | 'x448' | 'mlkem';
  /**
   * Bytes of the KE payload's key exchange data; for a KEM (ML-KEM) the initiator's, its
   * encapsulation key.
   */
  publicLen: number;
  /** Bytes of the responder's key exchange data when it differs (ML-KEM: the ciphertext). */
  responseLen?: number;
}

/** VPP `ipsec_crypto_alg` (ipsec_types.api, enumtype u32). */
export const VppCryptoAlg = {
  NONE: 0,
  AES_CBC_128: 1,
  AES_CBC_192: 2,
  AES_CBC_256: 3,
  AES_GCM_128: 7,
  AES_GCM_192: 8,
  AES_GCM_256: 9,
  CHACHA20_POLY1305: 12,
} as const;

/** VPP `ipsec_integ_alg` (ipsec_types.api, enumtype u32). */
export const VppIntegAlg = {
  NONE: 0,
  SHA1_96: 2,
  SHA_256_128: 4,
  SHA_384_192: 5,
  SHA_512_256: 6,
} as const;

function cbc(bits: 128 | 192 | 256, vpp: number, aliases: string[] = []): EncrAlg {
  return {
    id: EncrId.AES_CBC,
    keyBits: bits,
    keyword: `aes${bits}`,
    aliases,
    name: `AES_CBC_${bits}`,
    aead: false,
    ivLen: 16,
    icvLen: 0,
    blockSize: 16,
    saltLen: 0,
    keyLen: bits / 8,
    keymatLen: bits / 8,
    keyLengthAttr: true,
    cipher: `aes-${bits}-cbc`,
    vppCryptoAlg: vpp,
  };
}

function gcm(icv: 8 | 12 | 16, bits: 128 | 192 | 256, vpp: number | null): EncrAlg {
  const id = icv === 8 ? EncrId.AES_GCM_8 : icv === 12 ? EncrId.AES_GCM_12 : EncrId.AES_GCM_16;
  const aliases = [`aes${bits}gcm${icv * 8}`];
  if (icv === 16) aliases.push(`aes${bits}gcm`);
  return {
    id,
    keyBits: bits,
    keyword: `aes${bits}gcm${icv}`,
    aliases,
    name: `AES_GCM_${icv}_${bits}`,
    aead: true,
    ivLen: 8,
    icvLen: icv,
    blockSize: 1,
    saltLen: 4,
    keyLen: bits / 8,
    keymatLen: bits / 8 + 4,
    keyLengthAttr: true,
    cipher: `aes-${bits}-gcm`,
    vppCryptoAlg: vpp,
  };
}

const CHACHA: EncrAlg = {
  id: EncrId.CHACHA20_POLY1305,
  keyBits: 256,
  keyword: 'chacha20poly1305',
  aliases: [],
  name: 'CHACHA20_POLY1305',
  aead: true,
  ivLen: 8,
  icvLen: 16,
  blockSize: 1,
  saltLen: 4,
  keyLen: 32,
  keymatLen: 36,
  keyLengthAttr: false,
  cipher: 'chacha20-poly1305',
  vppCryptoAlg: VppCryptoAlg.CHACHA20_POLY1305,
};

/** Every supported ENCR transform. VPP's AES-GCM is ICV-16 only, so GCM-8/12 map to null. */
export const ENCR_ALGS: readonly EncrAlg[] = [
  cbc(128, VppCryptoAlg.AES_CBC_128, ['aes']),
  cbc(192, VppCryptoAlg.AES_CBC_192),
  cbc(256, VppCryptoAlg.AES_CBC_256),
  gcm(8, 128, null),
  gcm(8, 192, null),
  gcm(8, 256, null),
  gcm(12, 128, null),
  gcm(12, 192, null),
  gcm(12, 256, null),
  gcm(16, 128, VppCryptoAlg.AES_GCM_128),
  gcm(16, 192, VppCryptoAlg.AES_GCM_192),
  gcm(16, 256, VppCryptoAlg.AES_GCM_256),
  CHACHA,
];

export const PRF_ALGS: readonly PrfAlg[] = [
  { id: PrfId.HMAC_SHA1, keyword: 'prfsha1', name: 'PRF_HMAC_SHA1', hash: 'sha1', outLen: 20, preferredKeyLen: 20 },
  { id: PrfId.HMAC_SHA2_256, keyword: 'prfsha256', name: 'PRF_HMAC_SHA2_256', hash: 'sha256', outLen: 32, preferredKeyLen: 32 },
  { id: PrfId.HMAC_SHA2_384, keyword: 'prfsha384', name: 'PRF_HMAC_SHA2_384', hash: 'sha384', outLen: 48, preferredKeyLen: 48 },
  { id: PrfId.HMAC_SHA2_512, keyword: 'prfsha512', name: 'PRF_HMAC_SHA2_512', hash: 'sha512', outLen: 64, preferredKeyLen: 64 },
];

export const INTEG_ALGS: readonly IntegAlg[] = [
  {
    id: IntegId.HMAC_SHA1_96,
    keyword: 'sha1',
    aliases: ['sha'],
    name: 'HMAC_SHA1_96',
    hash: 'sha1',
    keyLen: 20,
    icvLen: 12,
    impliedPrf: PrfId.HMAC_SHA1,
    vppIntegAlg: VppIntegAlg.SHA1_96,
  },
  {
    id: IntegId.HMAC_SHA2_256_128,
    keyword: 'sha256',
    aliases: ['sha2_256'],
    name: 'HMAC_SHA2_256_128',
    hash: 'sha256',
    keyLen: 32,
    icvLen: 16,
    impliedPrf: PrfId.HMAC_SHA2_256,
    vppIntegAlg: VppIntegAlg.SHA_256_128,
  },
  {
    id: IntegId.HMAC_SHA2_384_192,
    keyword: 'sha384',
    aliases: ['sha2_384'],
    name: 'HMAC_SHA2_384_192',
    hash: 'sha384',
    keyLen: 48,
    icvLen: 24,
    impliedPrf: PrfId.HMAC_SHA2_384,
    vppIntegAlg: VppIntegAlg.SHA_384_192,
  },
  {
    id: IntegId.HMAC_SHA2_512_256,
    keyword: 'sha512',
    aliases: ['sha2_512'],
    name: 'HMAC_SHA2_512_256',
    hash: 'sha512',
    keyLen: 64,
    icvLen: 32,
    impliedPrf: PrfId.HMAC_SHA2_512,
    vppIntegAlg: VppIntegAlg.SHA_512_256,
  },
];

export const KE_GROUPS: readonly KeGroupInfo[] = [
  { id: KeId.MODP_2048, keyword: 'modp2048', aliases: [], name: 'MODP_2048', kind: 'modp', publicLen: 256 },
  { id: KeId.MODP_3072, keyword: 'modp3072', aliases: [], name: 'MODP_3072', kind: 'modp', publicLen: 384 },
  { id: KeId.MODP_4096, keyword: 'modp4096', aliases: [], name: 'MODP_4096', kind: 'modp', publicLen: 512 },
  { id: KeId.MODP_6144, keyword: 'modp6144', aliases: [], name: 'MODP_6144', kind: 'modp', publicLen: 768 },
  { id: KeId.MODP_8192, keyword: 'modp8192', aliases: [], name: 'MODP_8192', kind: 'modp', publicLen: 1024 },
  { id: KeId.ECP_256, keyword: 'ecp256', aliases: [], name: 'ECP_256', kind: 'ecp', publicLen: 64 },
  { id: KeId.ECP_384, keyword: 'ecp384', aliases: [], name: 'ECP_384', kind: 'ecp', publicLen: 96 },
  { id: KeId.ECP_521, keyword: 'ecp521', aliases: [], name: 'ECP_521', kind: 'ecp', publicLen: 132 },
  { id: KeId.CURVE25519, keyword: 'x25519', aliases: ['curve25519'], name: 'CURVE_25519', kind: 'x25519', publicLen: 32 },
  { id: KeId.CURVE448, keyword: 'x448', aliases: ['curve448'], name: 'CURVE_448', kind: 'x448', publicLen: 56 },
  // FIPS 203: encapsulation key and ciphertext sizes of ML-KEM-512/768/1024.
  { id: KeId.ML_KEM_512, keyword: 'mlkem512', aliases: [], name: 'ML_KEM_512', kind: 'mlkem', publicLen: 800, responseLen: 768 },
  { id: KeId.ML_KEM_768, keyword: 'mlkem768', aliases: [], name: 'ML_KEM_768', kind: 'mlkem', publicLen: 1184, responseLen: 1088 },
  { id: KeId.ML_KEM_1024, keyword: 'mlkem1024', aliases: [], name: 'ML_KEM_1024', kind: 'mlkem', publicLen: 1568, responseLen: 1568 },
];

const encrById = new Map<string, EncrAlg>();
for (const a of ENCR_ALGS) encrById.set(`${a.id}/${a.keyBits}`, a);
const prfById = new Map(PRF_ALGS.map((a) => [a.id, a]));
const integById = new Map(INTEG_ALGS.map((a) => [a.id, a]));
const keById = new Map(KE_GROUPS.map((g) => [g.id, g]));

/**
 * The ENCR transform for an IANA id and key size in bits. ChaCha20-Poly1305 has a fixed key and
 * is found with keyBits 0 (no KEY_LENGTH attribute, as on the wire) or 256.
 */
export function encrAlg(id: number, keyBits: number): EncrAlg | undefined {
  if (id === EncrId.CHACHA20_POLY1305) return keyBits === 0 || keyBits === 256 ? CHACHA : undefined;
  return encrById.get(`${id}/${keyBits}`);
}

export function prfAlg(id: number): PrfAlg | undefined {
  return prfById.get(id);
}

export function integAlg(id: number): IntegAlg | undefined {
  return integById.get(id);
}

export function keGroup(id: number): KeGroupInfo | undefined {
  return keById.get(id);
}

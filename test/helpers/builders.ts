/**
 * Records the tests and benches build again and again: one direction of a CHILD_SA (SaParams, as
 * the engine hands it to a dataplane) and a SAD entry (as ipsec_sad_entry_add_v2 takes it).
 */
import { randomBytes } from 'node:crypto';
import type { EspAlgorithms, SaParams } from '../../src/dataplane/types.ts';
import type { IpsecSadEntryV4 } from '../../src/vpp/defs.generated.ts';
import { toApiAddress } from '../../src/vpp/address.ts';

export interface SaOpts {
  /** Our address and the peer's. Defaults 192.0.2.1 and 198.51.100.7. */
  local?: string;
  remote?: string;
  /** Our port and the peer's. Default 500. */
  lport?: number;
  rport?: number;
  /** UDP encapsulation. Default off. */
  encap?: boolean;
  /** Default AES-GCM-16 with a 256-bit key (ENCR 20), no integrity, no ESN. */
  alg?: EspAlgorithms;
  /** Encryption key length in bytes. Default: what `alg` needs (with the 4-byte salt for AES-GCM). */
  keyLen?: number;
  /** Random keys. Default: bytes of 7. */
  randomKeys?: boolean;
  /** This encryption key (shared, not copied) instead of a new one. */
  encKey?: Buffer;
  /** Default 64. */
  replayWindow?: number;
}

/** One direction of a tunnel-mode CHILD_SA; the inbound SA runs from the peer to us. */
export function saParams(spi: number, inbound: boolean, o: SaOpts = {}): SaParams {
  const me = { addr: o.local ?? '192.0.2.1', port: o.lport ?? 500 };
  const peer = { addr: o.remote ?? '198.51.100.7', port: o.rport ?? 500 };
  const alg = o.alg ?? { encrId: 20, encrKeyBits: 256, integId: 0, esn: false };
  const keyLen = o.keyLen ?? (alg.encrId === 20 ? alg.encrKeyBits / 8 + 4 : alg.encrKeyBits / 8);
  const key = (n: number): Buffer => (o.randomKeys ? randomBytes(n) : Buffer.alloc(n, 7));
  return {
    spi,
    inbound,
    src: inbound ? peer : me,
    dst: inbound ? me : peer,
    udpEncap: o.encap ?? false,
    alg,
    encKey: o.encKey ?? key(keyLen),
    // HMAC-SHA2-256-128 (INTEG 12) takes a 32-byte key; the AEAD default none.
    integKey: key(alg.integId === 12 ? 32 : 0),
    replayWindow: o.replayWindow ?? 64,
    mode: 'tunnel',
  };
}

/**
 * A SAD entry: sad_id `id`, SPI 0x2000 + id, ESP with AES-GCM-128 (key of 16 bytes of 9, salt
 * 0x01020304), IPv4 tunnel 192.0.2.1 → 192.0.2.2, outbound. `extra` replaces fields.
 */
export function sadEntry(id: number, extra: Partial<IpsecSadEntryV4> = {}): IpsecSadEntryV4 {
  return {
    sad_id: id,
    spi: 0x2000 + id,
    protocol: 50,
    crypto_algorithm: 7,
    crypto_key: { length: 16, data: Buffer.alloc(16, 9) },
    integrity_algorithm: 0,
    integrity_key: { length: 0, data: Buffer.alloc(0) },
    flags: 4,
    tunnel: {
      instance: 0xffffffff,
      src: toApiAddress('192.0.2.1'),
      dst: toApiAddress('192.0.2.2'),
      sw_if_index: 0xffffffff,
      table_id: 0,
      encap_decap_flags: 0,
      mode: 0,
      flags: 0,
      dscp: 0,
      hop_limit: 0,
    },
    salt: 0x01020304,
    ...extra,
  };
}

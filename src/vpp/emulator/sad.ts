/**
 * The VPP emulator's SAD: adding, deleting, updating and dumping SAs (FDio/vpp
 * src/vnet/ipsec/ipsec_api.c, ipsec_sa.c, ipsec_types_api.c, src/vnet/tunnel/tunnel_types_api.c).
 */

import type { Tunnel, VppMessageTypes } from '../defs.generated.ts';
import { IpsecCryptoAlg as C, IpsecIntegAlg as I, IpsecProto, IpsecSadFlags, TunnelFlags } from '../defs.generated.ts';
import { zeroApiAddress, AF_IP6 } from '../address.ts';
import { VppErr } from '../errors.ts';
import { addrText, MODE_MP, MODE_P2P, U32_MAX, type EmuCtx, type EmuSa } from './common.ts';
import type { VppEmulatorState } from './tables.ts';

/** IPSEC_SAD_FLAG bits (ipsec_types.api). */
const F_ANTI_REPLAY = IpsecSadFlags.IPSEC_API_SAD_FLAG_USE_ANTI_REPLAY;
export const F_TUNNEL = IpsecSadFlags.IPSEC_API_SAD_FLAG_IS_TUNNEL;
const F_TUNNEL_V6 = IpsecSadFlags.IPSEC_API_SAD_FLAG_IS_TUNNEL_V6;
export const F_UDP_ENCAP = IpsecSadFlags.IPSEC_API_SAD_FLAG_UDP_ENCAP;
/** Every flag ipsec_sa_flags_decode knows. */
const F_KNOWN = Object.values(IpsecSadFlags).reduce<number>((a, b) => a | b, 0);

const ESP = IpsecProto.IPSEC_API_PROTO_ESP;
const AH = IpsecProto.IPSEC_API_PROTO_AH;
const MAX_CRYPTO = Math.max(...Object.values(C));
const MAX_INTEG = Math.max(...Object.values(I));

/** Cipher key lengths VPP's crypto engines accept, by ipsec_crypto_alg (vnet_crypto key checks). */
const CIPHER_KEY_LEN: Readonly<Record<number, number>> = {
  [C.IPSEC_API_CRYPTO_ALG_AES_CBC_128]: 16,
  [C.IPSEC_API_CRYPTO_ALG_AES_CBC_192]: 24,
  [C.IPSEC_API_CRYPTO_ALG_AES_CBC_256]: 32,
  [C.IPSEC_API_CRYPTO_ALG_AES_CTR_128]: 16,
  [C.IPSEC_API_CRYPTO_ALG_AES_CTR_192]: 24,
  [C.IPSEC_API_CRYPTO_ALG_AES_CTR_256]: 32,
  [C.IPSEC_API_CRYPTO_ALG_AES_GCM_128]: 16,
  [C.IPSEC_API_CRYPTO_ALG_AES_GCM_192]: 24,
  [C.IPSEC_API_CRYPTO_ALG_AES_GCM_256]: 32,
  [C.IPSEC_API_CRYPTO_ALG_DES_CBC]: 8,
  [C.IPSEC_API_CRYPTO_ALG_3DES_CBC]: 24,
  [C.IPSEC_API_CRYPTO_ALG_CHACHA20_POLY1305]: 32,
  [C.IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_128]: 16,
  [C.IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_192]: 24,
  [C.IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_256]: 32,
};

/** ipsec_sa_crypto_integ_map in ipsec_sa.c: which (crypto, integ) pairs VPP can run. */
function comboSupported(crypto: number, integ: number): boolean {
  if (crypto === C.IPSEC_API_CRYPTO_ALG_NONE) return true; // with any integ (incl. NONE)
  if (crypto === C.IPSEC_API_CRYPTO_ALG_DES_CBC) return integ === I.IPSEC_API_INTEG_ALG_NONE;
  if (crypto === C.IPSEC_API_CRYPTO_ALG_3DES_CBC || (crypto >= C.IPSEC_API_CRYPTO_ALG_AES_CBC_128 && crypto <= C.IPSEC_API_CRYPTO_ALG_AES_CBC_256)) {
    return true; // 3DES / AES-CBC with any integ
  }
  if (crypto >= C.IPSEC_API_CRYPTO_ALG_AES_CTR_128 && crypto <= C.IPSEC_API_CRYPTO_ALG_AES_CTR_256) {
    return integ !== I.IPSEC_API_INTEG_ALG_MD5_96; // AES-CTR: not with MD5-96
  }
  return integ === I.IPSEC_API_INTEG_ALG_NONE; // AEADs (GCM, ChaCha20, GMAC)
}

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

/** Mirrors tunnel_decode() (tunnel_types_api.c); returns a VPP error code or 0. */
function tunnelDecode(s: VppEmulatorState, t: Tunnel): number {
  if (t.src.af !== t.dst.af) return VppErr.INVALID_PROTOCOL;
  if (addrText(t.src) === addrText(t.dst)) return VppErr.SAME_SRC_DST;
  if (t.mode !== MODE_P2P && t.mode !== MODE_MP) return VppErr.INVALID_VALUE_2;
  if ((t.flags & ~TunnelFlags.TUNNEL_API_FLAG_TRACK_MTU) !== 0) return VppErr.INVALID_VALUE_2;
  if (!s.tables.has(`${t.dst.af === AF_IP6 ? 6 : 4}:${t.table_id}`)) return VppErr.NO_SUCH_FIB;
  return 0;
}

/**
 * vl_api_ipsec_sad_entry_add_v2_t_handler → ipsec_sad_entry_add_v4 (ipsec_api.c) →
 * ipsec_sa_add_and_lock (ipsec_sa.c).
 */
export function ipsec_sad_entry_add_v2(s: VppEmulatorState, m: VppMessageTypes['ipsec_sad_entry_add_v2'], ctx: EmuCtx): void {
  const e = m.entry;
  const fail = (rv: number): void => ctx.reply({ retval: rv, stat_index: U32_MAX });
  // ipsec_proto_decode / ipsec_crypto_algo_decode / ipsec_integ_algo_decode (ipsec_types_api.c)
  if (e.protocol !== ESP && e.protocol !== AH) return fail(VppErr.INVALID_PROTOCOL);
  if (e.crypto_algorithm > MAX_CRYPTO) return fail(VppErr.INVALID_ALGORITHM);
  if (e.integrity_algorithm > MAX_INTEG) return fail(VppErr.INVALID_ALGORITHM);
  let flags = e.flags & F_KNOWN; // ipsec_sa_flags_decode drops unknown bits
  if (flags & F_TUNNEL) {
    const rv = tunnelDecode(s, e.tunnel);
    if (rv) return fail(rv);
  }
  // ipsec_sa_add_and_lock
  if (s.sas.has(e.sad_id)) return fail(VppErr.ENTRY_ALREADY_EXISTS);
  const crypto = e.protocol === AH ? C.IPSEC_API_CRYPTO_ALG_NONE : e.crypto_algorithm;
  if (e.protocol === AH && e.integrity_algorithm === I.IPSEC_API_INTEG_ALG_NONE) return fail(VppErr.UNIMPLEMENTED);
  if (!comboSupported(crypto, e.integrity_algorithm)) return fail(VppErr.UNIMPLEMENTED);
  const ckLen = Math.min(e.crypto_key.length, 128);
  const ikLen = Math.min(e.integrity_key.length, 128);
  // vnet_crypto_ctx_set_cipher_key: a key of length 0 is not set (the SA is added without one);
  // any other length than the algorithm's fails, and ipsec_sa_add_and_lock's failure path then
  // crashes VPP 26.10 (SIGSEGV) instead of answering KEY_LENGTH. Integrity (HMAC) keys may have
  // any length, 0 included.
  if (crypto !== C.IPSEC_API_CRYPTO_ALG_NONE && ckLen !== 0 && CIPHER_KEY_LEN[crypto] !== ckLen) {
    return ctx.crash(`invalid cipher key: len ${ckLen} expected ${CIPHER_KEY_LEN[crypto]}; SIGSEGV in ipsec_sa_add_and_lock`);
  }
  let window = 64;
  const asked = e.anti_replay_window_size ?? 64;
  if (flags & F_ANTI_REPLAY && asked > 64) {
    window = 1;
    while (window < asked) window *= 2; // rounded up to the next power of 2
  }
  if (flags & F_TUNNEL && e.tunnel.src.af === AF_IP6) flags |= F_TUNNEL_V6;
  let udpSrc = 0;
  let udpDst = 0;
  if (flags & F_UDP_ENCAP) {
    // IPSEC_UDP_PORT_NONE (0xffff) means the default 4500.
    udpSrc = e.udp_src_port === undefined || e.udp_src_port === 0xffff ? 4500 : e.udp_src_port;
    udpDst = e.udp_dst_port === undefined || e.udp_dst_port === 0xffff ? 4500 : e.udp_dst_port;
  }
  const statIndex = s.saPool.get();
  s.stats?.zero(statIndex);
  s.sas.set(e.sad_id, {
    id: e.sad_id,
    spi: e.spi,
    protocol: e.protocol,
    crypto,
    cryptoKey: e.crypto_key.data.subarray(0, ckLen),
    integ: e.integrity_algorithm,
    integKey: e.integrity_key.data.subarray(0, ikLen),
    flags,
    tunnel: flags & F_TUNNEL ? e.tunnel : undefined,
    saltWire: e.salt,
    udpSrc,
    udpDst,
    window,
    locks: 1,
    statIndex,
    deleteRequested: false,
  });
  ctx.reply({ retval: 0, stat_index: statIndex });
}

/** ipsec_sa_unlock: drops one lock of an SA; the last one frees it. */
export function unlockSa(s: VppEmulatorState, sa: EmuSa): void {
  sa.locks--;
  if (sa.locks <= 0) {
    // ipsec_sa_del: the SA is freed and its id released.
    s.sas.delete(sa.id);
    s.saPool.put(sa.statIndex);
  }
}

/**
 * vl_api_ipsec_sad_entry_del_t_handler → ipsec_sa_unlock_id (ipsec_sa.c): NO_SUCH_ENTRY for an
 * unknown id; otherwise drops the add's lock and returns 0 — an SA still used by a tunnel
 * protection or policy stays (listed, its id taken) until that user lets go.
 */
export function ipsec_sad_entry_del(s: VppEmulatorState, m: VppMessageTypes['ipsec_sad_entry_del'], ctx: EmuCtx): void {
  const sa = s.sas.get(m.id);
  if (!sa) return ctx.reply({ retval: VppErr.NO_SUCH_ENTRY });
  if (sa.locks > 1) ctx.warn(`SA ${sa.id} is still in use; it stays until released`);
  if (sa.deleteRequested && sa.locks > 1) {
    ctx.warn(`SA ${sa.id} deleted twice while in use: VPP would free it under its user`);
  }
  sa.deleteRequested = true;
  unlockSa(s, sa);
  ctx.reply({ retval: 0 });
}

/**
 * vl_api_ipsec_sad_entry_update_t_handler → ipsec_sa_update (ipsec_sa.c): NO_SUCH_ENTRY for an
 * unknown id; with is_tun the tunnel endpoints change (tunnel-mode SAs only); UDP ports change
 * only on SAs that already have UDP_ENCAP, and 0xffff leaves a port unchanged.
 */
export function ipsec_sad_entry_update(s: VppEmulatorState, m: VppMessageTypes['ipsec_sad_entry_update'], ctx: EmuCtx): void {
  if (m.is_tun) {
    const rv = tunnelDecode(s, m.tunnel);
    if (rv) return ctx.reply({ retval: rv });
  }
  const sa = s.sas.get(m.sad_id);
  if (!sa) return ctx.reply({ retval: VppErr.NO_SUCH_ENTRY });
  if (m.is_tun && sa.flags & F_TUNNEL && sa.tunnel) {
    if (addrText(m.tunnel.src) !== addrText(sa.tunnel.src) || addrText(m.tunnel.dst) !== addrText(sa.tunnel.dst)) {
      sa.tunnel = m.tunnel;
    }
  }
  if (sa.flags & F_UDP_ENCAP) {
    const dst = m.udp_dst_port ?? 0xffff;
    const src = m.udp_src_port ?? 0xffff;
    if (dst !== 0xffff) sa.udpDst = dst;
    if (src !== 0xffff) sa.udpSrc = src;
  }
  ctx.reply({ retval: 0 });
}

/**
 * The sw_if_index send_ipsec_sa_v5_details reports: only an SA marked IS_PROTECT names its
 * protection's interface, and ipsec_tun_protect_set_crypto_addr marks only the inbound tunnel SAs
 * of protections on interfaces other than ipsec interfaces (IPSEC_PROTECT_ITF). The emulator has
 * protections on ipsec interfaces only, so this is always ~0.
 */
function saUser(s: VppEmulatorState, sa: EmuSa): number {
  for (const p of s.protections.values()) {
    if (s.interfaces.get(p.swIfIndex)?.ipsec) continue;
    if (sa.flags & F_TUNNEL && p.saIn.includes(sa.id)) return p.swIfIndex;
  }
  return U32_MAX;
}

/**
 * vl_api_ipsec_sa_v5_dump_t_handler / send_ipsec_sa_v5_details (ipsec_api.c): ignores sa_id and
 * walks every SA. The salt is sent through clib_host_to_net_u32 of the word stored from the add
 * request, i.e. byte-swapped on a little-endian host. Tunnel only for tunnel SAs, UDP ports only
 * with UDP_ENCAP, window size only with anti-replay.
 */
export function ipsec_sa_v5_dump(s: VppEmulatorState, _m: VppMessageTypes['ipsec_sa_v5_dump'], ctx: EmuCtx): void {
  const all = [...s.sas.values()].sort((a, b) => a.statIndex - b.statIndex);
  for (const sa of all) {
    const ck = Buffer.alloc(128);
    sa.cryptoKey.copy(ck);
    const ik = Buffer.alloc(128);
    sa.integKey.copy(ik);
    ctx.details({
      entry: {
        sad_id: sa.id,
        spi: sa.spi,
        protocol: sa.protocol,
        crypto_algorithm: sa.crypto,
        crypto_key: { length: sa.cryptoKey.length, data: ck },
        integrity_algorithm: sa.integ,
        integrity_key: { length: sa.integKey.length, data: ik },
        flags: sa.flags & F_KNOWN,
        tunnel: sa.tunnel ?? { src: zeroApiAddress(false), dst: zeroApiAddress(false) },
        salt: bswap32(sa.saltWire),
        udp_src_port: sa.flags & F_UDP_ENCAP ? sa.udpSrc : 0,
        udp_dst_port: sa.flags & F_UDP_ENCAP ? sa.udpDst : 0,
        anti_replay_window_size: sa.flags & F_ANTI_REPLAY ? sa.window : 0,
      },
      sw_if_index: saUser(s, sa),
      seq_outbound: 0n,
      last_seq_inbound: 0n,
      replay_window: 0n,
      thread_index: 0,
      stat_index: sa.statIndex,
    });
  }
}

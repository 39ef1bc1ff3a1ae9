/**
 * SAD entries: one direction of a CHILD_SA as ipsec_sad_entry_add_v2 takes it, added, updated
 * (new endpoints) and deleted.
 */

import type { SaParams } from '../types.ts';
import { vppCryptoFor, vppIntegFor } from '../../vpp/ike-algorithms.ts';
import { toApiAddress } from '../../vpp/address.ts';
import { VppErr } from '../../vpp/errors.ts';
import type { IpsecSadEntryV4, Tunnel } from '../../vpp/defs.generated.ts';
import { IpsecProto, IpsecSadFlags, TunnelMode } from '../../vpp/defs.generated.ts';
import { familyOf, isVppError, removeGone, req, U32_MAX, type Backend } from './state.ts';
import { IKE_NATT_PORT } from '../../ikev2/constants.ts';

const {
  IPSEC_API_SAD_FLAG_USE_ESN: USE_ESN,
  IPSEC_API_SAD_FLAG_USE_ANTI_REPLAY: USE_ANTI_REPLAY,
  IPSEC_API_SAD_FLAG_IS_TUNNEL: IS_TUNNEL,
  IPSEC_API_SAD_FLAG_IS_TUNNEL_V6: IS_TUNNEL_V6,
  IPSEC_API_SAD_FLAG_UDP_ENCAP: UDP_ENCAP,
  IPSEC_API_SAD_FLAG_IS_INBOUND: IS_INBOUND,
} = IpsecSadFlags;

function saEntry(id: number, sa: SaParams): IpsecSadEntryV4 {
  const crypto = vppCryptoFor(sa.alg.encrId, sa.alg.encrKeyBits)!;
  const integ = vppIntegFor(sa.alg.integId)!;
  const v6 = familyOf(sa.src.addr) === 6;
  let flags = 0;
  if (sa.mode === 'tunnel') flags |= IS_TUNNEL | (v6 ? IS_TUNNEL_V6 : 0);
  if (sa.udpEncap) flags |= UDP_ENCAP;
  if (sa.inbound) flags |= IS_INBOUND;
  if (sa.alg.esn) flags |= USE_ESN;
  if (sa.inbound && sa.replayWindow > 0) flags |= USE_ANTI_REPLAY;
  // GCM/CTR/ChaCha20/GMAC: KEYMAT = key || 4-byte salt; VPP wants the salt bytes in KEYMAT order
  // read as a big-endian u32 (README, "Salt").
  const salt = crypto.saltBytes === 4 ? sa.encKey.readUInt32BE(crypto.keyBytes) : 0;
  return {
    sad_id: id,
    spi: sa.spi,
    protocol: IpsecProto.IPSEC_API_PROTO_ESP,
    crypto_algorithm: crypto.alg,
    crypto_key: { length: crypto.keyBytes, data: sa.encKey.subarray(0, crypto.keyBytes) },
    integrity_algorithm: integ.alg,
    integrity_key: { length: sa.integKey.length, data: sa.integKey },
    flags,
    tunnel: saTunnel(sa.src.addr, sa.dst.addr),
    salt,
    udp_src_port: sa.udpEncap ? sa.src.port : IKE_NATT_PORT,
    udp_dst_port: sa.udpEncap ? sa.dst.port : IKE_NATT_PORT,
    anti_replay_window_size: sa.replayWindow > 0 ? sa.replayWindow : 64,
  };
}

/** The tunnel header of a tunnel-mode SA from `src` to `dst` (VPP's `tunnel` type). */
export function saTunnel(src: string, dst: string): Tunnel {
  return {
    instance: U32_MAX,
    src: toApiAddress(src),
    dst: toApiAddress(dst),
    sw_if_index: U32_MAX,
    table_id: 0,
    encap_decap_flags: 0,
    mode: TunnelMode.TUNNEL_API_MODE_P2P,
    flags: 0,
    dscp: 0,
    hop_limit: 0,
  };
}

/** Adds an SA; resolves with how to delete it again. */
export async function addSa(b: Backend, id: number, sa: SaParams): Promise<() => Promise<unknown>> {
  try {
    const r = await req(b, 'ipsec_sad_entry_add_v2', { entry: saEntry(id, sa) });
    b.statIndex.set(id, r.stat_index);
  } catch (e) {
    // Someone else holds this id: never hand it out again.
    if (isVppError(e, VppErr.ENTRY_ALREADY_EXISTS)) b.ids.avoidSadIds.add(id);
    throw e;
  }
  return () => {
    b.statIndex.delete(id);
    return req(b, 'ipsec_sad_entry_del', { id });
  };
}

/** Deletes an SA (one that is gone already counts as deleted). */
export async function delSa(b: Backend, id: number): Promise<void> {
  b.statIndex.delete(id);
  await removeGone(() => req(b, 'ipsec_sad_entry_del', { id }));
}

/** ipsec_sad_entry_update: the SA's tunnel endpoints and (with UDP encapsulation) its ports. */
export function updateSa(b: Backend, id: number, sa: SaParams): Promise<unknown> {
  return req(b, 'ipsec_sad_entry_update', {
    sad_id: id,
    is_tun: sa.mode === 'tunnel',
    tunnel: saTunnel(sa.src.addr, sa.dst.addr),
    udp_src_port: sa.udpEncap ? sa.src.port : 0xffff,
    udp_dst_port: sa.udpEncap ? sa.dst.port : 0xffff,
  });
}

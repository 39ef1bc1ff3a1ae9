/**
 * policy mode's SPDs: one per VRF table, bound to its interface, with BYPASS entries for IKE (UDP
 * 500 and 4500, both directions) and a lowest-priority outbound BYPASS for everything else (VPP
 * drops outbound packets that match no policy). An SPD is created for its first user and deleted
 * with its last; changes run in the table's queue (`spd:<table>`).
 */

import type { TsRange } from '../types.ts';
import { toApiAddress, AF_IP6 } from '../../vpp/address.ts';
import { VppErr } from '../../vpp/errors.ts';
import type { Address, IpsecSpdEntry, IpsecSpdEntryV2 } from '../../vpp/defs.generated.ts';
import { IpsecSpdAction } from '../../vpp/defs.generated.ts';
import { allocSpdId } from './ids.ts';
import { ensureTable, requireInterface } from './interfaces.ts';
import { dumpAll, isGone, isVppError, removeGone, req, U32_MAX, type Backend, type SpdState } from './state.ts';
import { rollback, type Undo } from './txn.ts';
import { IKE_NATT_PORT, IKE_PORT } from '../../ikev2/constants.ts';

/** SPD priorities (higher matches first). PROTECT entries use PROTECT..PROTECT_MAX, below the IKE bypass. */
export const PRIORITY = { IKE_BYPASS: 200, PROTECT: 100, PROTECT_MAX: 199, DEFAULT_BYPASS: 0 } as const;
const { IPSEC_API_SPD_ACTION_BYPASS: BYPASS } = IpsecSpdAction;

/**
 * "Any protocol" in an ipsec_spd_entry_add_del_v2 entry (VPP's IPSEC_POLICY_PROTOCOL_ANY). The v2
 * message stores the protocol as sent: 0 would be a policy for IP protocol 0 only, which no packet
 * matches (only the deprecated v1 message maps 0 to any).
 */
export const SPD_PROTOCOL_ANY = 255;

/** An SPD entry; `protocol` as in a traffic selector (0 = any). */
export function spdEntry(spdId: number, priority: number, outbound: boolean, action: number, saId: number, local: TsRange, remote: TsRange, protocol: number): IpsecSpdEntryV2 {
  return {
    spd_id: spdId,
    priority,
    is_outbound: outbound,
    sa_id: saId,
    policy: action,
    protocol: protocol === 0 ? SPD_PROTOCOL_ANY : protocol,
    remote_address_start: toApiAddress(remote.start),
    remote_address_stop: toApiAddress(remote.end),
    local_address_start: toApiAddress(local.start),
    local_address_stop: toApiAddress(local.end),
    remote_port_start: remote.startPort,
    remote_port_stop: remote.endPort,
    local_port_start: local.startPort,
    local_port_stop: local.endPort,
  };
}

function bypassEntries(spdId: number): IpsecSpdEntryV2[] {
  const out: IpsecSpdEntryV2[] = [];
  for (const fam of [4, 6] as const) {
    const any: TsRange =
      fam === 4
        ? { family: 4, start: '0.0.0.0', end: '255.255.255.255', protocol: 0, startPort: 0, endPort: 65535 }
        : { family: 6, start: '::', end: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', protocol: 0, startPort: 0, endPort: 65535 };
    for (const port of [IKE_PORT, IKE_NATT_PORT]) {
      const local: TsRange = { ...any, startPort: port, endPort: port };
      out.push(spdEntry(spdId, PRIORITY.IKE_BYPASS, false, BYPASS, 0, local, any, 17));
      out.push(spdEntry(spdId, PRIORITY.IKE_BYPASS, true, BYPASS, 0, local, any, 17));
    }
    out.push(spdEntry(spdId, PRIORITY.DEFAULT_BYPASS, true, BYPASS, 0, any, any, 0));
  }
  return out;
}

/**
 * The SPD of `table`, created, bound and given its BYPASS entries on first use; its id comes
 * from allocSpdId (`prefer`: the id a replayed CHILD_SA's entries name). A state that exists
 * keeps its users and its id: a state that is not ready (VPP lost the SPD, or its creation
 * was cut off) is programmed again, accepting what VPP already has.
 */
export async function acquireSpd(b: Backend, table: number, iface: string, childId: number, prefer?: number): Promise<SpdState> {
  return b.queue.run(`spd:${table}`, async () => {
    const existing = b.spds.get(table);
    if (existing && existing.iface !== iface) throw new Error(`the SPD of table ${table} is bound to ${existing.iface}, not ${iface}`);
    if (existing?.ready) {
      existing.users.add(childId);
      return existing;
    }
    const swIfIndex = await requireInterface(b, iface);
    await ensureTable(b, table);
    const s: SpdState = existing ?? { spdId: allocSpdId(b.ids, spdIdsInUse(b), prefer), table, iface, swIfIndex, users: new Set(), ready: false };
    s.swIfIndex = swIfIndex;
    b.spds.set(table, s);
    const spdId = s.spdId;
    const undo: Undo = [];
    try {
      let created = true;
      try {
        await req(b, 'ipsec_spd_add_del', { is_add: true, spd_id: spdId });
      } catch (e) {
        // A state that exists already had its SPD in VPP (with its BYPASS entries).
        if (!existing || !isVppError(e, VppErr.ENTRY_ALREADY_EXISTS)) throw e;
        created = false;
      }
      if (created) undo.push(() => deleteSpd(b, spdId));
      try {
        await req(b, 'ipsec_interface_add_del_spd', { is_add: true, sw_if_index: swIfIndex, spd_id: spdId });
      } catch (e) {
        // ipsec_set_interface_spd: SYSCALL_ERROR_2 = the interface has an SPD already.
        if (created || !isVppError(e, VppErr.SYSCALL_ERROR_2)) throw e;
      }
      if (created) await Promise.all(bypassEntries(spdId).map((entry) => req(b, 'ipsec_spd_entry_add_del_v2', { is_add: true, entry })));
    } catch (e) {
      await rollback(b.log, undo, `SPD ${spdId}`);
      if (s.users.size === 0 && b.spds.get(table) === s) b.spds.delete(table);
      throw e;
    }
    s.ready = true;
    s.users.add(childId);
    return s;
  });
}

function spdIdsInUse(b: Backend): Set<number> {
  const used = new Set<number>();
  for (const s of b.spds.values()) used.add(s.spdId);
  return used;
}

/** Ends `childId`'s use of the SPD of `table`; the SPD goes with its last user. */
export async function releaseSpd(b: Backend, table: number, childId: number): Promise<void> {
  await b.queue.run(`spd:${table}`, async () => {
    const s = b.spds.get(table);
    if (!s) return;
    s.users.delete(childId);
    if (s.users.size > 0) return;
    b.spds.delete(table);
    await deleteSpd(b, s.spdId);
  });
}

/**
 * Deletes an SPD and its entries. The entries go first: VPP's ipsec_add_del_spd only frees the
 * SPD's index vectors, so entries still in it would keep their SAs locked (and their sad_ids
 * taken) for good. Deleting the SPD also unbinds it.
 */
export async function deleteSpd(b: Backend, spdId: number): Promise<void> {
  const entries = await dumpAll(b, 'ipsec_spd_dump', { spd_id: spdId, sa_id: U32_MAX });
  await deleteSpdEntries(
    b,
    entries.map((d) => spdEntryV2(d.entry)),
  );
  await removeGone(() => req(b, 'ipsec_spd_add_del', { is_add: false, spd_id: spdId }));
}

/** Deletes SPD entries at once (entries already gone count as deleted). */
export async function deleteSpdEntries(b: Backend, entries: IpsecSpdEntryV2[]): Promise<void> {
  await Promise.all(
    entries.map((entry) =>
      req(b, 'ipsec_spd_entry_add_del_v2', { is_add: false, entry }).catch((e: unknown) => {
        if (!isGone(e)) throw e;
      }),
    ),
  );
}

/**
 * An SPD entry as ipsec_spd_dump reports it, in the form ipsec_spd_entry_add_del_v2 takes (same
 * fields). VPP reports each address as IPv4 when its first 12 bytes are zero (ip_address_encode
 * with IP46_TYPE_ANY), so an IPv6 entry from :: ("any") comes back with an IPv4 0.0.0.0 start; and
 * VPP takes the entry's family from remote_address_start, so such an entry could not be deleted
 * as reported. When any of its addresses is IPv6, all of them are given back as IPv6.
 */
export function spdEntryV2(e: IpsecSpdEntry): IpsecSpdEntryV2 {
  const addrs = [e.remote_address_start, e.remote_address_stop, e.local_address_start, e.local_address_stop];
  const v6 = addrs.some((a) => a.af === AF_IP6);
  const fam = (a: Address): Address => (v6 && a.af !== AF_IP6 ? { af: AF_IP6, un: { ip6: Buffer.concat([Buffer.alloc(12), (a.un.ip4 ?? Buffer.alloc(4)).subarray(0, 4)]) } } : a);
  return {
    spd_id: e.spd_id,
    priority: e.priority,
    is_outbound: e.is_outbound,
    sa_id: e.sa_id,
    policy: e.policy,
    protocol: e.protocol,
    remote_address_start: fam(e.remote_address_start),
    remote_address_stop: fam(e.remote_address_stop),
    local_address_start: fam(e.local_address_start),
    local_address_stop: fam(e.local_address_stop),
    remote_port_start: e.remote_port_start,
    remote_port_stop: e.remote_port_stop,
    local_port_start: e.local_port_start,
    local_port_stop: e.local_port_stop,
  };
}

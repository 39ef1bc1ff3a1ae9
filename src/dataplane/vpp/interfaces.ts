/**
 * Interfaces and VRF tables: names looked up (and cached per connection), tables created once per
 * connection, and the configuration a new ipsec interface gets (admin up, VRF, unnumbered).
 */

import { IfStatusFlags } from '../../vpp/defs.generated.ts';
import { dumpAll, req, U32_MAX, type Backend } from './state.ts';

export const ADMIN_UP = IfStatusFlags.IF_STATUS_API_FLAG_ADMIN_UP;

/** The sw_if_index of the interface named `name`, if VPP has one. */
export async function interfaceIndex(b: Backend, name: string): Promise<number | undefined> {
  const cached = b.ifIndex.get(name);
  if (cached !== undefined) return cached;
  const found = await dumpAll(b, 'sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: true, name_filter: name });
  const hit = found.find((d) => d.interface_name === name);
  if (hit) b.ifIndex.set(name, hit.sw_if_index);
  return hit?.sw_if_index;
}

export async function requireInterface(b: Backend, name: string): Promise<number> {
  const i = await interfaceIndex(b, name);
  if (i === undefined) throw new Error(`VPP has no interface named ${name}`);
  return i;
}

/** Creates VRF `table` (both families) once per connection; table 0 always exists. */
export async function ensureTable(b: Backend, table: number): Promise<void> {
  if (table === 0) return;
  await b.queue.run(`table:${table}`, async () => {
    for (const isIp6 of [false, true]) {
      const key = `${isIp6 ? 6 : 4}:${table}`;
      if (b.tablesReady.has(key)) continue;
      await req(b, 'ip_table_add_del', { is_add: true, table: { table_id: table, is_ip6: isIp6, name: '' } });
      b.tablesReady.add(key);
    }
  });
}

/** Admin up, VRF, unnumbered: independent calls, sent together. */
export async function configureInterface(b: Backend, sw: number, table: number): Promise<void> {
  const calls: Promise<unknown>[] = [req(b, 'sw_interface_set_flags', { sw_if_index: sw, flags: ADMIN_UP })];
  if (table !== 0) {
    await ensureTable(b, table);
    calls.push(req(b, 'sw_interface_set_table', { sw_if_index: sw, is_ipv6: false, vrf_id: table }));
    calls.push(req(b, 'sw_interface_set_table', { sw_if_index: sw, is_ipv6: true, vrf_id: table }));
  }
  if (b.opts.unnumberedInterface) {
    const lender = await requireInterface(b, b.opts.unnumberedInterface);
    calls.push(req(b, 'sw_interface_set_unnumbered', { sw_if_index: lender, unnumbered_sw_if_index: sw, is_add: true }));
  }
  const res = await Promise.allSettled(calls);
  for (const r of res) if (r.status === 'rejected') throw r.reason;
}

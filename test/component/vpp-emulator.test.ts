import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { startEmulator } from '../../src/vpp/emulator/server.ts';
import { VppClient } from '../../src/vpp/client.ts';
import { vppCodec } from '../../src/vpp/api.ts';
import { apiAddressText, toApiAddress } from '../../src/vpp/address.ts';
import type { SockclntCreateReply } from '../../src/vpp/defs.generated.ts';
import { sadEntry as entry } from '../helpers/builders.ts';
import { contract, type VppTarget } from '../helpers/vpp-target.ts';

let n = 0;
function sockPath(): string {
  return join(tmpdir(), `vpp-emu-test-${process.pid}-${n++}.sock`);
}

/**
 * The emulator's answers to raw API requests, checked against a real VPP too: contract() runs each
 * body against the emulator and a real VPP 26.10 (test/helpers/vpp-target.ts). What only the
 * emulator can show (its internal lock counts) is checked when `vpp.emu` is there.
 */
function apiContract(name: string, fn: (c: VppClient, vpp: VppTarget) => Promise<void>): void {
  contract(name, async (_t, vpp) => fn(await vpp.raw(), vpp));
}

apiContract('dumped salt is byte-swapped as VPP does on x86 (README: "never feed a dumped salt back")', async (c, vpp) => {
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(1) });
  const [d] = await c.dump('ipsec_sa_v5_dump', { sa_id: 0xffffffff });
  assert.equal(d!.entry.salt, 0x04030201);
  assert.equal(d!.entry.udp_src_port, 0, 'no UDP ports without UDP_ENCAP');
  assert.equal(d!.sw_if_index, 0xffffffff);
});

apiContract('SA delete while a tunnel protection uses it returns 0; the SA stays until the protection lets go', async (c, vpp) => {
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(10) });
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(11, { flags: 4 | 64 }) });
  const itf = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
  await c.request('ipsec_tunnel_protect_update', {
    tunnel: { sw_if_index: itf.sw_if_index, nh: toApiAddress('0.0.0.0'), sa_out: 10, sa_in: [11] },
  });
  const del = await c.request('ipsec_sad_entry_del', { id: 11 });
  assert.equal(del.retval, 0);
  let sas = await c.dump('ipsec_sa_v5_dump', { sa_id: 0 });
  assert.deepEqual(sas.map((s) => s.entry.sad_id).sort(), [10, 11], 'still listed');
  // As in VPP: an SA protected on an ipsec interface is not marked IS_PROTECT, so the dump names no interface.
  assert.equal(sas.find((s) => s.entry.sad_id === 11)!.sw_if_index, 0xffffffff);
  await assert.rejects(c.request('ipsec_sad_entry_add_v2', { entry: entry(11) }), /-116/);
  await c.request('ipsec_tunnel_protect_del', { sw_if_index: itf.sw_if_index, nh: toApiAddress('0.0.0.0') });
  sas = await c.dump('ipsec_sa_v5_dump', { sa_id: 0 });
  assert.deepEqual(sas.map((s) => s.entry.sad_id), [10]);
  if (vpp.emu) assert.equal(vpp.emu.state.sas.get(10)!.locks, 1);
  await assert.rejects(c.request('ipsec_sad_entry_del', { id: 11 }), /-6 \(NO_SUCH_ENTRY/);
});

apiContract('tunnel protection errors mirror ipsec_tun_protect_update', async (c, vpp) => {
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(1) });
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(2, { flags: 64 }) }); // transport-mode inbound
  const itf = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
  const nh = toApiAddress('0.0.0.0');
  await assert.rejects(c.request('ipsec_tunnel_protect_update', { tunnel: { sw_if_index: itf.sw_if_index, nh, sa_out: 1, sa_in: [99] } }), /-7 \(INVALID_VALUE/);
  await assert.rejects(c.request('ipsec_tunnel_protect_update', { tunnel: { sw_if_index: itf.sw_if_index, nh, sa_out: 2, sa_in: [1] } }), /-58 \(INVALID_DST_ADDRESS/);
  await assert.rejects(c.request('ipsec_tunnel_protect_update', { tunnel: { sw_if_index: 1, nh, sa_out: 1, sa_in: [2] } }), /-2 \(INVALID_SW_IF_INDEX/);
  await assert.rejects(c.request('ipsec_tunnel_protect_update', { tunnel: { sw_if_index: 4242, nh, sa_out: 1, sa_in: [2] } }), /-2 \(INVALID_SW_IF_INDEX/);
  await assert.rejects(
    c.request('ipsec_tunnel_protect_update', { tunnel: { sw_if_index: itf.sw_if_index, nh, sa_out: 1, sa_in: [2, 2, 2, 2, 2] } }),
    /LIMIT_EXCEEDED/,
  );
  await assert.rejects(c.request('ipsec_tunnel_protect_del', { sw_if_index: itf.sw_if_index, nh }), /NO_SUCH_ENTRY/);
});

apiContract('SA add: a cipher key of the wrong length crashes VPP 26.10 (ipsec_sa_add_and_lock failure path); one of length 0 is taken', async (c, vpp) => {
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(1) });
  await assert.rejects(c.request('ipsec_sad_entry_add_v2', { entry: entry(2, { crypto_key: { length: 20, data: Buffer.alloc(20) } }) }), /connection to VPP lost/);
  await vpp.restart();
  const c2 = await vpp.raw();
  assert.deepEqual(await c2.dump('ipsec_sa_v5_dump', { sa_id: 0xffffffff }), [], 'VPP started over');
  await c2.request('ipsec_sad_entry_add_v2', { entry: entry(3, { crypto_key: { length: 0, data: Buffer.alloc(0) } }) });
  await c2.request('ipsec_sad_entry_add_v2', {
    entry: entry(4, { crypto_algorithm: 1, crypto_key: { length: 16, data: Buffer.alloc(16, 1) }, integrity_algorithm: 4, integrity_key: { length: 0, data: Buffer.alloc(0) } }),
  });
  await c2.request('ipsec_sad_entry_add_v2', {
    entry: entry(5, { crypto_algorithm: 1, crypto_key: { length: 16, data: Buffer.alloc(16, 1) }, integrity_algorithm: 4, integrity_key: { length: 7, data: Buffer.alloc(7, 2) } }),
  });
  const keys = (await c2.dump('ipsec_sa_v5_dump', { sa_id: 0xffffffff })).map((d) => [d.entry.sad_id, d.entry.crypto_key.length, d.entry.integrity_key.length]);
  assert.deepEqual(
    keys.sort((x, y) => x[0]! - y[0]!),
    [
      [3, 0, 0],
      [4, 16, 0],
      [5, 16, 7],
    ],
    'no cipher key, and integrity keys of any length',
  );
});

apiContract('SA add validation: duplicate id, unsupported combination, tunnel checks', async (c, vpp) => {
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(1) });
  await assert.rejects(c.request('ipsec_sad_entry_add_v2', { entry: entry(1) }), /ENTRY_ALREADY_EXISTS/);
  await assert.rejects(
    c.request('ipsec_sad_entry_add_v2', { entry: entry(3, { integrity_algorithm: 2, integrity_key: { length: 20, data: Buffer.alloc(20) } }) }),
    /UNIMPLEMENTED/,
  );
  const t = entry(4).tunnel;
  await assert.rejects(c.request('ipsec_sad_entry_add_v2', { entry: entry(4, { tunnel: { ...t, dst: t.src } }) }), /SAME_SRC_DST/);
  await assert.rejects(c.request('ipsec_sad_entry_add_v2', { entry: entry(5, { tunnel: { ...t, dst: toApiAddress('2001:db8::1') } }) }), /INVALID_PROTOCOL/);
  await assert.rejects(c.request('ipsec_sad_entry_add_v2', { entry: entry(6, { tunnel: { ...t, table_id: 5 } }) }), /NO_SUCH_FIB/);
  await c.request('ip_table_add_del', { is_add: true, table: { table_id: 5, is_ip6: false, name: '' } });
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(6, { tunnel: { ...t, table_id: 5 } }) });
  // UDP ports default to 4500 when UDP_ENCAP is set and the port is 0xffff; update changes them.
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(7, { flags: 4 | 16, udp_src_port: 0xffff, udp_dst_port: 31000 }) });
  await c.request('ipsec_sad_entry_update', { sad_id: 7, is_tun: false, tunnel: t, udp_src_port: 0xffff, udp_dst_port: 32000 });
  const d = (await c.dump('ipsec_sa_v5_dump', { sa_id: 0 })).find((x) => x.entry.sad_id === 7)!;
  assert.deepEqual([d.entry.udp_src_port, d.entry.udp_dst_port], [4500, 32000]);
  await assert.rejects(c.request('ipsec_sad_entry_update', { sad_id: 70, is_tun: false, tunnel: t }), /NO_SUCH_ENTRY/);
});

apiContract("ip_address_dump: an interface's own addresses of one family; none for an unnumbered interface", async (c, vpp) => {
  const addrs = async (sw: number, isIpv6: boolean): Promise<string[]> =>
    (await c.dump('ip_address_dump', { sw_if_index: sw, is_ipv6: isIpv6 })).map((d) => `${apiAddressText(d.prefix.address, '?')}/${d.prefix.len}`).sort();
  const up = await vpp.swIfIndex(vpp.uplink);
  const loop0 = await vpp.swIfIndex('loop0');
  const loop1 = await vpp.swIfIndex('loop1');
  assert.deepEqual(
    [await addrs(up, false), await addrs(up, true), await addrs(loop0, false), await addrs(loop0, true), await addrs(loop1, false), await addrs(loop1, true)],
    [['192.0.2.2/24'], ['2001:db8::2/64'], ['198.51.100.129/32'], ['2001:db8:b::1/128'], [], []],
  );
  const itf = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
  await c.request('sw_interface_set_unnumbered', { sw_if_index: loop0, unnumbered_sw_if_index: itf.sw_if_index, is_add: true });
  assert.deepEqual([await addrs(itf.sw_if_index, false), await addrs(itf.sw_if_index, true)], [[], []]);
  // The lender's addresses count for its VRF binding (ip_table_bind honours unnumbered).
  await c.request('ip_table_add_del', { is_add: true, table: { table_id: 7, is_ip6: false, name: '' } });
  await assert.rejects(c.request('sw_interface_set_table', { sw_if_index: itf.sw_if_index, is_ipv6: false, vrf_id: 7 }), /ADDRESS_FOUND_FOR_INTERFACE/);
  await assert.rejects(c.request('sw_interface_set_table', { sw_if_index: loop0, is_ipv6: false, vrf_id: 7 }), /ADDRESS_FOUND_FOR_INTERFACE/);
  await c.request('sw_interface_set_table', { sw_if_index: loop1, is_ipv6: false, vrf_id: 7 });
  // A lender in another VRF is refused.
  const itf2 = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
  await assert.rejects(c.request('sw_interface_set_unnumbered', { sw_if_index: loop1, unnumbered_sw_if_index: itf2.sw_if_index, is_add: true }), /UNEXPECTED_INTF_STATE/);
});

apiContract('ip_table_add_del: deleting a table only drops the API lock; it lives on (with its routes) while an interface is bound to it', async (c) => {
  const route = (isAdd: boolean, sw: number) => ({
    is_add: isAdd,
    is_multipath: true,
    route: {
      table_id: 9,
      stats_index: 0,
      prefix: { address: toApiAddress('10.9.0.0'), len: 24 },
      paths: [{ sw_if_index: sw, table_id: 0, rpf_id: 0, weight: 1, preference: 0, type: 0, flags: 0, proto: 0, nh: { address: toApiAddress('0.0.0.0').un, via_label: 0, obj_id: 0, classify_table_index: 0xffffffff }, n_labels: 0, label_stack: [] }],
    },
  });
  const routes = async (): Promise<string[]> =>
    (await c.dump('ip_route_dump', { table: { table_id: 9, is_ip6: false, name: '' } })).filter((d) => d.route.prefix.len === 24).map((d) => `${apiAddressText(d.route.prefix.address, '?')}/${d.route.prefix.len}`);
  await c.request('ip_table_add_del', { is_add: true, table: { table_id: 9, is_ip6: false, name: '' } });
  const itf = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
  await c.request('sw_interface_set_table', { sw_if_index: itf.sw_if_index, is_ipv6: false, vrf_id: 9 });
  await c.request('ip_route_add_del', route(true, itf.sw_if_index));
  await c.request('ip_table_add_del', { is_add: false, table: { table_id: 9, is_ip6: false, name: '' } });
  assert.deepEqual(await routes(), ['10.9.0.0/24'], 'the interface still holds the table');
  // The interface goes: its path stays (naming the gone sw_if_index) until the table goes too.
  await c.request('ipsec_itf_delete', { sw_if_index: itf.sw_if_index });
  assert.deepEqual(await routes(), [], 'the table is gone with its last lock');
  await assert.rejects(c.request('ip_route_add_del', route(true, itf.sw_if_index)), /NO_SUCH_FIB/);
  // In table 0 a route through a deleted interface stays, and cannot be deleted by its path.
  const itf2 = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
  await c.request('ip_route_add_del', { ...route(true, itf2.sw_if_index), route: { ...route(true, itf2.sw_if_index).route, table_id: 0 } });
  await c.request('ipsec_itf_delete', { sw_if_index: itf2.sw_if_index });
  const in0 = async (): Promise<number[]> =>
    (await c.dump('ip_route_dump', { table: { table_id: 0, is_ip6: false, name: '' } })).filter((d) => apiAddressText(d.route.prefix.address, '?') === '10.9.0.0').map((d) => d.route.paths[0]!.sw_if_index);
  assert.deepEqual(await in0(), [itf2.sw_if_index]);
  await assert.rejects(c.request('ip_route_add_del', { ...route(false, itf2.sw_if_index), route: { ...route(false, itf2.sw_if_index).route, table_id: 0 } }), /NO_MATCHING_INTERFACE/);
  await c.request('ip_route_add_del', { is_add: false, is_multipath: false, route: { table_id: 0, stats_index: 0, prefix: { address: toApiAddress('10.9.0.0'), len: 24 }, paths: [] } });
  assert.deepEqual(await in0(), []);
});

apiContract('ipsec interfaces: instance numbers, names, reuse, explicit instance in use', async (c, vpp) => {
  const a = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
  const b = await c.request('ipsec_itf_create', { itf: { user_instance: 7, mode: 1, sw_if_index: 0 } });
  await assert.rejects(c.request('ipsec_itf_create', { itf: { user_instance: 7, mode: 0, sw_if_index: 0 } }), /INVALID_REGISTRATION/);
  // Listed in sw_if_index order (a shared VPP may hand out indexes freed by earlier tests in any order).
  const listed = await c.dump('sw_interface_dump', { name_filter_valid: true, name_filter: 'IPSEC' });
  assert.deepEqual(
    listed.map((d) => d.interface_name).sort(),
    ['ipsec0', 'ipsec7'],
  );
  assert.deepEqual(
    listed.map((d) => d.sw_if_index),
    [a.sw_if_index, b.sw_if_index].sort((x, y) => x - y),
  );
  await c.request('ipsec_itf_delete', { sw_if_index: a.sw_if_index });
  await assert.rejects(c.request('ipsec_itf_delete', { sw_if_index: a.sw_if_index }), /INVALID_SW_IF_INDEX/);
  const again = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
  assert.equal(again.sw_if_index, a.sw_if_index, 'freed sw_if_index is reused');
  assert.equal((await c.dump('ipsec_itf_dump', { sw_if_index: b.sw_if_index }))[0]!.itf.user_instance, 7);
});

apiContract('SPD: add/bind/entries and VPP codes', async (c, vpp) => {
  await c.request('ipsec_spd_add_del', { is_add: true, spd_id: 1 });
  await assert.rejects(c.request('ipsec_spd_add_del', { is_add: true, spd_id: 1 }), /ENTRY_ALREADY_EXISTS/);
  await assert.rejects(c.request('ipsec_interface_add_del_spd', { is_add: true, sw_if_index: 1, spd_id: 2 }), /SYSCALL_ERROR_1/);
  await c.request('ipsec_interface_add_del_spd', { is_add: true, sw_if_index: 1, spd_id: 1 });
  await assert.rejects(c.request('ipsec_interface_add_del_spd', { is_add: true, sw_if_index: 1, spd_id: 1 }), /SYSCALL_ERROR_2/);
  const any4 = toApiAddress('0.0.0.0');
  const all4 = toApiAddress('255.255.255.255');
  const e = {
    spd_id: 1,
    priority: 10,
    is_outbound: false,
    sa_id: 0,
    policy: 0,
    protocol: 17,
    remote_address_start: any4,
    remote_address_stop: all4,
    local_address_start: any4,
    local_address_stop: all4,
    remote_port_start: 0,
    remote_port_stop: 65535,
    local_port_start: 500,
    local_port_stop: 500,
  };
  await c.request('ipsec_spd_entry_add_del_v2', { is_add: true, entry: e });
  await assert.rejects(c.request('ipsec_spd_entry_add_del_v2', { is_add: true, entry: { ...e, policy: 3, sa_id: 77 } }), /SYSCALL_ERROR_1/);
  await assert.rejects(c.request('ipsec_spd_entry_add_del_v2', { is_add: true, entry: { ...e, policy: 2 } }), /UNIMPLEMENTED/);
  const entries = await c.dump('ipsec_spd_dump', { spd_id: 1, sa_id: 0xffffffff });
  assert.equal(entries.length, 1);
  assert.equal(entries[0]!.entry.local_port_start, 500);
  const binds = await c.dump('ipsec_spd_interface_dump', { spd_index: 0, spd_index_valid: 0 });
  assert.deepEqual(binds.map((b) => b.sw_if_index), [1]);
  await c.request('ipsec_spd_entry_add_del_v2', { is_add: false, entry: e });
  assert.equal((await c.dump('ipsec_spd_dump', { spd_id: 1, sa_id: 0xffffffff })).length, 0);
});

apiContract('SPD delete keeps the SA locks of its entries, as ipsec_add_del_spd does (FDio/vpp ipsec_spd.c: vec_free only)', async (c, vpp) => {
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(20) });
  await c.request('ipsec_spd_add_del', { is_add: true, spd_id: 5 });
  const any4 = toApiAddress('0.0.0.0');
  const all4 = toApiAddress('255.255.255.255');
  const protect = {
    spd_id: 5,
    priority: 100,
    is_outbound: true,
    sa_id: 20,
    policy: 3,
    protocol: 0,
    remote_address_start: any4,
    remote_address_stop: all4,
    local_address_start: any4,
    local_address_stop: all4,
    remote_port_start: 0,
    remote_port_stop: 65535,
    local_port_start: 0,
    local_port_stop: 65535,
  };
  await c.request('ipsec_spd_entry_add_del_v2', { is_add: true, entry: protect });
  if (vpp.emu) assert.equal(vpp.emu.state.sas.get(20)!.locks, 2);
  await c.request('ipsec_spd_add_del', { is_add: false, spd_id: 5 });
  // The entry is gone with the SPD's vectors but still locks the SA: a delete returns 0 and the
  // SA stays, its id taken.
  assert.equal((await c.request('ipsec_sad_entry_del', { id: 20 })).retval, 0);
  assert.deepEqual((await c.dump('ipsec_sa_v5_dump', { sa_id: 0 })).map((d) => d.entry.sad_id), [20]);
  await assert.rejects(c.request('ipsec_sad_entry_add_v2', { entry: entry(20) }), /ENTRY_ALREADY_EXISTS/);
  // The entry cannot be deleted any more: its SPD is gone (ipsec_add_del_policy: SYSCALL_ERROR_1).
  await assert.rejects(c.request('ipsec_spd_entry_add_del_v2', { is_add: false, entry: protect }), /SYSCALL_ERROR_1/);
  if (vpp.emu) assert.equal(vpp.emu.state.orphanPolicies.length, 1);
});

test('dropConnections keeps the tables; the client reconnects to the same state', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const c = new VppClient({ socket, healthCheckMs: 0, reconnectMinMs: 10, reconnectMaxMs: 50 });
  try {
    await c.connect();
    await c.request('ipsec_sad_entry_add_v2', { entry: entry(1) });
    const back = once(c, 'connected');
    await emu.dropConnections();
    await back;
    assert.deepEqual((await c.dump('ipsec_sa_v5_dump', { sa_id: 0 })).map((d) => d.entry.sad_id), [1]);
  } finally {
    await c.close();
    await emu.close();
  }
});

function rawFrame(name: string, id: number, body: Record<string, unknown>): Buffer {
  const f = vppCodec.encode(name, id, body, 16);
  f.writeUInt32BE(f.length - 16, 8);
  return f;
}

async function readFrames(sock: Socket, count: number, ms = 300): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let buf = Buffer.alloc(0);
  return new Promise((resolve) => {
    const done = (): void => {
      sock.off('data', onData);
      clearTimeout(t);
      resolve(out);
    };
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 16 && buf.length >= 16 + buf.readUInt32BE(8)) {
        const len = buf.readUInt32BE(8);
        out.push(buf.subarray(16, 16 + len));
        buf = buf.subarray(16 + len);
      }
      if (out.length >= count) done();
    };
    const t = setTimeout(done, ms);
    sock.on('data', onData);
  });
}

test('wire strictness: truncated requests dropped (logged), unknown ids unanswered, trailing bytes ignored', async () => {
  const socket = sockPath();
  const lines: string[] = [];
  const emu = await startEmulator({ socket, log: (l) => lines.push(l) });
  const sock = createConnection({ path: socket });
  try {
    await once(sock, 'connect');
    // One write carrying the handshake: the server must reassemble by data_len.
    sock.write(rawFrame('sockclnt_create', 15, { context: 1, name: 'raw' }));
    const [hs] = await readFrames(sock, 1);
    const reply = vppCodec.decode<SockclntCreateReply>('sockclnt_create_reply', hs!);
    const ids = new Map(reply.message_table.map((e) => [e.name.replace(/_[0-9a-f]{8}$/, ''), e.index]));
    const ci = reply.index;
    const del = rawFrame('ipsec_sad_entry_del', ids.get('ipsec_sad_entry_del')!, { client_index: ci, context: 5, id: 1 });
    const truncated = Buffer.from(del.subarray(0, del.length - 2));
    truncated.writeUInt32BE(truncated.length - 16, 8);
    const unknown = Buffer.from(del);
    unknown.writeUInt16BE(9999, 16);
    const trailing = Buffer.concat([del, Buffer.alloc(3)]);
    trailing.writeUInt32BE(del.length - 16 + 3, 8);
    trailing.writeUInt32BE(6, 16 + 6); // context 6
    const ping = rawFrame('control_ping', ids.get('control_ping')!, { client_index: ci, context: 7 });
    // Split across writes at odd places.
    const all = Buffer.concat([truncated, unknown, trailing, ping]);
    sock.write(all.subarray(0, 5));
    sock.write(all.subarray(5, 40));
    sock.write(all.subarray(40));
    const frames = await readFrames(sock, 2);
    const ctxs = frames.map((f) => f.readUInt32BE(2));
    assert.deepEqual(ctxs, [6, 7], 'only the message with trailing bytes and the ping are answered');
    assert.equal(frames[0]!.readInt32BE(6), -6);
    assert.ok(lines.some((l) => l.startsWith("Truncated message 'ipsec_sad_entry_del'")));
    assert.ok(lines.some((l) => l === 'no handler for msg id 9999'));
  } finally {
    sock.destroy();
    await emu.close();
  }
});

test('npm run vpp-emulator: runs as a process until SIGTERM and starts empty again', async () => {
  const socket = sockPath();
  const main = new URL('../../src/vpp/emulator/main.ts', import.meta.url).pathname;
  const start = async (): Promise<ReturnType<typeof spawn>> => {
    const p = spawn(process.execPath, [main, '--socket', socket, '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(p.stdout!, 'data');
    return p;
  };
  let p = await start();
  let c = new VppClient({ socket, healthCheckMs: 0, reconnect: false });
  await c.connect();
  await c.request('ipsec_sad_entry_add_v2', { entry: entry(1) });
  assert.equal((await c.dump('ipsec_sa_v5_dump', { sa_id: 0 })).length, 1);
  await c.close();
  p.kill('SIGTERM');
  const [code] = await once(p, 'exit');
  assert.equal(code, 0);
  p = await start();
  c = new VppClient({ socket, healthCheckMs: 0, reconnect: false });
  await c.connect();
  assert.equal((await c.dump('ipsec_sa_v5_dump', { sa_id: 0 })).length, 0);
  await c.close();
  p.kill('SIGTERM');
  await once(p, 'exit');
});

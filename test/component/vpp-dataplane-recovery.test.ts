/**
 * The VPP back end when things go wrong: removals during a replay or while VPP is unreachable,
 * resyncs that fail, reconnects in policy mode, leftovers of earlier runs (SPDs whose entries lock
 * SAs, operator tunnels in our instance range), half-done configuration, SPD ids per table,
 * update() rollback, and the checks the memory dataplane shares with it.
 *
 * contract() tests run the same body against the VPP emulator and a real VPP
 * (test/helpers/vpp-target.ts), reading VPP through its API; a real VPP restart kills VPP and starts
 * it again with its interfaces. Tests marked "[emulator only]" need fault injection only the
 * emulator can do (a request held back, dropped or answered with an error); the reason is given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { startEmulator, type EmulatorHandle } from '../../src/vpp/emulator/server.ts';
import { VppDataplane, isOurId } from '../../src/dataplane/vpp/index.ts';
import { MemoryDataplane } from '../../src/dataplane/memory.ts';
import { VppApiError, VppClient } from '../../src/vpp/client.ts';
import { toApiAddress } from '../../src/vpp/address.ts';
import type { ChildInstall, TsRange } from '../../src/dataplane/types.ts';
import type { IpsecSadEntryV4, IpsecSpdEntryV2 } from '../../src/vpp/defs.generated.ts';
import { sadEntry } from '../helpers/builders.ts';
import { ManualTimers, child, drop, failNth, failWith, hold, record, resynced, setup, sockPath, ts4, ts6 } from '../helpers/vpp-dataplane.ts';
import { contract, ipsecItfs, itfNamed, recordRequests, type VppView } from '../helpers/vpp-target.ts';

/** An SA added behind the back end's back (ESP, tunnel, outbound unless `inbound`). */
function rawSa(id: number, spi: number, inbound = false): IpsecSadEntryV4 {
  return sadEntry(id, { spi, flags: 4 | (inbound ? 64 : 0) });
}

function protectEntry(spdId: number, saId: number, remote: TsRange = ts4('10.1.0.0', '10.1.0.255'), local: TsRange = ts4('10.0.0.0', '10.0.0.255')): IpsecSpdEntryV2 {
  return {
    spd_id: spdId,
    priority: 100,
    is_outbound: true,
    sa_id: saId,
    policy: 3,
    protocol: 0,
    remote_address_start: toApiAddress(remote.start),
    remote_address_stop: toApiAddress(remote.end),
    local_address_start: toApiAddress(local.start),
    local_address_stop: toApiAddress(local.end),
    remote_port_start: 0,
    remote_port_stop: 65535,
    local_port_start: 0,
    local_port_stop: 65535,
  };
}

async function rawClient(socket: string): Promise<VppClient> {
  const c = new VppClient({ socket, healthCheckMs: 0, reconnect: false });
  await c.connect();
  return c;
}

function sadIds(v: VppView | EmulatorHandle): number[] {
  const keys = 'state' in v ? v.state.sas.keys() : v.sas.keys();
  return [...keys].sort((a, b) => a - b);
}

function sorted(ids: (number | undefined)[]): number[] {
  return ids.map((x) => x!).sort((a, b) => a - b);
}


test('remove() during a replay after a VPP restart: the CHILD_SA is not programmed again nor reported [emulator only: a request held back]', async () => {
  const timers = new ManualTimers();
  const { emu, dp, done } = await setup({ dp: { timers } });
  try {
    const replayed: number[] = [];
    dp.setListener({ replayed: (ids) => replayed.push(...ids) });
    const a = await dp.install(child(1, 0x1001, 0x2001));
    const b = await dp.install(child(2, 0x1002, 0x2002, { remoteTs: [ts4('10.2.0.0', '10.2.0.255')] }));
    const gone = once(dp.client, 'disconnected');
    await emu.restart();
    // The replay's first SA adds are held back: the replay is running when remove() comes.
    const h = hold(emu, 'ipsec_sad_entry_add_v2');
    await gone;
    await h.arrived;
    const removal = dp.remove(1); // registered at once: the replay running now leaves child 1 out
    h.release();
    await removal;
    await resynced(dp, timers); // and every replayed() batch
    assert.equal(dp.childState(1), undefined, 'child 1 stays removed');
    assert.deepEqual(replayed, [2], 'only child 2 is reported as replayed');
    assert.deepEqual(sadIds(emu), [b.saIn!, b.saOut!].sort((x, y) => x - y), 'VPP holds child 2 only');
    assert.ok(!emu.state.sas.has(a.saIn!));
    assert.deepEqual([...emu.state.interfaces.values()].filter((i) => i.ipsec).length, 1);
  } finally {
    await done();
  }
});

contract('remove() while VPP is down returns at once; after VPP restarts the CHILD_SA is not replayed', async (_t, vpp) => {
  const timers = new ManualTimers();
  const { dp, done } = await vpp.dataplane({ dp: { timers } });
  try {
    const replayed: number[] = [];
    dp.setListener({ replayed: (ids) => replayed.push(...ids) });
    await dp.install(child(1, 0x1001, 0x2001));
    const b = await dp.install(child(2, 0x1002, 0x2002, { remoteTs: [ts4('10.2.0.0', '10.2.0.255')] }));
    const gone = once(dp.client, 'disconnected');
    await vpp.stop();
    await gone;
    await dp.remove(1); // resolves although VPP is unreachable
    await vpp.start();
    await resynced(dp, timers);
    assert.equal(dp.childState(1), undefined);
    assert.deepEqual(replayed, [2]);
    assert.deepEqual(sadIds(await vpp.view()), sorted([b.saIn, b.saOut]));
  } finally {
    await done();
  }
});

contract('remove() while the API connection is down (VPP kept running): carried out after the reconnect', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    const replayed: number[] = [];
    dp.setListener({ replayed: (ids) => replayed.push(...ids) });
    await dp.install(child(1, 0x1001, 0x2001));
    const b = await dp.install(child(2, 0x1002, 0x2002, { remoteTs: [ts4('10.2.0.0', '10.2.0.255')] }));
    const gone = once(dp.client, 'disconnected');
    await vpp.dropConnections();
    await gone;
    await dp.remove(1);
    await resynced(dp);
    assert.equal(dp.childState(1), undefined);
    const s = await vpp.view();
    assert.deepEqual(sadIds(s), sorted([b.saIn, b.saOut]), 'child 1 is torn down in VPP');
    assert.equal(ipsecItfs(s).length, 1);
    assert.deepEqual(
      s.routes.map((r) => `${r.prefix}/${r.len}`),
      ['10.2.0.0/24'],
    );
    assert.deepEqual(replayed, [], 'nothing was lost, nothing replayed');
  } finally {
    await done();
  }
});

contract('policy mode: removing the last CHILD_SA while the API connection is down removes the SPD after the reconnect', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  try {
    await dp.install(child(1, 0x1001, 0x2001, { mode: 'policy', table: 3 }));
    const gone = once(dp.client, 'disconnected');
    await vpp.dropConnections();
    await gone;
    await dp.remove(1);
    await resynced(dp);
    let s = await vpp.view();
    assert.equal(s.spds.size, 0);
    assert.equal(s.spdBindings.size, 0);
    assert.equal(s.sas.size, 0);
    // A new policy CHILD_SA gets a new SPD.
    await dp.install(child(2, 0x1002, 0x2002, { mode: 'policy', table: 3 }));
    s = await vpp.view();
    assert.equal(s.spds.size, 1);
  } finally {
    await done();
  }
});

test('a resync whose dumps fail is retried until it works; the CHILD_SAs come back [emulator only: requests dropped]', async () => {
  const timers = new ManualTimers();
  const { emu, dp, done } = await setup({ requestTimeoutMs: 200, dp: { timers } });
  try {
    const replayed: number[] = [];
    dp.setListener({ replayed: (ids) => replayed.push(...ids) });
    const a = await dp.install(child(1, 0x1001, 0x2001));
    const gone = once(dp.client, 'disconnected');
    await emu.restart();
    // The pings that end the dumps go unanswered: the dumps of the first two snapshots time out.
    drop(emu, 'control_ping', 6);
    await gone;
    await resynced(dp, timers); // the backoff pauses end as they begin
    assert.deepEqual(replayed, [1]);
    assert.deepEqual(sadIds(emu), [a.saIn!, a.saOut!].sort((x, y) => x - y));
    assert.ok(dp.stats().resync_failures >= 2);
    await dp.remove(1);
    assert.equal(emu.state.sas.size, 0);
  } finally {
    await done();
  }
});

test('a CHILD_SA that cannot be programmed again is reported through failed(); the others are replayed [emulator only: VPP answers a request with an error]', async () => {
  const timers = new ManualTimers();
  const { emu, dp, done } = await setup({ dp: { timers } });
  try {
    const replayed: number[] = [];
    const failed: [number, string][] = [];
    dp.setListener({ replayed: (ids) => replayed.push(...ids), failed: (id, why) => failed.push([id, why]) });
    await dp.install(child(1, 0x1001, 0x2001));
    await dp.install(child(2, 0x1002, 0x2002, { mode: 'p2mp', iface: 'ipsec100' }));
    const gone = once(dp.client, 'disconnected');
    await emu.restart();
    failWith(emu, 'ipsec_itf_create', -147); // INSTANCE_IN_USE for the p2p interface... and the p2mp one
    failWith(emu, 'ipsec_itf_create', -147);
    await gone;
    await resynced(dp, timers);
    assert.deepEqual(failed.map(([id]) => id).sort(), [1, 2]);
    assert.match(failed[0]![1], /INSTANCE_IN_USE/);
    assert.deepEqual(replayed, []);
    assert.equal(dp.childState(1), undefined);
    assert.equal(emu.state.sas.size, 0, 'nothing half-programmed');
  } finally {
    await done();
  }
});

contract('replayed() comes in batches of replayBatch, one batch per replayIntervalMs', async (_t, vpp) => {
  const timers = new ManualTimers();
  const { dp, done } = await vpp.dataplane({ dp: { timers, replayBatch: 2, replayIntervalMs: 1000 } });
  try {
    const batches: number[][] = [];
    dp.setListener({ replayed: (ids) => batches.push(ids) });
    for (let i = 1; i <= 5; i++) await dp.install(child(i, 0x1000 + i, 0x2000 + i, { remoteTs: [ts4(`10.${i}.0.0`, `10.${i}.0.255`)] }));
    const gone = once(dp.client, 'disconnected');
    await vpp.restart();
    await gone;
    await resynced(dp);
    assert.deepEqual(batches, [[1, 2]], 'the first batch at once');
    assert.equal(timers.pending, 1);
    timers.advance(999);
    assert.equal(batches.length, 1);
    timers.advance(1);
    assert.deepEqual(batches, [
      [1, 2],
      [3, 4],
    ]);
    timers.advance(1000);
    assert.deepEqual(batches, [[1, 2], [3, 4], [5]]);
    assert.equal(timers.pending, 0);
  } finally {
    await done();
  }
});

contract('route deletes answered NO_MATCHING_INTERFACE / NO_SUCH_FIB count as done (interface or VRF already gone)', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    await dp.install(child(1, 0x1001, 0x2001, { mode: 'p2mp', iface: 'ipsec100' }));
    await dp.install(child(2, 0x1002, 0x2002, { table: 7, remoteTs: [ts4('10.2.0.0', '10.2.0.255')] }));
    const raw = await vpp.raw();
    // An operator deletes the shared interface and VRF 7 under us.
    const shared = itfNamed(await vpp.view(), 'ipsec100')!;
    await raw.request('ipsec_itf_delete', { sw_if_index: shared.swIfIndex });
    await raw.request('ip_table_add_del', { is_add: false, table: { table_id: 7, is_ip6: false, name: '' } });
    await raw.close();
    const log = recordRequests(dp.client);
    await dp.remove(1);
    await dp.remove(2);
    assert.ok(log.some((l) => l.name === 'ip_route_add_del'), 'the route deletes were sent');
    assert.equal(dp.childState(1), undefined);
    assert.equal(dp.childState(2), undefined);
    const s = await vpp.view();
    assert.equal(s.sas.size, 0);
    assert.deepEqual(s.routes, [], 'no route is left through the deleted interface');
  } finally {
    await done();
  }
});

contract('policy mode after a reconnect: the SPD is reused and keeps its users', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  try {
    const r1 = await dp.install(child(1, 0x1001, 0x2001, { mode: 'policy', table: 3 }));
    const [spdId] = [...(await vpp.view()).spds.keys()];
    const gone = once(dp.client, 'disconnected');
    await vpp.dropConnections(); // the API connection breaks, VPP keeps running
    await gone;
    await resynced(dp);
    // A second CHILD_SA in the same table uses the same SPD.
    const r2 = await dp.install(child(2, 0x1002, 0x2002, { mode: 'policy', table: 3, remoteTs: [ts4('10.9.0.0', '10.9.0.255')] }));
    let s = await vpp.view();
    assert.deepEqual([...s.spds.keys()], [spdId]);
    assert.equal(s.spds.get(spdId!)!.filter((p) => p.policy === 3).length, 4);
    await dp.remove(2);
    s = await vpp.view();
    assert.ok(s.spds.has(spdId!), 'child 1 still uses the SPD');
    assert.deepEqual(
      s.spds
        .get(spdId!)!
        .filter((p) => p.policy === 3)
        .map((p) => p.saId)
        .sort((a, b) => a - b),
      sorted([r1.saIn, r1.saOut]),
    );
    assert.ok(!s.sas.has(r2.saIn!));
    await dp.remove(1);
    s = await vpp.view();
    assert.equal(s.spds.size, 0);
    assert.equal(s.sas.size, 0);
  } finally {
    await done();
  }
});

contract('policy mode after a reconnect: an SPD that lost its interface binding is bound again', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  try {
    await dp.install(child(1, 0x1001, 0x2001, { mode: 'policy', table: 3 }));
    const [spdId] = [...(await vpp.view()).spds.keys()];
    const eth = await vpp.swIfIndex(vpp.uplink);
    const raw = await vpp.raw();
    await raw.request('ipsec_interface_add_del_spd', { is_add: false, sw_if_index: eth, spd_id: spdId! });
    assert.equal((await vpp.view()).spdBindings.size, 0);
    await raw.close();
    const gone = once(dp.client, 'disconnected');
    await vpp.dropConnections();
    await gone;
    await resynced(dp);
    const s = await vpp.view();
    assert.deepEqual([...s.spds.keys()], [spdId]);
    assert.deepEqual([...s.spdBindings.keys()], [eth], 'the SPD is bound to its interface again');
    assert.ok(dp.childState(1));
  } finally {
    await done();
  }
});

contract('policy mode after a VPP restart: the SPD comes back with its id and entries', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  try {
    const r1 = await dp.install(child(1, 0x1001, 0x2001, { mode: 'policy', table: 3 }));
    const [spdId] = [...(await vpp.view()).spds.keys()];
    const gone = once(dp.client, 'disconnected');
    await vpp.restart();
    await gone;
    await resynced(dp);
    let s = await vpp.view();
    assert.deepEqual([...s.spds.keys()], [spdId]);
    assert.deepEqual(
      s.spds
        .get(spdId!)!
        .filter((p) => p.policy === 3)
        .map((p) => p.saId)
        .sort((a, b) => a - b),
      sorted([r1.saIn, r1.saOut]),
    );
    await dp.install(child(2, 0x1002, 0x2002, { mode: 'policy', table: 3, remoteTs: [ts4('10.9.0.0', '10.9.0.255')] }));
    await dp.remove(1);
    await dp.remove(2);
    s = await vpp.view();
    assert.equal(s.spds.size, 0);
  } finally {
    await done();
  }
});

contract('start-up: a stray SPD of ours loses its entries before it is deleted, so its SAs are freed (IPv6 "any" entries too)', async (_t, vpp) => {
  const raw = await vpp.raw();
  const any6 = ts6('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
  await raw.request('ipsec_sad_entry_add_v2', { entry: rawSa(0x7e000010, 0x999) });
  await raw.request('ipsec_sad_entry_add_v2', { entry: rawSa(0x7e000011, 0x998, true) });
  await raw.request('ipsec_sad_entry_add_v2', { entry: rawSa(0x7e000012, 0x997) });
  await raw.request('ipsec_spd_add_del', { is_add: true, spd_id: 0x7e000001 });
  await raw.request('ipsec_interface_add_del_spd', { is_add: true, sw_if_index: await vpp.swIfIndex(vpp.uplink), spd_id: 0x7e000001 });
  await raw.request('ipsec_spd_entry_add_del_v2', { is_add: true, entry: protectEntry(0x7e000001, 0x7e000010) });
  await raw.request('ipsec_spd_entry_add_del_v2', { is_add: true, entry: { ...protectEntry(0x7e000001, 0x7e000011), is_outbound: false } });
  // VPP reports this entry's addresses from :: as IPv4 0.0.0.0.
  await raw.request('ipsec_spd_entry_add_del_v2', { is_add: true, entry: protectEntry(0x7e000001, 0x7e000012, any6, any6) });
  await raw.close();
  const { done } = await vpp.dataplane();
  try {
    const s = await vpp.view();
    assert.equal(s.spds.size, 0);
    assert.equal(s.spdBindings.size, 0);
    assert.equal(s.sas.size, 0, 'the SAs the entries used are gone');
    if (vpp.emu) assert.equal(vpp.emu.state.orphanPolicies.length, 0, 'no entry left behind in VPP');
  } finally {
    await done();
  }
});

contract('start-up: sad_ids of ours that VPP cannot free (still locked) are not handed out', async (_t, vpp) => {
  const raw = await vpp.raw();
  // An earlier run deleted an SPD with an entry still in it: SA 0x7e000001 stays locked for good.
  await raw.request('ipsec_sad_entry_add_v2', { entry: rawSa(0x7e000001, 0x999) });
  await raw.request('ipsec_spd_add_del', { is_add: true, spd_id: 77 });
  await raw.request('ipsec_spd_entry_add_del_v2', { is_add: true, entry: protectEntry(77, 0x7e000001) });
  await raw.request('ipsec_spd_add_del', { is_add: false, spd_id: 77 });
  await raw.close();
  const { dp, done } = await vpp.dataplane();
  try {
    assert.deepEqual(sadIds(await vpp.view()), [0x7e000001], 'VPP keeps it');
    const r = await dp.install(child(1, 0x1001, 0x2001));
    assert.ok(r.saIn !== 0x7e000001 && r.saOut !== 0x7e000001);
    assert.ok(isOurId(r.saIn!) && isOurId(r.saOut!));
  } finally {
    await done();
  }
});

contract('start-up: a p2p interface in our instance range protected with foreign SAs is left alone (and its instance skipped)', async (_t, vpp) => {
  const raw = await vpp.raw();
  await raw.request('ipsec_sad_entry_add_v2', { entry: rawSa(5, 0x501) });
  await raw.request('ipsec_sad_entry_add_v2', { entry: rawSa(6, 0x502, true) });
  const op = await raw.request('ipsec_itf_create', { itf: { user_instance: 1000, mode: 0, sw_if_index: 0 } });
  await raw.request('ipsec_tunnel_protect_update', { tunnel: { sw_if_index: op.sw_if_index, nh: toApiAddress('0.0.0.0'), sa_out: 5, sa_in: [6] } });
  // Left by an earlier run: an interface without protection and one protected with our SAs.
  await raw.request('ipsec_itf_create', { itf: { user_instance: 1001, mode: 0, sw_if_index: 0 } });
  await raw.request('ipsec_sad_entry_add_v2', { entry: rawSa(0x7e000020, 0x777) });
  await raw.request('ipsec_sad_entry_add_v2', { entry: rawSa(0x7e000021, 0x778, true) });
  const ours = await raw.request('ipsec_itf_create', { itf: { user_instance: 1002, mode: 0, sw_if_index: 0 } });
  await raw.request('ipsec_tunnel_protect_update', {
    tunnel: { sw_if_index: ours.sw_if_index, nh: toApiAddress('0.0.0.0'), sa_out: 0x7e000020, sa_in: [0x7e000021] },
  });
  await raw.close();
  const { dp, done } = await vpp.dataplane();
  try {
    const s = await vpp.view();
    assert.deepEqual(
      ipsecItfs(s)
        .map((i) => i.name)
        .sort(),
      ['ipsec1000'],
      "the operator's tunnel stays, ours go",
    );
    assert.deepEqual(sadIds(s), [5, 6]);
    assert.equal(s.protections.length, 1);
    const r = await dp.install(child(1, 0x1001, 0x2001));
    assert.equal(r.interface, 'ipsec1001', 'the next free instance above the operator one');
  } finally {
    await done();
  }
});

test('start-up: a stray VPP refuses to delete is left in place and avoided; start-up still completes [emulator only: VPP answers a request with an error]', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const raw = await rawClient(socket);
  await raw.request('ipsec_itf_create', { itf: { user_instance: 1000, mode: 0, sw_if_index: 0 } });
  await raw.close();
  failWith(emu, 'ipsec_itf_delete', -1);
  const dp = new VppDataplane({ socket, clientOptions: { healthCheckMs: 0 } });
  try {
    await dp.start();
    assert.ok([...emu.state.interfaces.values()].some((i) => i.name === 'ipsec1000'), 'still there');
    assert.equal((await dp.install(child(1, 0x1001, 0x2001))).interface, 'ipsec1001', 'its instance is not used');
  } finally {
    await dp.close();
    await emu.close();
  }
});

contract('p2pInstanceBase moves our range', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ dp: { p2pInstanceBase: 3000 } });
  try {
    assert.equal((await dp.install(child(1, 0x1001, 0x2001))).interface, 'ipsec3000');
    assert.ok(itfNamed(await vpp.view(), 'ipsec3000'));
  } finally {
    await done();
  }
  assert.throws(() => new VppDataplane({ p2pInstanceBase: 16384 }), /p2pInstanceBase/);
});

test('shared p2mp interface: a failed admin-up deletes it again, so the next install configures it fully [emulator only: VPP answers a request with an error]', async () => {
  const { emu, dp, done } = await setup({ unnumbered: 'loop0' });
  try {
    failWith(emu, 'sw_interface_set_flags', -1);
    await assert.rejects(dp.install(child(1, 0x1001, 0x2001, { mode: 'p2mp', iface: 'ipsec100' })), VppApiError);
    assert.ok(![...emu.state.interfaces.values()].some((i) => i.name === 'ipsec100'), 'not left half-configured');
    await dp.install(child(1, 0x1001, 0x2001, { mode: 'p2mp', iface: 'ipsec100' }));
    const itf = [...emu.state.interfaces.values()].find((i) => i.name === 'ipsec100')!;
    assert.equal(itf.adminUp, true);
    assert.equal(itf.unnumberedTo, [...emu.state.interfaces.values()].find((i) => i.name === 'loop0')!.swIfIndex);
  } finally {
    await done();
  }
});

contract('SPD ids: one per table, for any u32 table id (also ids that agree in the low 24 bits)', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  try {
    await dp.install(child(1, 0x1001, 0x2001, { mode: 'policy', table: 0 }));
    // Tables 5 and 5 + 2^24 would share an id if it were derived from the table.
    await dp.install(child(2, 0x1002, 0x2002, { mode: 'policy', table: 5, iface: 'loop0' }));
    await dp.install(child(3, 0x1003, 0x2003, { mode: 'policy', table: 5 + 2 ** 24, iface: 'loop1' }));
    let s = await vpp.view();
    const ids = [...s.spds.keys()];
    assert.equal(ids.length, 3);
    assert.equal(new Set(ids).size, 3);
    assert.ok(
      ids.every((id) => isOurId(id) && (id & 0xffffff) !== 0),
      'recognisable, never 0x7e000000',
    );
    assert.equal(new Set(s.spdBindings.values()).size, 3);
    const bound = await Promise.all([vpp.uplink, 'loop0', 'loop1'].map((n) => vpp.swIfIndex(n)));
    assert.deepEqual(
      [...s.spdBindings.keys()].sort((a, b) => a - b),
      bound.sort((a, b) => a - b),
    );
    await dp.remove(1);
    await dp.remove(2);
    await dp.remove(3);
    s = await vpp.view();
    assert.equal(s.spds.size, 0);
    assert.equal(s.sas.size, 0);
  } finally {
    await done();
  }
});

test('update(): when the outbound SA update fails, the inbound SA gets its previous endpoints back [emulator only: VPP answers a request with an error]', async () => {
  const { emu, dp, done } = await setup();
  try {
    const c = child(1, 0x1001, 0x2001, { encap: true, lport: 4500, rport: 4500 });
    const r = await dp.install(c);
    const inBefore = JSON.stringify(emu.state.snapshot());
    failNth(emu, 'ipsec_sad_entry_update', -7, 2);
    const log = record(emu);
    await assert.rejects(dp.update(1, { addr: '192.0.2.1', port: 4500 }, { addr: '198.51.100.99', port: 6000 }, true), VppApiError);
    assert.deepEqual(
      log.map((l) => l.name),
      ['ipsec_sad_entry_update', 'ipsec_sad_entry_update', 'ipsec_sad_entry_update'],
    );
    assert.deepEqual(
      log.map((l) => l.msg.sad_id),
      [r.saIn, r.saOut, r.saIn],
      'inbound, outbound (fails), inbound set back',
    );
    assert.equal(JSON.stringify(emu.state.snapshot()), inBefore, 'VPP is back where it was');
    // It works afterwards.
    await dp.update(1, { addr: '192.0.2.1', port: 4500 }, { addr: '198.51.100.99', port: 6000 }, true);
    assert.equal(emu.state.sas.get(r.saOut!)!.udpDst, 6000);
  } finally {
    await done();
  }
});

contract('the memory dataplane accepts exactly what the VPP back end accepts', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  const mem = new MemoryDataplane({ policyInterface: vpp.uplink });
  const memNoPolicy = new MemoryDataplane();
  const dpNoPolicy = await vpp.dataplane();
  try {
    let id = 100;
    const cases: [string, (id: number) => ChildInstall][] = [
      ['p2p', (i) => child(i, 0x10000 + i, 0x20000 + i)],
      ['p2mp without interface', (i) => child(i, 0x10000 + i, 0x20000 + i, { mode: 'p2mp' })],
      ['p2mp not ipsecN', (i) => child(i, 0x10000 + i, 0x20000 + i, { mode: 'p2mp', iface: vpp.uplink })],
      ['p2mp ipsec007', (i) => child(i, 0x10000 + i, 0x20000 + i, { mode: 'p2mp', iface: 'ipsec007' })],
      ['p2mp ipsec20000', (i) => child(i, 0x10000 + i, 0x20000 + i, { mode: 'p2mp', iface: 'ipsec20000' })],
      ['p2mp ipsec200', (i) => child(i, 0x10000 + i, 0x20000 + i, { mode: 'p2mp', iface: 'ipsec200', remoteTs: [ts4(`10.${i}.0.0`, `10.${i}.0.255`)] })],
      ['p2mp v6 routes over v4', (i) => child(i, 0x10000 + i, 0x20000 + i, { mode: 'p2mp', iface: 'ipsec200', remoteTs: [ts6('2001:db8::', '2001:db8::ff')] })],
      ['policy', (i) => child(i, 0x10000 + i, 0x20000 + i, { mode: 'policy', remoteTs: [ts4(`10.${i}.0.0`, `10.${i}.0.255`)] })],
      ['mixed families', (i) => ({ ...child(i, 0x10000 + i, 0x20000 + i), outbound: child(i, 0x10000 + i, 0x20000 + i, { remote: '2001:db8::2', local: '2001:db8::1' }).outbound })],
      ['SPI below 256', (i) => child(i, 100, 0x20000 + i)],
      ['wrong key length', (i) => ({ ...child(i, 0x10000 + i, 0x20000 + i), inbound: { ...child(i, 0x10000 + i, 0).inbound, encKey: Buffer.alloc(32) } })],
      ['swapped', (i) => ({ ...child(i, 0x10000 + i, 0x20000 + i), inbound: child(i, 0, 0x10000 + i).outbound })],
      ['bad traffic selector', (i) => child(i, 0x10000 + i, 0x20000 + i, { remoteTs: [ts4('10.1.0.9', '10.1.0.1')] })],
      ['replaces unknown', (i) => child(i, 0x10000 + i, 0x20000 + i, { replaces: 99999 })],
    ];
    for (const [name, make] of cases) {
      const i = id++;
      const onVpp = await dp.install(make(i)).then(
        () => 'ok',
        (e: Error) => `rejected: ${e.message}`,
      );
      const onMem = await mem.install(make(i)).then(
        () => 'ok',
        (e: Error) => `rejected: ${e.message}`,
      );
      assert.equal(onMem, onVpp, name);
    }
    // Without a policy interface both refuse a policy CHILD_SA that names none.
    const c = child(500, 0x500, 0x501, { mode: 'policy' });
    const a = await dpNoPolicy.dp.install(c).then(
      () => 'ok',
      (e: Error) => e.message,
    );
    const b = await memNoPolicy.install(c).then(
      () => 'ok',
      (e: Error) => e.message,
    );
    assert.equal(b, a);
    assert.match(a, /policy mode needs vpp_interface/);
    // An inbound SPI owned by the replaced CHILD_SA is allowed, any other owner is not.
    await dp.install(child(600, 0x600, 0x601));
    await mem.install(child(600, 0x600, 0x601));
    for (const d of [dp, mem] as const) {
      await assert.rejects(d.install(child(601, 0x600, 0x602)), /used by child 600/);
      await d.install(child(602, 0x600, 0x603, { replaces: 600 }));
      await d.remove(600);
    }
    // Endpoints of different families are refused by update() on both.
    for (const d of [dp, mem] as const) {
      await assert.rejects(d.update(602, { addr: '192.0.2.1', port: 500 }, { addr: '2001:db8::1', port: 500 }, false), /different address families/);
    }
  } finally {
    await done();
    await dpNoPolicy.done();
  }
});

contract('after a VPP restart the replay waits for the interfaces its CHILD_SAs need (VPP answers before its startup-config ran)', async (_t, vpp) => {
  const timers = new ManualTimers();
  const { dp, done } = await vpp.dataplane({ unnumbered: 'loop0', dp: { timers, interfaceWaitStepMs: 250, interfaceWaitMs: 60_000 } });
  try {
    const replayed: number[] = [];
    const failed: number[] = [];
    dp.setListener({ replayed: (ids) => replayed.push(...ids), failed: (id) => failed.push(id) });
    const order: string[] = [];
    dp.setBeforeResync(async () => {
      const sas = await dp.client.dump('ipsec_sa_v5_dump', { sa_id: 0xffffffff });
      order.push(`before resync: ${sas.length} SAs in VPP`);
    });
    const a = await dp.install(child(1, 0x1001, 0x2001));
    const gone = once(dp.client, 'disconnected');
    await vpp.restart({ loopbacks: false }); // loop0 comes later
    await gone;
    if (!dp.client.connected) await once(dp.client, 'connected');
    // The replay is waiting for loop0 (a look-up every 250 ms on the back end's clock).
    for (let i = 0; i < 5; i++) {
      await timers.armed();
      timers.advance(250);
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(order, ['before resync: 0 SAs in VPP'], 'the hook ran first, before anything was programmed');
    assert.equal((await vpp.view()).sas.size, 0, 'nothing programmed while loop0 is missing');
    assert.deepEqual(failed, [], 'and nothing given up');
    await vpp.addLoopback0();
    await resynced(dp, timers);
    assert.deepEqual(failed, []);
    assert.deepEqual(replayed, [1]);
    const s = await vpp.view();
    assert.ok(s.sas.has(a.saIn!) && s.sas.has(a.saOut!), 'both SAs back with their ids');
    const itf = ipsecItfs(s)[0]!;
    assert.equal((await vpp.interfaceConfig(itf.name)).unnumberedTo, 'loop0', 'the ipsec interface borrows the new loop0');
  } finally {
    await done();
  }
});

contract('after a VPP restart an interface that never comes back: the replay gives up after interface_wait and reports the CHILD_SA', async (_t, vpp) => {
  const timers = new ManualTimers();
  const { dp, done } = await vpp.dataplane({ unnumbered: 'loop0', dp: { timers, interfaceWaitStepMs: 250, interfaceWaitMs: 1000 } });
  try {
    const failed: string[] = [];
    dp.setListener({ failed: (id, why) => failed.push(`${id}: ${why}`) });
    await dp.install(child(1, 0x1001, 0x2001));
    const gone = once(dp.client, 'disconnected');
    await vpp.restart({ loopbacks: false });
    await gone;
    await resynced(dp, timers);
    assert.equal(failed.length, 1);
    assert.match(failed[0]!, /^1: could not program again after VPP restart: VPP has no interface named loop0/);
  } finally {
    await done();
  }
});

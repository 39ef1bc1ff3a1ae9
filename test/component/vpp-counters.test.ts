/**
 * SA counters through the VPP back end, as a contract (emulator and real VPP 26.10): traffic VPP
 * encrypts on a CHILD_SA's outbound SA makes counters() go up, read from VPP's stats segment (the
 * real VPP's memfd through /proc/<vpe_pid>/fd; the emulator's segment file); a new CHILD_SA starts
 * from zero; removed CHILD_SAs are left out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { child, resynced, sockPath, ts4 } from '../helpers/vpp-dataplane.ts';
import { startEmulator } from '../../src/vpp/emulator/server.ts';
import { VppDataplane } from '../../src/dataplane/vpp/index.ts';
import { CountersUnavailableError } from '../../src/dataplane/types.ts';
import { contract } from '../helpers/vpp-target.ts';
import { VPP_LAB_ADDR } from '../helpers/real-vpp.ts';
import { StatsSegment, fileSource, findStatsSegment, IPSEC_SA_COUNTERS } from '../../src/vpp/stats-segment.ts';

const PEER = VPP_LAB_ADDR.peer.v4; // on the uplink's subnet: the ESP packets have somewhere to go
const US = VPP_LAB_ADDR.vpp.v4;

contract('counters: pings VPP sends through a p2p CHILD_SA are counted on its outbound SA, read from the stats segment', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ unnumbered: 'loop0' });
  try {
    const a = child(1, await dp.allocateSpi(), 0xc0de0001, { local: US, remote: PEER, remoteTs: [ts4('10.9.1.0', '10.9.1.255')] });
    const b = child(2, await dp.allocateSpi(), 0xc0de0002, { local: US, remote: PEER, remoteTs: [ts4('10.9.2.0', '10.9.2.255')] });
    await dp.install(a);
    await dp.install(b);
    const zero = await dp.counters([1, 2, 99]);
    assert.deepEqual([...zero.keys()].sort(), [1, 2], 'unknown ids are left out');
    assert.deepEqual(zero.get(1), { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 });

    await vpp.ping('10.9.1.7', 5);
    const one = await dp.counters([1, 2]);
    assert.equal(one.get(1)!.packetsOut, 5, JSON.stringify([...one]));
    // VPP's ping: 96 bytes of IP per packet; esp-encrypt counts its ESP payload: the packet, the
    // trailer padded to 4 bytes (98 → 100) and the 16-byte GCM tag
    assert.equal(one.get(1)!.bytesOut, 5 * 116);
    assert.equal(one.get(1)!.packetsIn, 0);
    assert.deepEqual(one.get(2), { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 }, 'the other CHILD_SA saw nothing');

    await vpp.ping('10.9.2.1', 3);
    await vpp.ping('10.9.1.8', 2);
    const two = await dp.counters([2, 1]);
    assert.equal(two.get(1)!.packetsOut, 7);
    assert.equal(two.get(2)!.packetsOut, 3);

    // a rekey's new CHILD_SA starts from zero and carries the traffic from then on
    const c = child(3, await dp.allocateSpi(), 0xc0de0003, { local: US, remote: PEER, remoteTs: [ts4('10.9.1.0', '10.9.1.255')], replaces: 1 });
    await dp.install(c);
    await vpp.ping('10.9.1.9', 4);
    const three = await dp.counters([1, 3]);
    assert.equal(three.get(3)!.packetsOut, 4);
    assert.equal(three.get(1)!.packetsOut, 7, 'the replaced CHILD_SA keeps its count');
    await dp.remove(1);
    assert.deepEqual([...(await dp.counters([1, 3])).keys()], [3], 'a removed CHILD_SA is left out');
    const stats = dp.stats();
    assert.ok(stats.counter_reads! >= 4);
  } finally {
    await done();
  }
});

contract('counters: the stats segment is found through the pid VPP reports', async (t, vpp) => {
  const raw = await vpp.raw();
  const ping = await raw.request('control_ping', {});
  if (vpp.emu) {
    // the emulator's segment is one of this process's fds, found as VPP's memfd is
    assert.equal(ping.vpe_pid, process.pid);
  } else {
    const found = findStatsSegment(ping.vpe_pid);
    assert.ok('path' in found, JSON.stringify(found));
    const seg = new StatsSegment(fileSource(found.path));
    t.after(() => seg.close());
    assert.ok(seg.size >= 32 << 20, 'the lab configures a 32 MB segment');
    // a counter vector exists from start-up; out-of-range indexes read 0
    const v = seg.readCombined(IPSEC_SA_COUNTERS, [0, 1_000_000]);
    assert.deepEqual([...v.packets], [0, 0]);
  }
});

test('counters: a stats segment that cannot be found or opened is CountersUnavailableError, with the reason [emulator only: its pid and path are chosen]', async (t) => {
  const socket = sockPath();
  // an emulator that reports another process's pid (one without a stats segment): as a VPP in another PID namespace
  const emu = await startEmulator({ socket, pid: process.ppid });
  t.after(() => emu.close());
  const lost = new VppDataplane({ socket, clientOptions: { healthCheckMs: 0 } });
  t.after(() => lost.close());
  await lost.start();
  await assert.rejects(lost.counters([1]), (e: unknown) => e instanceof CountersUnavailableError && /has no stats segment memfd|cannot list/.test(e.message));
  // the failure is remembered for a while: no new look per call
  await assert.rejects(lost.counters([1]), CountersUnavailableError);
  const missing = new VppDataplane({ socket, clientOptions: { healthCheckMs: 0 }, statsSegment: '/nonexistent/stat segment' });
  t.after(() => missing.close());
  await missing.start();
  await assert.rejects(missing.counters([1]), (e: unknown) => e instanceof CountersUnavailableError && /cannot open VPP's stats segment \/nonexistent\/stat segment: ENOENT/.test(e.message));
});

contract('counters: after the API connection breaks and after VPP restarts, the CHILD_SAs VPP kept or got back are read at their stat indexes', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ unnumbered: 'loop0' });
  try {
    await dp.install(child(1, await dp.allocateSpi(), 0xc0de0001, { local: US, remote: PEER, remoteTs: [ts4('10.9.1.0', '10.9.1.255')] }));
    await vpp.ping('10.9.1.7', 3);
    assert.equal((await dp.counters([1])).get(1)!.packetsOut, 3);
    // the API connection breaks, VPP keeps the SAs: the same counters, through the resync's dump
    let gone = once(dp.client, 'disconnected');
    await vpp.dropConnections();
    await gone;
    await resynced(dp);
    assert.equal((await dp.counters([1])).get(1)!.packetsOut, 3);
    await vpp.ping('10.9.1.7', 1);
    assert.equal((await dp.counters([1])).get(1)!.packetsOut, 4);
    // VPP restarts empty: the CHILD_SA is programmed again, its new SAs count from zero in the new segment
    gone = once(dp.client, 'disconnected');
    await vpp.restart();
    await gone;
    await resynced(dp);
    assert.deepEqual((await dp.counters([1])).get(1), { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 });
    await vpp.ping('10.9.1.7', 2);
    assert.equal((await dp.counters([1])).get(1)!.packetsOut, 2);
  } finally {
    await done();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDataplane } from '../../src/dataplane/memory.ts';
import { saParams as sa } from '../helpers/builders.ts';
import { childInstall as child } from '../helpers/child-install.ts';

test('allocateSpi never returns 0..255 and never repeats a live SPI', async () => {
  const dp = new MemoryDataplane();
  const seen = new Set<number>();
  for (let i = 0; i < 5000; i++) {
    const spi = await dp.allocateSpi();
    assert.ok(spi >= 256 && spi <= 0xffffffff);
    assert.ok(!seen.has(spi));
    seen.add(spi);
  }
  assert.equal(dp.pendingSpis, 5000);
  const first = seen.values().next().value as number;
  dp.releaseSpi(first);
  assert.equal(dp.spiInUse(first), false);
});

test('install, update, remove are recorded; dump has no keys', async () => {
  const dp = new MemoryDataplane();
  const spi = await dp.allocateSpi();
  const r = await dp.install(child(1, spi, 0x1234));
  assert.equal(r.interface, 'ipsec0');
  assert.equal(dp.installed.get(1)?.inbound.spi, spi);
  assert.equal(dp.pendingSpis, 0);
  await dp.update(1, { addr: '192.0.2.9', port: 4500 }, { addr: '203.0.113.5', port: 3333 }, true);
  const c = dp.installed.get(1)!;
  assert.deepEqual(c.outbound.dst, { addr: '203.0.113.5', port: 3333 });
  assert.deepEqual(c.inbound.dst, { addr: '192.0.2.9', port: 4500 });
  assert.equal(c.inbound.udpEncap, true);
  const text = JSON.stringify(await dp.dump());
  assert.ok(text.includes(spi.toString(16).padStart(8, '0')));
  assert.ok(!text.includes('0707070707'), 'no key material in dump');
  await dp.remove(1);
  await dp.remove(99); // unknown: ignored
  assert.equal(dp.installed.size, 0);
  assert.deepEqual(
    dp.events.map((e) => e.op),
    ['allocate', 'install', 'update', 'remove'],
  );
});

test('failNextInstall fails exactly one install and installs nothing', async () => {
  const dp = new MemoryDataplane();
  dp.failNextInstall('VPP said no');
  await assert.rejects(dp.install(child(1, 0x1000, 0x2000)), /VPP said no/);
  assert.equal(dp.installed.size, 0);
  await dp.install(child(1, 0x1000, 0x2000));
  assert.equal(dp.installed.size, 1);
});

test('rejects what VPP cannot run: GCM with a 12-byte ICV, wrong key length, duplicate inbound SPI', async () => {
  const dp = new MemoryDataplane();
  const c = child(1, 0x1000, 0x2000);
  c.outbound.alg = { ...c.outbound.alg, encrId: 19 };
  await assert.rejects(dp.install(c), /not supported/);
  await assert.rejects(dp.install(child(2, 0x1000, 0x2000, { inbound: sa(0x1000, true, { keyLen: 32 }) })), /needs 36/);
  await dp.install(child(3, 0x1000, 0x2000));
  await assert.rejects(dp.install(child(4, 0x1000, 0x2001)), /used by child 3/);
  assert.ok(!dp.features().encr.has('19:256'));
  assert.ok(dp.features().encr.has('20:256'));
});

test('replaces: make-before-break, the old child stays until removed, same p2p interface', async () => {
  const dp = new MemoryDataplane();
  const r1 = await dp.install(child(1, 0x1000, 0x2000));
  const r2 = await dp.install(child(2, 0x1001, 0x2001, { replaces: 1 }));
  assert.equal(r2.interface, r1.interface);
  assert.deepEqual([...dp.installed.keys()], [1, 2]);
  await dp.remove(1);
  assert.deepEqual([...dp.installed.keys()], [2]);
});

test('outboundOf: a rekey we started sends at once, one we answered waits for the old CHILD_SA; removals fall back (a rekey collision)', async () => {
  const dp = new MemoryDataplane();
  await dp.install(child(1, 0x1000, 0x2000));
  const [tunnel] = dp.tunnels();
  assert.equal(dp.outboundOf(tunnel!)?.childId, 1);
  // The peer's rekey, answered: it waits while child 1 is installed.
  await dp.install(child(2, 0x1001, 0x2001, { replaces: 1, outboundAfterReplaced: true }));
  assert.equal(dp.outboundOf(tunnel!)?.childId, 1);
  // Our own rekey of child 1 completes too: sent on at once.
  await dp.install(child(3, 0x1002, 0x2002, { replaces: 1 }));
  assert.deepEqual(dp.tunnels(), [tunnel]);
  assert.equal(dp.tunnelOf(3), tunnel);
  assert.equal(dp.outboundOf(tunnel!)?.childId, 3);
  // Ours was redundant and goes: back to the old SA while it is installed, then the peer's.
  await dp.remove(3);
  assert.equal(dp.outboundOf(tunnel!)?.childId, 1);
  await dp.remove(1);
  assert.equal(dp.outboundOf(tunnel!)?.childId, 2);
  await dp.remove(2);
  assert.deepEqual(dp.tunnels(), []);
  assert.equal(dp.outboundOf(tunnel!), undefined);
});

test('simulateRestart reports installed children to the listener', async () => {
  const dp = new MemoryDataplane();
  await dp.install(child(5, 0x1000, 0x2000));
  await dp.install(child(6, 0x1001, 0x2001));
  let got: number[] = [];
  dp.setListener({ replayed: (ids) => (got = ids) });
  dp.simulateRestart();
  assert.deepEqual(got.sort(), [5, 6]);
});

test('same checks as the VPP back end: p2mp/policy interfaces, address families, SPI of the replaced child', async () => {
  const dp = new MemoryDataplane();
  await assert.rejects(dp.install(child(1, 0x1000, 0x2000, { vppMode: 'p2mp' })), /p2mp needs vpp_interface/);
  await assert.rejects(dp.install(child(1, 0x1000, 0x2000, { vppMode: 'p2mp', vppInterface: 'host-eth0' })), /ipsecN/);
  await assert.rejects(dp.install(child(1, 0x1000, 0x2000, { vppMode: 'policy' })), /policy mode needs vpp_interface/);
  const v6 = { ...sa(0x2000, false), src: { addr: '2001:db8::1', port: 500 }, dst: { addr: '2001:db8::2', port: 500 } };
  await assert.rejects(dp.install(child(1, 0x1000, 0x2000, { outbound: v6 })), /different address families/);
  const r = await dp.install(child(1, 0x1000, 0x2000, { vppMode: 'p2mp', vppInterface: 'ipsec5' }));
  assert.equal(r.interface, 'ipsec5');
  // Make-before-break may keep the inbound SPI of the CHILD_SA it replaces.
  await dp.install(child(2, 0x1000, 0x2001, { vppMode: 'p2mp', vppInterface: 'ipsec5', replaces: 1 }));
  await dp.remove(1);
  assert.equal(dp.spiInUse(0x1000), true, 'still owned by child 2');
  await assert.rejects(dp.update(2, { addr: '192.0.2.1', port: 500 }, { addr: '2001:db8::9', port: 500 }, false), /different address families/);
  // With a policy interface configured (as vpp.policy_interface), policy mode works without vpp_interface.
  const withPolicy = new MemoryDataplane({ policyInterface: 'host-eth0' });
  await withPolicy.install(child(1, 0x1000, 0x2000, { vppMode: 'policy' }));
});

test('the event log keeps the latest maxEvents events, oldest dropped', async () => {
  const dp = new MemoryDataplane({ maxEvents: 10 });
  for (let i = 0; i < 100; i++) await dp.allocateSpi();
  assert.ok(dp.events.length >= 10 && dp.events.length <= 12, `${dp.events.length} events kept`);
  assert.equal(dp.events.at(-1)!.seq, 100, 'the newest is kept');
  assert.deepEqual(
    dp.events.map((e) => e.seq),
    Array.from({ length: dp.events.length }, (_, k) => 101 - dp.events.length + k),
    'a contiguous run of the latest',
  );
});

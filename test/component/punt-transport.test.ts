/**
 * The punt transport against the VPP emulator, with a unix datagram socket standing in for VPP's
 * punt socket: registration (and its retry when VPP refuses), frames from VPP handed to the engine
 * and answered through VPP with the request's interface, frames from anyone else ignored. A "VPP"
 * that stops reading its punt socket (a paused child process) while we send a burst: the burst
 * waits and arrives whole and in order once it reads again, and we receive all the while; with a
 * short queue and wait, what is dropped is counted and logged once. A low net.unix.max_dgram_qlen
 * is one warning at start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startEmulator } from '../../src/vpp/emulator/server.ts';
import { VppClient } from '../../src/vpp/client.ts';
import { PuntTransport, type PuntTransportOptions } from '../../src/net/punt-transport.ts';
import { UnixDgramSocket, unixDgramUnavailable } from '../../src/net/unix-dgram.ts';
import { buildPuntFrame, PuntAction } from '../../src/net/punt.ts';
import type { Endpoint } from '../../src/ikev2/engine/engine.ts';
import { failWith } from '../helpers/vpp-dataplane.ts';
import { waitFor } from '../helpers/wait.ts';
import { startPausableReceiver } from '../helpers/pausable-receiver.ts';

const VPP_ADDR = '192.0.2.2';
const PEER = '192.0.2.1';

/** What VPP writes to our punt socket: descriptor (sw_if_index, action 0, little-endian), Ethernet, IP, UDP. */
function puntedFrame(swIfIndex: number, ike: Buffer): Buffer {
  const ip = buildPuntFrame({ swIfIndex: 0, src: PEER, dst: VPP_ADDR, srcPort: 500, dstPort: 500, payload: ike });
  assert.ok(ip.ok);
  const desc = Buffer.alloc(8);
  desc.writeUInt32LE(swIfIndex, 0);
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([desc, eth, ip.frame.subarray(8)]);
}

/** An IKE header-sized message (an IKE_AUTH request: not a new IKE_SA_INIT). */
function ikeMessage(tag: number): Buffer {
  const b = Buffer.alloc(64, tag);
  b[18] = 35;
  b[19] = 0x08;
  return b;
}

async function lab(t: import('node:test').TestContext, extra: Partial<PuntTransportOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'viked-punt-'));
  const vppPunt = join(dir, 'vpp-punt.sock');
  const emu = await startEmulator({ socket: join(dir, 'api.sock'), interfaces: ['host-eth0'], puntSocket: vppPunt });
  const vpp = new UnixDgramSocket();
  vpp.bind(vppPunt);
  const toVpp: Buffer[] = [];
  vpp.on('message', (d) => toVpp.push(d));
  const client = new VppClient({ socket: join(dir, 'api.sock'), healthCheckMs: 0, reconnect: false });
  await client.connect();
  const got: { local: Endpoint; remote: Endpoint; ike: Buffer }[] = [];
  const punt = new PuntTransport({
    client,
    socketPath: join(dir, 'iked-punt.sock'),
    listen: [VPP_ADDR],
    port: 500,
    portNatT: 4500,
    log: pino({ level: 'silent' }),
    onPacket: (local, remote, ike) => got.push({ local, remote, ike }),
    ...extra,
  });
  t.after(async () => {
    await punt.close();
    vpp.close();
    await client.close();
    await emu.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { emu, vpp, toVpp, punt, got, dir };
}

test('punt transport: registers with VPP, takes IKE only from VPP, answers through VPP with the interface of the request', async (t) => {
  const missing = unixDgramUnavailable();
  if (missing) return t.skip(missing);
  const l = await lab(t);
  await l.punt.start();
  assert.equal(l.punt.stats.registrations, 1);
  assert.equal(l.emu.state.puntRegs.size, 2, 'UDP/500 and the IPv4 exception reason');
  // From VPP: delivered (after the inbox's slice).
  await l.vpp.send(puntedFrame(7, ikeMessage(1)), join(l.dir, 'iked-punt.sock'));
  await waitFor('the IKE message to reach the engine', async () => l.got.length === 1 || undefined, 2000, 10);
  assert.deepEqual([l.got[0]!.local, l.got[0]!.remote], [{ addr: VPP_ADDR, port: 500 }, { addr: PEER, port: 500 }]);
  // The answer goes to VPP's punt socket, routed, in the FIB of the interface the request came in on.
  l.punt.send({ local: { addr: VPP_ADDR, port: 500 }, remote: { addr: PEER, port: 500 }, data: ikeMessage(2) });
  await waitFor('the answer to reach VPP', async () => l.toVpp.length === 1 || undefined, 2000, 10);
  const out = l.toVpp[0]!;
  assert.equal(out.readUInt32LE(0), 7, 'sw_if_index of the request');
  assert.equal(out.readUInt32LE(4), PuntAction.IP4_ROUTED);
  // Not from VPP (another socket, same contents, an index VPP does not have): ignored, counted.
  const other = new UnixDgramSocket();
  other.bind(join(l.dir, 'intruder.sock'));
  try {
    await other.send(puntedFrame(0xdeadbeef, ikeMessage(3)), join(l.dir, 'iked-punt.sock'));
    await waitFor('the intruder frame to be counted', async () => l.punt.stats.notFromVpp === 1 || undefined, 2000, 10);
  } finally {
    other.close();
  }
  assert.equal(l.got.length, 1, 'nothing more reached the engine');
  l.punt.send({ local: { addr: VPP_ADDR, port: 500 }, remote: { addr: PEER, port: 500 }, data: ikeMessage(4) });
  await waitFor('the second answer to reach VPP', async () => l.toVpp.length === 2 || undefined, 2000, 10);
  assert.equal(l.toVpp[1]!.readUInt32LE(0), 7, 'still the interface VPP reported, not the intruder\'s');
});

test('punt transport: a registration VPP refuses is retried until VPP accepts it', async (t) => {
  const missing = unixDgramUnavailable();
  if (missing) return t.skip(missing);
  const l = await lab(t);
  // start() itself fails loudly (exit 1 at daemon start) ...
  failWith(l.emu, 'punt_socket_register', -1, 1);
  await assert.rejects(l.punt.start(), /VPP refused the punt registration for UDP\/500 \(IPv4\)/);
  // ... while after a VPP restart the daemon keeps trying: one refusal, then success a second later.
  failWith(l.emu, 'punt_socket_register', -1, 1);
  await l.punt.registerOrRetry();
  assert.equal(l.punt.stats.registrations, 0);
  await waitFor('the retried registration', async () => l.punt.stats.registrations === 1 || undefined, 5000, 50);
  assert.equal(l.emu.state.puntRegs.size, 2);
});

/** An IKE-sized message (IKE_AUTH) of `size` bytes whose last 4 bytes are `n`. */
function numbered(n: number, size = 1200): Buffer {
  const b = ikeMessage(1);
  const m = Buffer.concat([b, Buffer.alloc(size - b.length, 0x55)]);
  m.writeUInt32BE(n, size - 4);
  return m;
}

const OUT = { local: { addr: VPP_ADDR, port: 500 }, remote: { addr: PEER, port: 500 } };

test("punt transport: a VPP that does not read its punt socket for a while stalls neither our receiving nor our burst", async (t) => {
  const missing = unixDgramUnavailable();
  if (missing) return t.skip(missing);
  const l = await lab(t);
  await l.punt.start();
  const ours = join(l.dir, 'iked-punt.sock');
  await l.vpp.send(puntedFrame(7, ikeMessage(1)), ours);
  await waitFor('the first IKE message', async () => l.got.length === 1 || undefined, 2000, 10);
  // VPP's reading end is now a process we can pause; l.vpp still sends from VPP's path.
  const reader = await startPausableReceiver(join(l.dir, 'vpp-punt.sock'));
  t.after(() => reader.close());
  reader.pause();
  const BURST = 60; // three fragmented messages' worth
  for (let i = 0; i < BURST; i++) l.punt.send({ ...OUT, data: numbered(i) });
  await waitFor('our burst to find VPP full', async () => l.punt.stats.sendBlocked > 0 || undefined, 2000, 10);
  // VPP hands us IKE meanwhile: it is received.
  for (let i = 2; i <= 4; i++) await l.vpp.send(puntedFrame(7, ikeMessage(i)), ours);
  await waitFor('IKE from VPP while our sends wait', async () => l.got.length === 4 || undefined, 2000, 10);
  assert.deepEqual(l.got.slice(1).map((g) => g.ike[0]), [2, 3, 4]);
  reader.resume();
  await reader.until(BURST);
  assert.deepEqual(reader.got.map((g) => g.end), Array.from({ length: BURST }, (_, i) => i), 'the whole burst, in order');
  assert.ok(reader.got.every((g) => g.tag === 7 << 24), 'each frame routed with the interface of the request (descriptor little-endian)');
  assert.equal(await l.punt.flush(1000), true, 'nothing left waiting');
  assert.deepEqual([l.punt.stats.sendQueueFull, l.punt.stats.sendTimeouts, l.punt.stats.sendErrors], [0, 0, 0]);
  await l.vpp.send(puntedFrame(7, ikeMessage(5)), ours);
  await waitFor('IKE from VPP afterwards', async () => l.got.length === 5 || undefined, 2000, 10);
  t.diagnostic(`${BURST} datagrams to a paused VPP: ${l.punt.stats.sendBlocked} waited for room, none lost`);
});

test('punt transport: datagrams VPP never takes are dropped after a bound, counted, and logged once; a low max_dgram_qlen is a warning at start', async (t) => {
  const missing = unixDgramUnavailable();
  if (missing) return t.skip(missing);
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const dir = mkdtempSync(join(tmpdir(), 'viked-qlen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'qlen'), '10\n');
  const l = await lab(t, { log, sendQueueLimit: 5, sendWaitMs: 300, unixDgramQlenFile: join(dir, 'qlen') });
  await l.punt.start();
  const warnings = lines.filter((x) => x.level === 40 && /max_dgram_qlen/.test(x.msg));
  assert.equal(warnings.length, 1, 'one warning about the queue length');
  assert.match(warnings[0]!.msg, /net\.unix\.max_dgram_qlen is 10.*sysctl -w net\.unix\.max_dgram_qlen=256/);
  await l.vpp.send(puntedFrame(7, ikeMessage(1)), join(l.dir, 'iked-punt.sock'));
  await waitFor('the first IKE message', async () => l.got.length === 1 || undefined, 2000, 10);
  const reader = await startPausableReceiver(join(l.dir, 'vpp-punt.sock'));
  t.after(() => reader.close());
  reader.pause();
  const n = 40;
  for (let i = 0; i < n; i++) l.punt.send({ ...OUT, data: numbered(i) });
  assert.equal(await l.punt.flush(2000), true, 'every send settled');
  const s = l.punt.stats;
  assert.ok(s.sendQueueFull > 0 && s.sendTimeouts === 5, `refused beyond the queue (${s.sendQueueFull}) and given up after the wait (${s.sendTimeouts})`);
  assert.equal(s.sendErrors, 0, 'drops are not send errors');
  const drops = lines.filter((x) => /dropped: VPP's punt socket queue stayed full/.test(x.msg));
  assert.equal(drops.length, 1, 'one log line for the lot');
  reader.resume();
  await reader.until(n - s.sendQueueFull - s.sendTimeouts);
  // The same daemon with a raised limit: no warning.
  writeFileSync(join(dir, 'qlen'), '256\n');
  const before = lines.length;
  const l2 = await lab(t, { log, unixDgramQlenFile: join(dir, 'qlen') });
  await l2.punt.start();
  assert.equal(lines.slice(before).filter((x) => /max_dgram_qlen/.test(x.msg)).length, 0);
});

/**
 * The UDP transport (src/net/udp.ts) on 127.0.0.1 and ::1 with high ports, so no root is needed:
 * IKE in and out on the IKE port and on the NAT-T port with the non-ESP marker added and stripped
 * (RFC 3948 §2.2: neither side uses port 500), NAT-T keepalives and ESP counted and not delivered,
 * truncated datagrams counted as invalid, send errors counted, and close() releasing the ports.
 * Bursts: the queue in front of the engine (messages of SAs under way first, retransmitted
 * IKE_SA_INITs dropped while the first copy waits, shedding at the limit, dropped on close), and
 * the receive buffer size (set, read back, the warning when net.core.rmem_max caps it).
 * Plain IKE (no marker) needs a peer on port 500: that part runs only as root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { UdpTransport, type UdpTransportOptions } from '../../src/net/udp.ts';
import { markerOn } from '../../src/net/inbox.ts';
import { waitFor } from '../helpers/wait.ts';

const V4 = '127.0.0.1';
const V6 = '::1';
const MARKER = Buffer.alloc(4);
const IKE_HEADER_LEN = 28;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

type Endpoint = Parameters<UdpTransportOptions['onPacket']>[0];
type LogLine = Record<string, unknown>;

interface Received {
  local: Endpoint;
  remote: Endpoint;
  ike: Buffer;
}

/** An IKE message as far as the transport cares: `len` bytes (a header is 28), SPIi non-zero, byte 4 = `tag`. */
function ike(tag: number, len = 64): Buffer {
  const b = Buffer.alloc(len, tag);
  b.writeUInt32BE(0x11223344, 0);
  return b;
}

/** A debug-level logger whose lines are kept, parsed. */
function logCapture(): { log: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines };
}

/** Ports free on 127.0.0.1 right now (the kernel picks them; startTransport() retries if ::1 has one taken). */
async function freePorts(n: number): Promise<number[]> {
  const socks: dgram.Socket[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = dgram.createSocket('udp4');
    socks.push(s);
    await new Promise<void>((r) => s.bind({ address: V4, port: 0, exclusive: true }, () => r()));
    ports.push(s.address().port);
  }
  await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

interface Fixture {
  t: UdpTransport;
  port: number;
  natT: number;
  received: Received[];
  lines: LogLine[];
  /** What onPacket does besides recording (e.g. throw). */
  onPacket?: (r: Received) => void;
}

/** A transport listening on both loopback addresses; retried on other ports if one was taken meanwhile. */
async function startTransport(): Promise<Fixture> {
  for (let attempt = 0; ; attempt++) {
    const [port, natT] = await freePorts(2);
    const { log, lines } = logCapture();
    const state: Pick<Fixture, 'received' | 'onPacket'> = { received: [] };
    const t = new UdpTransport({
      listen: [V4, V6],
      port: port!,
      portNatT: natT!,
      log,
      onPacket: (local, remote, data) => {
        const r = { local, remote, ike: Buffer.from(data) };
        state.received.push(r);
        state.onPacket?.(r);
      },
    });
    const f: Fixture = Object.assign(state, { t, port: port!, natT: natT!, lines });
    try {
      await f.t.start();
      return f;
    } catch (e) {
      await f.t.close();
      if (attempt >= 4 || !/EADDRINUSE/.test((e as Error).message)) throw e;
    }
  }
}

interface Peer {
  port: number;
  /** Datagrams received, in order. */
  got: { data: Buffer; from: dgram.RemoteInfo }[];
  /** Sends to port `to` of `dest`. */
  send(data: Buffer, to: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A peer socket on `addr` (a high port unless `port` is given), recording what it receives; it
 * sends to `dest`, by default its own address.
 */
async function peer(addr: string, port = 0, dest = addr): Promise<Peer> {
  const sock = addr.includes(':') ? dgram.createSocket({ type: 'udp6', ipv6Only: true }) : dgram.createSocket('udp4');
  const got: { data: Buffer; from: dgram.RemoteInfo }[] = [];
  sock.on('message', (data, from) => got.push({ data, from }));
  await new Promise<void>((resolve, reject) => {
    sock.once('error', (e) => {
      try {
        sock.close();
      } catch {
        // not open
      }
      reject(e);
    });
    sock.bind({ address: addr, port, exclusive: true }, () => resolve());
  });
  return {
    port: sock.address().port,
    got,
    send: (data, to) => new Promise<void>((resolve, reject) => sock.send(data, to, dest, (e) => (e ? reject(e) : resolve()))),
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}

/** Sends `data`, then a tagged IKE message as a fence, and waits until the fence is delivered. */
async function sendThenFence(f: Fixture, p: Peer, data: Buffer, to: number, fenceTag: number): Promise<void> {
  const before = f.received.length;
  await p.send(data, to);
  await p.send(Buffer.concat([MARKER, ike(fenceTag)]), to);
  await waitFor(`fence ${fenceTag} delivered`, () => f.received.slice(before).some((r) => r.ike[4] === fenceTag), 2000, 5);
}

test('the marker goes on every port pair without port 500', () => {
  assert.equal(markerOn(500, 500), false);
  assert.equal(markerOn(500, 4500), false);
  assert.equal(markerOn(4500, 500), false);
  assert.equal(markerOn(4500, 4500), true);
  assert.equal(markerOn(4500, 61000), true);
  assert.equal(markerOn(40000, 40001), true);
});

test('listen addresses: explicit ones normalized and deduplicated, wildcards expanded to the host addresses', () => {
  assert.deepEqual(UdpTransport.expand(['127.0.0.1', '0:0:0:0:0:0:0:1', '::1', '127.0.0.1']), ['127.0.0.1', '::1']);
  const v4 = UdpTransport.expand(['0.0.0.0']);
  assert.ok(v4.includes('127.0.0.1'), v4.join(' '));
  assert.ok(v4.every((a) => !a.includes(':')));
  const hostV4 = Object.values(os.networkInterfaces()).flatMap((l) => (l ?? []).filter((i) => i.family === 'IPv4').map((i) => i.address));
  assert.deepEqual(new Set(v4), new Set(hostV4));
  const v6 = UdpTransport.expand(['::']);
  assert.ok(v6.every((a) => a.includes(':') && !a.startsWith('fe80')), v6.join(' '));
});

describe('UdpTransport on 127.0.0.1 and ::1', () => {
  let f: Fixture;
  before(async () => {
    f = await startTransport();
  });
  after(async () => {
    await f?.t.close();
  });

  test('binds the IKE and the NAT-T port on each address; the ports are then taken', async () => {
    assert.deepEqual(f.t.addresses, [V4, V6]);
    for (const addr of [V4, V6]) {
      for (const port of [f.port, f.natT]) {
        await assert.rejects(peer(addr, port), /EADDRINUSE/, `${addr} port ${port}`);
      }
    }
  });

  for (const addr of [V4, V6]) {
    test(`${addr}: IKE in on both ports, the non-ESP marker stripped`, async () => {
      const p = await peer(addr);
      try {
        for (const [port, tag] of [[f.port, 1], [f.natT, 2]] as const) {
          const before = f.received.length;
          const msg = ike(tag, 100);
          await p.send(Buffer.concat([MARKER, msg]), port);
          const r = await waitFor(`IKE on ${addr} port ${port}`, () => f.received[before], 2000, 5);
          assert.deepEqual(r.ike, msg, 'delivered without the marker');
          assert.deepEqual(r.local, { addr, port });
          assert.deepEqual(r.remote, { addr, port: p.port });
        }
        // the smallest IKE message: a bare header after the marker
        const before = f.received.length;
        await p.send(Buffer.concat([MARKER, ike(3, IKE_HEADER_LEN)]), f.natT);
        const r = await waitFor('a bare header', () => f.received[before], 2000, 5);
        assert.equal(r.ike.length, IKE_HEADER_LEN);
      } finally {
        await p.close();
      }
    });

    test(`${addr}: IKE out from both ports with the non-ESP marker added`, async () => {
      const p = await peer(addr);
      try {
        for (const [port, tag] of [[f.port, 4], [f.natT, 5]] as const) {
          const before = p.got.length;
          const msg = ike(tag, 120);
          f.t.send({ local: { addr, port }, remote: { addr, port: p.port }, data: msg });
          assert.equal(await f.t.flush(2000), true);
          const g = await waitFor(`datagram from ${addr} port ${port}`, () => p.got[before], 2000, 5);
          assert.deepEqual(g.data, Buffer.concat([MARKER, msg]));
          assert.equal(g.from.port, port, 'sent from the port named as local');
          assert.equal(g.from.address, addr);
        }
        // a local address we do not listen on: sent from our address of the peer's family
        const before = p.got.length;
        f.t.send({ local: { addr: addr === V4 ? '0.0.0.0' : '::', port: f.natT }, remote: { addr, port: p.port }, data: ike(6) });
        const g = await waitFor('datagram from the fallback address', () => p.got[before], 2000, 5);
        assert.equal(g.from.address, addr);
        assert.equal(g.from.port, f.natT);
        assert.deepEqual(g.data.subarray(0, 4), MARKER);
      } finally {
        await p.close();
      }
    });

    test(`${addr}: NAT-T keepalives (0xff) are counted and not delivered`, async () => {
      const p = await peer(addr);
      try {
        const k0 = f.t.stats.keepalives;
        const before = f.received.length;
        await p.send(Buffer.from([0xff]), f.natT);
        await p.send(Buffer.from([0xff]), f.port);
        await sendThenFence(f, p, Buffer.from([0xff]), f.natT, 10);
        assert.equal(f.t.stats.keepalives, k0 + 3);
        assert.deepEqual(f.received.slice(before).map((r) => r.ike[4]), [10], 'only the fence arrived');
        // 0xff followed by anything is no keepalive
        const i0 = f.t.stats.invalid;
        await sendThenFence(f, p, Buffer.from([0xff, 0xff]), f.natT, 11);
        assert.equal(f.t.stats.keepalives, k0 + 3);
        assert.equal(f.t.stats.invalid, i0 + 1);
      } finally {
        await p.close();
      }
    });

    test(`${addr}: a NAT-T keepalive goes out as the one byte 0xff, without the marker`, async () => {
      const p = await peer(addr);
      try {
        const before = p.got.length;
        f.t.send({ local: { addr, port: f.natT }, remote: { addr, port: p.port }, data: Buffer.from([0xff]), keepalive: true });
        const g = await waitFor(`keepalive from ${addr}`, () => p.got[before], 2000, 5);
        assert.deepEqual(g.data, Buffer.from([0xff]));
        assert.equal(g.from.port, f.natT);
      } finally {
        await p.close();
      }
    });

    test(`${addr}: ESP (a non-zero SPI where the marker would be) is counted and dropped`, async () => {
      const p = await peer(addr);
      try {
        const e0 = f.t.stats.esp;
        const before = f.received.length;
        const esp = Buffer.alloc(80, 0xab);
        esp.writeUInt32BE(0x00000100, 0); // SPI 256
        await p.send(esp, f.natT);
        await p.send(Buffer.from([0, 0, 0, 1]), f.natT); // SPI 1, nothing else
        // IKE without the marker from a peer that is not on port 500 looks like ESP too
        await sendThenFence(f, p, ike(20), f.port, 12);
        assert.equal(f.t.stats.esp, e0 + 3);
        assert.deepEqual(f.received.slice(before).map((r) => r.ike[4]), [12]);
      } finally {
        await p.close();
      }
    });

    test(`${addr}: truncated datagrams are counted as invalid and not delivered`, async () => {
      const p = await peer(addr);
      try {
        const i0 = f.t.stats.invalid;
        const before = f.received.length;
        await p.send(Buffer.alloc(0), f.natT); // empty
        await p.send(Buffer.from([0, 0, 0]), f.natT); // shorter than the marker
        await p.send(MARKER, f.natT); // the marker alone
        await p.send(Buffer.concat([MARKER, ike(21, IKE_HEADER_LEN - 1)]), f.natT); // one byte short of a header
        await sendThenFence(f, p, Buffer.concat([MARKER, ike(22, 10)]), f.port, 13);
        assert.equal(f.t.stats.invalid, i0 + 5);
        assert.deepEqual(f.received.slice(before).map((r) => r.ike[4]), [13]);
        assert.equal(f.t.stats.oversized, 0);
      } finally {
        await p.close();
      }
    });
  }

  test('an exception in the packet handler is logged and the transport keeps receiving', async () => {
    const p = await peer(V4);
    try {
      f.onPacket = (r) => {
        if (r.ike[4] === 30) throw new Error('handler failed');
      };
      const before = f.received.length;
      await sendThenFence(f, p, Buffer.concat([MARKER, ike(30)]), f.natT, 31);
      assert.deepEqual(f.received.slice(before).map((r) => r.ike[4]), [30, 31]);
      const err = f.lines.find((l) => l.msg === 'error processing IKE message');
      assert.ok(err, 'logged');
      assert.match(String(err.err), /handler failed/);
      assert.equal(err.peer, V4);
    } finally {
      f.onPacket = undefined;
      await p.close();
    }
  });

  test('send errors are counted: no socket for the local port, oversized datagrams, the wrong family', async () => {
    const s0 = f.t.stats.sendErrors;
    const spare = (await freePorts(1))[0]!;
    f.t.send({ local: { addr: V4, port: spare }, remote: { addr: V4, port: 9 }, data: ike(40) });
    assert.equal(f.t.stats.sendErrors, s0 + 1, 'counted at once');
    assert.ok(f.lines.some((l) => l.msg === 'no socket to send from'));
    f.t.send({ local: { addr: V4, port: f.natT }, remote: { addr: V4, port: 9 }, data: Buffer.alloc(70_000) });
    f.t.send({ local: { addr: V6, port: f.port }, remote: { addr: V6, port: 9 }, data: Buffer.alloc(70_000) });
    f.t.send({ local: { addr: V4, port: f.port }, remote: { addr: V6, port: 9 }, data: ike(41) });
    assert.equal(await f.t.flush(2000), true, 'every send completed');
    assert.equal(f.t.stats.sendErrors, s0 + 4);
    // nothing pending: flush answers at once
    assert.equal(await f.t.flush(0), true);
  });

  test('our source address for a peer: the peer address itself, loopback for loopback, else the first of the family', () => {
    assert.equal(f.t.localAddressFor(V4), V4);
    assert.equal(f.t.localAddressFor('127.0.0.9'), V4);
    assert.equal(f.t.localAddressFor(V6), V6);
    assert.equal(f.t.localAddressFor('192.0.2.1'), V4, 'no other IPv4 address to use');
    assert.equal(f.t.localAddressFor('2001:db8::1'), V6);
  });
});

test('a port that is taken makes start() fail with the address and port', async () => {
  const [port, natT] = await freePorts(2);
  const p = await peer(V4, natT);
  const t = new UdpTransport({ listen: [V4], port: port!, portNatT: natT!, log: pino({ level: 'silent' }), onPacket: () => {} });
  try {
    await assert.rejects(t.start(), new RegExp(`cannot bind UDP 127\\.0\\.0\\.1:${natT}: .*EADDRINUSE`));
  } finally {
    await t.close();
    await p.close();
  }
  // close() after the failed start releases the port it had bound
  const again = await peer(V4, port);
  await again.close();
});

test('one port for IKE and NAT-T binds once', async () => {
  const [port] = await freePorts(1);
  const t = new UdpTransport({ listen: [V4], port: port!, portNatT: port!, log: pino({ level: 'silent' }), onPacket: () => {} });
  await t.start();
  assert.deepEqual(t.addresses, [V4]);
  await t.close();
});

test('close() releases every port, and a second close() is harmless', async () => {
  const f = await startTransport();
  await f.t.close();
  await f.t.close();
  for (const addr of [V4, V6]) {
    for (const port of [f.port, f.natT]) {
      const p = await peer(addr, port);
      await p.close();
    }
  }
  // nothing is sent any more
  const s0 = f.t.stats.sendErrors;
  f.t.send({ local: { addr: V4, port: f.port }, remote: { addr: V4, port: 9 }, data: ike(50) });
  assert.equal(f.t.stats.sendErrors, s0 + 1);
});

describe('a peer on port 500: plain IKE, no marker', { skip: isRoot ? false : 'binding port 500 needs root' }, () => {
  // An address of its own in 127/8, so that a daemon on 127.0.0.1:500 does not get in the way.
  const PEER = '127.88.0.1';
  let f: Fixture;
  let p: Peer | undefined;
  let why: string | undefined;
  before(async () => {
    f = await startTransport();
    try {
      p = await peer(PEER, 500, V4);
    } catch (e) {
      why = (e as Error).message;
    }
  });
  after(async () => {
    await p?.close();
    await f?.t.close();
  });

  test('in and out on both ports without the marker', async (t) => {
    const q = p;
    if (!q) {
      t.skip(`cannot bind ${PEER}:500: ${why}`);
      return;
    }
    for (const [port, tag] of [[f.port, 60], [f.natT, 61]] as const) {
      const msg = ike(tag);
      const before = f.received.length;
      await q.send(msg, port);
      const r = await waitFor(`plain IKE on port ${port}`, () => f.received[before], 2000, 5);
      assert.deepEqual(r.ike, msg, 'delivered as it came');
      assert.deepEqual(r.remote, { addr: PEER, port: 500 });
      const n0 = q.got.length;
      f.t.send({ local: { addr: V4, port }, remote: { addr: PEER, port: 500 }, data: msg });
      const g: Peer['got'][number] = await waitFor(`plain IKE from port ${port}`, () => q.got[n0], 2000, 5);
      assert.deepEqual(g.data, msg, 'sent without the marker');
    }
    // a datagram starting with four zero bytes is an IKE message with a zero SPI here, not a marker
    const zero = Buffer.alloc(40);
    const before = f.received.length;
    await q.send(zero, f.port);
    const r = await waitFor('zero-SPI IKE', () => f.received[before], 2000, 5);
    assert.equal(r.ike.length, 40);
    // a single 0xff is too short for IKE on this port pair
    const i0 = f.t.stats.invalid;
    const k0 = f.t.stats.keepalives;
    await q.send(Buffer.from([0xff]), f.natT);
    await q.send(ike(62), f.natT);
    await waitFor('fence', () => f.received.some((x) => x.ike[4] === 62), 2000, 5);
    assert.equal(f.t.stats.invalid, i0 + 1);
    assert.equal(f.t.stats.keepalives, k0);
  });
});

/** An IKE_SA_INIT request header as a new peer sends it: SPIi `spi`, SPIr zero, initiator flag, ID 0. */
function initRequest(spi: number, tag: number, len = 64): Buffer {
  const b = Buffer.alloc(len, tag);
  b.fill(0, 0, 16);
  b.writeUInt32BE(spi, 4);
  b[17] = 0x20;
  b[18] = 34;
  b[19] = 0x08;
  b.writeUInt32BE(0, 20);
  return b;
}

describe('bursts: the queue in front of the engine', () => {
  let f: Fixture;
  let p: Peer;
  before(async () => {
    f = await startTransport();
    p = await peer(V4);
  });
  after(async () => {
    await p?.close();
    await f?.t.close();
  });

  /** Sends every datagram in one go (they reach the socket before the transport reads any) and waits until `last` is delivered. */
  async function burst(datagrams: Buffer[], last: number): Promise<number[]> {
    const before = f.received.length;
    await Promise.all(datagrams.map((d) => p.send(Buffer.concat([MARKER, d]), f.natT)));
    await waitFor(`tag ${last} delivered`, () => f.received.slice(before).some((r) => r.ike[4] === last || r.ike[16] === last), 2000, 5);
    return f.received.slice(before).map((r) => (r.ike[18] === 34 && r.ike[19] === 0x08 ? r.ike[16]! : r.ike[4]!));
  }

  test('messages of SAs under way are handed over before new IKE_SA_INIT requests, each kind in arrival order', async () => {
    const order = await burst([initRequest(1, 101), initRequest(2, 102), ike(61), initRequest(3, 103), ike(62)], 103);
    assert.deepEqual(order, [61, 62, 101, 102, 103]);
    assert.equal(f.t.queued, 0);
  });

  test('an IKE_SA_INIT request that comes again while the first copy is queued is dropped and counted', async () => {
    const d0 = f.t.stats.duplicates;
    const order = await burst([initRequest(7, 107), initRequest(7, 107), initRequest(8, 108), ike(63)], 108);
    assert.deepEqual(order, [63, 107, 108]);
    assert.equal(f.t.stats.duplicates, d0 + 1);
    // once handed over, the same request is delivered again (the engine answers it from its cache)
    assert.deepEqual(await burst([initRequest(7, 107), ike(64)], 107), [64, 107]);
    assert.equal(f.t.stats.duplicates, d0 + 1);
  });
});

test('a full queue sheds what arrives for it and counts it; the other queue still takes messages', async () => {
  const [port, natT] = await freePorts(2);
  const got: Buffer[] = [];
  const t = new UdpTransport({ listen: [V4], port: port!, portNatT: natT!, log: pino({ level: 'silent' }), onPacket: (_l, _r, d) => void got.push(Buffer.from(d)), queueLimit: 2 });
  await t.start();
  const p = await peer(V4);
  try {
    const datagrams = [initRequest(1, 1), initRequest(2, 2), initRequest(3, 3), ike(70), ike(71), ike(72)];
    await Promise.all(datagrams.map((d) => p.send(Buffer.concat([MARKER, d]), natT!)));
    await waitFor('both queues handed over', () => got.length >= 4, 2000, 5);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, 4);
    assert.equal(t.stats.shed, 2, 'one IKE_SA_INIT and one other message over the limit of 2');
    assert.deepEqual(got.map((d) => (d[18] === 34 && d[19] === 0x08 ? d.readUInt32BE(4) + 100 : d[4])), [70, 71, 101, 102]);
  } finally {
    await p.close();
    await t.close();
  }
});

test('close() drops what is still queued', async () => {
  const [port, natT] = await freePorts(2);
  const got: number[] = [];
  let t!: UdpTransport;
  let closing: Promise<void> | undefined;
  t = new UdpTransport({
    listen: [V4],
    port: port!,
    portNatT: natT!,
    log: pino({ level: 'silent' }),
    onPacket: (_l, _r, d) => {
      got.push(d[4]!);
      closing ??= t.close();
    },
  });
  await t.start();
  const p = await peer(V4);
  try {
    await Promise.all([ike(80), ike(81), ike(82)].map((d) => p.send(Buffer.concat([MARKER, d]), natT!)));
    await waitFor('the first message', () => got.length > 0, 2000, 5);
    await closing;
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(got, [80]);
    assert.equal(t.queued, 0);
  } finally {
    await p.close();
  }
});

describe('receive buffer (daemon.recv_buffer_size)', { skip: process.platform === 'linux' ? false : 'Linux sysctl and SO_RCVBUF doubling' }, () => {
  const rmemMax = (): number => Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());

  async function withTransport(recvBufferSize: number | undefined, check: (t: UdpTransport, lines: LogLine[]) => void): Promise<void> {
    const [port, natT] = await freePorts(2);
    const { log, lines } = logCapture();
    const t = new UdpTransport({ listen: [V4], port: port!, portNatT: natT!, log, onPacket: () => {}, ...(recvBufferSize !== undefined ? { recvBufferSize } : {}) });
    try {
      await t.start();
      check(t, lines);
    } finally {
      await t.close();
    }
  }

  test('the size asked for is set on every socket and read back (Linux reports twice the size)', async () => {
    const want = Math.min(1 << 20, rmemMax());
    await withTransport(want, (t, lines) => {
      assert.equal(t.recvBuffers.size, 2, 'IKE and NAT-T socket');
      for (const g of t.recvBuffers.values()) {
        assert.equal(g.requested, want);
        assert.equal(g.granted, 2 * want);
        assert.equal(g.capped, false);
      }
      assert.ok(!lines.some((l) => l.level === 40), 'no warning');
    });
  });

  test('a size above net.core.rmem_max is capped by the kernel: a warning names the sysctl', async () => {
    const max = rmemMax();
    const want = 2 * max + 4096;
    await withTransport(want, (t, lines) => {
      for (const g of t.recvBuffers.values()) {
        assert.equal(g.capped, true);
        assert.equal(g.granted, 2 * max);
      }
      const warns = lines.filter((l) => l.level === 40);
      assert.equal(warns.length, 2, 'one per socket');
      assert.match(String(warns[0]!.msg), /net\.core\.rmem_max/);
      assert.equal(warns[0]!.requested, want);
      assert.equal(warns[0]!.granted, max);
    });
  });

  test('0 or unset leaves the kernel default', async () => {
    await withTransport(0, (t) => assert.equal(t.recvBuffers.size, 0));
    await withTransport(undefined, (t) => assert.equal(t.recvBuffers.size, 0));
  });
});

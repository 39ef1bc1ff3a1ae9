import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { startEmulator } from '../../src/vpp/emulator/server.ts';
import { vppCodec, VPP_MESSAGES } from '../../src/vpp/api.ts';
import { nameCrc } from '../../src/vpp/schema.ts';
import {
  VppClient,
  VppApiError,
  VppCompatibilityError,
  VppTimeoutError,
  VppDisconnectedError,
  type VppConnectedInfo,
} from '../../src/vpp/client.ts';
import { sadEntry as entry } from '../helpers/builders.ts';
import { FakeVpp } from '../helpers/vpp-fake.ts';

let n = 0;
function sockPath(): string {
  return join(tmpdir(), `vpp-client-test-${process.pid}-${n++}.sock`);
}

test('connect: handshake, client index, ids looked up by name_crc (not fixed), show_version', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket, idBase: 777 });
  const c = new VppClient({ socket, healthCheckMs: 0 });
  try {
    const info = await c.connect();
    assert.equal(info.reconnect, false);
    assert.equal(info.clientIndex >>> 31, 1, 'socket registration handles have bit 31 set');
    assert.equal(info.version, '26.10-rc0~374-gb575ec2c56d');
    assert.equal(c.messageId('sockclnt_create'), 15);
    assert.ok((c.messageId('ipsec_itf_create') ?? 0) >= 777);
    const r = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
    assert.equal(r.retval, 0);
    assert.equal(emu.state.interfaces.get(r.sw_if_index)?.name, 'ipsec0');
  } finally {
    await c.close();
    await emu.close();
  }
});

test('connect refuses a VPP whose table lacks our messages or has other CRCs, naming them and VPP 26.10', async () => {
  const socket = sockPath();
  const emu = await startEmulator({
    socket,
    crcOverrides: { ipsec_sad_entry_add_v2: '0x12345678' },
    omitMessages: ['ipsec_tunnel_protect_update', 'punt_reason_dump'],
  });
  const c = new VppClient({ socket, healthCheckMs: 0 });
  try {
    await assert.rejects(c.connect(), (e: unknown) => {
      assert.ok(e instanceof VppCompatibilityError);
      // punt_reason_dump is optional (not used by vpp-iked): not a reason to refuse.
      assert.deepEqual(e.missing, ['ipsec_tunnel_protect_update']);
      assert.deepEqual(e.mismatched, [{ name: 'ipsec_sad_entry_add_v2', ours: '0x9611297a', vpps: '0x12345678' }]);
      assert.match(e.message, /VPP 26\.10/);
      assert.match(e.message, /ipsec_tunnel_protect_update/);
      return true;
    });
    assert.equal(c.connected, false);
  } finally {
    await c.close();
    await emu.close();
  }
});

test('optional messages (punt, interface events, route dump) may be missing or differ; requests for them reject', async () => {
  const socket = sockPath();
  const emu = await startEmulator({
    socket,
    crcOverrides: { ip_route_dump: '0x0badc0de' },
    omitMessages: ['punt_reason_dump', 'punt_reason_details', 'want_interface_events', 'want_interface_events_reply', 'sw_interface_event'],
  });
  const c = new VppClient({ socket, healthCheckMs: 0 });
  try {
    await c.connect();
    assert.equal(c.messageId('punt_reason_dump'), undefined);
    await assert.rejects(c.dump('punt_reason_dump', { reason: { id: 0, name: '' } }), (e: unknown) => {
      assert.ok(e instanceof VppCompatibilityError);
      assert.deepEqual(e.missing, ['punt_reason_dump']);
      return true;
    });
    await assert.rejects(c.dump('ip_route_dump', { table: { table_id: 0, is_ip6: false, name: '' } }), VppCompatibilityError);
    await assert.rejects(c.request('want_interface_events', { enable_disable: 1, pid: 1 }), VppCompatibilityError);
    // What vpp-iked uses works.
    assert.equal((await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } })).retval, 0);
    // An optional message that the VPP has is usable.
    assert.ok(Array.isArray(await c.dump('punt_socket_dump', { type: 0 })));
  } finally {
    await c.close();
    await emu.close();
  }
});

test('pipelining: many requests in flight, replies matched by context; retval errors name the message and code', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const c = new VppClient({ socket, healthCheckMs: 0, maxInFlight: 64 });
  try {
    await c.connect();
    const adds = [];
    for (let i = 1; i <= 300; i++) adds.push(c.request('ipsec_sad_entry_add_v2', { entry: entry(i) }));
    const replies = await Promise.all(adds);
    assert.equal(new Set(replies.map((r) => r.stat_index)).size, 300);
    assert.equal(emu.state.sas.size, 300);
    assert.equal(c.stats.inFlight, 0);
    await assert.rejects(c.request('ipsec_sad_entry_add_v2', { entry: entry(7) }), (e: unknown) => {
      assert.ok(e instanceof VppApiError);
      assert.equal(e.retval, -116);
      assert.equal(e.errorName, 'ENTRY_ALREADY_EXISTS');
      assert.match(e.message, /ipsec_sad_entry_add_v2/);
      return true;
    });
    // allowRetval turns a known answer into a reply.
    const r = await c.request('ipsec_sad_entry_del', { id: 99999 }, { allowRetval: [-6] });
    assert.equal(r.retval, -6);
  } finally {
    await c.close();
    await emu.close();
  }
});

test('dumps end at the control_ping reply; concurrent dumps do not mix', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const c = new VppClient({ socket, healthCheckMs: 0 });
  try {
    await c.connect();
    for (let i = 1; i <= 5; i++) await c.request('ipsec_sad_entry_add_v2', { entry: entry(i) });
    await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
    const [sas, itfs, none] = await Promise.all([
      c.dump('ipsec_sa_v5_dump', { sa_id: 3 }),
      c.dump('ipsec_itf_dump', { sw_if_index: 0xffffffff }),
      c.dump('ipsec_tunnel_protect_dump', { sw_if_index: 0xffffffff }),
    ]);
    // ipsec_sa_v5_dump ignores sa_id (README, "Behaviour worth knowing").
    assert.deepEqual(
      sas.map((d) => d.entry.sad_id),
      [1, 2, 3, 4, 5],
    );
    assert.equal(itfs.length, 1);
    assert.deepEqual(none, []);
  } finally {
    await c.close();
    await emu.close();
  }
});

test('stream: details one by one in order; leaving the loop early keeps the connection usable', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const c = new VppClient({ socket, healthCheckMs: 0 });
  try {
    await c.connect();
    for (let i = 1; i <= 50; i++) await c.request('ipsec_sad_entry_add_v2', { entry: entry(i) });
    const idle = c.stats.sent;
    const unread = c.stream('ipsec_sa_v5_dump', { sa_id: 0xffffffff });
    assert.equal(c.stats.sent, idle, 'nothing is sent before the first next()');
    await unread.return!();
    const all: number[] = [];
    for await (const d of c.stream('ipsec_sa_v5_dump', { sa_id: 0xffffffff })) all.push(d.entry.sad_id);
    assert.deepEqual(all, Array.from({ length: 50 }, (_, i) => i + 1));
    const first: number[] = [];
    for await (const d of c.stream('ipsec_sa_v5_dump', { sa_id: 0xffffffff })) {
      first.push(d.entry.sad_id);
      if (first.length === 3) break;
    }
    assert.deepEqual(first, [1, 2, 3]);
    // The rest of that dump is skipped; what comes after it works.
    const itf = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
    assert.equal(itf.retval, 0);
    assert.equal((await c.dump('ipsec_sa_v5_dump', { sa_id: 0xffffffff })).length, 50);
    await c.ping();
    assert.equal(c.stats.inFlight, 0);
  } finally {
    await c.close();
    await emu.close();
  }
});

test('in-memory transport: a reply that never comes times out; the connection stays usable', async () => {
  const vpp = new FakeVpp();
  const c = new VppClient({ transport: vpp.transport, healthCheckMs: 0, reconnect: false, requestTimeoutMs: 100 });
  try {
    const info = await c.connect();
    assert.equal(info.version, '26.10-fake');
    await assert.rejects(c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } }), VppTimeoutError);
    assert.deepEqual(vpp.requests.map((r) => r.name), ['ipsec_itf_create']);
    assert.equal(c.stats.timeouts, 1);
    vpp.onRequest = (r) => vpp.send('ipsec_itf_create_reply', { context: r.context, retval: 0, sw_if_index: 7 });
    assert.equal((await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } })).sw_if_index, 7);
    assert.equal(c.stats.inFlight, 0);
  } finally {
    await c.close();
  }
});

test('in-memory transport: the connection closes in the middle of a dump; the stream yields what came, then rejects, and dump() rejects', async () => {
  const vpp = new FakeVpp();
  const c = new VppClient({ transport: vpp.transport, healthCheckMs: 0, reconnect: false });
  try {
    await c.connect();
    vpp.answerPings = false; // the dump never ends by itself
    vpp.onRequest = (r) => {
      vpp.send('ipsec_spds_details', { context: r.context, spd_id: 1, npolicies: 0 });
      vpp.send('ipsec_spds_details', { context: r.context, spd_id: 2, npolicies: 3 });
      vpp.close();
    };
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const d of c.stream('ipsec_spds_dump', {})) seen.push(d.spd_id);
      })(),
      VppDisconnectedError,
    );
    assert.deepEqual(seen, [1, 2]);
    assert.equal(c.connected, false);
  } finally {
    await c.close();
  }
  const vpp2 = new FakeVpp();
  const c2 = new VppClient({ transport: vpp2.transport, healthCheckMs: 0, reconnect: false });
  try {
    await c2.connect();
    vpp2.answerPings = false;
    vpp2.onRequest = (r) => {
      vpp2.send('ipsec_spds_details', { context: r.context, spd_id: 1, npolicies: 0 });
      vpp2.close();
    };
    await assert.rejects(c2.dump('ipsec_spds_dump', {}), VppDisconnectedError);
  } finally {
    await c2.close();
  }
});

test('timeouts: a VPP that stops answering fails requests with VppTimeoutError', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const c = new VppClient({ socket, healthCheckMs: 0, requestTimeoutMs: 150, reconnect: false });
  try {
    await c.connect();
    emu.setPaused(true);
    await assert.rejects(c.request('control_ping', {}), VppTimeoutError);
    await assert.rejects(c.dump('ipsec_itf_dump', { sw_if_index: 0xffffffff }), VppTimeoutError);
    assert.equal(c.stats.timeouts, 2);
    emu.setPaused(false);
    assert.ok((await c.ping()) >= 0);
  } finally {
    await c.close();
    await emu.close();
  }
});

test('reconnect: in-flight requests fail, requests while down fail fast, then connected again after VPP restarts', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const c = new VppClient({ socket, healthCheckMs: 0, reconnectMinMs: 20, reconnectMaxMs: 100 });
  try {
    await c.connect();
    emu.setPaused(true);
    const inflight = assert.rejects(c.request('control_ping', {}), VppDisconnectedError);
    const disconnected = once(c, 'disconnected');
    const reconnected = once(c, 'connected') as Promise<[VppConnectedInfo]>;
    await emu.restart({ idBase: 300 });
    await inflight;
    await disconnected;
    await assert.rejects(c.request('ipsec_itf_create', { itf: { mode: 1, sw_if_index: 0 } }), VppDisconnectedError);
    const [info] = await reconnected;
    assert.equal(info.reconnect, true);
    const r = await c.request('ipsec_itf_create', { itf: { mode: 1, sw_if_index: 0 } });
    assert.equal(r.retval, 0);
    assert.ok((c.messageId('ipsec_itf_create') ?? 0) >= 300, 'ids re-read from the new table');
    assert.equal(emu.state.interfaces.get(r.sw_if_index)?.ipsec?.mode, 1);
  } finally {
    await c.close();
    await emu.close();
  }
});

test('health check drops a connection whose VPP stopped answering, then reconnects', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const c = new VppClient({ socket, healthCheckMs: 100, reconnectMinMs: 20 });
  try {
    await c.connect();
    emu.setPaused(true);
    await once(c, 'disconnected');
    emu.setPaused(false);
    const [info] = (await once(c, 'connected')) as [VppConnectedInfo];
    assert.equal(info.reconnect, true);
  } finally {
    await c.close();
    await emu.close();
  }
});

test('events: sw_interface_event reaches subscribers', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const c = new VppClient({ socket, healthCheckMs: 0 });
  try {
    await c.connect();
    const got: { sw_if_index: number; flags: number; deleted: boolean }[] = [];
    c.subscribe('sw_interface_event', (e) => got.push({ sw_if_index: e.sw_if_index, flags: e.flags, deleted: e.deleted }));
    await c.request('want_interface_events', { enable_disable: 1, pid: process.pid });
    await assert.rejects(c.request('want_interface_events', { enable_disable: 1, pid: process.pid }), /INVALID_REGISTRATION/);
    const itf = await c.request('ipsec_itf_create', { itf: { mode: 0, sw_if_index: 0 } });
    await c.request('sw_interface_set_flags', { sw_if_index: itf.sw_if_index, flags: 1 });
    await c.request('ipsec_itf_delete', { sw_if_index: itf.sw_if_index });
    await c.ping();
    assert.deepEqual(got, [
      { sw_if_index: itf.sw_if_index, flags: 3, deleted: false },
      { sw_if_index: itf.sw_if_index, flags: 0, deleted: true },
    ]);
  } finally {
    await c.close();
    await emu.close();
  }
});

test('close() sends sockclnt_delete; requests after close reject', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const c = new VppClient({ socket, healthCheckMs: 0 });
  await c.connect();
  assert.equal(emu.connections, 1);
  await c.close();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(emu.connections, 0);
  await assert.rejects(c.request('control_ping', {}), VppDisconnectedError);
  await emu.close();
});

test('close() during a reconnect handshake: the attempt is abandoned, the client stays closed', async () => {
  // A stand-in VPP that answers the first sockclnt_create at once (and nothing else: show_version
  // times out), and the second one only when told to, so close() can come in the middle of it.
  const socket = sockPath();
  const table = Object.values(VPP_MESSAGES).map((def, i) => ({ index: i === 0 ? 15 : 100 + i, name: nameCrc(def) }));
  table.find((e) => e.name.startsWith('sockclnt_create_'))!.index = 15;
  const replyFrame = (context: number): Buffer => {
    const f = vppCodec.encode('sockclnt_create_reply', 16, { client_index: 0, context, response: 0, index: 0x80000001, message_table: table }, 16);
    f.writeUInt32BE(f.length - 16, 8);
    return f;
  };
  const conns: Socket[] = [];
  let secondHandshake!: (answer: () => void) => void;
  const second = new Promise<() => void>((r) => (secondHandshake = r));
  let closedByClient = false;
  const server = createServer((sock) => {
    const nth = conns.push(sock);
    sock.on('error', () => {});
    sock.once('data', (d: Buffer) => {
      const context = d.readUInt32BE(16 + 2);
      const answer = (): void => {
        if (!sock.destroyed) sock.write(replyFrame(context));
      };
      if (nth === 1) answer();
      else secondHandshake(answer);
    });
    sock.on('close', () => {
      if (nth === 2) closedByClient = true;
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  const c = new VppClient({ socket, healthCheckMs: 0, reconnectMinMs: 10, reconnectMaxMs: 20, connectTimeoutMs: 150 });
  let connects = 0;
  c.on('connected', () => connects++);
  try {
    await c.connect();
    assert.equal(connects, 1);
    conns[0]!.destroy(); // the connection breaks: the client reconnects
    const answer = await second; // the reconnect's sockclnt_create is with the server
    await c.close();
    answer(); // VPP's reply comes after close()
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(c.connected, false);
    assert.equal(connects, 1, 'no connected event after close()');
    assert.ok(closedByClient, 'the handshake socket was closed');
    assert.equal(conns.length, 2, 'no further attempts');
  } finally {
    await c.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { startEmulator } from '../../src/vpp/emulator/server.ts';
import {
  VppClient,
  VppApiError,
  VppCompatibilityError,
  VppTimeoutError,
  VppDisconnectedError,
  type VppConnectedInfo,
} from '../../src/vpp/client.ts';
import { toApiAddress } from '../../src/vpp/address.ts';
import type { IpsecSadEntryV4 } from '../../src/vpp/defs.generated.ts';

let n = 0;
function sockPath(): string {
  return join(tmpdir(), `vpp-client-test-${process.pid}-${n++}.sock`);
}

function entry(id: number): IpsecSadEntryV4 {
  return {
    sad_id: id,
    spi: 0x1000 + id,
    protocol: 50,
    crypto_algorithm: 9,
    crypto_key: { length: 32, data: Buffer.alloc(32, 1) },
    integrity_algorithm: 0,
    integrity_key: { length: 0, data: Buffer.alloc(0) },
    flags: 4,
    tunnel: {
      instance: 0xffffffff,
      src: toApiAddress('192.0.2.1'),
      dst: toApiAddress('192.0.2.2'),
      sw_if_index: 0xffffffff,
      table_id: 0,
      encap_decap_flags: 0,
      mode: 0,
      flags: 0,
      dscp: 0,
      hop_limit: 0,
    },
    salt: 0,
  };
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
    omitMessages: ['punt_reason_dump'],
  });
  const c = new VppClient({ socket, healthCheckMs: 0 });
  try {
    await assert.rejects(c.connect(), (e: unknown) => {
      assert.ok(e instanceof VppCompatibilityError);
      assert.deepEqual(e.missing, ['punt_reason_dump']);
      assert.deepEqual(e.mismatched, [{ name: 'ipsec_sad_entry_add_v2', ours: '0x9611297a', vpps: '0x12345678' }]);
      assert.match(e.message, /VPP 26\.10/);
      assert.match(e.message, /punt_reason_dump/);
      return true;
    });
    assert.equal(c.connected, false);
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

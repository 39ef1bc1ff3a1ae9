import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vppCodec } from '../../src/vpp/api.ts';
import { VppCodecError } from '../../src/vpp/codec.ts';
import { toApiAddress, fromApiAddress, parseIp6, formatIp6, rangeToPrefixes } from '../../src/vpp/address.ts';
import { formatIp, parseIPv6 } from '../../src/common/addr.ts';
import type { Address, IpsecSadEntryV4, SockclntCreateReply } from '../../src/vpp/defs.generated.ts';

// Expected byte layouts below are written out field by field from the packed struct layout in
// /work/shared/vpp-api/README.md ("Packed request sizes ... checked with vpp_papi": sockclnt_create 70,
// ipsec_sad_entry_add_v2 355, ipsec_tunnel_protect_update with 1 inbound SA 40), all big-endian.

test('sockclnt_create: 70-byte payload, id 15, NUL-padded name', () => {
  const b = vppCodec.encode('sockclnt_create', 15, { context: 0x01020304, name: 'vpp-iked' });
  const exp = Buffer.alloc(70);
  exp.writeUInt16BE(15, 0);
  exp.writeUInt32BE(0x01020304, 2);
  exp.write('vpp-iked', 6, 'latin1');
  assert.deepEqual(b, exp);
  assert.deepEqual(vppCodec.decode('sockclnt_create', b), { context: 0x01020304, name: 'vpp-iked' });
});

function sadEntry(): IpsecSadEntryV4 {
  return {
    sad_id: 0x7e000001,
    spi: 0xc0ffee01,
    protocol: 50,
    crypto_algorithm: 9,
    crypto_key: { length: 32, data: Buffer.alloc(32, 0xaa) },
    integrity_algorithm: 0,
    integrity_key: { length: 0, data: Buffer.alloc(0) },
    flags: 4 | 16 | 64,
    tunnel: {
      instance: 0xffffffff,
      src: toApiAddress('198.51.100.1'),
      dst: toApiAddress('2001:db8::1'),
      sw_if_index: 0xffffffff,
      table_id: 3,
      encap_decap_flags: 0,
      mode: 0,
      flags: 0,
      dscp: 0,
      hop_limit: 64,
    },
    salt: 0x11223344,
    udp_src_port: 4500,
    udp_dst_port: 31337,
    anti_replay_window_size: 128,
  };
}

test('ipsec_sad_entry_add_v2: 355-byte payload, every field at its offset', () => {
  const b = vppCodec.encode('ipsec_sad_entry_add_v2', 0x1234, { client_index: 0x80000001, context: 7, entry: sadEntry() });
  assert.equal(b.length, 355);
  const e = Buffer.alloc(355);
  let o = 0;
  o = e.writeUInt16BE(0x1234, o);
  o = e.writeUInt32BE(0x80000001, o);
  o = e.writeUInt32BE(7, o);
  o = e.writeUInt32BE(0x7e000001, o); // sad_id
  o = e.writeUInt32BE(0xc0ffee01, o); // spi
  o = e.writeUInt32BE(50, o); // protocol ESP
  o = e.writeUInt32BE(9, o); // AES_GCM_256
  e[o++] = 32; // crypto_key.length
  e.fill(0xaa, o, o + 32);
  o += 128;
  o = e.writeUInt32BE(0, o); // integ alg
  o += 1 + 128; // integ key
  o = e.writeUInt32BE(4 | 16 | 64, o); // flags
  o = e.writeUInt32BE(0xffffffff, o); // tunnel.instance
  e[o++] = 0; // src af
  e.set([198, 51, 100, 1], o);
  o += 16;
  e[o++] = 1; // dst af
  e.set(parseIp6('2001:db8::1')!, o);
  o += 16;
  o = e.writeUInt32BE(0xffffffff, o); // sw_if_index
  o = e.writeUInt32BE(3, o); // table_id
  o += 4; // encap_decap_flags, mode, flags, dscp (u8 each)
  e[o++] = 64; // hop_limit
  o = e.writeUInt32BE(0x11223344, o); // salt
  o = e.writeUInt16BE(4500, o);
  o = e.writeUInt16BE(31337, o);
  o = e.writeUInt32BE(128, o);
  assert.equal(o, 355);
  assert.deepEqual(b, e);
  const d = vppCodec.decode<{ entry: IpsecSadEntryV4 }>('ipsec_sad_entry_add_v2', b);
  assert.equal(d.entry.spi, 0xc0ffee01);
  assert.equal(fromApiAddress(d.entry.tunnel.dst), '2001:db8::1');
  assert.equal(fromApiAddress(d.entry.tunnel.src), '198.51.100.1');
  assert.equal(d.entry.crypto_key.data.length, 128);
});

test('ipsec_sad_entry_add_v2: absent fields take the .api defaults (udp ports 4500, window 64)', () => {
  const entry: Partial<IpsecSadEntryV4> = sadEntry();
  delete entry.udp_src_port;
  delete entry.udp_dst_port;
  delete entry.anti_replay_window_size;
  const b = vppCodec.encode('ipsec_sad_entry_add_v2', 1, { client_index: 0, context: 0, entry });
  assert.equal(b.readUInt16BE(355 - 8), 4500);
  assert.equal(b.readUInt16BE(355 - 6), 4500);
  assert.equal(b.readUInt32BE(355 - 4), 64);
});

test('ipsec_tunnel_protect_update: 40 bytes with one sa_in, +4 per extra, count written from the array', () => {
  const mk = (saIn: number[]): Buffer =>
    vppCodec.encode('ipsec_tunnel_protect_update', 9, {
      client_index: 1,
      context: 2,
      tunnel: { sw_if_index: 5, nh: toApiAddress('0.0.0.0'), sa_out: 100, sa_in: saIn },
    });
  const one = mk([200]);
  assert.equal(one.length, 40);
  const e = Buffer.alloc(40);
  e.writeUInt16BE(9, 0);
  e.writeUInt32BE(1, 2);
  e.writeUInt32BE(2, 6);
  e.writeUInt32BE(5, 10);
  // nh: af 0 + 16 zero bytes at 14..30
  e.writeUInt32BE(100, 31);
  e[35] = 1;
  e.writeUInt32BE(200, 36);
  assert.deepEqual(one, e);
  const two = mk([200, 201]);
  assert.equal(two.length, 44);
  assert.equal(two[35], 2);
  const d = vppCodec.decode<{ tunnel: { sa_in: number[]; n_sa_in: number } }>('ipsec_tunnel_protect_update', two);
  assert.deepEqual(d.tunnel.sa_in, [200, 201]);
  assert.equal(d.tunnel.n_sa_in, 2);
  assert.throws(
    () => vppCodec.encode('ipsec_tunnel_protect_update', 9, { tunnel: { n_sa_in: 3, sa_in: [1] } }),
    VppCodecError,
  );
});

test('strict decoding: truncated and trailing bytes are errors', () => {
  const b = vppCodec.encode('ipsec_sad_entry_del', 3, { client_index: 1, context: 2, id: 9 });
  assert.equal(b.length, 14);
  assert.throws(() => vppCodec.decode('ipsec_sad_entry_del', b.subarray(0, 13)), /truncated/);
  assert.throws(() => vppCodec.decode('ipsec_sad_entry_del', Buffer.concat([b, Buffer.alloc(1)])), /trailing/);
  const t = vppCodec.encode('ipsec_tunnel_protect_update', 9, { tunnel: { sa_in: [1, 2] } });
  assert.throws(() => vppCodec.decode('ipsec_tunnel_protect_update', t.subarray(0, t.length - 1)), VppCodecError);
  assert.throws(() => vppCodec.decode('ipsec_tunnel_protect_update', Buffer.concat([t, Buffer.alloc(2)])), /trailing/);
  // A count that claims more elements than bytes remain is refused before allocation.
  const huge = Buffer.from(t);
  huge[35] = 255;
  assert.throws(() => vppCodec.decode('ipsec_tunnel_protect_update', huge), /do not fit/);
});

test('sockclnt_create_reply: variable array of message table entries; variable string (punt_reason)', () => {
  const table = [
    { index: 15, name: 'sockclnt_create_455fb9c4' },
    { index: 16, name: 'sockclnt_create_reply_35166268' },
  ];
  const b = vppCodec.encode('sockclnt_create_reply', 16, { client_index: 0, context: 1, response: 0, index: 0x80000001, message_table: table });
  assert.equal(b.length, 2 + 4 + 4 + 4 + 4 + 2 + 66 * 2);
  assert.equal(b.readUInt16BE(18), 2);
  const d = vppCodec.decode<SockclntCreateReply>('sockclnt_create_reply', b);
  assert.deepEqual(d.message_table, table);
  assert.equal(d.index, 0x80000001);

  const r = vppCodec.encode('punt_reason_details', 40, { context: 5, reason: { id: 3, name: 'ipsec4-spi-o-udp-0' } });
  assert.equal(r.length, 2 + 4 + 4 + 4 + 18);
  assert.equal(r.readUInt32BE(10), 18);
  assert.deepEqual(vppCodec.decode('punt_reason_details', r), { context: 5, reason: { id: 3, name: 'ipsec4-spi-o-udp-0' } });
  const cut = Buffer.from(r);
  cut.writeUInt32BE(1000, 10);
  assert.throws(() => vppCodec.decode('punt_reason_details', cut), /truncated/);
});

test('encoding refuses values that do not fit their field', () => {
  assert.throws(() => vppCodec.encode('ipsec_sad_entry_del', 3, { id: -1 }), /not a valid u32/);
  assert.throws(() => vppCodec.encode('ipsec_sad_entry_del', 3, { id: 2 ** 32 }), /not a valid u32/);
  assert.throws(() => vppCodec.encode('sockclnt_create', 15, { name: 'x'.repeat(65) }), /does not fit/);
  const entry = sadEntry();
  entry.crypto_key.data = Buffer.alloc(129);
  assert.throws(() => vppCodec.encode('ipsec_sad_entry_add_v2', 1, { entry }), /do not fit/);
});

test('unions: punt_union (exception id) and fixed u64 fields', () => {
  const b = vppCodec.encode('punt_socket_register', 30, {
    client_index: 1,
    context: 2,
    header_version: 1,
    punt: { type: 2, punt: { exception: { id: 17 } } },
    pathname: '/run/x.sock',
  });
  assert.equal(b.length, 130);
  assert.equal(b.readUInt32BE(14), 2);
  assert.equal(b.readUInt32BE(18), 17);
  const d = vppCodec.decode<{ punt: { punt: { exception: { id: number }; l4: { port: number } } } }>('punt_socket_register', b);
  assert.equal(d.punt.punt.exception.id, 17);
  assert.equal(d.punt.punt.l4.port, 17); // same bytes read as the l4 member: af, proto, port
  const det = vppCodec.encode('ipsec_sa_v5_details', 50, { context: 1, entry: sadEntry(), seq_outbound: 2n ** 40n + 5n });
  const dd = vppCodec.decode<{ seq_outbound: bigint }>('ipsec_sa_v5_details', det);
  assert.equal(dd.seq_outbound, 2n ** 40n + 5n);
});

test('address helpers: RFC 5952 formatting and range → prefixes', () => {
  assert.equal(formatIp6(parseIp6('2001:0db8:0:0:0:0:0:1')!), '2001:db8::1');
  // RFC 5952 §5: IPv4-mapped addresses keep the dotted quad, as src/common/addr.ts writes them.
  assert.equal(formatIp6(parseIp6('::ffff:192.0.2.1')!), '::ffff:192.0.2.1');
  for (const a of ['::ffff:192.0.2.1', '::ffff:0.0.0.0', '::192.0.2.1', '::fffe:c000:201', '64:ff9b::c000:201', '::1', '::']) {
    assert.equal(formatIp6(parseIp6(a)!), formatIp(parseIPv6(a)!), a);
  }
  assert.equal(formatIp6(parseIp6('1:0:0:2:0:0:0:3')!), '1:0:0:2::3');
  assert.equal(parseIp6('1::2::3'), undefined);
  assert.deepEqual(rangeToPrefixes('10.0.0.0', '10.0.0.255'), [{ addr: '10.0.0.0', len: 24 }]);
  assert.deepEqual(rangeToPrefixes('10.0.0.1', '10.0.0.2'), [
    { addr: '10.0.0.1', len: 32 },
    { addr: '10.0.0.2', len: 32 },
  ]);
  assert.deepEqual(rangeToPrefixes('0.0.0.0', '255.255.255.255'), [{ addr: '0.0.0.0', len: 0 }]);
  assert.deepEqual(rangeToPrefixes('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), [{ addr: '::', len: 0 }]);
});

test('a decoded address union (every member set) re-encodes with all 16 bytes of an IPv6 address', () => {
  const body = {
    context: 1,
    client_index: 2,
    entry: {
      sad_id: 1, spi: 5, protocol: 50, crypto_algorithm: 9,
      crypto_key: { length: 32, data: Buffer.alloc(32) },
      integrity_algorithm: 0, integrity_key: { length: 0, data: Buffer.alloc(0) },
      flags: 0,
      tunnel: { src: toApiAddress('2001:db8::2'), dst: toApiAddress('2001:db8::1') },
      salt: 0, udp_src_port: 4500, udp_dst_port: 4500, anti_replay_window_size: 64,
    },
  };
  const once = vppCodec.decode('ipsec_sad_entry_add_v2', vppCodec.encode('ipsec_sad_entry_add_v2', 5, body as never), 0) as { entry: { tunnel: { src: Address } } };
  // The emulator stores decoded values and encodes them again in its dumps.
  const twice = vppCodec.decode('ipsec_sad_entry_add_v2', vppCodec.encode('ipsec_sad_entry_add_v2', 5, once as never), 0) as { entry: { tunnel: { src: Address } } };
  assert.equal(fromApiAddress(twice.entry.tunnel.src), '2001:db8::2');
});

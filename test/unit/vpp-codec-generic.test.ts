// The codec on a synthetic schema, for the field kinds the VPP messages we use do not exercise
// (f64, i8..i64, enumflags as u16, arrays of types with a u32 count, variable strings inside
// types, nested unions). Byte layouts follow the packed big-endian encoding described in
// /work/shared/vpp-api/README.md ("Payload encoding").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VppCodec, VppCodecError } from '../../src/vpp/codec.ts';
import type { VppMessageDef, VppTypeDef } from '../../src/vpp/schema.ts';

const types: Record<string, VppTypeDef> = {
  colour: { kind: 'enum', base: 'u16', flags: true, values: { RED: 1, GREEN: 2 } },
  small: { kind: 'enum', base: 'i8', flags: false, values: { NEG: -1 } },
  pair: { kind: 'struct', fields: [{ name: 'a', type: 'i16' }, { name: 'label', type: 'string', length: 0 }] },
  num: { kind: 'union', members: [{ name: 'd', type: 'f64' }, { name: 'w', type: 'u32', length: 2 }] },
  id_alias: { kind: 'alias', type: 'u64' },
};

const messages: Record<string, VppMessageDef> = {
  m: {
    name: 'm',
    crc: '0x00000001',
    module: 'test',
    fields: [
      { name: '_vl_msg_id', type: 'u16' },
      { name: 'context', type: 'u32' },
      { name: 'f', type: 'f64' },
      { name: 'i', type: 'i64' },
      { name: 'id', type: 'id_alias' },
      { name: 'c', type: 'colour' },
      { name: 's', type: 'small' },
      { name: 'u', type: 'num' },
      { name: 'n', type: 'u32' },
      { name: 'pairs', type: 'pair', length: 0, lengthFrom: 'n' },
      { name: 'fixed', type: 'i32', length: 2 },
      { name: 'tail', type: 'string', length: 0 },
    ],
  },
};

test('generic codec: every field kind round-trips with the expected bytes', () => {
  const codec = new VppCodec(types, messages);
  const value = {
    context: 9,
    f: 1.5,
    i: -2n,
    id: 2n ** 63n,
    c: 3,
    s: -1,
    u: { d: -0.25 },
    pairs: [
      { a: -300, label: 'x' },
      { a: 7, label: 'héllo' },
    ],
    fixed: [-1, 2],
    tail: 'end',
  };
  const b = codec.encode('m', 42, value);
  const e = Buffer.alloc(b.length);
  let o = 0;
  o = e.writeUInt16BE(42, o);
  o = e.writeUInt32BE(9, o);
  o = e.writeDoubleBE(1.5, o);
  o = e.writeBigInt64BE(-2n, o);
  o = e.writeBigUInt64BE(2n ** 63n, o);
  o = e.writeUInt16BE(3, o);
  o = e.writeInt8(-1, o);
  o = e.writeDoubleBE(-0.25, o); // union: 8 bytes (max of f64 and u32[2])
  o = e.writeUInt32BE(2, o); // n, from the array
  o = e.writeInt16BE(-300, o);
  o = e.writeUInt32BE(1, o);
  o += e.write('x', o);
  o = e.writeInt16BE(7, o);
  o = e.writeUInt32BE(Buffer.byteLength('héllo'), o);
  o += e.write('héllo', o);
  o = e.writeInt32BE(-1, o);
  o = e.writeInt32BE(2, o);
  o = e.writeUInt32BE(3, o);
  o += e.write('end', o);
  assert.equal(o, b.length);
  assert.deepEqual(b, e);
  const d = codec.decode<typeof value & { n: number; u: { d: number; w: number[] } }>('m', b);
  assert.equal(d.f, 1.5);
  assert.equal(d.i, -2n);
  assert.equal(d.id, 2n ** 63n);
  assert.equal(d.s, -1);
  assert.equal(d.u.d, -0.25);
  assert.deepEqual(d.u.w, [b.readUInt32BE(33), b.readUInt32BE(37)]); // same 8 bytes read as u32[2]
  assert.deepEqual(d.pairs, value.pairs);
  assert.deepEqual(d.fixed, [-1, 2]);
  assert.equal(d.tail, 'end');
  // Every truncation is an error, never a partial result.
  for (let cut = 0; cut < b.length; cut++) assert.throws(() => codec.decode('m', b.subarray(0, cut)), VppCodecError);
  assert.deepEqual(codec.decode('m', Buffer.concat([b, Buffer.alloc(1)]), 0, b.length + 1, true), d);
});

test('generic codec: schema errors are found when the codec is built', () => {
  assert.throws(
    () =>
      new VppCodec(types, {
        bad: { name: 'bad', crc: '0x1', module: 't', fields: [{ name: '_vl_msg_id', type: 'u16' }, { name: 'x', type: 'u8', length: 0, lengthFrom: 'later' }, { name: 'later', type: 'u8' }] },
      }),
    /must come earlier/,
  );
  assert.throws(() => new VppCodec(types, { bad: { name: 'bad', crc: '0x1', module: 't', fields: [{ name: 'x', type: 'u8' }] } }), /_vl_msg_id/);
  assert.throws(() => new VppCodec(types, { bad: { name: 'bad', crc: '0x1', module: 't', fields: [{ name: '_vl_msg_id', type: 'u16' }, { name: 'x', type: 'nope' }] } }), /unknown type/);
});

/**
 * One big-endian codec for VPP binary-API messages, driven by the generated field tables. Every
 * multi-byte value is in network byte order (VPP's wire format on the API socket). Decoding is
 * strict: a message shorter or longer than its fields and length fields imply is an error.
 *
 * Value mapping: u8..u32, i8..i32, f64 and enums → number; u64/i64 → bigint; bool → boolean;
 * u8 arrays (fixed or variable, and aliases such as ip4_address) → Buffer; other arrays → arrays;
 * string[N] (NUL-padded) and string[] (u32 length + bytes) → string; types → objects; unions →
 * objects (encode: the first member present; decode: every member, read from the same bytes).
 * Absent fields encode as their declared default, else zero (as vpp_papi does). A length field of a
 * variable array is always written from the array itself.
 */

import type { VppFieldDef, VppMessageDef, VppTypeDef } from './schema.ts';

/** Malformed input (decoding) or a value that does not fit its field (encoding). */
export class VppCodecError extends Error {
  override readonly name = 'VppCodecError';
  readonly offset: number;
  constructor(message: string, offset = -1) {
    super(offset >= 0 ? `${message} (at offset ${offset})` : message);
    this.offset = offset;
  }
}

type IntBase = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32';

type Node =
  | { k: 'int'; base: IntBase; size: number }
  | { k: 'big'; signed: boolean; size: 8 }
  | { k: 'f64'; size: 8 }
  | { k: 'bool'; size: 1 }
  | { k: 'bytes'; n: number; size: number }
  | { k: 'vbytes'; from: string; size: -1 }
  | { k: 'fstr'; n: number; size: number }
  | { k: 'vstr'; size: -1 }
  | { k: 'farr'; n: number; el: Node; size: number }
  | { k: 'varr'; from: string; el: Node; size: -1 }
  | { k: 'struct'; name: string; fields: FieldPlan[]; size: number }
  | { k: 'union'; name: string; members: FieldPlan[]; size: number };

interface FieldPlan {
  name: string;
  node: Node;
  dflt: number | boolean | undefined;
  /** This field counts the elements of the named later field. */
  countOf: string | undefined;
  /** "struct.field", for error messages. */
  path: string;
}

const INT_SIZE: Record<IntBase, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4 };
const INT_MIN: Record<IntBase, number> = { u8: 0, i8: -128, u16: 0, i16: -32768, u32: 0, i32: -2147483648 };
const INT_MAX: Record<IntBase, number> = { u8: 255, i8: 127, u16: 65535, i16: 32767, u32: 4294967295, i32: 2147483647 };

type Obj = Record<string, unknown>;

/** Header fields the caller supplies separately from the message body. */
export interface MessageHeader {
  client_index?: number;
  context?: number;
}

/** A compiled message: its plan and name, ready to encode and decode. */
export interface CompiledMessage {
  readonly def: VppMessageDef;
  readonly plan: Extract<Node, { k: 'struct' }>;
  /** Payload size when the message has no variable parts, else -1. */
  readonly fixedSize: number;
}

export class VppCodec {
  private readonly types: Readonly<Record<string, VppTypeDef>>;
  private readonly nodes = new Map<string, Node>();
  private readonly msgs = new Map<string, CompiledMessage>();

  constructor(types: Readonly<Record<string, VppTypeDef>>, messages: Readonly<Record<string, VppMessageDef>>) {
    this.types = types;
    for (const def of Object.values(messages)) {
      const first = def.fields[0];
      if (!first || first.name !== '_vl_msg_id' || first.type !== 'u16') {
        throw new VppCodecError(`message ${def.name} does not start with u16 _vl_msg_id`);
      }
      const plan = this.structNode(def.name, def.fields);
      this.msgs.set(def.name, { def, plan, fixedSize: plan.size });
    }
  }

  message(name: string): CompiledMessage {
    const m = this.msgs.get(name);
    if (!m) throw new VppCodecError(`unknown message ${name}`);
    return m;
  }

  // ------------------------------------------------------------ compile

  private typeNode(type: string): Node {
    switch (type) {
      case 'u8':
      case 'i8':
      case 'u16':
      case 'i16':
      case 'u32':
      case 'i32':
        return { k: 'int', base: type, size: INT_SIZE[type] };
      case 'u64':
      case 'i64':
        return { k: 'big', signed: type === 'i64', size: 8 };
      case 'f64':
        return { k: 'f64', size: 8 };
      case 'bool':
        return { k: 'bool', size: 1 };
      case 'string':
        return { k: 'vstr', size: -1 };
    }
    const cached = this.nodes.get(type);
    if (cached) return cached;
    const def = this.types[type];
    if (!def) throw new VppCodecError(`unknown type ${type}`);
    let node: Node;
    switch (def.kind) {
      case 'enum':
        if (!(def.base in INT_SIZE)) throw new VppCodecError(`enum ${type} has unsupported base ${String(def.base)}`);
        node = { k: 'int', base: def.base, size: INT_SIZE[def.base] };
        break;
      case 'alias':
        node = def.length !== undefined ? this.arrayNode(def.type, def.length, undefined, type) : this.typeNode(def.type);
        break;
      case 'struct':
        node = this.structNode(type, def.fields);
        break;
      case 'union': {
        const members = def.members.map((m) => this.fieldPlan(m, type));
        let size = 0;
        for (const m of members) {
          if (m.node.size < 0) throw new VppCodecError(`union ${type} member ${m.name} is not fixed-size`);
          size = Math.max(size, m.node.size);
        }
        node = { k: 'union', name: type, members, size };
        break;
      }
    }
    this.nodes.set(type, node);
    return node;
  }

  private arrayNode(type: string, length: number, lengthFrom: string | undefined, where: string): Node {
    if (type === 'string') {
      return length > 0 ? { k: 'fstr', n: length, size: length } : { k: 'vstr', size: -1 };
    }
    const el = this.typeNode(type);
    if (length > 0 || lengthFrom === undefined) {
      if (el.k === 'int' && el.base === 'u8') return { k: 'bytes', n: length, size: length };
      return { k: 'farr', n: length, el, size: el.size < 0 ? -1 : el.size * length };
    }
    if (el.k === 'int' && el.base === 'u8') return { k: 'vbytes', from: lengthFrom, size: -1 };
    if (el.size === 0) throw new VppCodecError(`${where}: variable array of empty elements`);
    return { k: 'varr', from: lengthFrom, el, size: -1 };
  }

  private fieldPlan(f: VppFieldDef, where: string): FieldPlan {
    const node = f.length !== undefined ? this.arrayNode(f.type, f.length, f.lengthFrom, `${where}.${f.name}`) : this.typeNode(f.type);
    return { name: f.name, node, dflt: f.default, countOf: undefined, path: `${where}.${f.name}` };
  }

  private structNode(name: string, fields: readonly VppFieldDef[]): Extract<Node, { k: 'struct' }> {
    const plans = fields.map((f) => this.fieldPlan(f, name));
    for (const p of plans) {
      if (p.node.k === 'varr' || p.node.k === 'vbytes') {
        const from = p.node.from;
        const idx = plans.findIndex((q) => q.name === from);
        if (idx < 0 || idx >= plans.indexOf(p)) throw new VppCodecError(`${name}.${p.name}: length field ${from} must come earlier`);
        const counter = plans[idx]!;
        if (counter.node.k !== 'int') throw new VppCodecError(`${name}.${from}: length field must be an integer`);
        counter.countOf = p.name;
      }
    }
    let size = 0;
    for (const p of plans) {
      if (p.node.size < 0) {
        size = -1;
        break;
      }
      size += p.node.size;
    }
    return { k: 'struct', name, fields: plans, size };
  }

  // ------------------------------------------------------------ encode

  /**
   * Encodes `value` as message `name` with `_vl_msg_id` = msgId. `headerRoom` zero bytes are left
   * in front of the payload (for the 16-byte socket header), so no copy is needed to frame it.
   * `header` supplies client_index/context without copying the value object.
   */
  encode(name: string, msgId: number, value: Obj, headerRoom = 0, header?: MessageHeader): Buffer {
    const m = this.message(name);
    const size = m.fixedSize >= 0 ? m.fixedSize : this.sizeOf(m.plan, value, name);
    const buf = Buffer.alloc(headerRoom + size);
    const end = this.writeStruct(m.plan, value, buf, headerRoom, msgId, header);
    if (end !== headerRoom + size) throw new VppCodecError(`internal: ${name} wrote ${end - headerRoom} of ${size} bytes`);
    return buf;
  }

  private sizeOf(node: Node, value: unknown, path: string): number {
    if (node.size >= 0) return node.size;
    switch (node.k) {
      case 'vbytes':
        return value === undefined ? 0 : asBytes(value, path).length;
      case 'vstr':
        return 4 + (value === undefined ? 0 : Buffer.byteLength(asString(value, path), 'utf8'));
      case 'farr': {
        const arr = value === undefined ? [] : asArray(value, path);
        let n = 0;
        for (let i = 0; i < node.n; i++) n += this.sizeOf(node.el, arr[i], path);
        return n;
      }
      case 'varr': {
        if (value === undefined) return 0;
        const arr = asArray(value, path);
        if (node.el.size >= 0) return node.el.size * arr.length;
        let n = 0;
        for (let i = 0; i < arr.length; i++) n += this.sizeOf(node.el, arr[i], path);
        return n;
      }
      case 'struct': {
        const o = value === undefined ? {} : asObj(value, path);
        let n = 0;
        for (const f of node.fields) n += this.sizeOf(f.node, o[f.name], f.path);
        return n;
      }
      default:
        throw new VppCodecError(`internal: no size for ${node.k}`);
    }
  }

  private write(node: Node, value: unknown, buf: Buffer, at: number, path: string): number {
    switch (node.k) {
      case 'int': {
        const v = value === undefined ? 0 : value;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < INT_MIN[node.base] || v > INT_MAX[node.base]) {
          throw new VppCodecError(`${path}: ${String(v)} is not a valid ${node.base}`);
        }
        switch (node.base) {
          case 'u8':
            buf[at] = v;
            break;
          case 'i8':
            buf.writeInt8(v, at);
            break;
          case 'u16':
            buf.writeUInt16BE(v, at);
            break;
          case 'i16':
            buf.writeInt16BE(v, at);
            break;
          case 'u32':
            buf.writeUInt32BE(v, at);
            break;
          case 'i32':
            buf.writeInt32BE(v, at);
            break;
        }
        return at + node.size;
      }
      case 'big': {
        let v: bigint;
        if (value === undefined) v = 0n;
        else if (typeof value === 'bigint') v = value;
        else if (typeof value === 'number' && Number.isSafeInteger(value)) v = BigInt(value);
        else throw new VppCodecError(`${path}: ${String(value)} is not a 64-bit integer`);
        if (node.signed) {
          if (v < -(1n << 63n) || v >= 1n << 63n) throw new VppCodecError(`${path}: ${v} out of i64 range`);
          buf.writeBigInt64BE(v, at);
        } else {
          if (v < 0n || v >= 1n << 64n) throw new VppCodecError(`${path}: ${v} out of u64 range`);
          buf.writeBigUInt64BE(v, at);
        }
        return at + 8;
      }
      case 'f64': {
        const v = value === undefined ? 0 : value;
        if (typeof v !== 'number') throw new VppCodecError(`${path}: not a number`);
        buf.writeDoubleBE(v, at);
        return at + 8;
      }
      case 'bool':
        if (value !== undefined && typeof value !== 'boolean') throw new VppCodecError(`${path}: not a boolean`);
        buf[at] = value === true ? 1 : 0;
        return at + 1;
      case 'bytes': {
        if (value === undefined) return at + node.n; // buffer is zero-filled
        const b = asBytes(value, path);
        if (b.length > node.n) throw new VppCodecError(`${path}: ${b.length} bytes do not fit u8[${node.n}]`);
        buf.set(b, at);
        return at + node.n;
      }
      case 'vbytes': {
        if (value === undefined) return at;
        const b = asBytes(value, path);
        buf.set(b, at);
        return at + b.length;
      }
      case 'fstr': {
        if (value === undefined) return at + node.n;
        const s = Buffer.from(asString(value, path), 'utf8');
        if (s.length > node.n) throw new VppCodecError(`${path}: string of ${s.length} bytes does not fit string[${node.n}]`);
        buf.set(s, at);
        return at + node.n;
      }
      case 'vstr': {
        const s = Buffer.from(value === undefined ? '' : asString(value, path), 'utf8');
        buf.writeUInt32BE(s.length, at);
        buf.set(s, at + 4);
        return at + 4 + s.length;
      }
      case 'farr': {
        const arr = value === undefined ? [] : asArray(value, path);
        if (arr.length > node.n) throw new VppCodecError(`${path}: ${arr.length} elements do not fit [${node.n}]`);
        let p = at;
        for (let i = 0; i < node.n; i++) p = this.write(node.el, arr[i], buf, p, path);
        return p;
      }
      case 'varr': {
        if (value === undefined) return at;
        const arr = asArray(value, path);
        let p = at;
        for (let i = 0; i < arr.length; i++) p = this.write(node.el, arr[i], buf, p, path);
        return p;
      }
      case 'struct':
        return this.writeStruct(node, value === undefined ? {} : asObj(value, path), buf, at, -1, undefined);
      case 'union': {
        if (value !== undefined) {
          const o = asObj(value, path);
          // A decoded union carries every member (they overlay the same bytes); when several are set,
          // the one that fills the union wins, so re-encoding a decoded value loses nothing.
          let m: FieldPlan | undefined;
          for (const x of node.members) {
            if (o[x.name] === undefined) continue;
            if (!m || x.node.size > m.node.size) m = x;
          }
          if (m) this.write(m.node, o[m.name], buf, at, m.path);
        }
        return at + node.size;
      }
    }
  }

  private writeStruct(
    node: Extract<Node, { k: 'struct' }>,
    o: Obj,
    buf: Buffer,
    at: number,
    msgId: number,
    header: MessageHeader | undefined,
  ): number {
    let p = at;
    for (const f of node.fields) {
      let v = o[f.name];
      if (f.countOf !== undefined) {
        const arr = o[f.countOf];
        const n = arr === undefined ? 0 : arr instanceof Uint8Array ? arr.length : asArray(arr, f.path).length;
        if (v !== undefined && v !== n) throw new VppCodecError(`${f.path} is ${String(v)} but ${f.countOf} has ${n} elements`);
        v = n;
      } else if (msgId >= 0 && f.name === '_vl_msg_id') {
        v = msgId;
      } else if (header !== undefined && f.name === 'client_index' && header.client_index !== undefined) {
        v = header.client_index;
      } else if (header !== undefined && f.name === 'context' && header.context !== undefined) {
        v = header.context;
      } else if (v === undefined) {
        v = f.dflt;
      }
      p = this.write(f.node, v, buf, p, f.path);
    }
    return p;
  }

  // ------------------------------------------------------------ decode

  /** The message id of a payload (its first two bytes). */
  static msgId(payload: Buffer, start = 0): number {
    if (payload.length - start < 2) throw new VppCodecError('message shorter than its id', start);
    return payload.readUInt16BE(start);
  }

  /**
   * Decodes payload[start, end) as message `name`. The result has every field except `_vl_msg_id`.
   * Throws VppCodecError when the bytes are truncated or, unless `allowTrailing` (VPP itself
   * ignores bytes after a message), when bytes are left over.
   */
  decode<T = Obj>(name: string, payload: Buffer, start = 0, end = payload.length, allowTrailing = false): T {
    const m = this.message(name);
    if (m.fixedSize >= 0 && (end - start < m.fixedSize || (!allowTrailing && end - start > m.fixedSize))) {
      throw new VppCodecError(
        `${name}: ${end - start < m.fixedSize ? 'truncated' : 'trailing bytes'}: ${end - start} bytes, expected ${m.fixedSize}`,
        start,
      );
    }
    const cur = { pos: start };
    const o = this.read(m.plan, payload, cur, end, name) as Obj;
    if (cur.pos !== end && !allowTrailing) throw new VppCodecError(`${name}: ${end - cur.pos} trailing bytes`, cur.pos);
    delete o._vl_msg_id;
    return o as T;
  }

  private read(node: Node, buf: Buffer, cur: { pos: number }, end: number, path: string): unknown {
    switch (node.k) {
      case 'int': {
        const at = take(cur, end, path, node.size);
        switch (node.base) {
          case 'u8':
            return buf[at]!;
          case 'i8':
            return buf.readInt8(at);
          case 'u16':
            return buf.readUInt16BE(at);
          case 'i16':
            return buf.readInt16BE(at);
          case 'u32':
            return buf.readUInt32BE(at);
          case 'i32':
            return buf.readInt32BE(at);
        }
        break;
      }
      case 'big': {
        const at = take(cur, end, path, 8);
        return node.signed ? buf.readBigInt64BE(at) : buf.readBigUInt64BE(at);
      }
      case 'f64':
        return buf.readDoubleBE(take(cur, end, path, 8));
      case 'bool':
        return buf[take(cur, end, path, 1)] !== 0;
      case 'bytes': {
        const at = take(cur, end, path, node.n);
        return Buffer.from(buf.subarray(at, at + node.n));
      }
      case 'fstr': {
        const at = take(cur, end, path, node.n);
        let e = at;
        while (e < at + node.n && buf[e] !== 0) e++;
        return buf.toString('utf8', at, e);
      }
      case 'vstr': {
        const len = buf.readUInt32BE(take(cur, end, path, 4));
        const at = take(cur, end, path, len);
        return buf.toString('utf8', at, at + len);
      }
      case 'farr': {
        const out: unknown[] = new Array(node.n);
        for (let i = 0; i < node.n; i++) out[i] = this.read(node.el, buf, cur, end, path);
        return out;
      }
      case 'struct': {
        const o: Obj = {};
        for (const f of node.fields) {
          if (f.node.k === 'varr' || f.node.k === 'vbytes') {
            const count = o[f.node.from] as number;
            if (f.node.k === 'vbytes') {
              const at = take(cur, end, path, count);
              o[f.name] = Buffer.from(buf.subarray(at, at + count));
            } else {
              const el = f.node.el;
              // Refuse counts that cannot fit before allocating anything.
              const min = el.size > 0 ? el.size : 1;
              if (count * min > end - cur.pos) {
                throw new VppCodecError(`${path}.${f.name}: ${count} elements do not fit in ${end - cur.pos} bytes`, cur.pos);
              }
              const arr: unknown[] = new Array(count);
              for (let i = 0; i < count; i++) arr[i] = this.read(el, buf, cur, end, f.path);
              o[f.name] = arr;
            }
          } else {
            o[f.name] = this.read(f.node, buf, cur, end, f.path);
          }
        }
        return o;
      }
      case 'union': {
        const at = take(cur, end, path, node.size);
        const o: Obj = {};
        for (const m of node.members) {
          o[m.name] = this.read(m.node, buf, { pos: at }, at + node.size, m.path);
        }
        return o;
      }
      case 'vbytes':
      case 'varr':
        throw new VppCodecError(`${path}: variable array outside a struct`);
    }
    throw new VppCodecError(`${path}: cannot decode`);
  }
}

/** Advances the cursor by n bytes and returns where they start; throws when they are not there. */
function take(cur: { pos: number }, end: number, path: string, n: number): number {
  const at = cur.pos;
  if (n < 0 || at + n > end) throw new VppCodecError(`${path}: truncated, need ${n} bytes, have ${end - at}`, at);
  cur.pos = at + n;
  return at;
}

function asObj(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Buffer.isBuffer(v)) {
    throw new VppCodecError(`${path}: expected an object`);
  }
  return v as Obj;
}

function asArray(v: unknown, path: string): readonly unknown[] {
  if (!Array.isArray(v)) throw new VppCodecError(`${path}: expected an array`);
  return v;
}

function asBytes(v: unknown, path: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw new VppCodecError(`${path}: expected a Buffer`);
}

function asString(v: unknown, path: string): string {
  if (typeof v !== 'string') throw new VppCodecError(`${path}: expected a string`);
  return v;
}

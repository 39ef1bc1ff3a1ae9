/**
 * The shape of VPP binary-API definitions as the generated tables (defs.generated.ts) describe
 * them, read by the codec. One entry per field, in wire order, as VPP's IDL compiler (vppapigen)
 * lays out the packed C structs.
 */

export type VppBaseType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64' | 'i64' | 'f64' | 'bool';

export interface VppFieldDef {
  readonly name: string;
  /** A base type, 'string', or the name of a type/union/enum/alias (without `vl_api_` and `_t`). */
  readonly type: string;
  /**
   * Array or string length. A positive number is a fixed array (or a fixed, NUL-padded string);
   * 0 is a variable array (counted by `lengthFrom`) or a variable string (u32 length + bytes).
   */
  readonly length?: number;
  /** For a variable array: the earlier field of the same struct that holds the element count. */
  readonly lengthFrom?: string;
  /** Value used when encoding and the field is absent. */
  readonly default?: number | boolean;
}

export interface VppStructDef {
  readonly kind: 'struct';
  readonly fields: readonly VppFieldDef[];
}

export interface VppUnionDef {
  readonly kind: 'union';
  /** All members share the same bytes; the union is as long as its longest member. */
  readonly members: readonly VppFieldDef[];
}

export interface VppEnumDef {
  readonly kind: 'enum';
  /** Integer type on the wire. */
  readonly base: 'u8' | 'u16' | 'u32' | 'i8' | 'i16' | 'i32';
  /** Bit-flag enum (enumflags) rather than a plain enum. */
  readonly flags: boolean;
  readonly values: Readonly<Record<string, number>>;
}

export interface VppAliasDef {
  readonly kind: 'alias';
  readonly type: string;
  readonly length?: number;
}

export type VppTypeDef = VppStructDef | VppUnionDef | VppEnumDef | VppAliasDef;

export interface VppMessageDef {
  readonly name: string;
  /** CRC as VPP prints it, e.g. "0x9611297a". The message table key is `${name}_${crc without 0x}`. */
  readonly crc: string;
  /** The .api module that defines the message. */
  readonly module: string;
  /**
   * Not used by vpp-iked itself (generated for the emulator and tools): a VPP without it, or with
   * another CRC, is still accepted at connect; requests for it then reject.
   */
  readonly optional?: true;
  /** All fields, `_vl_msg_id` first. */
  readonly fields: readonly VppFieldDef[];
}

export interface VppServiceDef {
  readonly reply: string;
  /** A dump: the reply is a stream of details, ended by the caller with control_ping. */
  readonly stream?: true;
  readonly events?: readonly string[];
}

/** The key VPP's message table uses: name_crc with the CRC in lower-case hex, no 0x. */
export function nameCrc(def: { name: string; crc: string }): string {
  return `${def.name}_${def.crc.replace(/^0x/i, '').toLowerCase()}`;
}

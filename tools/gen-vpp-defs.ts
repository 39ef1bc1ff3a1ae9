/**
 * Generates src/vpp/defs.generated.ts from VPP's API definitions (the `.api.json` files that VPP's
 * IDL compiler writes). Only the messages vpp-iked uses (WANTED_REQUESTS) and a few more for the
 * emulator and tools (OPTIONAL_REQUESTS, marked `optional`) are emitted, with their CRCs, field
 * tables, every type/union/enum/alias they reach, and TypeScript interfaces. CRCs are copied from the JSON,
 * never computed or typed in by hand.
 *
 * Usage:
 *   node tools/gen-vpp-defs.ts [API_JSON_DIR] [--out FILE]     write the file
 *   node tools/gen-vpp-defs.ts [API_JSON_DIR] --check          exit 1 (naming the differing
 *                                                              messages) if the committed file is
 *                                                              not what these files produce
 * API_JSON_DIR defaults to $VPP_API_JSON_DIR, else to ../shared/vpp-api beside the repository
 * (resolved from this file's location, not the current directory). vpp-api/ in the repository holds
 * the files the generator needs (see vpp-api/README.md).
 */

import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Requests vpp-iked uses (the client and the VPP back end). Replies, details and events are added
 * from the files' `services`. The client refuses a VPP that lacks one of them or has it with
 * another CRC.
 */
export const WANTED_REQUESTS: readonly string[] = [
  // memclnt
  'sockclnt_create',
  'sockclnt_delete',
  'control_ping',
  // vpe
  'show_version',
  // ipsec
  'ipsec_sad_entry_add_v2',
  'ipsec_sad_entry_del',
  'ipsec_sad_entry_update',
  'ipsec_sa_v5_dump',
  'ipsec_itf_create',
  'ipsec_itf_delete',
  'ipsec_itf_dump',
  'ipsec_tunnel_protect_update',
  'ipsec_tunnel_protect_del',
  'ipsec_tunnel_protect_dump',
  'ipsec_spd_add_del',
  'ipsec_interface_add_del_spd',
  'ipsec_spd_entry_add_del_v2',
  'ipsec_spd_dump',
  'ipsec_spds_dump',
  'ipsec_spd_interface_dump',
  // interface
  'sw_interface_set_flags',
  'sw_interface_set_unnumbered',
  'sw_interface_set_table',
  'sw_interface_dump',
  // ip
  'ip_route_add_del',
  'ip_table_add_del',
];

/**
 * Requests generated for the emulator and tools but not used by the daemon. They are marked
 * `optional` in the output: the client connects to a VPP without them (or with other CRCs) and
 * requests for them then reject. Left out when the API files do not have them.
 */
export const OPTIONAL_REQUESTS: readonly string[] = [
  'want_interface_events',
  'ip_route_dump',
  'punt_socket_register',
  'punt_socket_deregister',
  'punt_socket_dump',
  'punt_reason_dump',
  'ip_address_dump',
  // read by the tests (an interface's VRF and unnumbered lender), served by the emulator
  'sw_interface_get_table',
  'ip_unnumbered_dump',
];

type JsonField = [string, string, ...unknown[]];
type JsonMessage = [string, ...unknown[]];

interface ApiFile {
  file: string;
  module: string;
  version: string;
  messages: JsonMessage[];
  types: JsonMessage[];
  unions: JsonMessage[];
  enums: JsonMessage[];
  enumflags: JsonMessage[];
  aliases: Record<string, { type: string; length?: number }>;
  services: Record<string, { reply: string; stream?: boolean; events?: string[] }>;
}

interface Field {
  name: string;
  type: string;
  length?: number;
  lengthFrom?: string;
  default?: number | boolean;
}

type TypeDef =
  | { kind: 'struct'; fields: Field[] }
  | { kind: 'union'; members: Field[] }
  | { kind: 'enum'; base: string; flags: boolean; values: [string, number][] }
  | { kind: 'alias'; type: string; length?: number };

interface Message {
  name: string;
  crc: string;
  module: string;
  version: string;
  fields: Field[];
  deprecated: boolean;
  /** Reached only from OPTIONAL_REQUESTS. */
  optional: boolean;
}

const BASE = new Set(['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64', 'f64', 'bool', 'string']);

function normType(t: string): string {
  if (BASE.has(t)) return t;
  const m = /^vl_api_(\w+)_t$/.exec(t);
  if (!m) throw new Error(`unexpected type name ${t}`);
  return m[1]!;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function convField(f: unknown, where: string): Field {
  if (!Array.isArray(f) || typeof f[0] !== 'string' || typeof f[1] !== 'string') {
    throw new Error(`${where}: malformed field ${JSON.stringify(f)}`);
  }
  const out: Field = { name: f[1], type: normType(f[0]) };
  let i = 2;
  if (typeof f[i] === 'number') {
    out.length = f[i] as number;
    i++;
    if (typeof f[i] === 'string') {
      out.lengthFrom = f[i] as string;
      i++;
    }
  }
  if (isObj(f[i])) {
    const d = (f[i] as Record<string, unknown>).default;
    if (d !== undefined) {
      if (out.type === 'bool') out.default = d === true || d === 'true' || d === 1;
      else if (typeof d === 'number') out.default = d;
      else throw new Error(`${where}: field ${out.name} has unusable default ${JSON.stringify(d)}`);
    }
  }
  return out;
}

function fieldsOf(entry: JsonMessage, where: string): { fields: Field[]; meta: Record<string, unknown> } {
  const fields: Field[] = [];
  let meta: Record<string, unknown> = {};
  for (const x of entry.slice(1)) {
    if (Array.isArray(x)) fields.push(convField(x, where));
    else if (isObj(x)) meta = x;
  }
  return { fields, meta };
}

function loadDir(dir: string): ApiFile[] {
  if (!existsSync(dir)) throw new Error(`no such directory: ${dir}`);
  const names = readdirSync(dir)
    .filter((n) => n.endsWith('.api.json'))
    .sort();
  if (names.length === 0) throw new Error(`no .api.json files in ${dir}`);
  return names.map((n) => {
    const j = JSON.parse(readFileSync(join(dir, n), 'utf8')) as Record<string, unknown>;
    const opts = isObj(j.options) ? j.options : {};
    return {
      file: n,
      module: String(j.module ?? n.replace(/\.api\.json$/, '')),
      version: typeof opts.version === 'string' ? opts.version : '',
      messages: (j.messages as JsonMessage[]) ?? [],
      types: (j.types as JsonMessage[]) ?? [],
      unions: (j.unions as JsonMessage[]) ?? [],
      enums: (j.enums as JsonMessage[]) ?? [],
      enumflags: (j.enumflags as JsonMessage[]) ?? [],
      aliases: (j.aliases as ApiFile['aliases']) ?? {},
      services: (j.services as ApiFile['services']) ?? {},
    };
  });
}

interface Model {
  messages: Map<string, Message>;
  types: Map<string, TypeDef>;
  services: Map<string, { reply: string; stream: boolean; events: string[] }>;
  modules: Map<string, string>;
  skipped: string[];
}

function buildModel(dir: string): Model {
  const files = loadDir(dir);
  const allMsgs = new Map<string, Message>();
  const allTypes = new Map<string, { def: TypeDef; key: string; file: string }>();
  const allServices = new Map<string, { reply: string; stream: boolean; events: string[] }>();

  const addType = (name: string, def: TypeDef, file: string): void => {
    const key = JSON.stringify(def);
    const prev = allTypes.get(name);
    if (prev && prev.key !== key) {
      throw new Error(`type ${name} is defined differently in ${prev.file} and ${file}`);
    }
    if (!prev) allTypes.set(name, { def, key, file });
  };

  for (const f of files) {
    for (const t of f.types) {
      addType(String(t[0]), { kind: 'struct', fields: fieldsOf(t, `${f.file}:${t[0]}`).fields }, f.file);
    }
    for (const u of f.unions) {
      addType(String(u[0]), { kind: 'union', members: fieldsOf(u, `${f.file}:${u[0]}`).fields }, f.file);
    }
    for (const [list, flags] of [
      [f.enums, false],
      [f.enumflags, true],
    ] as const) {
      for (const e of list) {
        const values: [string, number][] = [];
        let base = 'u32';
        for (const x of e.slice(1)) {
          if (Array.isArray(x)) values.push([String(x[0]), Number(x[1])]);
          else if (isObj(x) && typeof x.enumtype === 'string') base = x.enumtype;
        }
        addType(String(e[0]), { kind: 'enum', base, flags, values }, f.file);
      }
    }
    for (const [name, a] of Object.entries(f.aliases)) {
      const def: TypeDef = { kind: 'alias', type: normType(a.type) };
      if (typeof a.length === 'number') def.length = a.length;
      addType(name, def, f.file);
    }
    for (const m of f.messages) {
      const name = String(m[0]);
      const { fields, meta } = fieldsOf(m, `${f.file}:${name}`);
      const crc = meta.crc;
      if (typeof crc !== 'string' || !/^0x[0-9a-fA-F]{1,8}$/.test(crc)) throw new Error(`${f.file}: message ${name} has no CRC`);
      const opts = isObj(meta.options) ? meta.options : {};
      const msg: Message = {
        name,
        crc: '0x' + crc.slice(2).toLowerCase().padStart(8, '0'),
        module: f.module,
        version: f.version,
        fields,
        deprecated: 'deprecated' in opts,
        optional: false,
      };
      const prev = allMsgs.get(name);
      if (prev && (prev.crc !== msg.crc || JSON.stringify(prev.fields) !== JSON.stringify(msg.fields))) {
        throw new Error(`message ${name} is defined differently in two files`);
      }
      if (!prev) allMsgs.set(name, msg);
    }
    for (const [req, s] of Object.entries(f.services)) {
      allServices.set(req, { reply: s.reply, stream: s.stream === true, events: s.events ?? [] });
    }
  }

  const messages = new Map<string, Message>();
  const services = new Map<string, { reply: string; stream: boolean; events: string[] }>();
  const skipped: string[] = [];
  const required = new Set<string>();
  const want = (name: string, optional: boolean): void => {
    const m = allMsgs.get(name);
    if (!m) throw new Error(`message ${name} is not in the API files in ${dir}`);
    if (!optional) required.add(name);
    messages.set(name, m);
  };
  for (const req of [...WANTED_REQUESTS, ...OPTIONAL_REQUESTS]) {
    const optional = !WANTED_REQUESTS.includes(req);
    const s = allServices.get(req);
    if (!allMsgs.has(req) || !s) {
      if (optional) {
        skipped.push(req);
        continue;
      }
      throw new Error(`message ${req} (or its service entry) is not in the API files in ${dir}`);
    }
    want(req, optional);
    want(s.reply, optional);
    for (const e of s.events) want(e, optional);
    services.set(req, s);
  }
  for (const [name, m] of messages) messages.set(name, { ...m, optional: !required.has(name) });

  // Every type the chosen messages reach.
  const types = new Map<string, TypeDef>();
  const visit = (t: string): void => {
    if (BASE.has(t) || types.has(t)) return;
    const d = allTypes.get(t);
    if (!d) throw new Error(`type ${t} is used but not defined`);
    types.set(t, d.def);
    if (d.def.kind === 'struct') for (const f of d.def.fields) visit(f.type);
    else if (d.def.kind === 'union') for (const f of d.def.members) visit(f.type);
    else if (d.def.kind === 'alias') visit(d.def.type);
  };
  for (const m of messages.values()) for (const f of m.fields) visit(f.type);

  const modules = new Map<string, string>();
  for (const m of messages.values()) modules.set(m.module, m.version);
  return { messages, types, services, modules, skipped };
}

// ---------------------------------------------------------------- output

function pascal(name: string): string {
  return name
    .split('_')
    .map((p) => (p.length === 0 ? '' : p[0]!.toUpperCase() + p.slice(1)))
    .join('');
}

function q(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function fieldLit(f: Field): string {
  const parts = [`name: ${q(f.name)}`, `type: ${q(f.type)}`];
  if (f.length !== undefined) parts.push(`length: ${f.length}`);
  if (f.lengthFrom !== undefined) parts.push(`lengthFrom: ${q(f.lengthFrom)}`);
  if (f.default !== undefined) parts.push(`default: ${String(f.default)}`);
  return `{ ${parts.join(', ')} }`;
}

function typeLit(def: TypeDef): string {
  switch (def.kind) {
    case 'struct':
      return `{ kind: 'struct', fields: [${def.fields.map(fieldLit).join(', ')}] }`;
    case 'union':
      return `{ kind: 'union', members: [${def.members.map(fieldLit).join(', ')}] }`;
    case 'enum':
      return `{ kind: 'enum', base: ${q(def.base)}, flags: ${def.flags}, values: { ${def.values.map(([k, v]) => `${k}: ${v}`).join(', ')} } }`;
    case 'alias':
      return `{ kind: 'alias', type: ${q(def.type)}${def.length !== undefined ? `, length: ${def.length}` : ''} }`;
  }
}

function tsScalar(t: string, types: Map<string, TypeDef>): string {
  switch (t) {
    case 'u64':
    case 'i64':
      return 'bigint';
    case 'bool':
      return 'boolean';
    case 'string':
      return 'string';
    case 'u8':
    case 'i8':
    case 'u16':
    case 'i16':
    case 'u32':
    case 'i32':
    case 'f64':
      return 'number';
  }
  const d = types.get(t);
  if (!d) throw new Error(`unknown type ${t}`);
  if (d.kind === 'enum') return 'number';
  return pascal(t);
}

function tsFieldType(f: Field, types: Map<string, TypeDef>): string {
  if (f.type === 'string') return 'string';
  if (f.length !== undefined) {
    if (f.type === 'u8') return 'Buffer';
    return `${tsScalar(f.type, types)}[]`;
  }
  return tsScalar(f.type, types);
}

function tsFields(fields: readonly Field[], types: Map<string, TypeDef>, allOptional: boolean, skip: Set<string>): string[] {
  const counted = new Set(fields.map((f) => f.lengthFrom).filter((x): x is string => x !== undefined));
  return fields
    .filter((f) => !skip.has(f.name))
    .map((f) => {
      const opt = allOptional || f.default !== undefined || counted.has(f.name) ? '?' : '';
      return `  ${f.name}${opt}: ${tsFieldType(f, types)};`;
    });
}

const HEADER = `// Generated by tools/gen-vpp-defs.ts from VPP's .api.json files. Do not edit by hand:
// regenerate with \`node tools/gen-vpp-defs.ts [DIR]\`, verify with \`node tools/gen-vpp-defs.ts [DIR] --check\`.
`;

export function generateVppDefs(dir: string): { text: string; skipped: string[] } {
  const model = buildModel(dir);
  const { messages, types, services, modules } = model;
  const out: string[] = [HEADER];
  out.push(`import type { VppMessageDef, VppServiceDef, VppTypeDef } from './schema.ts';`, '');

  // Name collisions would make the interfaces ambiguous.
  const names = new Map<string, string>();
  for (const n of [...types.keys(), ...messages.keys()]) {
    const p = pascal(n);
    const prev = names.get(p);
    if (prev !== undefined && prev !== n) throw new Error(`${prev} and ${n} both map to ${p}`);
    names.set(p, n);
  }

  out.push('/** API module versions (the `option version` of each .api file) the tables were made from. */');
  out.push('export const VPP_API_MODULE_VERSIONS = {');
  for (const [m, v] of [...modules].sort(([a], [b]) => a.localeCompare(b))) out.push(`  ${m}: ${q(v)},`);
  out.push('} as const;', '');

  const typeNames = [...types.keys()].sort();
  out.push('/** Types, unions, enums and aliases reached from the messages below. */');
  out.push('export const VPP_TYPES: Readonly<Record<string, VppTypeDef>> = {');
  for (const n of typeNames) out.push(`  ${n}: ${typeLit(types.get(n)!)},`);
  out.push('};', '');

  const msgNames = [...messages.keys()].sort();
  out.push(`export type VppMessageName =\n${msgNames.map((n) => `  | ${q(n)}`).join('\n')};`, '');
  out.push('/** Message definitions: name, CRC (from the .api.json), module, optional (not required at connect) and fields in wire order. */');
  out.push('export const VPP_MESSAGES: { readonly [K in VppMessageName]: VppMessageDef } = {');
  for (const n of msgNames) {
    const m = messages.get(n)!;
    out.push(
      `  ${n}: { name: ${q(n)}, crc: ${q(m.crc)}, module: ${q(m.module)}, ${m.optional ? 'optional: true, ' : ''}fields: [${m.fields.map(fieldLit).join(', ')}] },`,
    );
  }
  out.push('};', '');

  const svcNames = [...services.keys()].sort();
  out.push('/** Request → reply (or details stream) and events, from the files\' `services`. */');
  out.push('export const VPP_SERVICES = {');
  for (const n of svcNames) {
    const s = services.get(n)!;
    const parts = [`reply: ${q(s.reply)}`];
    if (s.stream) parts.push('stream: true');
    if (s.events.length > 0) parts.push(`events: [${s.events.map(q).join(', ')}]`);
    out.push(`  ${n}: { ${parts.join(', ')} },`);
  }
  out.push('} as const satisfies Readonly<Record<string, VppServiceDef>>;', '');

  // Enum constants.
  out.push('// ---- enum values');
  for (const n of typeNames) {
    const d = types.get(n)!;
    if (d.kind !== 'enum') continue;
    out.push(`/** ${n} (${d.flags ? 'enumflags' : 'enum'}, ${d.base} on the wire) */`);
    out.push(`export const ${pascal(n)} = { ${d.values.map(([k, v]) => `${k}: ${v}`).join(', ')} } as const;`);
  }
  out.push('');

  // Interfaces for types.
  out.push('// ---- types');
  for (const n of typeNames) {
    const d = types.get(n)!;
    if (d.kind === 'struct') {
      out.push(`export interface ${pascal(n)} {`, ...tsFields(d.fields, types, false, new Set()), '}');
    } else if (d.kind === 'union') {
      out.push(`/** Union: set one member when encoding; decoding fills every member from the same bytes. */`);
      out.push(`export interface ${pascal(n)} {`, ...tsFields(d.members, types, true, new Set()), '}');
    } else if (d.kind === 'alias') {
      const f: Field = { name: n, type: d.type };
      if (d.length !== undefined) f.length = d.length;
      out.push(`export type ${pascal(n)} = ${tsFieldType(f, types)};`);
    }
  }
  out.push('');

  out.push('// ---- messages (without _vl_msg_id, which the codec writes from the message table)');
  for (const n of msgNames) {
    const m = messages.get(n)!;
    out.push(`/** ${n} (${m.module} ${m.version}) CRC ${m.crc}${m.deprecated ? ' (deprecated)' : ''}${m.optional ? ' (optional: not required at connect)' : ''} */`);
    out.push(`export interface ${pascal(n)} {`, ...tsFields(m.fields, types, false, new Set(['_vl_msg_id'])), '}');
  }
  out.push('');
  out.push('export interface VppMessageTypes {');
  for (const n of msgNames) out.push(`  ${n}: ${pascal(n)};`);
  out.push('}', '');
  return { text: out.join('\n'), skipped: model.skipped };
}

/** Names of the messages (and types) whose generated lines differ between two versions of the file. */
export function diffGenerated(committed: string, fresh: string): string[] {
  const grab = (text: string, start: string): Map<string, string> => {
    const map = new Map<string, string>();
    const i = text.indexOf(start);
    if (i < 0) return map;
    const end = text.indexOf('\n};', i);
    for (const line of text.slice(i, end < 0 ? undefined : end).split('\n').slice(1)) {
      const m = /^ {2}(\w+): /.exec(line);
      if (m) map.set(m[1]!, line);
    }
    return map;
  };
  const diffs: string[] = [];
  const cmp = (label: string, a: Map<string, string>, b: Map<string, string>): void => {
    for (const k of new Set([...a.keys(), ...b.keys()])) {
      if (!a.has(k)) diffs.push(`${label} ${k}: missing from the committed file`);
      else if (!b.has(k)) diffs.push(`${label} ${k}: not produced by these API files`);
      else if (a.get(k) !== b.get(k)) {
        const crcA = /crc: '(0x[0-9a-f]+)'/.exec(a.get(k)!)?.[1];
        const crcB = /crc: '(0x[0-9a-f]+)'/.exec(b.get(k)!)?.[1];
        diffs.push(`${label} ${k}: differs${crcA && crcB && crcA !== crcB ? ` (CRC ${crcA} committed, ${crcB} in the API files)` : ''}`);
      }
    }
  };
  cmp('message', grab(committed, 'export const VPP_MESSAGES'), grab(fresh, 'export const VPP_MESSAGES'));
  cmp('type', grab(committed, 'export const VPP_TYPES'), grab(fresh, 'export const VPP_TYPES'));
  if (diffs.length === 0 && committed !== fresh) diffs.push('generated code differs outside the message and type tables');
  return diffs;
}

/** API_JSON_DIR when none is given: $VPP_API_JSON_DIR, else ../shared/vpp-api beside the repository. */
export function defaultApiJsonDir(env: Record<string, string | undefined> = process.env): string {
  const fromEnv = env.VPP_API_JSON_DIR;
  if (fromEnv) return resolve(fromEnv);
  return resolve(fileURLToPath(new URL('..', import.meta.url)), '../shared/vpp-api');
}

function main(argv: string[]): number {
  let dir = defaultApiJsonDir();
  let out = fileURLToPath(new URL('../src/vpp/defs.generated.ts', import.meta.url));
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--check') check = true;
    else if (a === '--out') {
      const v = argv[++i];
      if (!v) {
        process.stderr.write('--out needs a file\n');
        return 2;
      }
      out = resolve(v);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node tools/gen-vpp-defs.ts [API_JSON_DIR] [--out FILE] [--check]\n');
      return 0;
    } else if (a.startsWith('-')) {
      process.stderr.write(`unknown option ${a}\n`);
      return 2;
    } else dir = resolve(a);
  }
  let fresh: { text: string; skipped: string[] };
  try {
    fresh = generateVppDefs(dir);
  } catch (e) {
    process.stderr.write(`gen-vpp-defs: ${(e as Error).message}\n`);
    return 1;
  }
  if (check) {
    const committed = existsSync(out) ? readFileSync(out, 'utf8') : '';
    if (committed === fresh.text) {
      process.stdout.write(`${out} matches ${dir}\n`);
      return 0;
    }
    process.stderr.write(`${out} does not match the API files in ${dir}:\n`);
    for (const d of diffGenerated(committed, fresh.text)) process.stderr.write(`  ${d}\n`);
    return 1;
  }
  writeFileSync(out, fresh.text);
  process.stdout.write(`wrote ${out}${fresh.skipped.length ? ` (not in these files: ${fresh.skipped.join(', ')})` : ''}\n`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}

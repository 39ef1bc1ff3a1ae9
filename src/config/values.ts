/**
 * The value types of the configuration keys. Each reads the text of a key (set and not empty),
 * reports what is wrong with it at the value (FILE:LINE:COL), and says how the reference
 * (conf/REFERENCE.md) names the type and shows a default. The key tables in schema.ts give every key
 * one of these; a new kind of value is one more function here.
 */
import { parseIp, canonicalIp, formatIp, isIPv4, isIPv4Block, parseAddressBlock, parseTrafficSelector, TsError } from './ts.ts';
import { ID_ANY, identityHasWildcards } from './identity.ts';
import type { Identity } from './identity.ts';
import { show, valueLocAt } from './parse.ts';
import type { ConfKey } from './parse.ts';
import type { ProposalSpec, SourceLocation } from './types.ts';

/** What a value type needs from the loader: error reporting and the loader's caches. */
export interface ReadContext {
  err(loc: SourceLocation, message: string): void;
  /** A parsed identity (cached), or undefined when invalid (reported; `quiet`: without quoting the value). */
  identity(text: string, loc: SourceLocation, quiet?: boolean): Identity | undefined;
  /** Validated proposals of a key (cached by text). */
  proposals(k: ConfKey, protocol: 'ike' | 'esp'): ProposalSpec[];
  /** A path resolved against the directory of the file naming it; reported when it is not a readable file. */
  filePath(item: ListItem, what: string, quiet?: boolean): string;
}

export interface ValueType<T> {
  /** The type as the reference names it. */
  readonly doc: string;
  /** A value as the reference shows it (defaults). */
  show(v: T): string;
  /**
   * Reads a value that is set and not empty. Problems are reported through `ctx`; the result is then
   * undefined (the key's default applies), or for lists the elements that were valid.
   */
  read(k: ConfKey, ctx: ReadContext): T | undefined;
}

export const MAX_U32 = 0xffffffff;

/** Freezes an object and everything in it (Buffers stay mutable: typed arrays cannot be frozen). */
export function deepFreeze<T>(o: T): T {
  if (o === null || typeof o !== 'object' || Buffer.isBuffer(o) || Object.isFrozen(o)) return o;
  for (const k in o) deepFreeze(o[k]);
  return Object.freeze(o);
}

/** One element of a comma-separated value; its location is computed only when needed (errors). */
export class ListItem {
  readonly text: string;
  readonly key: ConfKey;
  readonly offset: number;
  constructor(text: string, key: ConfKey, offset: number) {
    this.text = text;
    this.key = key;
    this.offset = offset;
  }
  get loc(): SourceLocation {
    return valueLocAt(this.key, this.offset);
  }
}

/** The elements of a comma-separated value with their own locations; empty elements are reported. */
export function splitList(k: ConfKey, ctx: Pick<ReadContext, 'err'>): ListItem[] {
  const v = k.value;
  if (v.indexOf(',') === -1) return [new ListItem(v, k, 0)]; // the common case: one element, already trimmed
  const out: ListItem[] = [];
  let start = 0;
  for (;;) {
    const comma = v.indexOf(',', start);
    const end = comma === -1 ? v.length : comma;
    const raw = v.slice(start, end);
    const lead = raw.length - raw.trimStart().length;
    const text = raw.trim();
    if (text === '') ctx.err(valueLocAt(k, start), `empty element in the list of '${k.name}'`);
    else out.push(new ListItem(text, k, start + lead));
    if (comma === -1) break;
    start = comma + 1;
  }
  return out;
}

const text = String;
const joined = (v: readonly string[]): string => v.join(', ');
const code = (s: string): string => `\`${s}\``;

/** Seconds as the shortest duration that writes them exactly (3600 → 1h). */
export function formatDuration(s: number): string {
  if (s === 0) return '0';
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['m', 60]] as const) if (s % n === 0) return `${s / n}${unit}`;
  return `${s}s`;
}

export const bool: ValueType<boolean> = {
  doc: 'boolean',
  show: (v) => (v ? 'yes' : 'no'),
  read(k, ctx) {
    const v = k.value.toLowerCase();
    if (v === 'yes' || v === 'true' || v === 'enabled' || v === '1') return true;
    if (v === 'no' || v === 'false' || v === 'disabled' || v === '0') return false;
    ctx.err(k.valueLoc, `'${k.name}' must be yes or no, not '${show(k.value)}'`);
    return undefined;
  },
};

/** A whole number in min..max; `what` names it in the error for text that is not one. */
export function uint(min: number, max: number, what = 'a number', doc = `number ${min}..${max}`): ValueType<number> {
  return {
    doc,
    show: text,
    read(k, ctx) {
      if (!/^[0-9]{1,10}$/.test(k.value)) {
        ctx.err(k.valueLoc, `'${k.name}' must be ${what}, not '${show(k.value)}'`);
        return undefined;
      }
      const v = Number(k.value);
      if (v < min || v > max) {
        ctx.err(k.valueLoc, `'${k.name}' = ${v} is out of range (${min}..${max})`);
        return undefined;
      }
      return v;
    },
  };
}

export const port = uint(1, 65535, 'a port number', 'port');

/** A decimal number such as 1.8 in min..max (`unit` seconds: a trailing 's' is accepted either way). */
export function decimal(min: number, max: number, unit = ''): ValueType<number> {
  return {
    doc: `decimal${unit ? ` ${unit}` : ''} ${min}..${max}`,
    show: text,
    read(k, ctx) {
      const m = /^([0-9]{1,6}(?:\.[0-9]{1,6})?)s?$/.exec(k.value);
      if (!m) {
        ctx.err(k.valueLoc, `'${k.name}' must be a decimal number, not '${show(k.value)}'`);
        return undefined;
      }
      const v = Number(m[1]);
      if (v < min || v > max) {
        ctx.err(k.valueLoc, `'${k.name}' = ${v} is out of range (${min}..${max})`);
        return undefined;
      }
      return v;
    },
  };
}

const DURATION_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };
const DURATION_RE = /^([0-9]{1,10})[ \t]*([smhdSMHD]?)$/;

/** Seconds, written as 30s, 5m, 4h, 1d or a bare number; with bounds, a value outside them is reported. */
export function durationIn(min?: number, max?: number): ValueType<number> {
  return {
    doc: min === undefined || max === undefined ? 'duration' : `duration ${formatDuration(min)}..${formatDuration(max)}`,
    show: formatDuration,
    read(k, ctx) {
      const m = DURATION_RE.exec(k.value);
      if (!m) {
        ctx.err(k.valueLoc, `'${k.name}' must be a duration such as 30s, 5m, 4h or 1d, not '${show(k.value)}'`);
        return undefined;
      }
      const v = Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!;
      if (v > MAX_U32) {
        ctx.err(k.valueLoc, `'${k.name}' is too long (at most ${MAX_U32} seconds)`);
        return undefined;
      }
      if (min !== undefined && max !== undefined && (v < min || v > max)) {
        ctx.err(k.valueLoc, `'${k.name}' = ${v}s is out of range (${min}s..${max}s)`);
        return undefined;
      }
      return v;
    },
  };
}

export const duration = durationIn();

const VOLUME_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * A count of bytes or packets (CHILD_SA volume lifetimes): a bare number, and for bytes also with
 * strongSwan's binary suffixes `k`, `m`, `g` (1024, 1024², 1024³). At most 2^53 − 1.
 */
export function volume(unit: 'bytes' | 'packets'): ValueType<number> {
  const re = unit === 'bytes' ? /^([0-9]{1,16})[ \t]*([kmgKMG]?)$/ : /^([0-9]{1,16})()$/;
  return {
    doc: unit === 'bytes' ? 'bytes (suffix `k`, `m`, `g`: ×1024, ×1024², ×1024³)' : 'packets',
    show: (v) => String(v),
    read(k, ctx) {
      const m = re.exec(k.value);
      if (!m) {
        const example = unit === 'bytes' ? ' such as 500000, 512k, 100m or 2g' : '';
        ctx.err(k.valueLoc, `'${k.name}' must be a number of ${unit}${example}, not '${show(k.value)}'`);
        return undefined;
      }
      const v = Number(m[1]) * VOLUME_UNITS[m[2]!.toLowerCase()]!;
      if (!Number.isSafeInteger(v)) {
        ctx.err(k.valueLoc, `'${k.name}' is too large (at most ${Number.MAX_SAFE_INTEGER} ${unit})`);
        return undefined;
      }
      return v;
    },
  };
}

/**
 * A keyword (any case) from `options`, which maps each accepted word to its value (aliases map to
 * the same value). `invalid` words the error for other text; by default it lists the values.
 */
/** `auto`, or a number min..max. */
export function autoOrUint(min: number, max: number): ValueType<number | 'auto'> {
  const n = uint(min, max);
  return {
    doc: `\`auto\` or number ${min}..${max}`,
    show: text,
    read(k, ctx) {
      if (k.value.toLowerCase() === 'auto') return 'auto';
      if (!/^[0-9]{1,10}$/.test(k.value)) {
        ctx.err(k.valueLoc, `'${k.name}' must be auto or a number, not '${show(k.value)}'`);
        return undefined;
      }
      return n.read(k, ctx);
    },
  };
}

export function oneOf<const T extends string>(options: Readonly<Record<string, T>>, invalid?: (k: ConfKey) => string): ValueType<T> {
  const values = [...new Set(Object.values(options))];
  const listed = values.join(', ');
  const doc = values
    .map((v) => {
      const aliases = Object.keys(options).filter((w) => w !== v && options[w] === v);
      return aliases.length ? `${code(v)} (alias ${aliases.map(code).join(', ')})` : code(v);
    })
    .join(', ');
  return {
    doc,
    show: text,
    read(k, ctx) {
      const word = k.value.toLowerCase();
      if (Object.hasOwn(options, word)) return options[word]!;
      ctx.err(k.valueLoc, invalid ? invalid(k) : `'${k.name}' must be one of ${listed}, not '${show(k.value)}'`);
      return undefined;
    },
  };
}

/** Text as written (a path, a socket). */
export function textOf(doc: string): ValueType<string> {
  return { doc, show: text, read: (k) => k.value };
}

export const path = textOf('path');

const IFNAME_RE = /^[A-Za-z0-9_./:-]{1,63}$/;

/** A VPP interface name as `show interface` prints it. */
export const interfaceName: ValueType<string> = {
  doc: 'VPP interface name',
  show: text,
  read(k, ctx) {
    if (IFNAME_RE.test(k.value)) return k.value;
    ctx.err(k.valueLoc, `'${k.name}' must be a VPP interface name (letters, digits, _ . / : -), not '${show(k.value)}'`);
    return undefined;
  },
};

/** ADDRESS:PORT or [IPv6]:PORT, kept as written. */
export const hostPort: ValueType<string> = {
  doc: '`ADDRESS:PORT` (`[v6]:PORT`)',
  show: text,
  read(k, ctx) {
    const m = /^\[([^\]]+)\]:([0-9]{1,5})$/.exec(k.value) ?? /^([^:]+):([0-9]{1,5})$/.exec(k.value);
    if (!m || !parseIp(m[1]!) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      ctx.err(k.valueLoc, `'${k.name}' must be ADDRESS:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), not '${show(k.value)}'`);
      return undefined;
    }
    return k.value;
  },
};

/** A list of IP addresses, canonical, each once. */
export const ipList: ValueType<string[]> = {
  doc: 'list of addresses',
  show: joined,
  read(k, ctx) {
    const out: string[] = [];
    for (const it of splitList(k, ctx)) {
      const ip = canonicalIp(it.text);
      if (!ip) ctx.err(it.loc, `'${show(it.text)}' is not an IP address`);
      else if (out.includes(ip)) ctx.err(it.loc, `'${show(it.text)}' is listed twice`);
      else out.push(ip);
    }
    return out;
  },
};

/** Whether an element of an address list (as addressList writes it) is a single address. */
export function isHostAddress(a: string): boolean {
  return !a.includes('/') && !a.includes('-');
}

/**
 * local_addrs / remote_addrs: addresses, subnets, ranges; %any (alone, giving the empty list), %any4,
 * %any6. Single addresses come out canonical, subnets as ADDRESS/LEN, ranges as FROM-TO.
 */
export const addressList: ValueType<string[]> = {
  doc: 'list of addresses',
  show: joined,
  read(k, ctx) {
    const items = splitList(k, ctx);
    const list: string[] = [];
    for (const it of items) {
      if (it.text === '%any') {
        if (items.length > 1) ctx.err(it.loc, `'%any' cannot be combined with other entries in '${k.name}'`);
        continue;
      }
      if (it.text === '%any4') {
        list.push('0.0.0.0/0');
        continue;
      }
      if (it.text === '%any6') {
        list.push('::/0');
        continue;
      }
      if (isIPv4(it.text)) {
        list.push(it.text); // already canonical
        continue;
      }
      try {
        const b = parseAddressBlock(it.text);
        const start = formatIp(b.start);
        const end = formatIp(b.end);
        if (start === end && !it.text.includes('/') && !it.text.includes('-')) list.push(start);
        else if (it.text.includes('-')) list.push(`${start}-${end}`);
        else list.push(`${start}/${Number(it.text.slice(it.text.indexOf('/') + 1))}`);
      } catch (e) {
        if (!(e instanceof TsError)) throw e;
        const hostname = /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(it.text) && /[A-Za-z]/.test(it.text);
        ctx.err(
          it.loc,
          hostname
            ? `'${show(it.text)}' in '${k.name}': host names are not supported, use IP addresses`
            : `'${show(it.text)}' in '${k.name}' is not an IP address, subnet or range: ${e.message}`,
        );
      }
    }
    return list;
  },
};

/** Traffic selectors, kept as written; invalid ones are reported and left out. */
export const tsList: ValueType<string[]> = {
  doc: 'list of traffic selectors',
  show: joined,
  read(k, ctx) {
    const out: string[] = [];
    for (const it of splitList(k, ctx)) {
      try {
        if (!isIPv4Block(it.text)) parseTrafficSelector(it.text);
        out.push(it.text);
      } catch (e) {
        if (!(e instanceof TsError)) throw e;
        ctx.err(it.loc, `invalid traffic selector in '${k.name}': ${e.message}`);
      }
    }
    return out;
  },
};

/** IKE or ESP proposals (strongSwan syntax); any invalid element makes the list empty. */
export function proposalList(protocol: 'ike' | 'esp'): ValueType<ProposalSpec[]> {
  return { doc: 'proposals', show: () => 'default', read: (k, ctx) => ctx.proposals(k, protocol) };
}

/**
 * An identity, kept as written (the loader keeps the parsed form). `noWildcards` names the key in
 * the error for an identity with wildcards; `quiet` (the secrets section): errors do not quote it.
 */
export function identity(opts: { noWildcards?: string; quiet?: boolean } = {}): ValueType<string> {
  return {
    doc: opts.noWildcards ? 'identity (no wildcards)' : 'identity, wildcards allowed',
    show: text,
    read(k, ctx) {
      const id = ctx.identity(k.value, k.valueLoc, opts.quiet);
      if (id && opts.noWildcards && id.type !== ID_ANY && identityHasWildcards(id)) {
        ctx.err(k.valueLoc, `${opts.noWildcards} '${show(k.value)}' contains wildcards; it must name this host`);
      }
      return k.value;
    },
  };
}

/** Paths of files that must exist, relative to the file the key is in. */
export function fileList(what: string): ValueType<string[]> {
  return { doc: 'list of file paths', show: joined, read: (k, ctx) => splitList(k, ctx).map((it) => ctx.filePath(it, what)) };
}

/** One path of a file that must exist; `quiet` (the secrets section): errors do not quote it. */
export function file(what: string, quiet = false): ValueType<string> {
  return { doc: 'file path', show: text, read: (k, ctx) => ctx.filePath(new ListItem(k.value, k, 0), what, quiet) };
}

/** Only `value` is accepted; `message` words the error for anything else. */
export function only(value: string, message: (k: ConfKey) => string): ValueType<string> {
  return {
    doc: code(value),
    show: text,
    read(k, ctx) {
      if (k.value === value) return value;
      ctx.err(k.valueLoc, message(k));
      return undefined;
    },
  };
}

/** Decodes a PSK as strongSwan does: "0x" hex, "0s" base64, anything else taken as text; a string says what is wrong. */
export function decodeSecret(s: string): Buffer | string {
  if (/^0x/i.test(s)) {
    const hex = s.slice(2).replace(/:/g, '');
    if (hex === '' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) return 'is not valid hex after "0x"';
    return Buffer.from(hex, 'hex');
  }
  if (/^0s/i.test(s)) {
    const b64 = s.slice(2);
    if (b64 === '' || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return 'is not valid base64 after "0s"';
    return Buffer.from(b64, 'base64');
  }
  return Buffer.from(s, 'utf8');
}

/** A pre-shared key (see decodeSecret); errors never quote it. */
export const psk: ValueType<Buffer> = {
  doc: 'string',
  show: () => '',
  read(k, ctx) {
    const bytes = decodeSecret(k.value);
    if (typeof bytes === 'string') ctx.err(k.valueLoc, `the value of '${k.name}' ${bytes}`);
    else if (bytes.length === 0) ctx.err(k.valueLoc, `the value of '${k.name}' decodes to nothing`);
    else return bytes;
    return undefined;
  },
};

/**
 * The config loader: file → parse tree (parse.ts) → validated, frozen Config (types.ts).
 *
 * Sections that repeat merge as in strongSwan (a key set again in a later block replaces the earlier
 * value); a key set twice in the same block of the same file is reported as a duplicate. Every
 * problem becomes a ConfigError "FILE:LINE:COL: message"; all of them are collected, sorted by file,
 * line and column, and a Config is returned only when there are none. Secret values never appear in
 * messages: nothing written on a line of the secrets section is quoted, except the names that section
 * is made of (ike-NAME, secret, id, ...). The keys, their types and defaults are documented in
 * conf/REFERENCE.md. Settings the daemon cannot run yet (certificate authentication, trap actions,
 * transport mode on ipsec interfaces) are errors, not silently ignored.
 */
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseProposals, ProposalError } from '../ikev2/crypto/proposals.ts';
import type { VppMode } from '../dataplane/types.ts';
import { ConfigError, isSecretsSectionName, MAX_ERRORS, onSecretLine, parseConfigFile, parseConfigText, show, valueLocAt } from './parse.ts';
import type { ConfKey, ConfNode, ParsedConfig, SecretLines } from './parse.ts';
import { ID_ANY, identityHasWildcards, identityMatchesParsed, IdentityError, parseIdentity } from './identity.ts';
import type { Identity } from './identity.ts';
import { canonicalIp, formatIp, isIPv4, isIPv4Block, parseAddressBlock, parseIp, parseTrafficSelector, TsError } from './ts.ts';
import type {
  AuthConfig,
  ChildConfig,
  Config,
  ConnectionConfig,
  DaemonConfig,
  ProposalSpec,
  SecretConfig,
  SourceLocation,
  VppConfig,
} from './types.ts';

export { ConfigError } from './parse.ts';

/** Defaults (strongSwan's swanctl.conf defaults where the key comes from there). */
export const DEFAULTS = {
  daemon: {
    listen: ['0.0.0.0', '::'],
    port: 500,
    portNatT: 4500,
    controlSocket: '/run/vpp-iked/control.sock',
    logLevel: 'info',
    ikeSaLimit: 60000,
    dataplane: 'vpp' as const,
    stopTimeout: 10,
    stopAction: 'delete' as const,
    retransmitTimeout: 4,
    retransmitBase: 1.8,
    retransmitTries: 5,
  },
  vpp: { socket: '/run/vpp/api.sock' },
  ikeRekeyTime: 4 * 3600,
  childRekeyTime: 3600,
  remotePort: 500,
  replayWindow: 32,
  keyingtries: 1,
} as const;

/** Largest replay_window accepted (packets). */
export const MAX_REPLAY_WINDOW = 65536;
/** VPP has ipsec interface instances 0..16383 (ipsec0 .. ipsec16383). */
export const MAX_IPSEC_INSTANCE = 16383;
/** Said instead of a name that stands on a line of the secrets section. */
const HIDDEN = 'not shown: it is in the secrets section, where a misplaced line can be a secret';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LOG_LEVEL_MAP: Record<string, string> = Object.fromEntries(LOG_LEVELS.map((l) => [l, l]));
// keyword → value maps (aliases as strongSwan's vici parse_action and friends); `trap` (alias
// `route`) is recognised and refused: trap policies are not implemented yet
const START_ACTIONS = { none: 'none', start: 'start' } as const;
const CLOSE_ACTIONS = { none: 'none', clear: 'none', start: 'start', restart: 'start' } as const;
const DPD_ACTIONS = { clear: 'clear', none: 'clear', restart: 'restart', start: 'restart' } as const;
const TRAP_WORDS: ReadonlySet<string> = new Set(['trap', 'route']);
const VPP_MODES = { p2p: 'p2p', p2mp: 'p2mp', policy: 'policy' } as const;
const FRAGMENTATION = { yes: 'yes', no: 'no', accept: 'accept', force: 'force' } as const;
const UNIQUE = { no: 'no', never: 'never', keep: 'keep', replace: 'replace' } as const;
const SEND_CERT = { always: 'always', never: 'never', ifasked: 'ifasked' } as const;
const DATAPLANES = { vpp: 'vpp', memory: 'memory' } as const;
const STOP_ACTIONS = { delete: 'delete', keep: 'keep' } as const;
/** Bounds of daemon.stop_timeout (seconds). */
const STOP_TIMEOUT_MIN = 1;
const STOP_TIMEOUT_MAX = 3600;
const DURATION_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };
const DURATION_RE = /^([0-9]{1,10})[ \t]*([smhdSMHD]?)$/;
const MAX_U32 = 0xffffffff;

/** All blocks of one section name at one place in the tree (sections that repeat are merged). */
interface Blocks {
  name: string;
  /** Where the first block starts. */
  loc: SourceLocation;
  nodes: ConfNode[];
}

/**
 * One level of a section after merging its blocks: its keys, and its subsections (still as blocks,
 * opened when the loader gets to them, so that the maps of 10,000 connections never all live at once).
 */
interface MSec {
  name: string;
  loc: SourceLocation;
  keys: Map<string, ConfKey>;
  secs: Map<string, Blocks>;
}

const NO_SECTIONS: Map<string, Blocks> = new Map();

/** One element of a comma-separated value; its location is computed only when needed (errors). */
class ListItem {
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

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

function suggest(name: string, known: readonly string[]): string {
  if (name.length > 40) return '';
  let best = '';
  let bestD = Infinity;
  for (const k of known) {
    const d = levenshtein(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== '' && bestD <= Math.max(1, Math.floor(best.length / 3)) ? ` (did you mean '${best}'?)` : '';
}

function deepFreeze<T>(o: T): T {
  if (o === null || typeof o !== 'object' || Buffer.isBuffer(o) || Object.isFrozen(o)) return o;
  for (const k in o) deepFreeze(o[k]);
  return Object.freeze(o);
}

/** Freezes a connection and everything in it (proposal lists are frozen when cached). */
function freezeConnection(c: ConnectionConfig): void {
  Object.freeze(c.localAddrs);
  Object.freeze(c.remoteAddrs);
  Object.freeze(c.local.certs);
  Object.freeze(c.local.cacerts);
  Object.freeze(c.local);
  Object.freeze(c.remote.certs);
  Object.freeze(c.remote.cacerts);
  Object.freeze(c.remote);
  for (const ch of c.children) {
    Object.freeze(ch.localTs);
    Object.freeze(ch.remoteTs);
    Object.freeze(ch.loc);
    Object.freeze(ch);
  }
  Object.freeze(c.children);
  Object.freeze(c.loc);
  Object.freeze(c);
}

/** Whether a stat'ed path is a readable regular file; the reason otherwise. */
function fileProblem(path: string, cache: Map<string, string>): string {
  const hit = cache.get(path);
  if (hit !== undefined) return hit;
  let problem = '';
  try {
    const st = statSync(path);
    if (st.isDirectory()) problem = 'is a directory';
    else if (!st.isFile()) problem = 'is not a regular file';
  } catch (e) {
    const code = (e as { code?: string }).code;
    problem = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${code})`;
  }
  cache.set(path, problem);
  return problem;
}

/** Decodes a PSK as strongSwan does: "0x" hex, "0s" base64, anything else taken as text. */
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

const CONN_KEYS = [
  'local_addrs',
  'remote_addrs',
  'local_port',
  'remote_port',
  'proposals',
  'encap',
  'dpd_delay',
  'dpd_timeout',
  'rekey_time',
  'reauth_time',
  'over_time',
  'rand_time',
  'fragmentation',
  'unique',
  'send_cert',
  'send_certreq',
  'mobike',
  'keyingtries',
  'version',
] as const;
const CONN_SECTIONS = ['local', 'remote', 'children'] as const;
const CHILD_KEYS = [
  'local_ts',
  'remote_ts',
  'esp_proposals',
  'mode',
  'start_action',
  'close_action',
  'dpd_action',
  'rekey_time',
  'life_time',
  'rand_time',
  'replay_window',
  'vpp_mode',
  'vpp_interface',
  'vpp_table',
  'vpp_routes',
] as const;
const CONN_KEY_SET: ReadonlySet<string> = new Set(CONN_KEYS);
const CHILD_KEY_SET: ReadonlySet<string> = new Set(CHILD_KEYS);
const DAEMON_KEYS = [
  'listen',
  'port',
  'port_nat_t',
  'control_socket',
  'log_level',
  'ike_sa_limit',
  'metrics',
  'dataplane',
  'stop_timeout',
  'stop_action',
  'retransmit_timeout',
  'retransmit_base',
  'retransmit_tries',
] as const;

class Loader {
  readonly errors: ConfigError[] = [];
  /** Lines of the secrets section (from the parser): text on them is not quoted in messages. */
  secretLines: SecretLines = new Map();
  private readonly proposalCache = new Map<string, ProposalSpec[] | undefined>();
  private readonly fileCache = new Map<string, string>();
  private readonly idCache = new Map<string, Identity | string>();

  /** Errors beyond MAX_ERRORS are counted, not kept. */
  dropped = 0;

  err(loc: SourceLocation, message: string): void {
    if (this.errors.length >= MAX_ERRORS) this.dropped++;
    else this.errors.push(ConfigError.at(loc, message));
  }

  /** Whether the name written at `loc` may be quoted: not on a line of the secrets section, unless one of its own names. */
  shows(name: string, loc: SourceLocation): boolean {
    return isSecretsSectionName(name) || !onSecretLine(this.secretLines, loc);
  }

  // ---- merging -------------------------------------------------------------------------------

  /** Merges the blocks of a section, one level deep (strongSwan: later keys replace earlier ones). */
  open(b: Blocks): MSec {
    const into: MSec = { name: b.name, loc: b.loc, keys: new Map(), secs: NO_SECTIONS };
    for (const node of b.nodes) {
      for (const child of node.children) {
        if (child.kind === 'key') {
          const prev = into.keys.get(child.name);
          // set before in this same block (not in an earlier block of a repeated section, which it overrides)
          if (prev && node.children.includes(prev) && prev.loc.file === child.loc.file) {
            this.err(
              child.loc,
              this.shows(child.name, child.loc)
                ? `duplicate key '${show(child.name)}' (already set at line ${prev.loc.line})`
                : `duplicate key (already set at line ${prev.loc.line}; the name is ${HIDDEN})`,
            );
          }
          if (into.secs.size > 0 && into.secs.has(child.name)) {
            this.err(
              child.loc,
              this.shows(child.name, child.loc)
                ? `'${show(child.name)}' is already a section here; it cannot also be a key`
                : `this name is already a section here; it cannot also be a key (the name is ${HIDDEN})`,
            );
            continue;
          }
          into.keys.set(child.name, child);
        } else {
          if (into.keys.has(child.name)) {
            this.err(
              child.loc,
              this.shows(child.name, child.loc)
                ? `'${show(child.name)}' is already a key here; it cannot also be a section`
                : `this name is already a key here; it cannot also be a section (the name is ${HIDDEN})`,
            );
            continue;
          }
          if (into.secs === NO_SECTIONS) into.secs = new Map();
          const m = into.secs.get(child.name);
          if (m) m.nodes.push(child);
          else into.secs.set(child.name, { name: child.name, loc: child.loc, nodes: [child] });
        }
      }
    }
    return into;
  }

  /** The merged subsection `name` of `sec`, if present. */
  sub(sec: MSec | undefined, name: string): MSec | undefined {
    const b = sec?.secs.get(name);
    return b ? this.open(b) : undefined;
  }

  /** Reports keys and sections of `sec` that the schema does not know. */
  checkKnown(sec: MSec, keys: readonly string[], sections: readonly string[], where: string, keySet?: ReadonlySet<string>): void {
    for (const [name, k] of sec.keys) {
      if (keySet ? keySet.has(name) : keys.includes(name)) continue;
      if (sections.includes(name)) this.err(k.loc, `'${show(name)}' is a section in ${where}: write ${show(name)} { ... }`);
      else if (this.shows(name, k.loc)) this.err(k.loc, `unknown key '${show(name)}' in ${where}${suggest(name, keys)}`);
      else this.err(k.loc, `unknown key in ${where}${suggest(name, keys)} (the name is ${HIDDEN})`);
    }
    for (const [name, s] of sec.secs) {
      if (sections.includes(name)) continue;
      if (keys.includes(name)) this.err(s.loc, `'${show(name)}' is a key in ${where}: write ${show(name)} = value`);
      else if (this.shows(name, s.loc)) this.err(s.loc, `unknown section '${show(name)}' in ${where}${suggest(name, sections)}`);
      else this.err(s.loc, `unknown section in ${where}${suggest(name, sections)} (the name is ${HIDDEN})`);
    }
  }

  // ---- typed values --------------------------------------------------------------------------

  /** The key if set with a non-empty value; an empty value is reported. */
  key(sec: MSec | undefined, name: string): ConfKey | undefined {
    const k = sec?.keys.get(name);
    if (!k) return undefined;
    if (k.value === '') {
      this.err(
        k.valueLoc,
        this.shows(name, k.loc)
          ? `empty value for '${show(name)}' (remove the line to get the default)`
          : `empty value (remove the line to get the default; the key's name is ${HIDDEN})`,
      );
      return undefined;
    }
    return k;
  }

  bool(sec: MSec | undefined, name: string, def: boolean): boolean {
    const k = this.key(sec, name);
    if (!k) return def;
    const v = k.value.toLowerCase();
    if (v === 'yes' || v === 'true' || v === 'enabled' || v === '1') return true;
    if (v === 'no' || v === 'false' || v === 'disabled' || v === '0') return false;
    this.err(k.valueLoc, `'${name}' must be yes or no, not '${show(k.value)}'`);
    return def;
  }

  uint(sec: MSec | undefined, name: string, def: number, min: number, max: number, what = 'a number'): number {
    const k = this.key(sec, name);
    if (!k) return def;
    if (!/^[0-9]{1,10}$/.test(k.value)) {
      this.err(k.valueLoc, `'${name}' must be ${what}, not '${show(k.value)}'`);
      return def;
    }
    const v = Number(k.value);
    if (v < min || v > max) {
      this.err(k.valueLoc, `'${name}' = ${v} is out of range (${min}..${max})`);
      return def;
    }
    return v;
  }

  /** A decimal number such as 1.8 (seconds for timeouts: a trailing 's' is accepted). */
  decimal(sec: MSec | undefined, name: string, def: number, min: number, max: number): number {
    const k = this.key(sec, name);
    if (!k) return def;
    const m = /^([0-9]{1,6}(?:\.[0-9]{1,6})?)s?$/.exec(k.value);
    if (!m) {
      this.err(k.valueLoc, `'${name}' must be a decimal number, not '${show(k.value)}'`);
      return def;
    }
    const v = Number(m[1]);
    if (v < min || v > max) {
      this.err(k.valueLoc, `'${name}' = ${v} is out of range (${min}..${max})`);
      return def;
    }
    return v;
  }

  port(sec: MSec | undefined, name: string, def: number): number {
    return this.uint(sec, name, def, 1, 65535, 'a port number');
  }

  /** Seconds, or undefined when not set (or invalid, which is reported). */
  duration(sec: MSec | undefined, name: string): number | undefined {
    const k = this.key(sec, name);
    if (!k) return undefined;
    const m = DURATION_RE.exec(k.value);
    if (!m) {
      this.err(k.valueLoc, `'${name}' must be a duration such as 30s, 5m, 4h or 1d, not '${show(k.value)}'`);
      return undefined;
    }
    const v = Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!;
    if (v > MAX_U32) {
      this.err(k.valueLoc, `'${name}' is too long (at most ${MAX_U32} seconds)`);
      return undefined;
    }
    return v;
  }

  choice<T extends string>(sec: MSec | undefined, name: string, options: Readonly<Record<string, T>>, def: T): T {
    const k = this.key(sec, name);
    if (!k) return def;
    const word = k.value.toLowerCase();
    if (Object.hasOwn(options, word)) return options[word]!;
    const listed = [...new Set(Object.values(options))].join(', ');
    this.err(k.valueLoc, `'${name}' must be one of ${listed}, not '${show(k.value)}'`);
    return def;
  }

  /** start_action / close_action / dpd_action: as choice(), with `trap` (alias `route`) refused as not implemented. */
  action<T extends string>(sec: MSec, name: string, options: Readonly<Record<string, T>>, def: T, supported: string): T {
    const k = sec.keys.get(name);
    if (k && TRAP_WORDS.has(k.value.toLowerCase())) {
      this.err(k.valueLoc, `${name} = ${k.value.toLowerCase()} is not supported yet (trap policies are not implemented); use ${supported}`);
      return def;
    }
    return this.choice(sec, name, options, def);
  }

  str(sec: MSec | undefined, name: string, def: string): string {
    return this.key(sec, name)?.value ?? def;
  }

  /** Comma-separated list elements with their own locations; undefined when the key is not set. */
  list(sec: MSec | undefined, name: string): ListItem[] | undefined {
    const k = this.key(sec, name);
    if (!k) return undefined;
    return this.splitList(k);
  }

  splitList(k: ConfKey): ListItem[] {
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
      if (text === '') this.err(valueLocAt(k, start), `empty element in the list of '${k.name}'`);
      else out.push(new ListItem(text, k, start + lead));
      if (comma === -1) break;
      start = comma + 1;
    }
    return out;
  }

  /** A parsed identity; in secrets sections (`quiet`) the error does not quote the value. */
  identity(text: string, loc: SourceLocation, quiet = false): Identity | undefined {
    let hit = this.idCache.get(text);
    if (hit === undefined) {
      try {
        hit = parseIdentity(text);
      } catch (e) {
        if (!(e instanceof IdentityError)) throw e;
        hit = `invalid identity: ${e.message}`;
      }
      this.idCache.set(text, hit);
    }
    if (typeof hit === 'string') {
      // a mistyped line in a secrets section ("id = x secret = y") must not put the secret in a message
      this.err(loc, quiet ? 'invalid identity (the value is not shown because it is in the secrets section)' : hit);
      return undefined;
    }
    return hit;
  }

  /** Validated proposals: each list element separately so that errors point at it. */
  proposals(k: ConfKey | undefined, protocol: 'ike' | 'esp'): ProposalSpec[] {
    const text = k?.value ?? 'default';
    const cacheKey = `${protocol}\n${text}`;
    if (this.proposalCache.has(cacheKey)) {
      const hit = this.proposalCache.get(cacheKey);
      if (hit) return hit;
    }
    const out: ProposalSpec[] = [];
    let ok = true;
    if (!k) {
      out.push(...parseProposals('default', protocol));
    }
    const items = k ? this.splitList(k) : [];
    if (k && items.length !== k.value.split(',').length) ok = false;
    for (const item of items) {
      try {
        out.push(...parseProposals(item.text, protocol));
      } catch (e) {
        if (!(e instanceof ProposalError)) throw e;
        ok = false;
        let loc = item.loc;
        const named = /'([^']+)'/.exec(e.message)?.[1];
        if (named && named !== item.text) {
          const at = item.text.toLowerCase().indexOf(named.toLowerCase());
          if (at > 0) loc = { ...loc, col: loc.col + at };
        }
        this.err(loc, `invalid ${protocol === 'ike' ? 'IKE' : 'ESP'} proposal: ${e.message}`);
      }
    }
    if (!ok) return [];
    deepFreeze(out);
    this.proposalCache.set(cacheKey, out);
    return out;
  }

  /**
   * A path, resolved against the directory of the file that names it; reported when not a readable
   * file. `quiet` (the secrets section): the path is not quoted, it may run into a passphrase.
   */
  filePath(item: ListItem, what: string, quiet = false): string {
    const path = resolve(dirname(item.key.loc.file), item.text);
    const problem = fileProblem(path, this.fileCache);
    if (problem !== '') {
      this.err(item.loc, quiet ? `the ${what} named here ${problem} (the path is not shown: it is in the secrets section)` : `${what} '${show(item.text)}' ${problem}`);
    }
    return path;
  }

  // ---- sections ------------------------------------------------------------------------------

  daemon(sec: MSec | undefined): DaemonConfig {
    if (sec) this.checkKnown(sec, DAEMON_KEYS, [], 'daemon');
    const d = DEFAULTS.daemon;
    let listen: string[] = [...d.listen];
    const items = this.list(sec, 'listen');
    if (items) {
      listen = [];
      for (const it of items) {
        const ip = canonicalIp(it.text);
        if (!ip) this.err(it.loc, `'${show(it.text)}' is not an IP address`);
        else if (listen.includes(ip)) this.err(it.loc, `'${show(it.text)}' is listed twice`);
        else listen.push(ip);
      }
    }
    const port = this.port(sec, 'port', d.port);
    const portNatT = this.port(sec, 'port_nat_t', d.portNatT);
    if (port === portNatT && sec) {
      const k = sec.keys.get('port_nat_t') ?? sec.keys.get('port')!;
      this.err(k.valueLoc, `'port_nat_t' must differ from 'port' (both are ${port})`);
    }
    const controlSocket = this.str(sec, 'control_socket', d.controlSocket);
    const logLevel = this.choice<string>(sec, 'log_level', LOG_LEVEL_MAP, d.logLevel);
    const ikeSaLimit = this.uint(sec, 'ike_sa_limit', d.ikeSaLimit, 1, 10_000_000);
    const dataplane = this.choice(sec, 'dataplane', DATAPLANES, d.dataplane);
    let stopTimeout: number = d.stopTimeout;
    const st = this.duration(sec, 'stop_timeout');
    if (st !== undefined) {
      if (st < STOP_TIMEOUT_MIN || st > STOP_TIMEOUT_MAX) {
        this.err(sec!.keys.get('stop_timeout')!.valueLoc, `'stop_timeout' = ${st}s is out of range (${STOP_TIMEOUT_MIN}s..${STOP_TIMEOUT_MAX}s)`);
      } else stopTimeout = st;
    }
    const stopAction = this.choice(sec, 'stop_action', STOP_ACTIONS, d.stopAction);
    const retransmitTimeout = this.decimal(sec, 'retransmit_timeout', d.retransmitTimeout, 0.1, 300);
    const retransmitBase = this.decimal(sec, 'retransmit_base', d.retransmitBase, 1, 10);
    const retransmitTries = this.uint(sec, 'retransmit_tries', d.retransmitTries, 0, 50);
    const out: DaemonConfig = {
      listen,
      port,
      portNatT,
      controlSocket,
      logLevel,
      ikeSaLimit,
      dataplane,
      stopTimeout,
      stopAction,
      retransmitTimeout,
      retransmitBase,
      retransmitTries,
    };
    const mk = this.key(sec, 'metrics');
    if (mk) {
      const m = /^\[([^\]]+)\]:([0-9]{1,5})$/.exec(mk.value) ?? /^([^:]+):([0-9]{1,5})$/.exec(mk.value);
      if (!m || !parseIp(m[1]!) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
        this.err(mk.valueLoc, `'metrics' must be ADDRESS:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), not '${show(mk.value)}'`);
      } else {
        out.metrics = mk.value;
      }
    }
    return out;
  }

  vpp(sec: MSec | undefined): VppConfig {
    if (sec) this.checkKnown(sec, ['socket', 'unnumbered_interface', 'policy_interface'], [], 'vpp');
    const out: VppConfig = { socket: this.str(sec, 'socket', DEFAULTS.vpp.socket) };
    const unnumbered = this.interfaceName(sec, 'unnumbered_interface');
    if (unnumbered !== undefined) out.unnumberedInterface = unnumbered;
    const policy = this.interfaceName(sec, 'policy_interface');
    if (policy !== undefined) out.policyInterface = policy;
    return out;
  }

  /** A VPP interface name (as `show interface` prints it), or undefined when not set or invalid (reported). */
  interfaceName(sec: MSec | undefined, name: string): string | undefined {
    const k = this.key(sec, name);
    if (!k) return undefined;
    if (!/^[A-Za-z0-9_./:-]{1,63}$/.test(k.value)) {
      this.err(k.valueLoc, `'${name}' must be a VPP interface name (letters, digits, _ . / : -), not '${show(k.value)}'`);
      return undefined;
    }
    return k.value;
  }

  /** local_addrs / remote_addrs: addresses, subnets, ranges; %any (alone), %any4, %any6. */
  addrs(sec: MSec, name: string): { list: string[]; hosts: number } {
    const items = this.list(sec, name);
    const list: string[] = [];
    let hosts = 0;
    if (!items) return { list, hosts };
    for (const it of items) {
      if (it.text === '%any') {
        if (items.length > 1) this.err(it.loc, `'%any' cannot be combined with other entries in '${name}'`);
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
        hosts++;
        continue;
      }
      try {
        const b = parseAddressBlock(it.text);
        const start = formatIp(b.start);
        const end = formatIp(b.end);
        if (start === end && !it.text.includes('/') && !it.text.includes('-')) {
          list.push(start);
          hosts++;
        } else if (it.text.includes('-')) {
          list.push(`${start}-${end}`);
        } else {
          list.push(`${start}/${Number(it.text.slice(it.text.indexOf('/') + 1))}`);
        }
      } catch (e) {
        if (!(e instanceof TsError)) throw e;
        const hostname = /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(it.text) && /[A-Za-z]/.test(it.text);
        this.err(
          it.loc,
          hostname
            ? `'${show(it.text)}' in '${name}': host names are not supported, use IP addresses`
            : `'${show(it.text)}' in '${name}' is not an IP address, subnet or range: ${e.message}`,
        );
      }
    }
    return { list, hosts };
  }

  auth(conn: MSec, side: 'local' | 'remote'): { cfg: AuthConfig; idParsed?: Identity } {
    const sec = this.sub(conn, side);
    const listKey = side === 'local' ? 'certs' : 'cacerts';
    if (sec) this.checkKnown(sec, ['auth', 'id', listKey], [], `${side} of connection '${show(conn.name)}'`);
    // strongSwan's default is pubkey; certificate authentication is not implemented yet, so a side
    // without `auth = psk` is an error either way
    const authKey = this.key(sec, 'auth');
    let auth: 'psk' | 'pubkey' = 'pubkey';
    if (authKey) {
      const v = authKey.value.toLowerCase();
      if (v === 'psk') auth = v;
      else if (v === 'pubkey') this.err(authKey.valueLoc, 'auth = pubkey (certificates) is not supported yet; set auth = psk');
      else this.err(authKey.valueLoc, `auth method '${show(authKey.value)}' is not supported; set auth = psk`);
    } else if (!sec?.keys.has('auth')) {
      this.err(
        sec?.loc ?? conn.loc,
        `connection '${show(conn.name)}' sets no ${side} auth: its default, auth = pubkey (certificates), is not supported yet; set auth = psk`,
      );
    }
    const idKey = this.key(sec, 'id');
    const id = idKey?.value ?? '%any';
    let idParsed: Identity | undefined;
    if (idKey) {
      idParsed = this.identity(idKey.value, idKey.valueLoc);
      if (idParsed && side === 'local' && idParsed.type !== ID_ANY && identityHasWildcards(idParsed)) {
        this.err(idKey.valueLoc, `local id '${show(id)}' contains wildcards; it must name this host`);
      }
    } else {
      idParsed = { type: ID_ANY, data: Buffer.alloc(0) };
    }
    const items = this.list(sec, listKey);
    const files = items ? items.map((it) => this.filePath(it, side === 'local' ? 'certificate' : 'CA certificate')) : [];
    const cfg: AuthConfig = { auth, id, certs: side === 'local' ? files : [], cacerts: side === 'remote' ? files : [] };
    return idParsed ? { cfg, idParsed } : { cfg };
  }

  child(conn: MSec, sec: MSec, remoteHosts: number): ChildConfig {
    const where = `child '${show(sec.name)}' of connection '${show(conn.name)}'`;
    this.checkKnown(sec, CHILD_KEYS, [], where, CHILD_KEY_SET);
    const ts = (name: string): string[] => {
      const items = this.list(sec, name);
      if (!items) return ['dynamic'];
      const out: string[] = [];
      for (const it of items) {
        try {
          if (!isIPv4Block(it.text)) parseTrafficSelector(it.text);
          out.push(it.text);
        } catch (e) {
          if (!(e instanceof TsError)) throw e;
          this.err(it.loc, `invalid traffic selector in '${name}': ${e.message}`);
        }
      }
      return out;
    };
    const localTs = ts('local_ts');
    const remoteTs = ts('remote_ts');
    const espProposals = this.proposals(this.key(sec, 'esp_proposals'), 'esp');
    const modeKey = this.key(sec, 'mode');
    let mode: 'tunnel' | 'transport' = 'tunnel';
    if (modeKey) {
      const v = modeKey.value.toLowerCase();
      if (v === 'tunnel' || v === 'transport') mode = v;
      else if (['beet', 'pass', 'drop', 'transport_proxy', 'iptfs'].includes(v)) {
        this.err(modeKey.valueLoc, `mode '${show(modeKey.value)}' is not supported (tunnel or transport)`);
      } else this.err(modeKey.valueLoc, `'mode' must be tunnel or transport, not '${show(modeKey.value)}'`);
    }
    const startAction = this.action(sec, 'start_action', START_ACTIONS, 'none', 'start or none');
    const closeAction = this.action(sec, 'close_action', CLOSE_ACTIONS, 'none', 'none or start');
    const dpdAction = this.action(sec, 'dpd_action', DPD_ACTIONS, 'clear', 'clear or restart');
    if (startAction !== 'none' && remoteHosts === 0) {
      this.err(
        sec.keys.get('start_action')!.valueLoc,
        `start_action = ${startAction} needs an address to initiate to: set remote_addrs of connection '${show(conn.name)}' to an IP address`,
      );
    }
    // lifetimes as strongSwan's vici check_lifetimes()
    let rekeyTime = this.duration(sec, 'rekey_time');
    let lifeTime = this.duration(sec, 'life_time');
    let randTime = this.duration(sec, 'rand_time');
    const explicitLife = lifeTime !== undefined && rekeyTime !== undefined;
    const explicitRand = randTime !== undefined;
    if (rekeyTime === undefined) rekeyTime = lifeTime !== undefined ? Math.floor(lifeTime / 1.1) : DEFAULTS.childRekeyTime;
    if (lifeTime === undefined) lifeTime = Math.floor(rekeyTime * 1.1);
    if (randTime === undefined) randTime = lifeTime - Math.min(lifeTime, rekeyTime);
    if (explicitLife && rekeyTime > 0 && lifeTime > 0 && lifeTime <= rekeyTime) {
      this.err(sec.keys.get('life_time')!.valueLoc, `life_time (${lifeTime}s) must be longer than rekey_time (${rekeyTime}s)`);
    }
    if (explicitRand && rekeyTime > 0 && randTime >= rekeyTime) {
      this.err(sec.keys.get('rand_time')!.valueLoc, `rand_time (${randTime}s) must be shorter than rekey_time (${rekeyTime}s)`);
    }
    const replayWindow = this.uint(sec, 'replay_window', DEFAULTS.replayWindow, 0, MAX_REPLAY_WINDOW);
    const vppMode: VppMode = this.choice(sec, 'vpp_mode', VPP_MODES, 'p2p');
    if (mode === 'transport' && vppMode !== 'policy') {
      this.err(
        modeKey!.valueLoc,
        `mode = transport is not supported with vpp_mode = ${vppMode}: VPP refuses transport-mode SAs on ipsec interfaces; use vpp_mode = policy or mode = tunnel`,
      );
    }
    const ifKey = this.key(sec, 'vpp_interface');
    let vppInterface: string | undefined;
    if (ifKey) {
      if (!/^[A-Za-z0-9_./:-]{1,63}$/.test(ifKey.value)) {
        this.err(ifKey.valueLoc, `'vpp_interface' must be a VPP interface name (letters, digits, _ . / : -), not '${show(ifKey.value)}'`);
      } else if (vppMode === 'p2mp' && !(/^ipsec(0|[1-9][0-9]{0,4})$/.test(ifKey.value) && Number(ifKey.value.slice(5)) <= MAX_IPSEC_INSTANCE)) {
        this.err(
          ifKey.valueLoc,
          `vpp_mode = p2mp needs an ipsec interface, ipsecN with N from 0 to ${MAX_IPSEC_INSTANCE} (VPP's limit), as vpp_interface, not '${show(ifKey.value)}'`,
        );
      } else vppInterface = ifKey.value;
    }
    if (vppMode === 'p2mp' && !ifKey) {
      this.err(sec.keys.get('vpp_mode')!.valueLoc, `vpp_mode = p2mp needs vpp_interface (the shared multipoint interface)`);
    }
    const vppTable = this.uint(sec, 'vpp_table', 0, 0, MAX_U32);
    const vppRoutes = this.bool(sec, 'vpp_routes', true);
    const out: ChildConfig = {
      name: sec.name,
      localTs,
      remoteTs,
      espProposals,
      mode,
      startAction,
      closeAction,
      dpdAction,
      rekeyTime,
      lifeTime,
      randTime,
      replayWindow,
      vppMode,
      vppTable,
      vppRoutes,
      loc: sec.loc,
    };
    if (vppInterface !== undefined) out.vppInterface = vppInterface;
    return out;
  }

  connection(sec: MSec, daemon: DaemonConfig): { conn: ConnectionConfig; localId?: Identity; remoteId?: Identity } {
    const where = `connection '${show(sec.name)}'`;
    this.checkKnown(sec, CONN_KEYS, CONN_SECTIONS, where, CONN_KEY_SET);
    const local = this.addrs(sec, 'local_addrs');
    const remote = this.addrs(sec, 'remote_addrs');
    const localPort = this.port(sec, 'local_port', daemon.port);
    const remotePort = this.port(sec, 'remote_port', DEFAULTS.remotePort);
    const proposals = this.proposals(this.key(sec, 'proposals'), 'ike');
    const encap = this.bool(sec, 'encap', false);
    const dpdDelay = this.duration(sec, 'dpd_delay') ?? 0;
    const dpdTimeout = this.duration(sec, 'dpd_timeout') ?? 0;
    // IKE lifetimes as strongSwan's vici config_sn()
    let rekeyTime = this.duration(sec, 'rekey_time');
    let reauthTime = this.duration(sec, 'reauth_time');
    if (reauthTime !== undefined && reauthTime > 0) {
      // without rekey_time the IKE SA would then never be renewed
      this.err(sec.keys.get('reauth_time')!.valueLoc, 'reauth_time is not supported yet (IKE SA reauthentication is not implemented); use rekey_time, or reauth_time = 0');
    }
    let overTime = this.duration(sec, 'over_time');
    let randTime = this.duration(sec, 'rand_time');
    if (rekeyTime === undefined && reauthTime === undefined) {
      rekeyTime = DEFAULTS.ikeRekeyTime;
      reauthTime = 0;
    }
    rekeyTime ??= 0;
    reauthTime ??= 0;
    overTime ??= Math.floor(Math.max(rekeyTime, reauthTime) / 10);
    if (randTime === undefined) {
      const base = rekeyTime && reauthTime ? Math.min(rekeyTime, reauthTime) : Math.max(rekeyTime, reauthTime);
      randTime = Math.min(overTime, Math.floor(base / 2));
    } else if (rekeyTime > 0 && randTime >= rekeyTime) {
      this.err(sec.keys.get('rand_time')!.valueLoc, `rand_time (${randTime}s) must be shorter than rekey_time (${rekeyTime}s)`);
    }
    const fragmentation = this.choice(sec, 'fragmentation', FRAGMENTATION, 'yes');
    const unique = this.choice(sec, 'unique', UNIQUE, 'no');
    const sendCert = this.choice(sec, 'send_cert', SEND_CERT, 'ifasked');
    const sendCertreq = this.bool(sec, 'send_certreq', true);
    const mobike = this.bool(sec, 'mobike', true);
    const keyingtries = this.uint(sec, 'keyingtries', DEFAULTS.keyingtries, 0, MAX_U32);
    const vk = this.key(sec, 'version');
    if (vk && vk.value !== '2') {
      this.err(vk.valueLoc, `only IKEv2 is supported: 'version' must be 2, not '${show(vk.value)}'`);
    }
    const la = this.auth(sec, 'local');
    const ra = this.auth(sec, 'remote');
    const children: ChildConfig[] = [];
    const ch = this.sub(sec, 'children');
    if (ch) {
      for (const [name, k] of ch.keys) this.err(k.loc, `'${show(name)}' in children of ${where} must be a child section: NAME { ... }`);
      for (const c of ch.secs.values()) children.push(this.child(sec, this.open(c), remote.hosts));
    }
    const conn: ConnectionConfig = {
      name: sec.name,
      localAddrs: local.list,
      remoteAddrs: remote.list,
      localPort,
      remotePort,
      proposals,
      encap,
      dpdDelay,
      dpdTimeout,
      rekeyTime,
      reauthTime,
      overTime,
      randTime,
      fragmentation,
      unique,
      sendCert,
      sendCertreq,
      mobike,
      keyingtries,
      local: la.cfg,
      remote: ra.cfg,
      children,
      loc: sec.loc,
    };
    const r: { conn: ConnectionConfig; localId?: Identity; remoteId?: Identity } = { conn };
    if (la.idParsed) r.localId = la.idParsed;
    if (ra.idParsed) r.remoteId = ra.idParsed;
    return r;
  }

  secret(sec: MSec): { secret?: SecretConfig; ids: Identity[] } {
    const name = sec.name;
    const lower = name.toLowerCase();
    const label = this.shows(name, sec.loc) ? `secret '${show(name)}'` : `this secret section (its name is ${HIDDEN})`;
    if (lower.startsWith('ike')) {
      const idKeys = [...sec.keys.keys()].filter((k) => k.startsWith('id'));
      this.checkKnown(sec, ['secret', ...idKeys], [], label);
      const ids: string[] = [];
      const parsed: Identity[] = [];
      for (const k of idKeys) {
        const key = this.key(sec, k);
        if (!key) continue;
        const id = this.identity(key.value, key.valueLoc, true);
        ids.push(key.value);
        if (id) parsed.push(id);
      }
      const sk = sec.keys.get('secret');
      const out: SecretConfig = { name, kind: 'ike', ids, loc: sec.loc };
      if (!sk) {
        this.err(sec.loc, `${label} has no 'secret' value`);
      } else if (sk.value === '') {
        this.err(sk.valueLoc, `empty 'secret' in ${label}`);
      } else {
        const bytes = decodeSecret(sk.value);
        if (typeof bytes === 'string') this.err(sk.valueLoc, `the value of 'secret' ${bytes}`);
        else if (bytes.length === 0) this.err(sk.valueLoc, `the value of 'secret' decodes to nothing`);
        else {
          out.secret = sk.value;
          out.secretBytes = bytes;
        }
      }
      return { secret: out, ids: parsed };
    }
    if (lower.startsWith('private')) {
      this.checkKnown(sec, ['file', 'secret'], [], label);
      const out: SecretConfig = { name, kind: 'private', ids: [], loc: sec.loc };
      const fk = this.key(sec, 'file');
      if (!fk) {
        if (!sec.keys.has('file')) this.err(sec.loc, `${label} has no 'file' (the private key file)`);
      } else {
        out.file = this.filePath(new ListItem(fk.value, fk, 0), 'private key file', true);
      }
      const sk = sec.keys.get('secret');
      if (sk && sk.value !== '') out.secret = sk.value;
      return { secret: out, ids: [] };
    }
    const known = ['eap', 'xauth', 'ntlm', 'ppk', 'rsa', 'ecdsa', 'pkcs8', 'pkcs12', 'token'];
    const shown = this.shows(name, sec.loc);
    if (known.some((p) => lower.startsWith(p))) {
      this.err(sec.loc, `secret type of ${shown ? `'${show(name)}'` : 'this section'} is not supported (ike-NAME or private-NAME)`);
    } else if (shown) {
      this.err(sec.loc, `unknown secret section '${show(name)}': names start with 'ike' or 'private'`);
    } else {
      this.err(sec.loc, `unknown secret section (the name is ${HIDDEN}): names start with 'ike' or 'private'`);
    }
    return { ids: [] };
  }

  build(root: ConfNode, files: string[]): Config | undefined {
    const top = this.open({ name: '', loc: root.loc, nodes: [root] });
    this.checkKnown(top, [], ['daemon', 'vpp', 'connections', 'secrets'], 'the top level');
    const daemon = this.daemon(this.sub(top, 'daemon'));
    const vpp = this.vpp(this.sub(top, 'vpp'));

    const secrets: SecretConfig[] = [];
    const secretIds: Identity[][] = [];
    const ss = this.sub(top, 'secrets');
    if (ss) {
      for (const [name, k] of ss.keys) {
        this.err(
          k.loc,
          this.shows(name, k.loc)
            ? `'${show(name)}' in secrets must be a section: ike-NAME { ... }`
            : `a key in secrets must be a section: ike-NAME { ... } (the name is ${HIDDEN})`,
        );
      }
      for (const s of ss.secs.values()) {
        const r = this.secret(this.open(s));
        if (r.secret) {
          secrets.push(r.secret);
          secretIds.push(r.ids);
        }
      }
    }

    const connections: ConnectionConfig[] = [];
    const cs = this.sub(top, 'connections');
    const pskChecks: { conn: ConnectionConfig; localId?: Identity; remoteId?: Identity }[] = [];
    if (cs) {
      for (const [name, k] of cs.keys) this.err(k.loc, `'${show(name)}' in connections must be a connection section: NAME { ... }`);
      for (const b of cs.secs.values()) {
        const c = this.open(b);
        const r = this.connection(c, daemon);
        connections.push(r.conn);
        const conn = r.conn;
        // auth = pubkey is refused in auth() (certificate authentication is not implemented yet)
        if (conn.local.auth === 'psk' || conn.remote.auth === 'psk') pskChecks.push(r);
      }
    }
    this.checkPskSecrets(pskChecks, secrets, secretIds);
    if (vpp.policyInterface === undefined) {
      for (const conn of connections) {
        for (const ch of conn.children) {
          if (ch.vppMode === 'policy' && ch.vppInterface === undefined) {
            this.err(ch.loc, `child '${show(ch.name)}' of connection '${show(conn.name)}': vpp_mode = policy needs vpp_interface or vpp.policy_interface (the interface the SPD is bound to)`);
          }
        }
      }
    }
    if (this.errors.length > 0) return undefined;
    for (const c of connections) freezeConnection(c);
    for (const s of secrets) {
      Object.freeze(s.ids);
      Object.freeze(s.loc);
      Object.freeze(s); // secretBytes stays a (mutable) Buffer: typed arrays cannot be frozen
    }
    return Object.freeze({
      daemon: deepFreeze(daemon),
      vpp: Object.freeze(vpp),
      connections: Object.freeze(connections),
      secrets: Object.freeze(secrets),
      files: Object.freeze([...files]),
    }) as Config;
  }

  /** Every PSK connection needs an ike secret whose ids match its local or remote id (or one with no ids). */
  checkPskSecrets(
    checks: { conn: ConnectionConfig; localId?: Identity; remoteId?: Identity }[],
    secrets: SecretConfig[],
    secretIds: Identity[][],
  ): void {
    if (checks.length === 0) return;
    let anyWithoutIds = false;
    let anyWithIds = false;
    const exact = new Set<string>();
    const others: Identity[] = []; // wildcards and DNs, matched one by one
    const all: Identity[] = [];
    secrets.forEach((s, i) => {
      if (s.kind !== 'ike' || !s.secretBytes) return;
      if (s.ids.length === 0) {
        anyWithoutIds = true;
        return;
      }
      for (const id of secretIds[i]!) {
        anyWithIds = true;
        all.push(id);
        const k = exactKey(id);
        if (k !== undefined && !identityHasWildcards(id)) exact.add(k);
        else others.push(id);
      }
    });
    if (anyWithoutIds) return;
    const matches = (connId: Identity | undefined): boolean => {
      if (!connId) return true; // invalid id: already reported
      if (connId.type === ID_ANY) return anyWithIds;
      if (identityHasWildcards(connId)) return all.some((sid) => identityMatchesParsed(connId, sid) || identityMatchesParsed(sid, connId));
      const k = exactKey(connId);
      if (k !== undefined && exact.has(k)) return true;
      return others.some((sid) => identityMatchesParsed(sid, connId));
    };
    for (const c of checks) {
      if (matches(c.localId) || matches(c.remoteId)) continue;
      this.err(
        c.conn.loc,
        `connection '${show(c.conn.name)}' uses PSK authentication but no secrets { ike-... } entry matches ` +
          `its local id '${show(c.conn.local.id)}' or remote id '${show(c.conn.remote.id)}'`,
      );
    }
  }
}

/** Lookup key for identities compared by equality (FQDN/RFC822 case-insensitively); undefined for DNs. */
function exactKey(id: Identity): string | undefined {
  if (id.type === 9) return undefined;
  if (id.type === 2 || id.type === 3) return `${id.type}:${id.data.toString('latin1').toLowerCase()}`;
  return `${id.type}:${id.data.toString('hex')}`;
}

function sortErrors(errors: ConfigError[]): ConfigError[] {
  return errors.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.col - b.col));
}

function finish(parsed: ParsedConfig): { config?: Config; errors: ConfigError[] } {
  const loader = new Loader();
  loader.secretLines = parsed.secretLines;
  loader.errors.push(...parsed.errors);
  const config = loader.build(parsed.root, parsed.files);
  const errors = sortErrors(loader.errors);
  if (errors.length >= MAX_ERRORS) {
    const last = errors[errors.length - 1]!;
    const more = loader.dropped > 0 ? `${loader.dropped} more not shown` : 'checking stopped there';
    errors.push(new ConfigError(last.file, last.line, last.col, `too many errors (${MAX_ERRORS}): ${more}`));
  }
  return errors.length === 0 && config ? { config, errors } : { errors };
}

/** Loads and validates a config file with its includes: all errors at once; config only when there are none. */
export function loadConfig(path: string): { config?: Config; errors: ConfigError[] } {
  return finish(parseConfigFile(path));
}

/** As loadConfig, for text; includes and relative file names resolve against the directory of `file`. */
export function loadConfigText(text: string, file = '<config>'): { config?: Config; errors: ConfigError[] } {
  return finish(parseConfigText(text, file));
}

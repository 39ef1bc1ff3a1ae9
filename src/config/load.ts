/**
 * The config loader: file → parse tree (parse.ts) → validated, frozen Config (types.ts).
 *
 * Sections that repeat merge as in strongSwan (a key set again in a later block replaces the earlier
 * value); a key set twice in the same block of the same file is reported as a duplicate. Each
 * section then goes through its key table (schema.ts): unknown keys are reported, every key is read
 * with its value type or gets its default, refused values are reported. The rules between keys
 * (lifetimes, ports, VPP modes and interfaces, PSK secrets for PSK connections) are checked after
 * that. Every problem becomes a ConfigError "FILE:LINE:COL: message"; all of them are collected,
 * sorted by file, line and column, and a Config is returned only when there are none. Secret values
 * never appear in messages: nothing written on a line of the secrets section is quoted, except the
 * names that section is made of (ike-NAME, secret, id, ...). Certificates, private keys and CRLs
 * are read and checked here too (credentials.ts), so a bad file is an error of the line naming it.
 * Settings the daemon cannot run yet (trap actions, transport mode on ipsec interfaces) are errors,
 * not silently ignored.
 */
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseProposals, ProposalError } from '../ikev2/crypto/proposals.ts';
import { IKE_NATT_PORT } from '../ikev2/constants.ts';
import { ConfigError, isSecretsSectionName, MAX_ERRORS, onSecretLine, parseConfigFile, parseConfigText, show } from './parse.ts';
import type { ConfKey, ConfNode, ParsedConfig, SecretLines } from './parse.ts';
import { ID_ANY, identityHasWildcards, identityMatchesParsed, IdentityError, parseIdentity } from './identity.ts';
import type { Identity } from './identity.ts';
import { CHILD, CONNECTION, DAEMON, IKE_SECRET, LOCAL, MAX_IPSEC_INSTANCE, PRIVATE_KEY_SECRETS, PRIVATE_SECRET, REMOTE, TOP, UNSUPPORTED_SECRETS, VPP } from './schema.ts';
import { loadCredentials, type ConnectionCredentialRefs, type FileRef, type KeyRef } from './credentials.ts';
import type { Fields, Row, Section, SectionValues, Table } from './schema.ts';
import { deepFreeze, isHostAddress, ListItem, splitList } from './values.ts';
import type { ReadContext } from './values.ts';
import type { AuthConfig, ChildConfig, Config, ConnectionConfig, DaemonConfig, ProposalSpec, SecretConfig, SourceLocation, VppConfig } from './types.ts';

export { ConfigError } from './parse.ts';
export { DEFAULTS, MAX_IPSEC_INSTANCE, MAX_REPLAY_WINDOW } from './schema.ts';
export { decodeSecret } from './values.ts';

/** Said instead of a name that stands on a line of the secrets section. */
const HIDDEN = 'not shown: it is in the secrets section, where a misplaced line can be a secret';
/** The identity of a side that sets no id. */
const ANY_ID: Identity = Object.freeze({ type: ID_ANY, data: Buffer.alloc(0) });
const NO_VALUES: SectionValues = Object.freeze({});

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

/** Freezes a connection and everything in it (proposal lists are frozen when cached). */
function freezeConnection(c: ConnectionConfig): void {
  Object.freeze(c.localAddrs);
  Object.freeze(c.remoteAddrs);
  Object.freeze(c.local.certs);
  Object.freeze(c.local.cacerts);
  Object.freeze(c.local);
  Object.freeze(c.remote.certs);
  Object.freeze(c.remote.cacerts);
  if (c.remote.crls) Object.freeze(c.remote.crls);
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

/** ipsecN with N from 0 to MAX_IPSEC_INSTANCE: an interface VPP can create for p2mp. */
function isIpsecInterface(name: string): boolean {
  return /^ipsec(0|[1-9][0-9]{0,4})$/.test(name) && Number(name.slice(5)) <= MAX_IPSEC_INSTANCE;
}

type ConnResult = { conn: ConnectionConfig; localId?: Identity; remoteId?: Identity; creds: ConnectionCredentialRefs };

class Loader implements ReadContext {
  readonly errors: ConfigError[] = [];
  /** Lines of the secrets section (from the parser): text on them is not quoted in messages. */
  secretLines: SecretLines = new Map();
  private readonly proposalCache = new Map<string, ProposalSpec[]>();
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
            this.clash(child, 'section', 'key');
            continue;
          }
          into.keys.set(child.name, child);
        } else {
          if (into.keys.has(child.name)) {
            this.clash(child, 'key', 'section');
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

  /** A name written as a key and as a section at the same level. */
  clash(child: ConfKey | ConfNode, was: string, is: string): void {
    this.err(
      child.loc,
      this.shows(child.name, child.loc)
        ? `'${show(child.name)}' is already a ${was} here; it cannot also be a ${is}`
        : `this name is already a ${was} here; it cannot also be a ${is} (the name is ${HIDDEN})`,
    );
  }

  /** The merged subsection `name` of `sec`, if present. */
  sub(sec: MSec | undefined, name: string): MSec | undefined {
    const b = sec?.secs.get(name);
    return b ? this.open(b) : undefined;
  }

  // ---- the table pass ------------------------------------------------------------------------

  /** Reports keys and sections of `sec` that its table does not know. */
  checkKnown(sec: MSec, s: Section, where: string): void {
    // a row with a prefix stands for the keys written with it (the ids of a secret)
    const keys = s.hasPrefix
      ? s.rows.flatMap((r) => (r.row.prefix ? [...sec.keys.keys()].filter((k) => k.startsWith(r.key)) : [r.key]))
      : s.names;
    const known = s.hasPrefix ? new Set(keys) : s.known;
    for (const [name, k] of sec.keys) {
      if (known.has(name)) continue;
      if (s.sections.includes(name)) this.err(k.loc, `'${show(name)}' is a section in ${where}: write ${show(name)} { ... }`);
      else if (this.shows(name, k.loc)) this.err(k.loc, `unknown key '${show(name)}' in ${where}${suggest(name, keys)}`);
      else this.err(k.loc, `unknown key in ${where}${suggest(name, keys)} (the name is ${HIDDEN})`);
    }
    for (const [name, b] of sec.secs) {
      if (s.sections.includes(name)) continue;
      if (keys.includes(name)) this.err(b.loc, `'${show(name)}' is a key in ${where}: write ${show(name)} = value`);
      else if (this.shows(name, b.loc)) this.err(b.loc, `unknown section '${show(name)}' in ${where}${suggest(name, s.sections)}`);
      else this.err(b.loc, `unknown section in ${where}${suggest(name, s.sections)} (the name is ${HIDDEN})`);
    }
  }

  /**
   * The table pass over a section (absent: every key has its default): unknown keys reported, each
   * key read with its type, or its default when unset or invalid, and refused values reported.
   * Keys whose default depends on other keys come out undefined for the section's checks to compute.
   */
  fields<T extends Table>(sec: MSec | undefined, s: Section<T>, where: string): Fields<T> {
    if (sec) this.checkKnown(sec, s, where);
    const out: Record<string, unknown> = {};
    let refusable: { row: Row<unknown>; k: ConfKey; v: unknown }[] | undefined;
    for (const { key, field, row } of s.rows) {
      const k = sec?.keys.get(key);
      let v: unknown;
      if (k !== undefined) {
        v = this.value(k, row, out);
        if (v !== undefined && row.refuse?.some((r) => r.when)) (refusable ??= []).push({ row, k, v });
      }
      if (row.mode === 'check') continue;
      if (v === undefined && row.mode === 'default') v = row.default;
      // a list read element by element has room for 17 (V8's first growth); an exact copy keeps what it
      // holds (shared, frozen lists such as cached proposals stay shared)
      if (Array.isArray(v) && !Object.isFrozen(v)) v = v.slice();
      if (v !== undefined || row.mode === 'derived') out[field] = v;
    }
    if (refusable) {
      for (const { row, k, v } of refusable) {
        for (const r of row.refuse!) if (r.when?.(v, out)) this.err(k.valueLoc, r.message(k, out));
      }
    }
    // the one place where the table's rows become the typed fields they describe
    return out as Fields<T>;
  }

  /** The value of a key: undefined when empty, refused or invalid (reported). */
  value<T>(k: ConfKey, row: Row<T>, section: SectionValues = NO_VALUES): T | undefined {
    if (k.value === '') {
      this.err(
        k.valueLoc,
        this.shows(k.name, k.loc)
          ? `empty value for '${show(k.name)}' (remove the line to get the default)`
          : `empty value (remove the line to get the default; the key's name is ${HIDDEN})`,
      );
      return undefined;
    }
    if (row.refuse) {
      const word = k.value.toLowerCase();
      for (const r of row.refuse) {
        if (r.words?.includes(word)) {
          this.err(k.valueLoc, r.message(k, section));
          return undefined;
        }
      }
    }
    return row.type.read(k, this);
  }

  // ---- what value types need -----------------------------------------------------------------

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

  /** The identity a key's value (read before) parsed to; undefined when it is invalid. */
  parsedIdentity(k: ConfKey | undefined): Identity | undefined {
    if (!k || k.value === '') return ANY_ID;
    const hit = this.idCache.get(k.value);
    return typeof hit === 'object' ? hit : undefined;
  }

  /** Validated proposals: each list element separately so that errors point at it. */
  proposals(k: ConfKey, protocol: 'ike' | 'esp'): ProposalSpec[] {
    const cacheKey = `${protocol}\n${k.value}`;
    const hit = this.proposalCache.get(cacheKey);
    if (hit) return hit;
    const out: ProposalSpec[] = [];
    const items = splitList(k, this);
    let ok = items.length === k.value.split(',').length;
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

  // ---- sections and the rules between their keys --------------------------------------------

  daemon(sec: MSec | undefined): DaemonConfig {
    const d = this.fields(sec, DAEMON, 'daemon');
    if (d.port === d.portNatT && sec) {
      const k = sec.keys.get('port_nat_t') ?? sec.keys.get('port')!;
      this.err(k.valueLoc, `'port_nat_t' must differ from 'port' (both are ${d.port})`);
    }
    if (d.transport === 'punt' && sec) {
      const t = sec.keys.get('transport')!;
      if (d.dataplane !== 'vpp') this.err((sec.keys.get('dataplane') ?? t).valueLoc, "transport = punt receives IKE through VPP: it needs dataplane = vpp");
      if (d.portNatT !== IKE_NATT_PORT) {
        this.err((sec.keys.get('port_nat_t') ?? t).valueLoc, `transport = punt receives NAT-T IKE on VPP's IPsec port ${IKE_NATT_PORT} only (port_nat_t is ${d.portNatT})`);
      }
    }
    return d;
  }

  vpp(sec: MSec | undefined): VppConfig {
    return this.fields(sec, VPP, 'vpp');
  }

  auth(conn: MSec, side: 'local' | 'remote'): { cfg: AuthConfig; idParsed?: Identity; sec?: MSec } {
    const sec = this.sub(conn, side);
    const where = `${side} of connection '${show(conn.name)}'`;
    const cfg: AuthConfig = side === 'local' ? { ...this.fields(sec, LOCAL, where), cacerts: [] } : { certs: [], ...this.fields(sec, REMOTE, where) };
    const idParsed = this.parsedIdentity(sec?.keys.get('id'));
    const out: { cfg: AuthConfig; idParsed?: Identity; sec?: MSec } = { cfg };
    if (idParsed) out.idParsed = idParsed;
    if (sec) out.sec = sec;
    return out;
  }

  /** The files of a file-list key (already checked by its value type) with where each is written. */
  fileRefs(k: ConfKey | undefined): FileRef[] {
    if (!k || k.value === '') return [];
    const quiet = { err: (): void => {} }; // empty elements were reported when the value was read
    return splitList(k, quiet).map((it) => ({ path: resolve(dirname(k.loc.file), it.text), loc: it.loc, text: it.text }));
  }

  /**
   * rekey_/life_/rand_ bytes or packets as strongSwan's vici check_lifetimes(): no rekey limit but a
   * life limit: rekey at life / 1.1; no life limit: 1.1 × rekey; no rand: life − rekey.
   */
  volumeLimits(sec: MSec, unit: 'bytes' | 'packets', rekeyIn: number | undefined, lifeIn: number | undefined, randIn: number | undefined): { rekey: number; life: number; rand: number } {
    const rekey = rekeyIn ?? (lifeIn !== undefined ? Math.floor(lifeIn / 1.1) : 0);
    const life = lifeIn ?? Math.floor(rekey * 1.1);
    const rand = randIn ?? life - Math.min(life, rekey);
    if (rekeyIn !== undefined && lifeIn !== undefined && rekey > 0 && life > 0 && life <= rekey) {
      this.err(sec.keys.get(`life_${unit}`)!.valueLoc, `life_${unit} (${life}) must be larger than rekey_${unit} (${rekey})`);
    }
    if (randIn !== undefined && rekey > 0 && rand >= rekey) {
      this.err(sec.keys.get(`rand_${unit}`)!.valueLoc, `rand_${unit} (${rand}) must be smaller than rekey_${unit} (${rekey})`);
    }
    return { rekey, life, rand };
  }

  child(conn: MSec, sec: MSec, canInitiate: boolean): ChildConfig {
    const f = this.fields(sec, CHILD, `child '${show(sec.name)}' of connection '${show(conn.name)}'`);
    if (f.startAction !== 'none' && !canInitiate) {
      this.err(
        sec.keys.get('start_action')!.valueLoc,
        `start_action = ${f.startAction} needs an address to initiate to: set remote_addrs of connection '${show(conn.name)}' to an IP address`,
      );
    }
    // lifetimes as strongSwan's vici check_lifetimes()
    let { rekeyTime, lifeTime, randTime } = f;
    const explicitLife = lifeTime !== undefined && rekeyTime !== undefined;
    const explicitRand = randTime !== undefined;
    if (rekeyTime === undefined) rekeyTime = lifeTime !== undefined ? Math.floor(lifeTime / 1.1) : CHILD.keys.rekey_time.default;
    if (lifeTime === undefined) lifeTime = Math.floor(rekeyTime * 1.1);
    if (randTime === undefined) randTime = lifeTime - Math.min(lifeTime, rekeyTime);
    if (explicitLife && rekeyTime > 0 && lifeTime > 0 && lifeTime <= rekeyTime) {
      this.err(sec.keys.get('life_time')!.valueLoc, `life_time (${lifeTime}s) must be longer than rekey_time (${rekeyTime}s)`);
    }
    if (explicitRand && rekeyTime > 0 && randTime >= rekeyTime) {
      this.err(sec.keys.get('rand_time')!.valueLoc, `rand_time (${randTime}s) must be shorter than rekey_time (${rekeyTime}s)`);
    }
    const bytes = this.volumeLimits(sec, 'bytes', f.rekeyBytes, f.lifeBytes, f.randBytes);
    const packets = this.volumeLimits(sec, 'packets', f.rekeyPackets, f.lifePackets, f.randPackets);
    if (f.vppMode === 'p2mp') {
      const ifKey = sec.keys.get('vpp_interface');
      if (!ifKey?.value) {
        this.err(sec.keys.get('vpp_mode')!.valueLoc, `vpp_mode = p2mp needs vpp_interface (the shared multipoint interface)`);
      } else if (f.vppInterface !== undefined && !isIpsecInterface(f.vppInterface)) {
        this.err(
          ifKey.valueLoc,
          `vpp_mode = p2mp needs an ipsec interface, ipsecN with N from 0 to ${MAX_IPSEC_INSTANCE} (VPP's limit), as vpp_interface, not '${show(f.vppInterface)}'`,
        );
      }
    }
    return {
      name: sec.name,
      ...f,
      rekeyTime,
      lifeTime,
      randTime,
      rekeyBytes: bytes.rekey,
      lifeBytes: bytes.life,
      randBytes: bytes.rand,
      rekeyPackets: packets.rekey,
      lifePackets: packets.life,
      randPackets: packets.rand,
      loc: sec.loc,
    };
  }

  connection(sec: MSec, daemon: DaemonConfig): ConnResult {
    const where = `connection '${show(sec.name)}'`;
    const f = this.fields(sec, CONNECTION, where);
    // IKE lifetimes as strongSwan's vici config_sn()
    let { rekeyTime, reauthTime, overTime, randTime } = f;
    if (rekeyTime === undefined && reauthTime === undefined) {
      rekeyTime = CONNECTION.keys.rekey_time.default;
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
    } else if (reauthTime > 0 && randTime >= reauthTime) {
      this.err(sec.keys.get('rand_time')!.valueLoc, `rand_time (${randTime}s) must be shorter than reauth_time (${reauthTime}s)`);
    }
    const la = this.auth(sec, 'local');
    const ra = this.auth(sec, 'remote');
    const children: ChildConfig[] = [];
    const ch = this.sub(sec, 'children');
    if (ch) {
      for (const [name, k] of ch.keys) this.err(k.loc, `'${show(name)}' in children of ${where} must be a child section: NAME { ... }`);
      const canInitiate = f.remoteAddrs.some(isHostAddress);
      for (const c of ch.secs.values()) children.push(this.child(sec, this.open(c), canInitiate));
    }
    const conn: ConnectionConfig = {
      name: sec.name,
      ...f,
      localPort: f.localPort ?? daemon.port,
      rekeyTime,
      reauthTime,
      overTime,
      randTime,
      local: la.cfg,
      remote: ra.cfg,
      // exact size (pushed one by one it had room for 17)
      children: children.slice(),
      loc: sec.loc,
    };
    const lk = la.sec?.keys;
    const rk = ra.sec?.keys;
    const localIdLoc = lk?.get('id')?.valueLoc;
    const creds: ConnectionCredentialRefs = {
      name: sec.name,
      localAuth: la.cfg.auth,
      remoteAuth: ra.cfg.auth,
      localLoc: la.sec?.loc ?? sec.loc,
      remoteLoc: ra.sec?.loc ?? sec.loc,
      localId: la.cfg.id,
      ...(localIdLoc ? { localIdLoc } : {}),
      certs: this.fileRefs(lk?.get('certs')),
      cacerts: this.fileRefs(rk?.get('cacerts')),
      crls: this.fileRefs(rk?.get('crls')),
      revocation: ra.cfg.revocation ?? 'relaxed',
    };
    const r: ConnResult = { conn, creds };
    if (la.idParsed) r.localId = la.idParsed;
    if (ra.idParsed) r.remoteId = ra.idParsed;
    return r;
  }

  secret(sec: MSec): { secret?: SecretConfig; ids: Identity[]; key?: KeyRef } {
    const name = sec.name;
    const lower = name.toLowerCase();
    const label = this.shows(name, sec.loc) ? `secret '${show(name)}'` : `this secret section (its name is ${HIDDEN})`;
    if (lower.startsWith('ike')) {
      this.checkKnown(sec, IKE_SECRET, label);
      const ids: string[] = [];
      const parsed: Identity[] = [];
      for (const [key, k] of sec.keys) {
        if (!key.startsWith('id')) continue;
        const id = this.value(k, IKE_SECRET.keys.id);
        if (id === undefined) continue;
        ids.push(id);
        const p = this.parsedIdentity(k);
        if (p) parsed.push(p);
      }
      const out: SecretConfig = { name, kind: 'ike', ids, loc: sec.loc };
      // read here rather than in the table pass: its messages are its own, and never quote it
      const sk = sec.keys.get('secret');
      if (!sk) {
        this.err(sec.loc, `${label} has no 'secret' value`);
      } else if (sk.value === '') {
        this.err(sk.valueLoc, `empty 'secret' in ${label}`);
      } else {
        const bytes = IKE_SECRET.keys.secret.type.read(sk, this);
        if (bytes) {
          out.secret = sk.value;
          out.secretBytes = bytes;
        }
      }
      return { secret: out, ids: parsed };
    }
    if (PRIVATE_KEY_SECRETS.some((p) => lower.startsWith(p))) {
      this.checkKnown(sec, PRIVATE_SECRET, label);
      const out: SecretConfig = { name, kind: 'private', ids: [], loc: sec.loc };
      const fk = sec.keys.get('file');
      let file: string | undefined;
      if (!fk) this.err(sec.loc, `${label} has no 'file' (the private key file)`);
      else {
        file = this.value(fk, PRIVATE_SECRET.keys.file);
        if (file !== undefined) out.file = file;
      }
      const sk = sec.keys.get('secret');
      if (sk && sk.value !== '') out.secret = sk.value;
      if (file === undefined || !fk) return { secret: out, ids: [] };
      const key: KeyRef = { label, loc: sec.loc, file: { path: file, loc: fk.valueLoc, text: '' }, ...(out.secret !== undefined ? { passphrase: out.secret } : {}) };
      return { secret: out, ids: [], key };
    }
    const shown = this.shows(name, sec.loc);
    if (UNSUPPORTED_SECRETS.some((p) => lower.startsWith(p))) {
      this.err(sec.loc, `secret type of ${shown ? `'${show(name)}'` : 'this section'} is not supported (ike-NAME, or private-NAME, rsa-NAME, ecdsa-NAME, pkcs8-NAME for private keys)`);
    } else if (shown) {
      this.err(sec.loc, `unknown secret section '${show(name)}': names start with 'ike' or 'private' (or 'rsa', 'ecdsa', 'pkcs8')`);
    } else {
      this.err(sec.loc, `unknown secret section (the name is ${HIDDEN}): names start with 'ike' or 'private' (or 'rsa', 'ecdsa', 'pkcs8')`);
    }
    return { ids: [] };
  }

  build(root: ConfNode, files: string[]): Config | undefined {
    const top = this.open({ name: '', loc: root.loc, nodes: [root] });
    this.checkKnown(top, TOP, 'the top level');
    const daemon = this.daemon(this.sub(top, 'daemon'));
    const vpp = this.vpp(this.sub(top, 'vpp'));

    const secrets: SecretConfig[] = [];
    const secretIds: Identity[][] = [];
    const keyRefs: KeyRef[] = [];
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
        if (r.key) keyRefs.push(r.key);
        if (r.secret) {
          secrets.push(r.secret);
          secretIds.push(r.ids);
        }
      }
    }

    const connections: ConnectionConfig[] = [];
    const cs = this.sub(top, 'connections');
    const pskChecks: ConnResult[] = [];
    const credRefs: ConnectionCredentialRefs[] = [];
    if (cs) {
      for (const [name, k] of cs.keys) this.err(k.loc, `'${show(name)}' in connections must be a connection section: NAME { ... }`);
      for (const b of cs.secs.values()) {
        const r = this.connection(this.open(b), daemon);
        connections.push(r.conn);
        if (r.conn.local.auth === 'psk' || r.conn.remote.auth === 'psk') pskChecks.push(r);
        const c = r.creds;
        if (c.localAuth === 'pubkey' || c.remoteAuth === 'pubkey' || c.certs.length > 0 || c.cacerts.length > 0 || c.crls.length > 0) credRefs.push(c);
      }
    }
    this.checkPskSecrets(pskChecks, secrets, secretIds);
    const credentials = loadCredentials(credRefs, keyRefs, (loc, msg) => this.err(loc, msg));
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
      credentials,
      files: Object.freeze([...files]),
    }) as Config;
  }

  /** Every PSK connection needs an ike secret whose ids match its local or remote id (or one with no ids). */
  checkPskSecrets(checks: ConnResult[], secrets: SecretConfig[], secretIds: Identity[][]): void {
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

/**
 * Proposals: strongSwan's proposal syntax (parse and print), the wire form of our offers, and
 * the responder's selection among a peer's offers.
 *
 * Syntax: proposals separated by commas, each a '-'-separated list of keywords, e.g.
 * "aes256gcm16-prfsha256-x25519, aes128-sha256-modp3072". Keywords (as strongSwan):
 *   ENCR   aes128 aes192 aes256 (aes = aes128); aes{128,192,256}gcm{8,12,16}, also
 *          aes{...}gcm{64,96,128} and aes{...}gcm (= gcm16); chacha20poly1305
 *   INTEG  sha1 (sha), sha256 (sha2_256), sha384 (sha2_384), sha512 (sha2_512)
 *   PRF    prfsha1 prfsha256 prfsha384 prfsha512
 *   KE     modp2048 modp3072 modp4096 modp6144 modp8192 ecp256 ecp384 ecp521
 *          x25519 (curve25519) x448 (curve448) mlkem512 mlkem768 mlkem1024;
 *          modpnone (ESP only: "no PFS" is acceptable)
 *   ADDKE  ke1_<KE> .. ke7_<KE>: additional key exchanges (RFC 9370), e.g. ke1_mlkem768;
 *          ke1_none makes that one optional
 *   ESN    esn noesn (ESP only; default noesn)
 * Rules (strongSwan's): an IKE proposal without a PRF uses the PRF matching each integrity
 * algorithm (sha256 -> prfsha256); AEAD IKE proposals need an explicit PRF; a key exchange method
 * is mandatory for IKE; AEAD and classic ciphers cannot be mixed in one proposal; integrity
 * algorithms in an all-AEAD proposal are dropped; a PRF in an ESP proposal is dropped; classic
 * ciphers need an integrity algorithm (for ESP too: encryption-only ESP is refused).
 *
 * "default" expands to DEFAULT_IKE_PROPOSALS / DEFAULT_ESP_PROPOSALS below.
 */
import type { ProposalSpec } from '../../config/types.ts';
import type { Proposal, Transform } from '../codec/types.ts';
import { EsnId, ProtocolId, TransformAttr, TransformType } from '../constants.ts';
import type { IkeSuite } from './prf.ts';
import { keep } from './keep.ts';
import {
  ENCR_ALGS,
  INTEG_ALGS,
  KE_GROUPS,
  PRF_ALGS,
  encrAlg,
  integAlg,
  keGroup,
  prfAlg,
  type EncrAlg,
  type IntegAlg,
  type PrfAlg,
} from './suites.ts';

export type { IkeSuite } from './prf.ts';

/** A proposal string that cannot be used; the message names the offending keyword or rule. */
export class ProposalError extends Error {
  override readonly name: string = 'ProposalError';
}

/**
 * What "default" means for IKE: AEAD first (AES-GCM-16, ChaCha20-Poly1305), then AES-CBC with
 * HMAC-SHA2; key exchange preference X25519, ECP-256/384/521, X448, MODP-3072 and larger, MODP-2048.
 */
export const DEFAULT_IKE_PROPOSALS =
  'aes128gcm16-aes192gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-' +
  'x25519-ecp256-ecp384-ecp521-x448-modp3072-modp4096-modp6144-modp8192-modp2048, ' +
  'aes128-aes192-aes256-sha256-sha384-sha512-' +
  'x25519-ecp256-ecp384-ecp521-x448-modp3072-modp4096-modp6144-modp8192-modp2048';

/** What "default" means for ESP: AES-GCM-16 and ChaCha20-Poly1305, then AES-CBC with HMAC-SHA2/SHA1; no PFS, no ESN. */
export const DEFAULT_ESP_PROPOSALS =
  'aes128gcm16-aes192gcm16-aes256gcm16-chacha20poly1305, aes128-aes192-aes256-sha256-sha384-sha512-sha1';

type Keyword =
  | { t: 'encr'; id: number; keyBits: number }
  | { t: 'integ'; id: number }
  | { t: 'prf'; id: number }
  | { t: 'ke'; id: number }
  | { t: 'esn'; id: number };

const KEYWORDS = new Map<string, Keyword>();
for (const a of ENCR_ALGS) {
  // Fixed-key transforms (ChaCha20) are kept with keyBits 0, as on the wire.
  const e: Keyword = { t: 'encr', id: a.id, keyBits: a.keyLengthAttr ? a.keyBits : 0 };
  KEYWORDS.set(a.keyword, e);
  for (const k of a.aliases) KEYWORDS.set(k, e);
}
for (const a of INTEG_ALGS) {
  KEYWORDS.set(a.keyword, { t: 'integ', id: a.id });
  for (const k of a.aliases) KEYWORDS.set(k, { t: 'integ', id: a.id });
}
for (const a of PRF_ALGS) KEYWORDS.set(a.keyword, { t: 'prf', id: a.id });
for (const g of KE_GROUPS) {
  KEYWORDS.set(g.keyword, { t: 'ke', id: g.id });
  for (const k of g.aliases) KEYWORDS.set(k, { t: 'ke', id: g.id });
}
KEYWORDS.set('modpnone', { t: 'ke', id: 0 });
KEYWORDS.set('esn', { t: 'esn', id: EsnId.ESN });
KEYWORDS.set('noesn', { t: 'esn', id: EsnId.NO_ESN });

function pushUnique(list: number[], v: number): void {
  if (!list.includes(v)) list.push(v);
}

/** Transform types of the additional key exchanges (ADDKE1..ADDKE7). */
export const ADDKE_TYPES = 7;

/** `ke<n>_<method>`: an additional key exchange of type n, or undefined for another word. */
function addKeKeyword(word: string): { n: number; id: number } | undefined {
  const m = /^ke([1-7])_(.+)$/.exec(word);
  if (!m) return undefined;
  const method = m[2]!;
  if (method === 'none' || method === 'modpnone') return { n: Number(m[1]), id: 0 };
  const k = KEYWORDS.get(method);
  return k && k.t === 'ke' && k.id !== 0 ? { n: Number(m[1]), id: k.id } : undefined;
}

function parseOne(text: string, protocol: 'ike' | 'esp'): ProposalSpec {
  const spec: ProposalSpec = { protocol, encr: [], prf: [], integ: [], ke: [], esn: [] };
  for (const raw of text.split('-')) {
    const word = raw.trim().toLowerCase();
    const add = addKeKeyword(word);
    if (add) {
      spec.addKe ??= Array.from({ length: ADDKE_TYPES }, () => []);
      pushUnique(spec.addKe[add.n - 1]!, add.id);
      continue;
    }
    const k = KEYWORDS.get(word);
    if (!k) throw new ProposalError(`unknown algorithm '${raw.trim()}' in proposal '${text}'`);
    switch (k.t) {
      case 'encr':
        if (!spec.encr.some((e) => e.id === k.id && e.keyBits === k.keyBits)) spec.encr.push({ id: k.id, keyBits: k.keyBits });
        break;
      case 'integ':
        pushUnique(spec.integ, k.id);
        break;
      case 'prf':
        pushUnique(spec.prf, k.id);
        break;
      case 'ke':
        pushUnique(spec.ke, k.id);
        break;
      case 'esn':
        if (protocol === 'ike') throw new ProposalError(`'${raw.trim()}' is not allowed in IKE proposal '${text}'`);
        pushUnique(spec.esn, k.id);
        break;
    }
  }
  if (spec.encr.length === 0) throw new ProposalError(`an encryption algorithm is mandatory in proposal '${text}'`);
  const aead = spec.encr.map((e) => encrAlg(e.id, e.keyBits)!.aead);
  const allAead = aead.every((x) => x);
  if (!allAead && aead.some((x) => x)) {
    throw new ProposalError(`AEAD and classic encryption algorithms cannot be mixed in proposal '${text}'`);
  }
  if (allAead) spec.integ = [];
  else if (spec.integ.length === 0) {
    throw new ProposalError(`an integrity algorithm is mandatory with classic encryption in proposal '${text}'`);
  }
  if (protocol === 'ike') {
    if (spec.prf.length === 0) {
      if (allAead) throw new ProposalError(`AEAD IKE proposal '${text}' needs a PRF (e.g. prfsha256)`);
      for (const i of spec.integ) pushUnique(spec.prf, integAlg(i)!.impliedPrf);
    }
    spec.ke = spec.ke.filter((k) => k !== 0);
    if (spec.ke.length === 0) throw new ProposalError(`a key exchange method is mandatory in IKE proposal '${text}'`);
  } else {
    spec.prf = [];
    if (spec.esn.length === 0) spec.esn = [EsnId.NO_ESN];
    // "modpnone" alone is the same as no key exchange at all.
    if (spec.ke.length === 1 && spec.ke[0] === 0) spec.ke = [];
  }
  if (spec.addKe) {
    // ke<n>_none alone is the same as leaving the type out.
    for (let i = 0; i < ADDKE_TYPES; i++) if (spec.addKe[i]!.every((id) => id === 0)) spec.addKe[i] = [];
    if (spec.addKe.every((l) => l.length === 0)) delete spec.addKe;
    else if (protocol === 'esp' && (spec.ke.length === 0 || spec.ke.every((k) => k === 0))) {
      throw new ProposalError(`additional key exchanges need a key exchange method in ESP proposal '${text}'`);
    }
  }
  return spec;
}

/**
 * Parses strongSwan proposal syntax; "default" (alone or as one entry of the list) expands to
 * the defaults above. Throws ProposalError.
 */
export function parseProposals(text: string, protocol: 'ike' | 'esp'): ProposalSpec[] {
  const out: ProposalSpec[] = [];
  for (const part of text.split(',')) {
    const p = part.trim();
    if (p === '') throw new ProposalError(`empty proposal in '${text}'`);
    if (p.toLowerCase() === 'default') {
      out.push(...parseProposals(protocol === 'ike' ? DEFAULT_IKE_PROPOSALS : DEFAULT_ESP_PROPOSALS, protocol));
    } else {
      out.push(parseOne(p, protocol));
    }
  }
  return out;
}

function encrKeyword(id: number, keyBits: number): string {
  const a = encrAlg(id, keyBits);
  if (!a) throw new ProposalError(`unsupported encryption algorithm ${id} with ${keyBits}-bit key`);
  return a.keyword;
}

/** Back to strongSwan syntax; parseProposals(formatProposal(p), p.protocol) gives p again. */
export function formatProposal(p: ProposalSpec): string {
  const words: string[] = p.encr.map((e) => encrKeyword(e.id, e.keyBits));
  for (const i of p.integ) {
    const a = integAlg(i);
    if (!a) throw new ProposalError(`unsupported integrity algorithm ${i}`);
    words.push(a.keyword);
  }
  if (p.protocol === 'ike') {
    // Leave the PRFs out when they are exactly the ones the integrity algorithms imply.
    const implied: number[] = [];
    for (const i of p.integ) pushUnique(implied, integAlg(i)!.impliedPrf);
    const sameAsImplied = p.integ.length > 0 && implied.length === p.prf.length && implied.every((v, i) => v === p.prf[i]);
    if (!sameAsImplied) {
      for (const id of p.prf) {
        const a = prfAlg(id);
        if (!a) throw new ProposalError(`unsupported PRF ${id}`);
        words.push(a.keyword);
      }
    }
  }
  for (const k of p.ke) {
    if (k === 0) {
      words.push('modpnone');
      continue;
    }
    const g = keGroup(k);
    if (!g) throw new ProposalError(`unsupported key exchange method ${k}`);
    words.push(g.keyword);
  }
  p.addKe?.forEach((list, i) => {
    for (const id of list) {
      if (id === 0) {
        words.push(`ke${i + 1}_none`);
        continue;
      }
      const g = keGroup(id);
      if (!g) throw new ProposalError(`unsupported key exchange method ${id}`);
      words.push(`ke${i + 1}_${g.keyword}`);
    }
  });
  if (p.protocol === 'esp' && !(p.esn.length === 1 && p.esn[0] === EsnId.NO_ESN) && p.esn.length > 0) {
    for (const e of p.esn) words.push(e === EsnId.ESN ? 'esn' : 'noesn');
  }
  return words.join('-');
}

/** A list of proposals in strongSwan syntax, comma separated. */
export function formatProposals(ps: ProposalSpec[]): string {
  return ps.map(formatProposal).join(', ');
}

// ---------------------------------------------------------------------------------------------
// Wire form

function encrTransform(a: EncrAlg): Transform {
  return {
    type: TransformType.ENCR,
    id: a.id,
    attributes: a.keyLengthAttr ? [{ type: TransformAttr.KEY_LENGTH, value: a.keyBits }] : [],
  };
}

const tr = (type: number, id: number): Transform => ({ type, id, attributes: [] });

/** Our offer: one wire Proposal per spec, numbered from 1 in order. `spi` is copied into each. */
export function toWireProposals(specs: ProposalSpec[], spi: Buffer): Proposal[] {
  return specs.map((s, i) => {
    const transforms: Transform[] = [];
    for (const e of s.encr) {
      const a = encrAlg(e.id, e.keyBits);
      if (!a) throw new ProposalError(`unsupported encryption algorithm ${e.id} with ${e.keyBits}-bit key`);
      transforms.push(encrTransform(a));
    }
    if (s.protocol === 'ike') for (const p of s.prf) transforms.push(tr(TransformType.PRF, p));
    for (const g of s.integ) transforms.push(tr(TransformType.INTEG, g));
    for (const k of s.ke) transforms.push(tr(TransformType.KE, k));
    if (s.protocol === 'esp') {
      for (const e of s.esn.length > 0 ? s.esn : [EsnId.NO_ESN]) transforms.push(tr(TransformType.ESN, e));
    }
    s.addKe?.forEach((list, i) => {
      for (const id of list) transforms.push(tr(TransformType.ADDKE1 + i, id));
    });
    return {
      num: i + 1,
      protocol: s.protocol === 'ike' ? ProtocolId.IKE : ProtocolId.ESP,
      spi: Buffer.from(spi),
      transforms,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Selection

export interface ChosenIke {
  num: number;
  suite: IkeSuite;
  /** SPI of the chosen offered proposal (empty in IKE_SA_INIT, the new initiator SPI in an IKE rekey). */
  spi: Buffer;
}

export interface ChosenEsp {
  num: number;
  /** The peer's SPI from the chosen proposal (4 bytes): the SPI of our outbound SA. */
  spi: Buffer;
  encr: EncrAlg;
  integ: IntegAlg | null;
  /** Key exchange method for PFS; 0 = none. */
  ke: number;
  esn: boolean;
  /** Additional key exchanges for PFS (RFC 9370), when any: methods of ADDKE1..ADDKE7, 0 = none. */
  addKe?: readonly number[];
}

export interface SelectOptions {
  /**
   * Group of the peer's KE payload. When the matched proposals allow it, it is chosen over our
   * preferred group, which saves an INVALID_KE_PAYLOAD round trip (RFC 7296 §1.2).
   */
  peerKe?: number;
  /** ESP in IKE_AUTH: there is no key exchange; KE transforms in either offer are ignored. */
  skipKe?: boolean;
  /**
   * Whether additional key exchanges (RFC 9370) may be chosen. Without it a proposal matches only
   * where both sides accept NONE for every additional key exchange type.
   */
  addKe?: boolean;
}

/** An offered proposal sorted by transform type, with unusable transforms dropped. */
interface Offer {
  encr: EncrAlg[];
  prf: PrfAlg[];
  integ: IntegAlg[];
  /** Also holds 0 when NONE is offered. */
  ke: number[];
  hasKe: boolean;
  esn: number[];
  hasEsn: boolean;
  hasInteg: boolean;
  /** Offered methods per additional key exchange type (0 = NONE); null when the type is absent. */
  addKe: (number[] | null)[];
}

/** The KEY_LENGTH of a transform, 0 when absent, or -1 when its attributes make it unusable. */
function keyLengthOf(t: Transform): number {
  let bits = 0;
  for (const a of t.attributes) {
    if (a.type !== TransformAttr.KEY_LENGTH || typeof a.value !== 'number' || bits !== 0) return -1;
    bits = a.value;
  }
  return bits;
}

function readOffer(p: Proposal): Offer | undefined {
  const o: Offer = { encr: [], prf: [], integ: [], ke: [], hasKe: false, esn: [], hasEsn: false, hasInteg: false, addKe: [null, null, null, null, null, null, null] };
  let mandatoryUnknown: Map<number, boolean> | undefined; // unknown type -> offers NONE
  for (const t of p.transforms) {
    const bits = keyLengthOf(t);
    switch (t.type) {
      case TransformType.ENCR: {
        const a = bits >= 0 ? encrAlg(t.id, bits) : undefined;
        if (a && !o.encr.includes(a)) o.encr.push(a);
        break;
      }
      case TransformType.PRF: {
        const a = bits === 0 ? prfAlg(t.id) : undefined;
        if (a && !o.prf.includes(a)) o.prf.push(a);
        break;
      }
      case TransformType.INTEG: {
        o.hasInteg = true;
        const a = bits === 0 ? integAlg(t.id) : undefined;
        if (a && !o.integ.includes(a)) o.integ.push(a);
        break;
      }
      case TransformType.KE:
        o.hasKe = true;
        if (bits === 0 && !o.ke.includes(t.id)) o.ke.push(t.id);
        break;
      case TransformType.ESN:
        o.hasEsn = true;
        if (bits === 0 && !o.esn.includes(t.id)) o.esn.push(t.id);
        break;
      default:
        if (t.type >= TransformType.ADDKE1 && t.type <= TransformType.ADDKE7) {
          const list = (o.addKe[t.type - TransformType.ADDKE1] ??= []);
          if (bits === 0 && !list.includes(t.id)) list.push(t.id);
          break;
        }
        // Unknown types: acceptable only if NONE is offered.
        mandatoryUnknown ??= new Map();
        mandatoryUnknown.set(t.type, (mandatoryUnknown.get(t.type) ?? false) || t.id === 0);
    }
  }
  if (mandatoryUnknown) for (const noneOffered of mandatoryUnknown.values()) if (!noneOffered) return undefined;
  return o;
}

function pickKe(ours: number[], offered: Offer, peerKe: number | undefined, allowNone: boolean): number | undefined {
  const has = (k: number): boolean => (k === 0 ? allowNone && (!offered.hasKe || offered.ke.includes(0)) : offered.ke.includes(k));
  if (peerKe !== undefined && peerKe !== 0 && ours.includes(peerKe) && has(peerKe)) return peerKe;
  for (const k of ours) if (has(k)) return k;
  return undefined;
}

/**
 * One method per additional key exchange type, each in our preference order (RFC 9370 §2.2.1): a
 * type either side leaves out counts as NONE. Undefined when a type has no common method; an
 * empty result when every type is NONE.
 */
function pickAddKe(spec: ProposalSpec, offer: Offer, allow: boolean): number[] | undefined {
  if (!spec.addKe || spec.addKe.every((l) => l.length === 0)) {
    // we want none (the usual): NONE for every type, which the peer must allow where it offers any
    for (let i = 0; i < ADDKE_TYPES; i++) {
      const theirs = offer.addKe[i];
      if (theirs && !theirs.includes(0)) return undefined;
    }
    return [];
  }
  const out: number[] = [];
  let any = false;
  for (let i = 0; i < ADDKE_TYPES; i++) {
    const mine = spec.addKe?.[i];
    const ours = mine && mine.length > 0 ? mine : [0];
    const theirs = offer.addKe[i] ?? [0];
    const pick = ours.find((k) => (allow || k === 0) && theirs.includes(k) && (k === 0 || keGroup(k) !== undefined));
    if (pick === undefined) return undefined;
    out.push(pick);
    if (pick !== 0) any = true;
  }
  return any ? out : [];
}

function pickEncrInteg(
  spec: ProposalSpec,
  offer: Offer,
  ok: (e: EncrAlg, i: IntegAlg | null) => boolean,
): { encr: EncrAlg; integ: IntegAlg | null } | undefined {
  for (const e of spec.encr) {
    const a = encrAlg(e.id, e.keyBits);
    if (!a || !offer.encr.includes(a)) continue;
    if (a.aead) {
      if (ok(a, null)) return { encr: a, integ: null };
      continue;
    }
    for (const id of spec.integ) {
      const i = integAlg(id);
      if (i && offer.integ.includes(i) && ok(a, i)) return { encr: a, integ: i };
    }
  }
  return undefined;
}

function matchIke(spec: ProposalSpec, p: Proposal, opts: SelectOptions | undefined): IkeSuite | undefined {
  // IKE proposals carry no SPI in IKE_SA_INIT and an 8-byte SPI in an IKE SA rekey.
  if (spec.protocol !== 'ike' || p.protocol !== ProtocolId.IKE || (p.spi.length !== 0 && p.spi.length !== 8)) return undefined;
  const offer = readOffer(p);
  if (!offer) return undefined;
  const ei = pickEncrInteg(spec, offer, () => true);
  if (!ei) return undefined;
  let prf: PrfAlg | undefined;
  for (const id of spec.prf) {
    const a = prfAlg(id);
    if (a && offer.prf.includes(a)) {
      prf = a;
      break;
    }
  }
  if (!prf) return undefined;
  const ke = pickKe(
    spec.ke.filter((k) => k !== 0),
    offer,
    opts?.peerKe,
    false,
  );
  if (ke === undefined) return undefined;
  const addKe = pickAddKe(spec, offer, opts?.addKe ?? false);
  if (!addKe) return undefined;
  return internSuite(ei.encr, prf, ei.integ, ke, addKe);
}

function matchEsp(
  spec: ProposalSpec,
  p: Proposal,
  supports: ((encr: EncrAlg, integ: IntegAlg | null) => boolean) | undefined,
  opts: SelectOptions | undefined,
): Omit<ChosenEsp, 'num' | 'spi'> | undefined {
  if (spec.protocol !== 'esp' || p.protocol !== ProtocolId.ESP || p.spi.length !== 4) return undefined;
  const offer = readOffer(p);
  if (!offer) return undefined;
  const ei = pickEncrInteg(spec, offer, supports ?? (() => true));
  if (!ei) return undefined;
  let ke = 0;
  let addKe: number[] = [];
  if (!opts?.skipKe) {
    const k = pickKe(spec.ke.length > 0 ? spec.ke : [0], offer, opts?.peerKe, true);
    if (k === undefined) return undefined;
    ke = k;
    // Additional key exchanges only on top of a main one (RFC 9370 §2.2.3).
    const a = pickAddKe(spec, offer, (opts?.addKe ?? false) && ke !== 0);
    if (!a) return undefined;
    addKe = a;
  }
  const ourEsn = spec.esn.length > 0 ? spec.esn : [EsnId.NO_ESN];
  const theirEsn = offer.hasEsn ? offer.esn : [EsnId.NO_ESN];
  const esn = ourEsn.find((e) => theirEsn.includes(e));
  if (esn === undefined) return undefined;
  const chosen = { encr: ei.encr, integ: ei.integ, ke, esn: esn === EsnId.ESN };
  return addKe.length ? { ...chosen, addKe } : chosen;
}

/**
 * Responder: the first of OUR proposals (our preference order) that one of the peer's offered
 * proposals satisfies, taking each transform type in our preference order.
 */
/**
 * One IkeSuite object per combination of transforms (their objects are static), shared by every IKE
 * SA that negotiated it instead of one per SA. Bounded by the transform tables.
 */
const suites = new Map<string, IkeSuite>();
function internSuite(encr: EncrAlg, prf: PrfAlg, integ: IntegAlg | null, ke: number, addKe: readonly number[] = []): IkeSuite {
  const k = `${encr.id}:${encr.keyBits}:${prf.id}:${integ?.id ?? 0}:${ke}:${addKe.join('.')}`;
  let s = suites.get(k);
  if (!s || s.encr !== encr || s.prf !== prf || s.integ !== integ) {
    // additional key exchanges (RFC 9370) only when any was negotiated
    s = Object.freeze(addKe.length ? { encr, prf, integ, ke, addKe: Object.freeze([...addKe]) } : { encr, prf, integ, ke });
    suites.set(k, s);
  }
  return s;
}

export function selectIkeProposal(ours: ProposalSpec[], offered: Proposal[], opts?: SelectOptions): ChosenIke | undefined {
  for (const spec of ours) {
    for (const p of offered) {
      const suite = matchIke(spec, p, opts);
      if (suite) return { num: p.num, suite, spi: keep(p.spi) };
    }
  }
  return undefined;
}

/**
 * Responder: as selectIkeProposal for ESP. `supports` filters (encr, integ) pairs the dataplane
 * can install. Without opts.skipKe, a proposal of ours without KE accepts an offer without KE
 * or with NONE among its KE transforms; one with KE requires a common group (PFS).
 */
export function selectEspProposal(
  ours: ProposalSpec[],
  offered: Proposal[],
  supports?: (encr: EncrAlg, integ: IntegAlg | null) => boolean,
  opts?: SelectOptions,
): ChosenEsp | undefined {
  for (const spec of ours) {
    for (const p of offered) {
      const m = matchEsp(spec, p, supports, opts);
      if (m) return { num: p.num, spi: keep(p.spi), ...m };
    }
  }
  return undefined;
}

/** At most one transform of each type, as a response must have (RFC 7296 §3.3). */
function singleTransforms(p: Proposal): boolean {
  const seen = new Set<number>();
  for (const t of p.transforms) {
    if (seen.has(t.type)) return false;
    seen.add(t.type);
  }
  return true;
}

/**
 * Initiator: checks the responder's SA payload against what we offered (`ours`, in the order
 * given to toWireProposals): exactly one proposal, one transform per type, numbered as one of
 * ours and contained in it.
 */
export function checkIkeResponse(ours: ProposalSpec[], response: Proposal[]): ChosenIke | undefined {
  const p = response.length === 1 ? response[0]! : undefined;
  if (!p || !singleTransforms(p)) return undefined;
  const spec = ours[p.num - 1];
  if (!spec) return undefined;
  const suite = matchIke(spec, p, { addKe: true });
  return suite ? { num: p.num, suite, spi: p.spi } : undefined;
}

/** Initiator: as checkIkeResponse for ESP; opts.skipKe for the CHILD SA of IKE_AUTH. */
export function checkEspResponse(ours: ProposalSpec[], response: Proposal[], opts?: SelectOptions): ChosenEsp | undefined {
  const p = response.length === 1 ? response[0]! : undefined;
  if (!p || !singleTransforms(p)) return undefined;
  const spec = ours[p.num - 1];
  if (!spec) return undefined;
  // A response without KE to an offer with PFS is a failure unless KE is skipped.
  const m = matchEsp(spec, p, undefined, { addKe: true, ...opts });
  if (!m) return undefined;
  if (!opts?.skipKe && spec.ke.length > 0 && !spec.ke.includes(0) && m.ke === 0) return undefined;
  return { num: p.num, spi: p.spi, ...m };
}

/** The single-proposal IKE SA for a response. `spi`: empty in IKE_SA_INIT, our new SPI (8 bytes) in an IKE rekey. */
export function ikeChosenToWire(c: ChosenIke, spi: Buffer = Buffer.alloc(0)): Proposal {
  const s = c.suite;
  const transforms: Transform[] = [encrTransform(s.encr), tr(TransformType.PRF, s.prf.id)];
  if (s.integ) transforms.push(tr(TransformType.INTEG, s.integ.id));
  transforms.push(tr(TransformType.KE, s.ke));
  pushAddKe(transforms, s.addKe);
  return { num: c.num, protocol: ProtocolId.IKE, spi: Buffer.from(spi), transforms };
}

/** The single-proposal ESP SA for a response; `spi` is our inbound SPI (4 bytes). No KE transform without PFS. */
export function espChosenToWire(c: ChosenEsp, spi: Buffer): Proposal {
  const transforms: Transform[] = [encrTransform(c.encr)];
  if (c.integ) transforms.push(tr(TransformType.INTEG, c.integ.id));
  if (c.ke !== 0) transforms.push(tr(TransformType.KE, c.ke));
  transforms.push(tr(TransformType.ESN, c.esn ? EsnId.ESN : EsnId.NO_ESN));
  pushAddKe(transforms, c.addKe);
  return { num: c.num, protocol: ProtocolId.ESP, spi: Buffer.from(spi), transforms };
}

/** The chosen additional key exchanges of a response; types chosen as NONE are left out. */
function pushAddKe(transforms: Transform[], addKe: readonly number[] | undefined): void {
  addKe?.forEach((id, i) => {
    if (id !== 0) transforms.push(tr(TransformType.ADDKE1 + i, id));
  });
}

/** The additional key exchanges to run, in order (ADDKE1 first), NONE left out. */
export function addKeMethods(addKe: readonly number[] | undefined): number[] {
  return addKe ? addKe.filter((id) => id !== 0) : [];
}

/** A proposal without its additional key exchanges (for exchanges that cannot run them). */
export function withoutAddKe(p: ProposalSpec): ProposalSpec {
  if (!p.addKe) return p;
  const { addKe: _dropped, ...rest } = p;
  return rest;
}

/** ikeChosenToWire or espChosenToWire by the kind of choice (ESP needs `spi`). */
export function chosenToWire(c: ChosenIke | ChosenEsp, spi?: Buffer): Proposal {
  if ('suite' in c) return ikeChosenToWire(c, spi);
  if (!spi) throw new ProposalError('an ESP response proposal needs our SPI');
  return espChosenToWire(c, spi);
}

function keName(ke: number): string {
  return keGroup(ke)?.name ?? `KE_${ke}`;
}

const suiteTexts = new WeakMap<IkeSuite, string>();
/** strongSwan list-sas style, e.g. "AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519"; made once per suite record (they are interned). */
export function formatIkeSuite(s: IkeSuite): string {
  let t = suiteTexts.get(s);
  if (t === undefined) suiteTexts.set(s, (t = ikeSuiteText(s)));
  return t;
}

function ikeSuiteText(s: IkeSuite): string {
  const parts = [s.encr.name];
  if (s.integ) parts.push(s.integ.name);
  parts.push(s.prf.name, keName(s.ke));
  addKeNames(parts, s.addKe);
  return parts.join('/');
}

/** e.g. "AES_CBC_256/HMAC_SHA2_256_128/MODP_2048/ESN"; KE only with PFS, ESN only when used. */
export function formatEspProposal(c: Pick<ChosenEsp, 'encr' | 'integ' | 'ke' | 'esn' | 'addKe'>): string {
  const parts = [c.encr.name];
  if (c.integ) parts.push(c.integ.name);
  if (c.ke !== 0) parts.push(keName(c.ke));
  if (c.esn) parts.push('ESN');
  addKeNames(parts, c.addKe);
  return parts.join('/');
}

/** strongSwan's names of additional key exchanges: KE1_ML_KEM_768. */
function addKeNames(parts: string[], addKe: readonly number[] | undefined): void {
  addKe?.forEach((id, i) => {
    if (id !== 0) parts.push(`KE${i + 1}_${keName(id)}`);
  });
}

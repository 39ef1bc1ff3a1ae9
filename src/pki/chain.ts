/**
 * Trust chains (RFC 5280 §6, as strongSwan applies it): path building from an end certificate
 * through received intermediates (any order, extras allowed) to a configured CA, with signature,
 * validity, basicConstraints, pathLen, keyUsage, nameConstraints and policy constraint checks,
 * revocation against configured CRLs, and a bounded cache of verified chains.
 *
 * Bounds against hostile CERT payloads: at most MAX_INTERMEDIATES intermediates are looked at,
 * paths are at most maxDepth long, and one verification checks at most MAX_SIGNATURE_CHECKS
 * signatures, however many certificates share a name.
 */
import type { Cert, ChainResult, Crl, RevocationPolicy, TrustStore, VerifyOptions } from './api.ts';
import { certInternals, signedBy } from './cert.ts';
import { nameConstraintViolation, policyViolation } from './constraints.ts';
import { crlInternals, crlSignedBy } from './crl.ts';

/** strongSwan's default maximum path length (end certificate and trust anchor included). */
export const DEFAULT_MAX_DEPTH = 7;
export const MAX_INTERMEDIATES = 32;
export const MAX_SIGNATURE_CHECKS = 64;
/** Verified chains kept (one entry per end certificate, trust object and options). */
export const CHAIN_CACHE_SIZE = 50_000;
const LINK_CACHE_SIZE = 8192;

/** A small LRU on Map's insertion order. */
class Lru<V> {
  readonly max: number;
  readonly map = new Map<string, V>();
  constructor(max: number) {
    this.max = max;
  }
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

interface TrustIndex {
  gen: number;
  casLength: number;
  crlsLength: number;
  bySubject: Map<string, Cert[]>;
  anchors: Set<string>;
  crlsByIssuer: Map<string, Crl[]>;
  /** CRL fingerprint | issuer fingerprint → signature verified. */
  crlChecked: Map<string, boolean>;
}

interface CachedChain {
  issuers: Cert[];
  from: number;
  until: number;
  warnings: string[];
}

let nextGen = 1;
const indexes = new WeakMap<TrustStore, TrustIndex>();
const chainCache = new Lru<CachedChain>(CHAIN_CACHE_SIZE);
/** child fingerprint | issuer fingerprint → the issuer's key verifies the child's signature. */
const linkCache = new Lru<boolean>(LINK_CACHE_SIZE);
/**
 * One Cert object per issuer certificate kept in cached chains: every peer sends (and the engine
 * parses) its own copy of the same intermediates, and 50,000 cached chains must not keep 50,000 copies.
 */
const issuers = new Lru<Cert>(1024);

function canonicalIssuer(c: Cert): Cert {
  const have = issuers.get(c.fingerprint);
  if (have) return have;
  issuers.set(c.fingerprint, c);
  return c;
}

function hex(b: Buffer): string {
  return b.toString('hex');
}

function trustIndex(trust: TrustStore): TrustIndex {
  const have = indexes.get(trust);
  if (have && have.casLength === trust.cas.length && have.crlsLength === trust.crls.length) return have;
  const bySubject = new Map<string, Cert[]>();
  const anchors = new Set<string>();
  for (const ca of trust.cas) {
    const k = hex(ca.subjectDer);
    const list = bySubject.get(k) ?? [];
    if (!list.some((c) => c.fingerprint === ca.fingerprint)) list.push(ca);
    bySubject.set(k, list);
    anchors.add(ca.fingerprint);
  }
  const crlsByIssuer = new Map<string, Crl[]>();
  for (const crl of trust.crls) {
    const k = hex(crl.issuerDer);
    crlsByIssuer.set(k, [...(crlsByIssuer.get(k) ?? []), crl]);
  }
  const idx: TrustIndex = {
    gen: nextGen++,
    casLength: trust.cas.length,
    crlsLength: trust.crls.length,
    bySubject,
    anchors,
    crlsByIssuer,
    crlChecked: new Map(),
  };
  indexes.set(trust, idx);
  return idx;
}

function iso(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z');
}

/** Why the certificate is not valid at `now`, or undefined. */
function validityProblem(c: Cert, now: Date): string | undefined {
  if (now.getTime() < c.notBefore.getTime()) return `certificate "${c.subject}" is not valid before ${iso(c.notBefore)}`;
  if (now.getTime() > c.notAfter.getTime()) return `certificate "${c.subject}" expired on ${iso(c.notAfter)}`;
  return undefined;
}

function usesSha1(c: Cert): boolean {
  return certInternals(c)?.sigAlg.hash === 'sha1';
}

function linkVerified(child: Cert, issuer: Cert): boolean {
  const k = `${child.fingerprint}|${issuer.fingerprint}`;
  const hit = linkCache.get(k);
  if (hit !== undefined) return hit;
  const ok = signedBy(child, issuer);
  linkCache.set(k, ok);
  return ok;
}

type LinkStatus = { status: 'good' | 'skipped' } | { status: 'revoked' | 'stale' | 'failed'; detail: string };

function crlVerified(idx: TrustIndex, crl: Crl, issuer: Cert, allowSha1: boolean): boolean {
  if (!allowSha1 && crlInternals(crl)?.sigAlg.hash === 'sha1') return false;
  const k = `${crl.fingerprint}|${issuer.fingerprint}`;
  let ok = idx.crlChecked.get(k);
  if (ok === undefined) {
    ok = crlSignedBy(crl, issuer.publicKey);
    if (idx.crlChecked.size >= 1024) idx.crlChecked.clear();
    idx.crlChecked.set(k, ok);
  }
  return ok;
}

/** Revocation status of `child` from the configured CRLs of `issuer` (strongSwan's check_crl). */
function linkStatus(idx: TrustIndex, child: Cert, issuer: Cert, now: Date, allowSha1: boolean, bound: { until: number }): LinkStatus {
  const all = idx.crlsByIssuer.get(hex(issuer.subjectDer));
  if (!all) return { status: 'skipped' };
  const applicable: Crl[] = [];
  for (const crl of all) {
    if ((crl.onlyUserCerts && child.isCa) || (crl.onlyCaCerts && !child.isCa)) continue;
    if (crl.thisUpdate.getTime() > now.getTime()) {
      // not valid yet: ignored now, but it may revoke once it is
      bound.until = Math.min(bound.until, crl.thisUpdate.getTime());
      continue;
    }
    applicable.push(crl);
  }
  if (applicable.length === 0) return { status: 'skipped' };
  const verified = applicable.filter((crl) => crlVerified(idx, crl, issuer, allowSha1));
  if (verified.length === 0) {
    return { status: 'failed', detail: `the CRL of "${issuer.subject}" (${applicable[0]!.source}) is not correctly signed by it` };
  }
  for (const crl of verified) {
    const date = crl.revoked.get(child.serial);
    if (date) return { status: 'revoked', detail: `certificate "${child.subject}" was revoked on ${iso(date)} (${crl.source})` };
  }
  let staleSince = 0;
  for (const crl of verified) {
    if (!crl.nextUpdate || crl.nextUpdate.getTime() >= now.getTime()) {
      if (crl.nextUpdate) bound.until = Math.min(bound.until, crl.nextUpdate.getTime());
      return { status: 'good' };
    }
    staleSince = Math.max(staleSince, crl.nextUpdate.getTime());
  }
  return { status: 'stale', detail: `the CRL of "${issuer.subject}" is stale since ${iso(new Date(staleSince))}` };
}

/** Applies the revocation policy to a link's status: the failure reason, a warning, or nothing. */
function judge(s: LinkStatus, policy: RevocationPolicy, child: Cert): { fail?: string; warn?: string } {
  switch (s.status) {
    case 'good':
      return {};
    case 'revoked':
      return { fail: s.detail };
    case 'skipped':
      return policy === 'strict' ? { fail: `no valid CRL for certificate "${child.subject}" (revocation = strict)` } : {};
    case 'stale':
    case 'failed':
      return policy === 'relaxed' ? { warn: `${s.detail}: revocation status of "${child.subject}" unknown` } : { fail: `${s.detail} (revocation = ${policy})` };
  }
}

export function verifyChain(
  end: Cert,
  intermediates: readonly Cert[],
  trust: TrustStore,
  now: Date,
  opts?: VerifyOptions,
): ChainResult {
  const maxDepth = Math.max(1, Math.min(opts?.maxDepth ?? DEFAULT_MAX_DEPTH, 16));
  const policy = opts?.revocation ?? 'relaxed';
  const allowSha1 = opts?.allowSha1 ?? false;
  const idx = trustIndex(trust);
  const t = now.getTime();
  const key = `${idx.gen}|${end.fingerprint}|${maxDepth}|${policy}|${allowSha1 ? 1 : 0}`;
  const hit = chainCache.get(key);
  if (hit && t >= hit.from && t <= hit.until) return { ok: true, chain: [end, ...hit.issuers], warnings: hit.warnings };

  if (!certInternals(end)) return { ok: false, reason: 'not a certificate loaded by loadCertificates' };
  const endProblem = validityProblem(end, now);
  if (endProblem) return { ok: false, reason: endProblem };
  // RFC 4945 §5.1.3.2: an end-entity keyUsage must allow signatures (digitalSignature or nonRepudiation)
  if (end.keyUsage && !end.keyUsage.includes('digitalSignature') && !end.keyUsage.includes('nonRepudiation')) {
    return { ok: false, reason: `certificate "${end.subject}" has keyUsage without digitalSignature or nonRepudiation` };
  }
  if (intermediates.length > MAX_INTERMEDIATES) {
    return { ok: false, reason: `${intermediates.length} intermediate certificates (at most ${MAX_INTERMEDIATES})` };
  }
  const received = new Map<string, Cert[]>();
  for (const c of intermediates) {
    if (!certInternals(c)) continue;
    const k = hex(c.subjectDer);
    received.set(k, [...(received.get(k) ?? []), c]);
  }

  let budget = MAX_SIGNATURE_CHECKS;
  let reason: string | undefined;
  const note = (r: string): void => {
    reason ??= r;
  };

  /** Depth-first search for a path from path[last] to a trust anchor; the path is bounded by maxDepth. */
  const extend = (path: Cert[]): Cert[] | undefined => {
    const cur = path[path.length - 1]!;
    if (idx.anchors.has(cur.fingerprint)) return path;
    if (path.length >= maxDepth) {
      note(`certificate chain longer than ${maxDepth} without reaching a trusted CA`);
      return undefined;
    }
    const k = hex(cur.issuerDer);
    const candidates = [...(idx.bySubject.get(k) ?? []), ...(received.get(k) ?? [])].filter(
      (c) =>
        !path.some((p) => p.fingerprint === c.fingerprint) &&
        !(cur.authorityKeyId && c.subjectKeyId && !cur.authorityKeyId.equals(c.subjectKeyId)),
    );
    if (candidates.length === 0) {
      note(`no trusted CA or intermediate certificate found for issuer "${cur.issuer}" of "${cur.subject}"`);
      return undefined;
    }
    if (usesSha1(cur) && !allowSha1) {
      note(`certificate "${cur.subject}" is signed with SHA-1, which is not allowed`);
      return undefined;
    }
    for (const cand of candidates) {
      if (budget-- <= 0) {
        note(`more than ${MAX_SIGNATURE_CHECKS} signature checks`);
        return undefined;
      }
      if (!linkVerified(cur, cand)) {
        note(`signature of certificate "${cur.subject}" does not verify with the key of "${cand.subject}"`);
        continue;
      }
      const isAnchor = idx.anchors.has(cand.fingerprint);
      if (!cand.isCa && !(isAnchor && cand.version === 1 && cand.selfSigned)) {
        note(`issuer "${cand.subject}" is not a CA (basicConstraints)`);
        continue;
      }
      if (cand.keyUsage && !cand.keyUsage.includes('keyCertSign')) {
        note(`issuer "${cand.subject}" has keyUsage without keyCertSign`);
        continue;
      }
      // pathLenConstraint: non-self-issued intermediates between the issuer and the end certificate
      const below = path.slice(1).filter((c) => !c.issuerDer.equals(c.subjectDer)).length;
      if (cand.pathLen !== undefined && below > cand.pathLen) {
        note(`path length constraint ${cand.pathLen} of "${cand.subject}" exceeded (${below} intermediate CAs below it)`);
        continue;
      }
      const v = validityProblem(cand, now);
      if (v) {
        note(v);
        continue;
      }
      const found = extend([...path, cand]);
      if (found) return found;
      if (budget <= 0) return undefined;
    }
    return undefined;
  };

  const chain = extend([end]);
  if (!chain) return { ok: false, reason: reason ?? 'no path to a trusted CA' };

  for (let i = 1; i < chain.length; i++) {
    if (!chain[i]!.nameConstraints) continue;
    for (let j = 0; j < i; j++) {
      const below = chain[j]!;
      if (j > 0 && below.issuerDer.equals(below.subjectDer)) continue; // self-issued intermediates are exempt
      const v = nameConstraintViolation(chain[i]!, below);
      if (v) return { ok: false, reason: v };
    }
  }

  const policyProblem = policyViolation(chain);
  if (policyProblem) return { ok: false, reason: policyProblem };

  const bound = { until: Number.POSITIVE_INFINITY };
  const warnings: string[] = [];
  for (let i = 0; i + 1 < chain.length; i++) {
    const j = judge(linkStatus(idx, chain[i]!, chain[i + 1]!, now, allowSha1, bound), policy, chain[i]!);
    if (j.fail) return { ok: false, reason: j.fail };
    if (j.warn) warnings.push(j.warn);
  }
  let from = 0;
  let until = bound.until;
  for (const c of chain) {
    from = Math.max(from, c.notBefore.getTime());
    until = Math.min(until, c.notAfter.getTime());
  }
  // a stale or unverifiable CRL only warns under "relaxed"; re-check when a fresh one could appear
  chainCache.set(key, { issuers: chain.slice(1).map(canonicalIssuer), from, until: warnings.length ? Math.min(until, t + 60_000) : until, warnings });
  return { ok: true, chain, warnings };
}

export function certReqData(cas: readonly Cert[]): Buffer {
  return Buffer.concat(cas.map((c) => c.spkiSha1));
}

export function casFromCertReq(trust: TrustStore, data: Buffer): Cert[] {
  if (data.length % 20 !== 0 || data.length > 20 * 1024) return [];
  const out: Cert[] = [];
  for (let i = 0; i < data.length; i += 20) {
    const h = data.subarray(i, i + 20);
    for (const ca of trust.cas) if (ca.spkiSha1.equals(h) && !out.includes(ca)) out.push(ca);
  }
  return out;
}

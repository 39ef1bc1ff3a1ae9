/**
 * Chain constraints beyond basicConstraints. nameConstraints (RFC 5280 §4.2.1.10, §6.1.3 (b)–(c)):
 * a CA's permitted and excluded subtrees apply to the subject DN and the DNS, email, IP and DN
 * subjectAltNames of every certificate below it in a chain (self-issued intermediates excepted).
 * Policy constraints: as strongSwan's constraints plugin (policyViolation).
 */
import type { AltName, Cert } from './api.ts';

function lower(s: string): string {
  return s.toLowerCase();
}

function dnsMatches(name: string, base: string): boolean {
  const n = lower(name);
  let b = lower(base);
  if (b === '') return true;
  if (b.startsWith('.')) {
    b = b.slice(1);
    return n.endsWith(`.${b}`);
  }
  return n === b || n.endsWith(`.${b}`);
}

function emailMatches(name: string, base: string): boolean {
  const n = lower(name);
  const b = lower(base);
  if (b === '') return true;
  if (b.includes('@')) return n === b;
  const at = n.lastIndexOf('@');
  const host = at === -1 ? n : n.slice(at + 1);
  return b.startsWith('.') ? host.endsWith(b) : host === b;
}

function ipMatches(addr: Buffer, base: Buffer): boolean {
  const n = addr.length;
  if (base.length !== 2 * n) return false;
  for (let i = 0; i < n; i++) if ((addr[i]! & base[n + i]!) !== (base[i]! & base[n + i]!)) return false;
  return true;
}

/** Contents of a DER SEQUENCE (the RDNs of a Name); short-form or long-form header. */
function seqContents(der: Buffer): Buffer {
  if (der.length < 2) return Buffer.alloc(0);
  const l = der[1]!;
  return der.subarray(l < 0x80 ? 2 : 2 + (l & 0x7f));
}

/** The base's RDNs are the first RDNs of the name (DER, compared bytewise). */
function dnMatches(name: Buffer, base: Buffer): boolean {
  const n = seqContents(name);
  const b = seqContents(base);
  return b.length <= n.length && n.subarray(0, b.length).equals(b);
}

function matches(name: AltName, base: AltName): boolean {
  switch (name.type) {
    case 'dns':
      return dnsMatches(name.value, base.value);
    case 'email':
      return emailMatches(name.value, base.value);
    case 'ip':
      return ipMatches(name.data, base.data);
    case 'dn':
      return dnMatches(name.data, base.data);
    default:
      return false;
  }
}

/** The names of a certificate that name constraints apply to. */
function names(c: Cert): AltName[] {
  const out: AltName[] = [];
  if (seqContents(c.subjectDer).length > 0) out.push({ type: 'dn', value: c.subject, data: c.subjectDer });
  for (const a of c.altNames) if (a.type === 'dns' || a.type === 'email' || a.type === 'ip' || a.type === 'dn') out.push(a);
  return out;
}

/** Why `c` violates the name constraints of `ca`, or undefined. */
export function nameConstraintViolation(ca: Cert, c: Cert): string | undefined {
  const nc = ca.nameConstraints;
  if (!nc) return undefined;
  for (const n of names(c)) {
    const sameType = (b: AltName): boolean => b.type === n.type && (n.type !== 'ip' || b.data.length === 2 * n.data.length);
    if (nc.excluded.some((b) => sameType(b) && matches(n, b))) {
      return `${n.type} name "${n.value}" of "${c.subject}" is excluded by the nameConstraints of "${ca.subject}"`;
    }
    const permitted = nc.permitted.filter(sameType);
    if (permitted.length > 0 && !permitted.some((b) => matches(n, b))) {
      return `${n.type} name "${n.value}" of "${c.subject}" is outside the nameConstraints of "${ca.subject}"`;
    }
  }
  return undefined;
}

const ANY_POLICY = '2.5.29.32.0';

/** The issuer has the policy, anyPolicy, or maps a policy of its own to it (strongSwan's has_policy). */
function hasPolicy(issuer: Cert, oid: string): boolean {
  const p = issuer.policy;
  if (!p) return false;
  return p.oids.includes(oid) || p.oids.includes(ANY_POLICY) || p.mappings.some((m) => m.subjectDomain === oid);
}

/** Each policy and mapped-from policy of `subject` is one its issuer has (strongSwan's check_policy). */
function checkPolicy(subject: Cert, issuer: Cert): string | undefined {
  for (const m of subject.policy?.mappings ?? []) {
    if (!hasPolicy(issuer, m.issuerDomain)) {
      return `certificate "${subject.subject}" maps policy ${m.issuerDomain}, which its issuer "${issuer.subject}" lacks`;
    }
  }
  for (const oid of subject.policy?.oids ?? []) {
    if (!hasPolicy(issuer, oid)) return `policy ${oid} of "${subject.subject}" is missing in its issuer "${issuer.subject}"`;
  }
  return undefined;
}

/**
 * policyConstraints and inhibitAnyPolicy along a chain [end, ...issuers, anchor], as strongSwan's
 * constraints plugin applies them: a requireExplicitPolicy of N in the certificate at issuer
 * position P requires the policies of the first P−N links (from the end certificate up) to be
 * held by their issuers; an inhibitPolicyMapping (inhibitAnyPolicy) of N in the certificate at
 * chain position P forbids policyMappings (anyPolicy) in the first P−N certificates of the chain.
 */
export function policyViolation(chain: readonly Cert[]): string | undefined {
  if (!chain.some((c) => c.policy)) return undefined;
  const end = chain[0]!;
  const issuers = chain.slice(1);
  for (let pos = 0; pos < issuers.length; pos++) {
    const expl = issuers[pos]!.policy?.requireExplicitPolicy;
    if (expl === undefined) continue;
    let subject = end;
    for (let i = 0; i < pos - expl && i < issuers.length; i++) {
      const v = checkPolicy(subject, issuers[i]!);
      if (v) return `${v} (requireExplicitPolicy of "${issuers[pos]!.subject}")`;
      subject = issuers[i]!;
    }
  }
  for (let pos = 0; pos < chain.length; pos++) {
    const p = chain[pos]!.policy;
    if (!p) continue;
    for (const [limit, what, bad] of [
      [p.inhibitPolicyMapping, 'inhibitPolicyMapping', (c: Cert) => (c.policy?.mappings.length ?? 0) > 0],
      [p.inhibitAnyPolicy, 'inhibitAnyPolicy', (c: Cert) => c.policy?.oids.includes(ANY_POLICY) ?? false],
    ] as const) {
      if (limit === undefined) continue;
      for (let i = 0; i < pos - limit; i++) {
        if (bad(chain[i]!)) {
          return `certificate "${chain[i]!.subject}" has ${what === 'inhibitAnyPolicy' ? 'anyPolicy' : 'policyMappings'}, but ${what} of "${chain[pos]!.subject}" is in effect`;
        }
      }
    }
  }
  return undefined;
}

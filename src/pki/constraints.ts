/**
 * nameConstraints enforcement (RFC 5280 §4.2.1.10, §6.1.3 (b)–(c)): a CA's permitted and excluded
 * subtrees apply to the subject DN and the DNS, email, IP and DN subjectAltNames of every
 * certificate below it in a chain (self-issued intermediates excepted).
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

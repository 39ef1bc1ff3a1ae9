/**
 * Certificate authentication (`auth = pubkey`): our AUTH payload is a signature with the private key
 * of our certificate (RFC 7427 method 14 when the peer announced SIGNATURE_HASH_ALGORITHMS, else the
 * classic RSA / ECDSA method of RFC 7296 §3.8); the peer's is checked with the public key of the
 * certificate in its first CERT payload, after that certificate chained to one of the connection's
 * `cacerts` (the peer's other CERT payloads serve as intermediates) and was found to name the
 * identity the peer claims (subject DN or subjectAltName). Signing and verifying run off the event
 * loop (the library uses node:crypto's thread pool).
 *
 * Peer certificates are hostile input: at most MAX_PEER_CERTS CERT payloads of at most
 * MAX_PEER_CERT_BYTES each are looked at; only X.509 Signature (encoding 4) is accepted.
 */
import { AuthMethod, CertEncoding, NotifyType, PayloadType } from '../../constants.ts';
import type { CertPayload, CertReqPayload, NotifyPayload, Payload } from '../../codec/types.ts';
import {
  certMatchesIdentity,
  certIdentity,
  ourHashAlgorithms,
  parseCertificate,
  PkiError,
  signAuth,
  verifyAuth,
  verifyChain,
  type Cert,
} from '../../../pki/api.ts';
import type { Credentials } from '../../../config/credentials.ts';
import type { ConnectionConfig } from '../../../config/types.ts';
import type { Identity } from '../../../config/identity.ts';
import type { IkeSa } from '../../sa/ike-sa.ts';
import type { EngineContext } from '../context.ts';
import { find, findAll, notify } from '../payload-util.ts';
import type { Authenticator } from './authenticator.ts';

/** CERT payloads looked at in one IKE_AUTH message (end certificate and intermediates); more is refused. */
export const MAX_PEER_CERTS = 8;
/** Largest certificate accepted in a CERT payload (an RSA-8192 certificate is about 2 KB). */
export const MAX_PEER_CERT_BYTES = 16384;
/** Hash algorithm identifiers kept from a peer's SIGNATURE_HASH_ALGORITHMS. */
const MAX_PEER_HASHES = 16;
/** CAs named in our IKE_SA_INIT CERTREQ at most. */
const MAX_CERTREQ_CAS = 64;

const SIGNATURE_METHODS = [
  AuthMethod.RSA_SIG,
  AuthMethod.ECDSA_SHA256_P256,
  AuthMethod.ECDSA_SHA384_P384,
  AuthMethod.ECDSA_SHA512_P521,
  AuthMethod.DIGITAL_SIGNATURE,
];

function message(e: unknown): string {
  return e instanceof PkiError || e instanceof Error ? e.message : String(e);
}

export const pubkeyAuthenticator: Authenticator = {
  methods: SIGNATURE_METHODS,
  async build(ctx, sa, octets) {
    const cred = sa.conn ? ctx.creds.local.get(sa.conn.name) : undefined;
    if (!cred) return { error: 'no certificate with a private key for this connection' };
    try {
      const sig = await signAuth(cred.key, octets, sa.peerHashes);
      if (ctx.debug) ctx.log.debug({ ike: sa.id, method: sig.method, key: cred.key.kind }, 'AUTH payload signed');
      return sig;
    } catch (e) {
      return { error: `signing our AUTH payload failed: ${message(e)}` };
    }
  },
  async verify(ctx, sa, peerId, auth, octets, payloads) {
    const conn = sa.conn;
    const trust = conn ? ctx.creds.remote.get(conn.name) : undefined;
    if (!conn || !trust) return 'no CA certificates configured for this connection';
    const all = findAll(payloads, PayloadType.CERT);
    if (all.length > MAX_PEER_CERTS) return `${all.length} CERT payloads (at most ${MAX_PEER_CERTS} are accepted)`;
    const x509: CertPayload[] = [];
    for (const c of all) {
      if (c.data.length > MAX_PEER_CERT_BYTES) return `a CERT payload of ${c.data.length} bytes (at most ${MAX_PEER_CERT_BYTES} are accepted)`;
      if (c.encoding !== CertEncoding.X509_SIGNATURE) {
        ctx.log.info({ ike: sa.id, peer: sa.remote.addr, encoding: c.encoding }, 'CERT payload ignored: only X.509 certificates (encoding 4) are accepted');
        continue;
      }
      x509.push(c);
    }
    if (x509.length === 0) return all.length > 0 ? 'no CERT payload of encoding X.509 Signature (4)' : 'the peer sent no certificate (CERT payload)';
    let end: Cert;
    const intermediates: Cert[] = [];
    try {
      end = parseCertificate(x509[0]!.data, 'peer certificate (CERT payload 1)');
      for (let i = 1; i < x509.length; i++) intermediates.push(parseCertificate(x509[i]!.data, `peer CERT payload ${i + 1}`));
    } catch (e) {
      return message(e);
    }
    const now = new Date(ctx.opts.wallClock());
    const chain = verifyChain(end, intermediates, trust, now, { revocation: trust.revocation });
    const subject = short(end.subject);
    if (!chain.ok) return `certificate '${subject}' is not trusted: ${chain.reason}`;
    if (chain.warnings.length > 0) ctx.log.info({ ike: sa.id, peer: sa.remote.addr, subject, warnings: chain.warnings }, 'peer certificate accepted with warnings');
    const claimed = claimedIdentity(sa, payloads);
    if (!claimed || !certMatchesIdentity(end, claimed)) return `identity '${short(peerId)}' is neither the subject nor a subjectAltName of certificate '${subject}'`;
    const bad = await verifyAuth(end, auth.method, auth.data, octets, { allowSha1: false });
    if (bad !== undefined) return `signature of '${short(peerId)}' (certificate '${subject}') does not verify: ${bad}`;
    sa.remoteCert = end.subject;
    return undefined;
  },
};

/** The identity the peer sent: IDi from an initiator, IDr from a responder. */
function claimedIdentity(sa: IkeSa, payloads: Payload[]): Identity | undefined {
  const id = sa.initiator ? find(payloads, PayloadType.IDr) : find(payloads, PayloadType.IDi);
  return id ? { type: id.idType, data: id.data } : undefined;
}

/** A peer-supplied name for a log line, cut to a sane length. */
function short(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

/** Whether a connection authenticates either side with certificates. */
export function usesPubkey(conn: ConnectionConfig): boolean {
  return conn.local.auth === 'pubkey' || conn.remote.auth === 'pubkey';
}

/** Our SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 §4). */
export function signatureHashNotify(): NotifyPayload {
  const hashes = ourHashAlgorithms(false);
  const data = Buffer.alloc(hashes.length * 2);
  hashes.forEach((h, i) => data.writeUInt16BE(h, i * 2));
  return notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, data);
}

/**
 * Hash lists as peers send them, shared between SAs: with 50,000 IKE SAs of a few kinds of peer,
 * a handful of arrays instead of one per SA. Bounded; beyond it lists are not shared.
 */
const hashLists = new Map<string, number[]>();
const MAX_SHARED_HASH_LISTS = 64;

/** The peer's SIGNATURE_HASH_ALGORITHMS, when it sent the notify (the codec checked its length is even). */
export function peerHashAlgorithms(payloads: Payload[]): number[] | undefined {
  for (const p of payloads) {
    if (p.type !== PayloadType.NOTIFY || p.notifyType !== NotifyType.SIGNATURE_HASH_ALGORITHMS) continue;
    const data = p.data.subarray(0, MAX_PEER_HASHES * 2);
    const key = data.toString('hex');
    const shared = hashLists.get(key);
    if (shared) return shared;
    const out: number[] = [];
    for (let i = 0; i + 1 < data.length; i += 2) out.push(data.readUInt16BE(i));
    Object.freeze(out);
    if (hashLists.size < MAX_SHARED_HASH_LISTS) hashLists.set(key, out);
    return out;
  }
  return undefined;
}

/** Whether a message carries a CERTREQ payload. */
export function hasCertReq(payloads: Payload[]): boolean {
  return payloads.some((p) => p.type === PayloadType.CERTREQ);
}

function certReqPayload(data: Buffer): CertReqPayload {
  return { type: PayloadType.CERTREQ, critical: false, encoding: CertEncoding.X509_SIGNATURE, data };
}

/** Our CERTREQ for a connection whose peer authenticates with a certificate (send_certreq). */
export function certReqFor(ctx: EngineContext, conn: ConnectionConfig): CertReqPayload | undefined {
  if (conn.remote.auth !== 'pubkey' || !conn.sendCertreq) return undefined;
  const trust = ctx.creds.remote.get(conn.name);
  return trust && trust.certreq.length > 0 ? certReqPayload(trust.certreq) : undefined;
}

/** Our CERTREQ in an IKE_SA_INIT response: every CA we trust for any connection (the peer's is not known yet). */
export function certReqForInit(ctx: EngineContext, conn: ConnectionConfig): CertReqPayload | undefined {
  if (!conn.sendCertreq || ctx.certreqAll.length === 0) return undefined;
  return certReqPayload(ctx.certreqAll);
}

/** The CAs of every `remote.auth = pubkey` connection, each once: CERTREQ data. */
export function certreqUnion(creds: Credentials): Buffer {
  const seen = new Set<string>();
  const parts: Buffer[] = [];
  for (const t of creds.remote.values()) {
    for (let i = 0; i + 20 <= t.certreq.length; i += 20) {
      const h = t.certreq.subarray(i, i + 20);
      const k = h.toString('hex');
      if (seen.has(k) || parts.length >= MAX_CERTREQ_CAS) continue;
      seen.add(k);
      parts.push(h);
    }
  }
  return Buffer.concat(parts);
}

/** Our CERT payloads per send_cert: our certificate, then the intermediates. */
export function certPayloads(ctx: EngineContext, sa: IkeSa): CertPayload[] {
  const conn = sa.conn;
  if (!conn || conn.local.auth !== 'pubkey') return [];
  if (conn.sendCert === 'never' || (conn.sendCert === 'ifasked' && !sa.certreqSeen)) return [];
  const cred = ctx.creds.local.get(conn.name);
  if (!cred) return [];
  return [cred.cert, ...cred.intermediates].map((c) => ({ type: PayloadType.CERT, critical: false, encoding: CertEncoding.X509_SIGNATURE, data: c.der }));
}

/**
 * Our identity for a connection: its `local.id`, else with certificates the subject of our
 * certificate (as strongSwan), else our address. With `identity`, also the wire form to send: a
 * certificate's subject goes out as its DER Name exactly as the certificate holds it.
 */
export function defaultLocalId(ctx: EngineContext, conn: ConnectionConfig): { text: string; identity: Identity } | undefined {
  if (conn.local.auth !== 'pubkey' || (conn.local.id && conn.local.id !== '%any')) return undefined;
  const cred = ctx.creds.local.get(conn.name);
  return cred ? { text: cred.cert.subject, identity: certIdentity(cred.cert) } : undefined;
}

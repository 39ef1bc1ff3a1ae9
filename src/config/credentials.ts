/**
 * Certificates, private keys and CRLs named by the configuration, read and checked at load (and at
 * every reload), so that a bad file is a FILE:LINE:COL error of the line that names it rather than a
 * failed IKE_AUTH later.
 *
 * - `local.certs`: our certificate (the one whose public key matches a private key of the `secrets`
 *   section) and intermediate CA certificates sent with it;
 * - `remote.cacerts` and `remote.crls`: the trust for the peer's certificate;
 * - `secrets { private-|rsa-|ecdsa-|pkcs8-NAME { file, secret } }`: private keys.
 *
 * Files are read once per load however many connections name them. Paths of key files are never
 * quoted in messages (they are written in the secrets section), nor are passphrases.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import {
  certMatchesIdentity,
  certReqData,
  expiresWithin,
  loadCertificates,
  loadCrl,
  loadPrivateKey,
  matchesCert,
  PkiError,
  type Cert,
  type Crl,
  type PrivateKey,
  type RevocationPolicy,
  type TrustStore,
} from '../pki/api.ts';
import type { SourceLocation } from './types.ts';

/** Our side of a `local.auth = pubkey` connection. */
export interface LocalCredential {
  /** Our certificate (its key signs our AUTH payloads). */
  readonly cert: Cert;
  /** CA certificates from `local.certs` sent after ours (self-signed roots are not sent). */
  readonly intermediates: readonly Cert[];
  readonly key: PrivateKey;
}

/** What the peer's certificate of a `remote.auth = pubkey` connection must chain to. */
export interface RemoteTrust extends TrustStore {
  /** Our CERTREQ data for these CAs (their SHA-1 key hashes, RFC 7296 §3.7). */
  readonly certreq: Buffer;
  readonly revocation: RevocationPolicy;
}

/** How a connection uses a certificate (list-certs). */
export type CertUse = 'local' | 'intermediate' | 'ca';

/** One certificate loaded from the configuration. */
export interface CertEntry {
  readonly file: string;
  readonly cert: Cert;
  /** Whether a private key of the secrets section belongs to it. */
  readonly hasKey: boolean;
  /** Connections that use it, and how. */
  readonly uses: readonly { readonly connection: string; readonly use: CertUse }[];
}

export interface Credentials {
  /** By connection name, for connections with `local.auth = pubkey`. */
  readonly local: ReadonlyMap<string, LocalCredential>;
  /** By connection name, for connections with `remote.auth = pubkey`. */
  readonly remote: ReadonlyMap<string, RemoteTrust>;
  /** Every certificate the configuration names, once each, in the order first named. */
  readonly certs: readonly CertEntry[];
  /**
   * By connection name: a digest of the certificates, key and CRLs the connection uses, so that a
   * reload sees a connection whose files changed as changed.
   */
  readonly digest: ReadonlyMap<string, string>;
}

/** Days before notAfter from which a loaded certificate is reported as expiring. */
export const EXPIRY_WARNING_DAYS = 30;

export const NO_CREDENTIALS: Credentials = Object.freeze({
  local: new Map(),
  remote: new Map(),
  certs: Object.freeze([]),
  digest: new Map(),
});

/** Certificates that expire within EXPIRY_WARNING_DAYS of `now` (or have expired), with the days left. */
export function expiringCerts(c: Credentials, now: Date): { entry: CertEntry; days: number }[] {
  const out: { entry: CertEntry; days: number }[] = [];
  for (const e of c.certs) {
    if (expiresWithin(e.cert, now, EXPIRY_WARNING_DAYS)) out.push({ entry: e, days: Math.floor((e.cert.notAfter.getTime() - now.getTime()) / 86_400_000) });
  }
  return out;
}

/** A file list as the loader read it: the resolved paths with where each was written. */
export interface FileRef {
  readonly path: string;
  readonly loc: SourceLocation;
  /** As written (quoted in messages unless the file is named in the secrets section). */
  readonly text: string;
}

/** What one connection asks for, with where it was written. */
export interface ConnectionCredentialRefs {
  readonly name: string;
  readonly localAuth: 'psk' | 'pubkey';
  readonly remoteAuth: 'psk' | 'pubkey';
  /** The local section (or the connection when absent), for "needs certs". */
  readonly localLoc: SourceLocation;
  readonly remoteLoc: SourceLocation;
  readonly localId: string;
  readonly localIdLoc?: SourceLocation;
  readonly certs: readonly FileRef[];
  readonly cacerts: readonly FileRef[];
  readonly crls: readonly FileRef[];
  readonly revocation: RevocationPolicy;
}

/** A private key section of the secrets section. */
export interface KeyRef {
  /** The section's label for messages ("secret 'private-gw'"). */
  readonly label: string;
  readonly loc: SourceLocation;
  readonly file: FileRef;
  readonly passphrase?: string;
}

export type ErrorSink = (loc: SourceLocation, message: string) => void;

function show(s: string): string {
  const clean = s.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 64)}...` : clean;
}

/** PkiError messages are ours to show; anything else from node:crypto is worded the same way. */
function reason(e: unknown): string {
  if (e instanceof PkiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Largest certificate, key or CRL file read (a CRL of a big CA can be large; anything beyond is refused). */
const MAX_FILE_BYTES = 4 << 20;

/**
 * The contents of a regular file; otherwise a reason, or '' when the loader has reported the
 * problem already (missing, a directory, not a regular file: never opened, a FIFO would block).
 */
function readRegular(path: string): Buffer | string {
  try {
    const st = statSync(path);
    if (!st.isFile()) return '';
    if (st.size > MAX_FILE_BYTES) return `larger than ${MAX_FILE_BYTES} bytes`;
    return readFileSync(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    return code === 'ENOENT' ? '' : (code ?? reason(e));
  }
}

class Reader {
  private readonly certFiles = new Map<string, Cert[] | undefined>();
  private readonly crlFiles = new Map<string, Crl | undefined>();
  readonly entries = new Map<string, { file: string; cert: Cert; uses: { connection: string; use: CertUse }[]; seen: Set<string> }>();
  private readonly err: ErrorSink;
  constructor(err: ErrorSink) {
    this.err = err;
  }

  private read(ref: FileRef, what: string): Buffer | undefined {
    const r = readRegular(ref.path);
    if (typeof r === 'string') {
      if (r !== '') this.err(ref.loc, `${what} '${show(ref.text)}' cannot be read (${r})`);
      return undefined;
    }
    return r;
  }

  certs(ref: FileRef, what: string): Cert[] | undefined {
    if (this.certFiles.has(ref.path)) return this.certFiles.get(ref.path);
    let out: Cert[] | undefined;
    const data = this.read(ref, what);
    if (data) {
      try {
        out = loadCertificates(data, `${what} '${show(ref.text)}'`);
        if (out.length === 0) {
          this.err(ref.loc, `${what} '${show(ref.text)}' holds no certificate`);
          out = undefined;
        }
      } catch (e) {
        this.err(ref.loc, reason(e));
      }
    }
    this.certFiles.set(ref.path, out);
    return out;
  }

  crl(ref: FileRef): Crl | undefined {
    if (this.crlFiles.has(ref.path)) return this.crlFiles.get(ref.path);
    let out: Crl | undefined;
    const data = this.read(ref, 'CRL');
    if (data) {
      try {
        out = loadCrl(data, `CRL '${show(ref.text)}'`);
      } catch (e) {
        this.err(ref.loc, reason(e));
      }
    }
    this.crlFiles.set(ref.path, out);
    return out;
  }

  use(file: string, cert: Cert, connection: string, use: CertUse): void {
    let e = this.entries.get(cert.fingerprint);
    if (!e) {
      e = { file, cert, uses: [], seen: new Set() };
      this.entries.set(cert.fingerprint, e);
    }
    const key = `${use}\n${connection}`;
    if (e.seen.has(key)) return;
    e.seen.add(key);
    e.uses.push({ connection, use });
  }
}

/**
 * Reads and checks every certificate, key and CRL the connections and secrets name. Problems go to
 * `err` with the location of the line naming the file; the result holds what could be used.
 */
export function loadCredentials(conns: readonly ConnectionCredentialRefs[], keyRefs: readonly KeyRef[], err: ErrorSink): Credentials {
  const r = new Reader(err);
  const keys: { ref: KeyRef; key: PrivateKey; pub: Buffer; used: boolean }[] = [];
  for (const ref of keyRefs) {
    const data = readRegular(ref.file.path);
    if (typeof data === 'string') {
      if (data !== '') err(ref.file.loc, `the private key file of ${ref.label} cannot be read (${data}; the path is not shown: it is in the secrets section)`);
      continue;
    }
    try {
      const key = loadPrivateKey(data, `the private key of ${ref.label}`, ref.passphrase);
      keys.push({ ref, key, pub: key.publicKey.export({ type: 'spki', format: 'der' }), used: false });
    } catch (e) {
      let msg = reason(e);
      // never echo a passphrase, whatever the library said
      if (ref.passphrase && msg.includes(ref.passphrase)) msg = `the private key of ${ref.label} cannot be loaded`;
      err(ref.file.loc, msg);
    }
  }
  // by certificate fingerprint: thousands of connections usually share a few certificates
  const keyOf = new Map<string, (typeof keys)[number] | undefined>();
  const keyFor = (cert: Cert): (typeof keys)[number] | undefined => {
    if (keyOf.has(cert.fingerprint)) return keyOf.get(cert.fingerprint);
    const k = keys.find((x) => x.key.kind === cert.kind && matchesCert(x.key, cert));
    keyOf.set(cert.fingerprint, k);
    return k;
  };
  const local = new Map<string, LocalCredential>();
  const remote = new Map<string, RemoteTrust>();
  const digest = new Map<string, string>();
  const hasKey = new Set<string>();

  for (const c of conns) {
    const h = createHash('sha256');
    // ---- our certificate and intermediates
    const loaded: { ref: FileRef; cert: Cert }[] = [];
    for (const ref of c.certs) for (const cert of r.certs(ref, 'certificate') ?? []) loaded.push({ ref, cert });
    if (c.localAuth === 'pubkey') {
      if (c.certs.length === 0) {
        err(c.localLoc, `connection '${show(c.name)}' authenticates with auth = pubkey but names no certificate: set certs in its local section`);
      } else if (loaded.length > 0) {
        const candidates = loaded.filter((x) => !x.cert.isCa);
        const pool = candidates.length > 0 ? candidates : loaded;
        let end: { ref: FileRef; cert: Cert } | undefined;
        let key: (typeof keys)[number] | undefined;
        for (const x of pool) {
          key = keyFor(x.cert);
          if (key) {
            end = x;
            break;
          }
        }
        if (!end || !key) {
          const first = pool[0]!;
          err(
            first.ref.loc,
            `no private key in the secrets section belongs to certificate '${show(first.ref.text)}' (subject '${show(first.cert.subject)}'): ` +
              'add secrets { private-NAME { file = KEYFILE } } with its key',
          );
        } else {
          key.used = true;
          hasKey.add(end.cert.fingerprint);
          const intermediates = loaded.filter((x) => x !== end && x.cert.isCa && !x.cert.selfSigned).map((x) => x.cert);
          if (c.localId !== '' && c.localId !== '%any' && !certMatchesIdentity(end.cert, c.localId)) {
            err(
              c.localIdLoc ?? c.localLoc,
              `local id '${show(c.localId)}' of connection '${show(c.name)}' is neither the subject nor a subjectAltName of its certificate '${show(end.ref.text)}' (subject '${show(end.cert.subject)}')`,
            );
          }
          local.set(c.name, Object.freeze({ cert: end.cert, intermediates: Object.freeze(intermediates), key: key.key }));
          h.update('local').update(end.cert.der).update(key.pub);
          for (const i of intermediates) h.update(i.der);
        }
      }
    }
    for (const x of loaded) {
      const l = local.get(c.name);
      r.use(x.ref.path, x.cert, c.name, l && x.cert === l.cert ? 'local' : x.cert.isCa ? 'intermediate' : 'local');
      // a key of any connection's certificate counts as used (a psk connection may list certs too)
      const k = keyFor(x.cert);
      if (k) {
        k.used = true;
        hasKey.add(x.cert.fingerprint);
      }
    }
    // ---- trust for the peer's certificate
    const cas: Cert[] = [];
    for (const ref of c.cacerts) {
      for (const cert of r.certs(ref, 'CA certificate') ?? []) {
        if (!cert.isCa) {
          err(ref.loc, `CA certificate '${show(ref.text)}' (subject '${show(cert.subject)}') is not a CA certificate (basicConstraints CA is not set)`);
          continue;
        }
        cas.push(cert);
        r.use(ref.path, cert, c.name, 'ca');
      }
    }
    const crls: Crl[] = [];
    for (const ref of c.crls) {
      const crl = r.crl(ref);
      if (crl) crls.push(crl);
    }
    if (c.remoteAuth === 'pubkey') {
      if (c.cacerts.length === 0) {
        err(
          c.remoteLoc,
          `connection '${show(c.name)}' expects the peer to authenticate with auth = pubkey but names no CA: set cacerts in its remote section (or auth = psk)`,
        );
      } else if (cas.length > 0) {
        remote.set(c.name, Object.freeze({ cas: Object.freeze(cas), crls: Object.freeze(crls), certreq: certReqData(cas), revocation: c.revocation }));
        h.update('remote').update(c.revocation);
        for (const ca of cas) h.update(ca.der);
        for (const crl of crls) h.update(crl.der);
      }
    }
    if (c.localAuth === 'pubkey' || c.remoteAuth === 'pubkey') digest.set(c.name, h.digest('hex'));
  }
  for (const k of keys) {
    if (!k.used) {
      err(k.ref.loc, `the private key of ${k.ref.label} belongs to no certificate in the certs of any connection's local section`);
    }
  }
  const certs: CertEntry[] = [...r.entries.values()].map((e) =>
    Object.freeze({ file: e.file, cert: e.cert, hasKey: hasKey.has(e.cert.fingerprint), uses: Object.freeze(e.uses.map((u) => Object.freeze(u))) }),
  );
  return Object.freeze({ local, remote, certs: Object.freeze(certs), digest });
}

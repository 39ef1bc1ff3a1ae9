/**
 * Certificates for tests, made at test time with strongSwan's `pki` tool (`/usr/bin/pki`, package
 * strongswan-pki) in a folder of the test: keys, self-signed CAs, intermediates, end certificates,
 * CRLs. Nothing of this is committed; every run makes its own.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const PKI_BIN = '/usr/bin/pki';

export type KeyType = 'rsa' | 'ecdsa' | 'ed25519' | 'ed448';

export interface KeySpec {
  type: KeyType;
  /** RSA modulus bits or ECDSA curve bits (256/384/521). */
  size?: number;
}

/**
 * Why `pki` cannot be used here (tests that need it skip with this reason), or undefined. With
 * REQUIRE_INTEROP=1 (CI, which installs strongSwan) a missing `pki` throws instead: those tests fail.
 */
export function pkiMissing(): string | undefined {
  if (existsSync(PKI_BIN)) return undefined;
  const why = `${PKI_BIN} not found (install strongswan-pki)`;
  if (process.env.REQUIRE_INTEROP === '1') throw new Error(`${why}; REQUIRE_INTEROP=1`);
  return why;
}

export interface IssueOptions {
  /** subjectAltNames (e.g. "gw.lab", "192.0.2.1", "user@lab") */
  san?: string[];
  ca?: boolean;
  pathlen?: number;
  /** days, default 365 */
  lifetime?: number;
  /** --not-before / --not-after as "dd.mm.yy HH:MM:SS" */
  notBefore?: string;
  notAfter?: string;
  flags?: string[];
  /** RSA issuers: pkcs1 (default) or pss signatures */
  rsaPadding?: 'pkcs1' | 'pss';
}

/** One folder of keys and certificates; each made file is named NAME.key.pem / NAME.cert.pem. */
export class TestPki {
  readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(dir: string) {
    this.dir = dir;
    const conf = join(dir, 'pki.conf');
    // a fixed plugin list keeps pki quiet (no TPM plugin) and gives it Ed25519/Ed448 (openssl)
    writeFileSync(conf, 'pki {\n  load = random pem pkcs1 pkcs8 x509 pubkey openssl curve25519 sha1 sha2 gmp\n}\n');
    this.env = { ...process.env, STRONGSWAN_CONF: conf };
  }

  private pki(args: string[]): Buffer {
    return execFileSync(PKI_BIN, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 20 });
  }

  /** A private key as pki writes it (PKCS#1 for RSA, SEC1 for ECDSA, PKCS#8 for EdDSA). */
  key(name: string, spec: KeySpec): string {
    const file = join(this.dir, `${name}.key.pem`);
    const args = ['--gen', '--type', spec.type, '--outform', 'pem'];
    if (spec.size !== undefined) args.push('--size', String(spec.size));
    writeFileSync(file, this.pki(args), { mode: 0o600 });
    return file;
  }

  /** As key(), without blocking: several keys (RSA-4096 takes seconds) are made in parallel. */
  async keyAsync(name: string, spec: KeySpec): Promise<string> {
    const file = join(this.dir, `${name}.key.pem`);
    const args = ['--gen', '--type', spec.type, '--outform', 'pem'];
    if (spec.size !== undefined) args.push('--size', String(spec.size));
    const { stdout } = await promisify(execFile)(PKI_BIN, args, { env: this.env, encoding: 'buffer', maxBuffer: 1 << 20 });
    writeFileSync(file, stdout, { mode: 0o600 });
    return file;
  }

  /** A self-signed CA certificate for the key. */
  selfCa(name: string, key: string, dn: string, o: IssueOptions = {}): string {
    const file = join(this.dir, `${name}.cert.pem`);
    const args = ['--self', '--ca', '--in', key, '--type', 'priv', '--dn', dn, '--lifetime', String(o.lifetime ?? 3650), '--outform', 'pem'];
    if (o.pathlen !== undefined) args.push('--pathlen', String(o.pathlen));
    writeFileSync(file, this.pki(args));
    return file;
  }

  /** A certificate for `key`, issued by the CA `issuer` (its NAME.cert.pem and NAME.key.pem). */
  issue(name: string, key: string, issuer: { cert: string; key: string }, dn: string, o: IssueOptions = {}): string {
    const file = join(this.dir, `${name}.cert.pem`);
    const args = ['--issue', '--in', key, '--type', 'priv', '--cacert', issuer.cert, '--cakey', issuer.key, '--dn', dn, '--outform', 'pem'];
    if (o.notBefore || o.notAfter) {
      if (o.notBefore) args.push('--not-before', o.notBefore);
      if (o.notAfter) args.push('--not-after', o.notAfter);
    } else args.push('--lifetime', String(o.lifetime ?? 365));
    for (const s of o.san ?? []) args.push('--san', s);
    if (o.ca) args.push('--ca');
    if (o.pathlen !== undefined) args.push('--pathlen', String(o.pathlen));
    for (const f of o.flags ?? []) args.push('--flag', f);
    if (o.rsaPadding) args.push('--rsa-padding', o.rsaPadding);
    writeFileSync(file, this.pki(args));
    return file;
  }

  /** A CRL of the CA revoking the given certificate files. */
  crl(name: string, issuer: { cert: string; key: string }, revoke: string[]): string {
    const file = join(this.dir, `${name}.crl.pem`);
    const args = ['--signcrl', '--cacert', issuer.cert, '--cakey', issuer.key, '--lifetime', '30', '--outform', 'pem'];
    for (const c of revoke) args.push('--reason', 'key-compromise', '--cert', c);
    writeFileSync(file, this.pki(args));
    return file;
  }

  /** A CA with its key in one step. */
  ca(name: string, spec: KeySpec, dn: string, o: IssueOptions = {}): { cert: string; key: string } {
    const key = this.key(name, spec);
    return { key, cert: this.selfCa(name, key, dn, o) };
  }

  /** An intermediate CA issued by `issuer`. */
  intermediate(name: string, spec: KeySpec, issuer: { cert: string; key: string }, dn: string, o: IssueOptions = {}): { cert: string; key: string } {
    const key = this.key(name, spec);
    return { key, cert: this.issue(name, key, issuer, dn, { ...o, ca: true }) };
  }

  /** An end-entity certificate with its key, its identity as CN and subjectAltName. */
  endEntity(name: string, spec: KeySpec, issuer: { cert: string; key: string }, id: string, o: IssueOptions = {}): { cert: string; key: string } {
    const key = this.key(name, spec);
    return { key, cert: this.issue(name, key, issuer, `C=XX, O=vpp-iked test, CN=${id}`, { san: [id], ...o }) };
  }
}

/** Whether `pki` can make Ed25519 keys here (openssl plugin). */
export function pkiSupportsEd25519(dir: string): boolean {
  const r = spawnSync(PKI_BIN, ['--gen', '--type', 'ed25519'], { env: { ...process.env, STRONGSWAN_CONF: join(dir, 'pki.conf') }, stdio: 'ignore' });
  return r.status === 0;
}

/**
 * Certificates, private keys and CRLs in the configuration: `local.certs`, `remote.cacerts`,
 * `remote.crls`, `remote.revocation`, `secrets { private-|rsa-|ecdsa-|pkcs8-NAME }`, `auth = pubkey`
 * (also by default), and every error with the FILE:LINE:COL of the line naming the file. The
 * certificates are made in the test by strongSwan's `pki`.
 */
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { expiringCerts } from '../../src/config/credentials.ts';
import { diffConnections } from '../../src/daemon/reload.ts';
import { pkiMissing, TestPki } from '../helpers/pki.ts';

const missing = pkiMissing();
let dir = '';
let pki: TestPki;
let ca: { cert: string; key: string };
let im: { cert: string; key: string };
let gw: { cert: string; key: string };
let gw2: { cert: string; key: string };
let soon: { cert: string; key: string };

before(() => {
  if (missing) return;
  dir = mkdtempSync(join(tmpdir(), 'vpp-iked-creds-'));
  pki = new TestPki(dir);
  ca = pki.ca('ca', { type: 'ecdsa', size: 256 }, 'C=XX, O=Lab, CN=Lab CA');
  im = pki.intermediate('im', { type: 'ecdsa', size: 256 }, ca, 'C=XX, O=Lab, CN=Lab Intermediate');
  gw = pki.endEntity('gw', { type: 'ecdsa', size: 256 }, im, 'gw.lab');
  gw2 = pki.endEntity('gw2', { type: 'ed25519' }, ca, 'gw2.lab');
  soon = pki.endEntity('soon', { type: 'ecdsa', size: 256 }, ca, 'soon.lab', { lifetime: 10 });
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function skip(t: TestContext): boolean {
  if (missing) t.skip(missing);
  return missing !== undefined;
}

/** Writes main.conf in the test folder (file names relative to it) and loads it. */
function load(text: string, name = 'main.conf') {
  const file = join(dir, name);
  writeFileSync(file, text);
  const r = loadConfig(file);
  return { ...r, file, errs: r.errors.map((e) => e.toString().replace(`${file}:`, 'F:')) };
}

const rel = (p: string): string => p.slice(dir.length + 1);

function conf(o: { local?: string; remote?: string; secrets?: string } = {}): string {
  return `connections {
  gw {
    local {
${o.local ?? `      auth = pubkey\n      certs = ${rel(gw.cert)}, ${rel(im.cert)}\n      id = gw.lab`}
    }
    remote {
${o.remote ?? `      auth = pubkey\n      cacerts = ${rel(ca.cert)}`}
    }
  }
}
secrets {
${o.secrets ?? `  ecdsa-gw {\n    file = ${rel(gw.key)}\n  }`}
}
`;
}

test('a pubkey connection: our certificate with its key and intermediate, the trust with its CERTREQ hashes', (t) => {
  if (skip(t)) return;
  const r = load(conf());
  assert.deepEqual(r.errs, []);
  const creds = r.config!.credentials!;
  const local = creds.local.get('gw')!;
  assert.equal(local.cert.subject, 'C=XX, O=vpp-iked test, CN=gw.lab');
  assert.deepEqual(local.intermediates.map((c) => c.subject), ['C=XX, O=Lab, CN=Lab Intermediate']);
  assert.equal(local.key.kind, 'ecdsa-256');
  const trust = creds.remote.get('gw')!;
  assert.deepEqual(trust.cas.map((c) => c.subject), ['C=XX, O=Lab, CN=Lab CA']);
  assert.equal(trust.certreq.length, 20);
  assert.deepEqual(trust.certreq, trust.cas[0]!.spkiSha1);
  assert.equal(trust.revocation, 'relaxed');
  assert.deepEqual(
    creds.certs.map((e) => [e.cert.subject, e.hasKey, e.uses.map((u) => u.use)]),
    [
      ['C=XX, O=vpp-iked test, CN=gw.lab', true, ['local']],
      ['C=XX, O=Lab, CN=Lab Intermediate', false, ['intermediate']],
      ['C=XX, O=Lab, CN=Lab CA', false, ['ca']],
    ],
  );
  assert.ok(creds.digest.get('gw'));
  assert.deepEqual(r.config!.connections[0]!.local.certs, [gw.cert, im.cert]);
});

test('auth = pubkey is the default on both sides (as strongSwan): without certs or cacerts that is an error naming the fix', (t) => {
  if (skip(t)) return;
  const r = load('connections {\n  c {\n    local {\n      id = x.lab\n    }\n  }\n}\n');
  assert.deepEqual(r.errs, [
    "F:2:3: connection 'c' expects the peer to authenticate with auth = pubkey but names no CA: set cacerts in its remote section (or auth = psk)",
    "F:3:5: connection 'c' authenticates with auth = pubkey but names no certificate: set certs in its local section",
  ]);
  const ok = load(conf({ local: `      certs = ${rel(gw.cert)}`, remote: `      cacerts = ${rel(ca.cert)}` }));
  assert.deepEqual(ok.errs, []);
  assert.equal(ok.config!.connections[0]!.local.auth, 'pubkey');
  assert.equal(ok.config!.connections[0]!.remote.auth, 'pubkey');
});

test('private key sections: private-, rsa-, ecdsa-, pkcs8- (swanctl names), encrypted PKCS#8 with its passphrase', (t) => {
  if (skip(t)) return;
  for (const prefix of ['private', 'rsa', 'ecdsa', 'pkcs8']) {
    const r = load(conf({ secrets: `  ${prefix}-k {\n    file = ${rel(gw.key)}\n  }` }));
    assert.deepEqual(r.errs, [], prefix);
  }
  const enc = join(dir, 'gw.enc.pem');
  execFileSync('openssl', ['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', gw.key, '-out', enc, '-passout', 'pass:Corr3ctH0rse']);
  const good = load(conf({ secrets: `  private-k {\n    file = ${rel(enc)}\n    secret = Corr3ctH0rse\n  }` }));
  assert.deepEqual(good.errs, []);
  const bad = load(conf({ secrets: `  private-k {\n    file = ${rel(enc)}\n    secret = Wr0ngH0rse\n  }` }));
  assert.equal(bad.errs.length, 2, bad.errs.join('\n'));
  assert.match(bad.errs[0]!, /^F:5:15: no private key in the secrets section belongs to certificate/);
  assert.match(bad.errs[1]!, /^F:16:12: the private key of secret 'private-k'/);
  for (const e of bad.errs) assert.ok(!e.includes('Wr0ngH0rse') && !e.includes('gw.enc'), e);
});

test('errors with FILE:LINE:COL: missing, a directory, bad PEM, cert without key, key without cert, RSA < 2048, not a CA, id not in the certificate', (t) => {
  if (skip(t)) return;
  mkdirSync(join(dir, 'adir'), { recursive: true });
  writeFileSync(join(dir, 'junk.pem'), '-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n');
  const small = pki.endEntity('small', { type: 'rsa', size: 1024 }, ca, 'small.lab');

  let r = load(conf({ local: `      auth = pubkey\n      certs = missing.pem, adir`, remote: `      auth = pubkey\n      cacerts = junk.pem` }));
  assert.deepEqual(r.errs.slice(0, 3), [
    "F:5:15: certificate 'missing.pem' does not exist",
    "F:5:28: certificate 'adir' is a directory",
    r.errs[2]!.startsWith("F:9:17: ") ? r.errs[2]! : 'bad PEM at F:9:17',
  ]);
  assert.match(r.errs[2]!, /junk\.pem/);

  // cert without key: the key of another certificate; that key then belongs to no certificate
  r = load(conf({ secrets: `  private-k {\n    file = ${rel(gw2.key)}\n  }` }));
  assert.deepEqual(r.errs, [
    `F:5:15: no private key in the secrets section belongs to certificate '${rel(gw.cert)}' (subject 'C=XX, O=vpp-iked test, CN=gw.lab'): add secrets { private-NAME { file = KEYFILE } } with its key`,
    "F:15:3: the private key of secret 'private-k' belongs to no certificate in the certs of any connection's local section",
  ]);

  // RSA below 2048 bits, in a certificate and in a key
  r = load(conf({ local: `      auth = pubkey\n      certs = ${rel(small.cert)}`, secrets: `  rsa-k {\n    file = ${rel(small.key)}\n  }` }));
  assert.ok(r.errs.some((e) => e.startsWith('F:5:15: ') && /2048/.test(e)), r.errs.join('\n'));
  assert.ok(r.errs.some((e) => e.startsWith('F:15:12: ') && /2048/.test(e)), r.errs.join('\n'));

  // an end certificate as a CA; an id the certificate does not name
  r = load(conf({ local: `      auth = pubkey\n      certs = ${rel(gw.cert)}\n      id = other.lab`, remote: `      auth = pubkey\n      cacerts = ${rel(gw2.cert)}` }));
  assert.deepEqual(r.errs, [
    `F:6:12: local id 'other.lab' of connection 'gw' is neither the subject nor a subjectAltName of its certificate '${rel(gw.cert)}' (subject 'C=XX, O=vpp-iked test, CN=gw.lab')`,
    `F:10:17: CA certificate '${rel(gw2.cert)}' (subject 'C=XX, O=vpp-iked test, CN=gw2.lab') is not a CA certificate (basicConstraints CA is not set)`,
  ]);

  // a CRL file that is not one
  r = load(conf({ remote: `      auth = pubkey\n      cacerts = ${rel(ca.cert)}\n      crls = ${rel(ca.cert)}\n      revocation = strict` }));
  assert.equal(r.errs.length, 1);
  assert.match(r.errs[0]!, /^F:11:14: CRL .*: no X509 CRL block/);
  r = load(conf({ remote: `      auth = pubkey\n      cacerts = ${rel(ca.cert)}\n      revocation = sometimes` }));
  assert.deepEqual(r.errs, ["F:11:20: 'revocation' must be one of strict, ifuri, relaxed, not 'sometimes'"]);
});

test('CRLs are loaded for the connection; the revocation policy is kept', (t) => {
  if (skip(t)) return;
  const crl = pki.crl('ca', ca, [gw2.cert]);
  const r = load(conf({ remote: `      auth = pubkey\n      cacerts = ${rel(ca.cert)}\n      crls = ${rel(crl)}\n      revocation = ifuri` }));
  assert.deepEqual(r.errs, []);
  const trust = r.config!.credentials!.remote.get('gw')!;
  assert.equal(trust.crls.length, 1);
  assert.equal(trust.crls[0]!.revoked.size, 1);
  assert.equal(trust.revocation, 'ifuri');
});

test('certificates expiring within 30 days are reported with the days left', (t) => {
  if (skip(t)) return;
  const r = load(conf({ local: `      auth = pubkey\n      certs = ${rel(soon.cert)}`, secrets: `  private-s {\n    file = ${rel(soon.key)}\n  }` }));
  assert.deepEqual(r.errs, []);
  const exp = expiringCerts(r.config!.credentials!, new Date());
  assert.deepEqual(exp.map((x) => [x.entry.cert.subject, x.days]), [['C=XX, O=vpp-iked test, CN=soon.lab', 9]]);
  assert.deepEqual(expiringCerts(r.config!.credentials!, new Date(Date.now() - 30 * 86_400_000)), []);
});

test('a reload sees new contents of a certificate file as a changed connection', (t) => {
  if (skip(t)) return;
  const before = load(conf()).config!;
  const saved = readFileSync(gw.cert);
  try {
    // the same key, a new certificate (new serial) in the same file
    pki.issue('gw', gw.key, im, 'C=XX, O=vpp-iked test, CN=gw.lab', { san: ['gw.lab'] });
    const fresh = load(conf()).config!;
    const none = (): Buffer | undefined => undefined;
    const d = diffConnections(before, fresh, none, none, () => []);
    assert.deepEqual(d.changed, ['gw']);
    const same = diffConnections(fresh, load(conf()).config!, none, none, () => []);
    assert.deepEqual(same.unchanged, ['gw']);
  } finally {
    writeFileSync(gw.cert, saved);
  }
});

test('conf/certs.conf loads once its own pki commands have made the files it names', (t) => {
  if (skip(t)) return;
  const example = readFileSync(join(import.meta.dirname, '../../conf/certs.conf'), 'utf8');
  const work = join(dir, 'example');
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, 'certs.conf'), example);
  // the commands of the header comment, continuation lines joined
  const commands = example
    .split('\n')
    .filter((l) => /^# {3}\S/.test(l) || /^# {7}/.test(l))
    .map((l) => l.slice(2).trim())
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => /^(mkdir|pki) /.test(l));
  assert.ok(commands.length >= 5, commands.join('\n'));
  execFileSync('sh', ['-e', '-c', commands.join('\n')], { cwd: work, env: { ...process.env, STRONGSWAN_CONF: join(dir, 'pki.conf') }, stdio: 'pipe' });
  const r = loadConfig(join(work, 'certs.conf'));
  assert.deepEqual(r.errors.map(String), []);
  assert.equal(r.config!.credentials!.local.get('peers')!.cert.subject, 'C=CH, O=Example, CN=gw.example.net');
});

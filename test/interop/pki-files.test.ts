/**
 * The certificate library against files made by strongSwan's `pki` (5.9.8): keys in pki's formats,
 * an RSA-3072 root signing with RSASSA-PSS, an ECDSA intermediate with pathLen 0, Ed25519 and
 * ECDSA end certificates with subjectAltNames, a CRL with a reason code, a CA with nameConstraints; key ids compared with `pki --keyid`; a certificate made by the test
 * builder checked by `pki --verify`.
 *
 * Needs /usr/bin/pki (package strongswan-pki); skipped without it, failing when REQUIRE_INTEROP=1.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import {
  certMatchesIdentity,
  loadCertificates,
  loadCrl,
  loadPrivateKey,
  matchesCert,
  signAuth,
  verifyAuth,
  verifyChain,
  ourHashAlgorithms,
  type Cert,
} from '../../src/pki/api.ts';
import { buildCert, pem, testKey } from '../helpers/x509.ts';

const PKI = '/usr/bin/pki';

function requirePki(t: TestContext): boolean {
  if (existsSync(PKI)) return true;
  if (process.env.REQUIRE_INTEROP === '1') throw new Error(`${PKI} is required (REQUIRE_INTEROP=1) but missing: install strongswan-pki`);
  t.skip(`${PKI} missing (package strongswan-pki)`);
  return false;
}

let dir = '';
function pki(...args: string[]): Buffer {
  return execFileSync(PKI, args, { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
}
function file(name: string, data: Buffer): string {
  writeFileSync(join(dir, name), data);
  return name;
}
const read = (name: string): Buffer => readFileSync(join(dir, name));
const cert = (name: string): Cert => loadCertificates(read(name), name)[0]!;

describe('files made by strongSwan pki', { concurrency: false }, () => {
  let ready = false;
  before(() => {
    if (!existsSync(PKI)) return;
    dir = mkdtempSync(join(tmpdir(), 'pki-files-'));
    file('root.key', pki('--gen', '--type', 'rsa', '--size', '3072', '--outform', 'pem'));
    file('root.crt', pki('--self', '--ca', '--lifetime', '3650', '--in', 'root.key', '--dn', 'C=CH, O=strongSwan, CN=Root CA', '--rsa-padding', 'pss', '--outform', 'pem'));
    file('im.key', pki('--gen', '--type', 'ecdsa', '--size', '384', '--outform', 'pem'));
    file('im.pub', pki('--pub', '--in', 'im.key', '--type', 'ecdsa'));
    file(
      'im.crt',
      pki('--issue', '--cacert', 'root.crt', '--cakey', 'root.key', '--type', 'pub', '--in', 'im.pub', '--dn', 'C=CH, O=strongSwan, CN=Intermediate CA',
        '--ca', '--pathlen', '0', '--rsa-padding', 'pss', '--crl', 'http://crl.example.net/root.crl', '--outform', 'pem'),
    );
    file('ed.key', pki('--gen', '--type', 'ed25519', '--outform', 'pem'));
    file('ed.pub', pki('--pub', '--in', 'ed.key', '--type', 'priv'));
    file(
      'ed.crt',
      pki('--issue', '--cacert', 'im.crt', '--cakey', 'im.key', '--type', 'pub', '--in', 'ed.pub', '--dn', 'C=CH, O=strongSwan, CN=moon.example.net',
        '--san', 'moon.example.net', '--san', '192.0.2.10', '--san', 'moon@example.net', '--flag', 'serverAuth', '--outform', 'pem'),
    );
    file('ec.key', pki('--gen', '--type', 'ecdsa', '--size', '256', '--outform', 'pem'));
    file('ec.pub', pki('--pub', '--in', 'ec.key', '--type', 'ecdsa'));
    file(
      'ec.crt',
      pki('--issue', '--cacert', 'im.crt', '--cakey', 'im.key', '--type', 'pub', '--in', 'ec.pub', '--dn', 'C=CH, O=strongSwan, CN=sun.example.net',
        '--san', 'sun.example.net', '--digest', 'sha512', '--serial', '0badc0de', '--outform', 'pem'),
    );
    file('im.crl', pki('--signcrl', '--cacert', 'im.crt', '--cakey', 'im.key', '--reason', 'key-compromise', '--cert', 'ec.crt', '--outform', 'pem'));
    file('nc.crt', pki('--issue', '--cacert', 'root.crt', '--cakey', 'root.key', '--type', 'pub', '--in', 'im.pub', '--dn', 'CN=Constrained CA',
      '--ca', '--nc-permitted', 'example.net', '--outform', 'pem'));
    ready = true;
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the certificates, with strongSwan key ids', (t) => {
    if (!requirePki(t) || !ready) return;
    const root = cert('root.crt');
    assert.equal(root.subject, 'C=CH, O=strongSwan, CN=Root CA');
    assert.equal(root.signatureAlgorithm, 'RSASSA-PSS/sha256');
    assert.equal(root.selfSigned, true);
    assert.equal(root.bits, 3072);
    const im = cert('im.crt');
    assert.deepEqual([im.isCa, im.pathLen, im.kind], [true, 0, 'ecdsa-384']);
    const ed = cert('ed.crt');
    assert.equal(ed.kind, 'ed25519');
    assert.equal(ed.signatureAlgorithm, 'ecdsa-with-SHA384');
    assert.deepEqual(
      ed.altNames.map((a) => `${a.type}:${a.value}`),
      ['dns:moon.example.net', 'ip:192.0.2.10', 'email:moon@example.net'],
    );
    assert.equal(cert('ec.crt').serial, '0badc0de');
    assert.equal(cert('ec.crt').signatureAlgorithm, 'ecdsa-with-SHA512');
    const ids = pki('--keyid', '--in', 'ed.crt', '--type', 'x509').toString().replace(/[\s:]/g, '');
    assert.ok(ids.includes(ed.keyIdSha1.toString('hex')), 'subjectPublicKey SHA-1');
    assert.ok(ids.includes(ed.spkiSha1.toString('hex')), 'subjectPublicKeyInfo SHA-1');
  });

  it('reads the private keys and pairs them with their certificates', (t) => {
    if (!requirePki(t) || !ready) return;
    for (const [k, c] of [['root.key', 'root.crt'], ['im.key', 'im.crt'], ['ed.key', 'ed.crt'], ['ec.key', 'ec.crt']] as const) {
      assert.equal(matchesCert(loadPrivateKey(read(k), k), cert(c)), true, k);
    }
    assert.equal(matchesCert(loadPrivateKey(read('ec.key'), 'ec.key'), cert('ed.crt')), false);
  });

  it('verifies the chains (RSASSA-PSS and ECDSA certificate signatures) and the CRL', (t) => {
    if (!requirePki(t) || !ready) return;
    const root = cert('root.crt');
    const im = cert('im.crt');
    const crl = loadCrl(read('im.crl'), 'im.crl');
    const trust = { cas: [root], crls: [crl] };
    const now = new Date();
    const r = verifyChain(cert('ed.crt'), [im], trust, now);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.equal(r.chain.length, 3);
    assert.equal(certMatchesIdentity(cert('ed.crt'), 'moon.example.net'), true);
    assert.equal(certMatchesIdentity(cert('ed.crt'), 'C=CH, O=strongSwan, CN=moon.example.net'), true);
    assert.equal(certMatchesIdentity(cert('ed.crt'), '192.0.2.10'), true);
    const revoked = verifyChain(cert('ec.crt'), [im], trust, now);
    assert.equal(revoked.ok, false);
    assert.match(revoked.ok ? '' : revoked.reason, /"C=CH, O=strongSwan, CN=sun.example.net" was revoked/);
  });

  it('enforces the nameConstraints pki writes', (t) => {
    if (!requirePki(t) || !ready) return;
    const nc = cert('nc.crt');
    assert.deepEqual(nc.nameConstraints?.permitted.map((b) => `${b.type}:${b.value}`), ['dns:example.net']);
    const ncKey = loadPrivateKey(read('im.key'), 'im.key');
    assert.ok(matchesCert(ncKey, nc));
    const issue = (name: string, san: string): Cert => {
      file(`${name}.crt`, pki('--issue', '--cacert', 'nc.crt', '--cakey', 'im.key', '--type', 'pub', '--in', 'ec.pub', '--dn', `CN=${san}`, '--san', san, '--outform', 'pem'));
      return cert(`${name}.crt`);
    };
    const trust = { cas: [cert('root.crt')], crls: [] };
    const inside = verifyChain(issue('in', 'gw.example.net'), [nc], trust, new Date());
    assert.ok(inside.ok, inside.ok ? '' : inside.reason);
    const outside = verifyChain(issue('out', 'gw.example.org'), [nc], trust, new Date());
    assert.equal(outside.ok, false);
    assert.match(outside.ok ? '' : outside.reason, /dns name "gw.example.org" .* outside the nameConstraints of "CN=Constrained CA"/);
  });

  it('signs and verifies AUTH with pki keys', async (t) => {
    if (!requirePki(t) || !ready) return;
    const octets = Buffer.from('octets');
    for (const [k, c] of [['root.key', 'root.crt'], ['ed.key', 'ed.crt'], ['ec.key', 'ec.crt']] as const) {
      const s = await signAuth(loadPrivateKey(read(k), k), octets, ourHashAlgorithms(false));
      assert.equal(await verifyAuth(cert(c), s.method, s.data, octets, { allowSha1: false }), undefined, k);
    }
  });

  it('pki --verify accepts a chain made by the test builder', (t) => {
    if (!requirePki(t) || !ready) return;
    const rk = testKey('p256', 40);
    const ca = buildCert({ subject: 'C=CH, CN=Builder CA', key: rk, ca: true, keyUsage: ['keyCertSign', 'cRLSign'] });
    const leaf = buildCert({ subject: 'C=CH, CN=leaf', key: testKey('ed25519', 41), issuer: { dn: 'C=CH, CN=Builder CA', key: rk } });
    file('b-ca.crt', Buffer.from(pem('CERTIFICATE', ca)));
    file('b-leaf.crt', Buffer.from(pem('CERTIFICATE', leaf)));
    const out = pki('--verify', '--in', 'b-leaf.crt', '--cacert', 'b-ca.crt').toString();
    assert.match(out, /certificate trusted/);
  });
});

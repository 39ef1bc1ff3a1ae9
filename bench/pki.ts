/**
 * The certificate library's costs per IKE_AUTH: signing and verifying AUTH payloads per key type
 * (on node:crypto's thread pool, `CONCURRENCY` operations in flight, as a busy responder has), and
 * chain verification of distinct end certificates, cold (each end certificate seen once) and
 * cached (seen before). A baseline measured in the same run, one HMAC-SHA256 over the AUTH octets
 * (what a PSK AUTH costs), makes the figures comparable as ratios.
 *
 * Keys and certificates are made here with the test builder. Run: node bench/pki.ts
 * (BENCH_MS sets the time per case, default 1000; UV_THREADPOOL_SIZE the thread pool).
 */
import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { loadCertificates, loadPrivateKey, ourHashAlgorithms, signAuth, verifyAuth, verifyChain, type Cert } from '../src/pki/api.ts';
import { buildCert, testKey, type TestKeyType } from '../test/helpers/x509.ts';

const MS = Number(process.env.BENCH_MS ?? 1000);
const CONCURRENCY = 32;
const OCTETS = Buffer.alloc(600, 7);

function hmacBaseline(): number {
  const key = Buffer.alloc(32, 1);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < MS) {
    for (let i = 0; i < 256; i++) createHmac('sha256', key).update(OCTETS).digest();
    n += 256;
  }
  return (n * 1000) / (performance.now() - t0);
}

/** Operations per second of an async operation with CONCURRENCY in flight. */
async function throughput(op: () => Promise<unknown>): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (performance.now() - t0 < MS) {
      await op();
      n++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return (n * 1000) / (performance.now() - t0);
}

const base = hmacBaseline();
console.log(`baseline: HMAC-SHA256 over ${OCTETS.length} bytes: ${Math.round(base)}/s`);
console.log('key        method   sign/s  verify/s   sign cost (× HMAC)');
const kinds: TestKeyType[] = ['rsa2048', 'rsa3072', 'p256', 'p384', 'ed25519'];
for (const type of kinds) {
  const k = testKey(type);
  const key = loadPrivateKey(Buffer.from(k.privateKey.export({ type: 'pkcs8', format: 'pem' })), type);
  const cert = loadCertificates(buildCert({ subject: `CN=${type}`, key: k }), type)[0]!;
  const sig = await signAuth(key, OCTETS, ourHashAlgorithms(false));
  const s = await throughput(() => signAuth(key, OCTETS, ourHashAlgorithms(false)));
  const v = await throughput(() => verifyAuth(cert, sig.method, sig.data, OCTETS, { allowSha1: false }));
  console.log(`${type.padEnd(10)} ${String(sig.method).padEnd(6)} ${String(Math.round(s)).padStart(8)} ${String(Math.round(v)).padStart(9)} ${String(Math.round(base / s)).padStart(12)}`);
}

// chain verification: root (RSA-3072) → intermediate (P-256) → distinct P-256 end certificates
const rootKey = testKey('rsa3072', 1);
const interKey = testKey('p256', 1);
const root = loadCertificates(buildCert({ subject: 'CN=Bench Root', key: rootKey, ca: true }), 'root')[0]!;
const inter = loadCertificates(
  buildCert({ subject: 'CN=Bench Intermediate', key: interKey, ca: true, issuer: { dn: 'CN=Bench Root', key: rootKey } }),
  'inter',
)[0]!;
const N = 2000;
const ends: Cert[] = [];
const endKey = testKey('p256', 2);
for (let i = 0; i < N; i++) {
  ends.push(
    loadCertificates(
      buildCert({ subject: `CN=peer-${i}`, key: endKey, serial: i + 1, issuer: { dn: 'CN=Bench Intermediate', key: interKey } }),
      `end ${i}`,
    )[0]!,
  );
}
const trust = { cas: [root], crls: [] };
const now = new Date();
let t0 = performance.now();
for (const e of ends) if (!verifyChain(e, [inter], trust, now).ok) throw new Error('chain failed');
const cold = (performance.now() - t0) / N;
t0 = performance.now();
for (const e of ends) if (!verifyChain(e, [inter], trust, now).ok) throw new Error('chain failed');
const cached = (performance.now() - t0) / N;
console.log(`verifyChain (P-256 end ← P-256 intermediate ← RSA-3072 root), ${N} distinct end certificates:`);
console.log(`  cold ${(cold * 1000).toFixed(0)} µs each (${Math.round(cold / (1000 / base))}× HMAC), cached ${(cached * 1000).toFixed(1)} µs each`);

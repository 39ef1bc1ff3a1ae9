/**
 * The cryptographic floor of one PSK responder handshake (IKE_SA_INIT + IKE_AUTH with one
 * CHILD SA), for aes256gcm16-prfsha256-x25519 and aes256gcm16-prfsha256-ecp256. Timed is only
 * what the responder computes:
 *
 *   IKE_SA_INIT  key pair generation + DH with the initiator's KE value, Nr and SPIr from the
 *                CSPRNG, SKEYSEED and prf+ for SK_*, IkeCipher set-up (KeyObjects)
 *   IKE_AUTH     1 SK open (the request), the initiator's AUTH checked (prf(SK_pi, IDi'),
 *                prf(PSK, pad), prf(K, octets)), our AUTH (prf(SK_pr, IDr'), prf(K, octets)),
 *                CHILD SA KEYMAT (prf+), 1 SK seal (the response)
 *
 * IKE_SA_INIT carries no SK payload. The initiator's side (its KE value, sealing its request) is
 * prepared outside the timed sections. Message parsing/encoding is not included (see
 * bench/codec.ts). A baseline measured in the same run, one HMAC-SHA256 over 64 bytes with a
 * KeyObject key, makes the figures comparable across machines as ratios.
 *
 * Run: node bench/handshake-floor.ts   (BENCH_MS sets the time per case, default 1000)
 */
import { createHmac, createSecretKey, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { pskAuthKey, signedOctets } from '../src/ikev2/crypto/auth.ts';
import { createKeyExchange } from '../src/ikev2/crypto/ke.ts';
import { deriveChildKeys, deriveIkeKeys, Prf, type IkeSuite } from '../src/ikev2/crypto/prf.ts';
import { IkeCipher } from '../src/ikev2/crypto/protect.ts';
import { encrAlg, prfAlg } from '../src/ikev2/crypto/suites.ts';
import type { IkeHeader, SkPayload } from '../src/ikev2/codec/types.ts';
import { EncrId, ExchangeType, HeaderFlag, KeId, PayloadType, PrfId } from '../src/ikev2/constants.ts';
import { timingSafeEqual } from 'node:crypto';

let sink = 0;

/** Runs `op` repeatedly for about `ms` milliseconds after a warm-up; returns operations per second. */
function measure(op: () => number, ms: number): number {
  const warmEnd = performance.now() + Math.min(200, ms / 4);
  while (performance.now() < warmEnd) for (let i = 0; i < 64; i++) sink ^= op();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 256; i++) sink ^= op();
    n += 256;
    t = performance.now();
  }
  return Math.round((n * 1000) / (t - t0));
}

const PSK = Buffer.from('a pre-shared key of thirty-two b', 'ascii');
const IDI = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from('client.example.net', 'ascii')]); // ID_FQDN
const IDR = Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.from([192, 0, 2, 1])]); // ID_IPV4_ADDR

interface Phases {
  /** Mean µs of the responder's IKE_SA_INIT crypto. */
  init: number;
  /** Mean µs of the responder's IKE_AUTH crypto. */
  auth: number;
  /** Mean µs of this thread's CPU time (user + system) in both, as /proc counts a daemon's. */
  cpu: number;
  handshakes: number;
}

/** Runs responder handshakes for about `ms` milliseconds; only responder work is timed. */
function handshakes(group: number, ms: number): Phases {
  const suite: IkeSuite = {
    encr: encrAlg(EncrId.AES_GCM_16, 256)!,
    prf: prfAlg(PrfId.HMAC_SHA2_256)!,
    integ: null,
    ke: group,
  };
  const prf = new Prf(suite.prf);
  // The initiator's side, fixed: its KE value, nonce, SPI, and the IKE_SA_INIT messages that the
  // AUTH payloads sign (sizes of a typical exchange).
  const initiatorKe = createKeyExchange(group);
  const ni = randomBytes(32);
  const spiI = randomBytes(8);
  const initRequest = randomBytes(336);
  const initResponse = randomBytes(300);
  const authRequestInner = randomBytes(260); // IDi, AUTH, SA, TSi, TSr, notifies
  const authResponseInner = randomBytes(220);

  let initNs = 0;
  let authNs = 0;
  let cpuUs = 0;
  let n = 0;
  const cpu = (): number => {
    const u = process.threadCpuUsage();
    return u.user + u.system;
  };
  const run = (timed: boolean): void => {
    // ---- responder: IKE_SA_INIT ----
    let c0 = cpu();
    let t0 = process.hrtime.bigint();
    const ke = createKeyExchange(group);
    const secret = ke.computeSecret(initiatorKe.publicValue);
    const nr = randomBytes(32);
    const spiR = randomBytes(8);
    const { keys } = deriveIkeKeys(suite, secret, ni, nr, spiI, spiR);
    const cipher = new IkeCipher(suite, keys, false, randomBytes);
    let t1 = process.hrtime.bigint();
    if (timed) {
      initNs += Number(t1 - t0);
      cpuUs += cpu() - c0;
    }

    // ---- initiator (untimed): its IKE_AUTH request under the same keys ----
    const header: IkeHeader = {
      spiI,
      spiR,
      nextPayload: 0,
      version: 0x20,
      exchange: ExchangeType.IKE_AUTH,
      flags: HeaderFlag.INITIATOR,
      messageId: 1,
      length: 0,
    };
    const request = new IkeCipher(suite, keys, true, randomBytes).seal(header, PayloadType.IDi, authRequestInner);
    const sk: SkPayload = { type: PayloadType.SK, critical: false, innerType: PayloadType.IDi, body: request.subarray(32), offset: 28 };
    const initiatorAuth = prf.compute(pskAuthKey(prf, PSK), signedOctets(prf, initRequest, nr, keys.skPi, IDI));

    // ---- responder: IKE_AUTH ----
    c0 = cpu();
    t0 = process.hrtime.bigint();
    const inner = cipher.open(request, sk);
    const padKey = pskAuthKey(prf, PSK);
    const expected = prf.compute(padKey, signedOctets(prf, initRequest, nr, keys.skPi, IDI));
    if (!timingSafeEqual(expected, initiatorAuth)) throw new Error('AUTH mismatch');
    const ourAuth = prf.compute(padKey, signedOctets(prf, initResponse, ni, keys.skPr, IDR));
    const child = deriveChildKeys(suite.prf, keys.skD, suite.encr, null, ni, nr);
    const response = cipher.seal({ ...header, flags: HeaderFlag.RESPONSE }, PayloadType.IDr, authResponseInner);
    t1 = process.hrtime.bigint();
    if (timed) {
      authNs += Number(t1 - t0);
      cpuUs += cpu() - c0;
      n++;
    }
    sink ^= inner.length ^ ourAuth[0]! ^ child.encI[0]! ^ response.length;
  };
  const warmEnd = performance.now() + Math.min(200, ms / 4);
  while (performance.now() < warmEnd) run(false);
  const end = performance.now() + ms;
  while (performance.now() < end) run(true);
  return { init: initNs / n / 1000, auth: authNs / n / 1000, cpu: cpuUs / n, handshakes: n };
}

/**
 * Results (stable keys): for x25519 and ecp256 the handshake rate `<g>_handshake_ops` (from the
 * responder's CPU time only), `<g>_handshake_us`, `<g>_ike_sa_init_us`, `<g>_ike_auth_us` and
 * `<g>_handshake_in_hmacs` (cost as a multiple of the baseline), `<g>_handshake_cpu_us` (the
 * thread's CPU time per handshake in the timed sections, comparable with /proc figures); the baseline
 * `hmac_sha256_keyobject_ops` / `hmac_sha256_keyobject_us`, and for reference
 * `hmac_sha256_buffer_key_ops`.
 */
export async function runHandshakeFloorBench(ms = Number(process.env.BENCH_MS ?? 1000)): Promise<Record<string, number>> {
  const r: Record<string, number> = {};
  const key = createSecretKey(randomBytes(32));
  const rawKey = randomBytes(32);
  const data = randomBytes(64);
  r.hmac_sha256_keyobject_ops = measure(() => createHmac('sha256', key).update(data).digest()[0]!, ms);
  r.hmac_sha256_keyobject_us = round(1e6 / r.hmac_sha256_keyobject_ops);
  r.hmac_sha256_buffer_key_ops = measure(() => createHmac('sha256', rawKey).update(data).digest()[0]!, ms);
  for (const [name, group] of [
    ['x25519', KeId.CURVE25519],
    ['ecp256', KeId.ECP_256],
  ] as const) {
    const p = handshakes(group, ms);
    const us = p.init + p.auth;
    r[`${name}_handshake_ops`] = Math.round(1e6 / us);
    r[`${name}_handshake_us`] = round(us);
    r[`${name}_ike_sa_init_us`] = round(p.init);
    r[`${name}_ike_auth_us`] = round(p.auth);
    r[`${name}_handshake_in_hmacs`] = round(us / r.hmac_sha256_keyobject_us);
    r[`${name}_handshake_cpu_us`] = round(p.cpu);
    r[`${name}_handshakes_measured`] = p.handshakes;
  }
  return r;
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

if (import.meta.main) {
  const r = await runHandshakeFloorBench();
  console.log(`node ${process.version}, OpenSSL ${process.versions.openssl}, ${process.env.BENCH_MS ?? 1000} ms per case`);
  console.log(
    `baseline: HMAC-SHA256 (KeyObject, 64 B) ${r.hmac_sha256_keyobject_ops} ops/s = ${r.hmac_sha256_keyobject_us} µs` +
      `  (Buffer key: ${r.hmac_sha256_buffer_key_ops} ops/s)`,
  );
  for (const g of ['x25519', 'ecp256']) {
    console.log(
      `aes256gcm16-prfsha256-${g}: ${r[`${g}_handshake_ops`]} handshakes/s, ${r[`${g}_handshake_us`]} µs ` +
        `(IKE_SA_INIT ${r[`${g}_ike_sa_init_us`]} µs + IKE_AUTH ${r[`${g}_ike_auth_us`]} µs) = ` +
        `${r[`${g}_handshake_in_hmacs`]} × baseline, CPU ${r[`${g}_handshake_cpu_us`]} µs  [${r[`${g}_handshakes_measured`]} handshakes]`,
    );
  }
  if (sink === 0.5) console.log(sink);
}

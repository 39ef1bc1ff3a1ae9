/**
 * Responder cookies (RFC 7296 §2.6): while too many IKE SAs are half-open, an IKE_SA_INIT request is
 * answered with a COOKIE notification and nothing else, and only a request that returns a valid
 * cookie gets a key exchange and a place in the session table. The cookie is stateless:
 *
 *   COOKIE = <version> | HMAC-SHA256(secret, Ni | IPi | SPIi)
 *
 * The secret changes every ROTATE_MS (its version is the number of that period, modulo 256); a cookie
 * made with the previous secret is still honoured for GRACE_MS after the change, so an initiator that
 * was given one just before it is not sent away. Older cookies name a version we no longer hold and are
 * refused. Nothing is scheduled: the secrets follow the clock when a cookie is made or checked.
 * Checking a cookie costs one HMAC and allocates nothing that outlives the call.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock, RandomSource } from '../../common/clock.ts';
import { ipToBytes } from '../../common/addr.ts';

/** How long one cookie secret is used to make cookies. */
export const COOKIE_ROTATE_MS = 60_000;
/** How long after a change cookies of the previous secret are still accepted. */
export const COOKIE_GRACE_MS = 10_000;
/** Cookies stay required this long after the half-open count fell below the threshold (no flapping). */
export const COOKIE_CALMDOWN_MS = 10_000;

const SECRET_LEN = 32;
const MAC_LEN = 32;
/** A cookie of ours: one version byte and the MAC. */
export const COOKIE_LEN = 1 + MAC_LEN;

interface Secret {
  period: number;
  key: Buffer;
}

export type CookieCheck = 'ok' | 'expired' | 'bad';

export class CookieJar {
  private readonly clock: Clock;
  private readonly random: RandomSource;
  private readonly rotateMs: number;
  private readonly graceMs: number;
  private current: Secret | undefined;
  private previous: Secret | undefined;

  constructor(clock: Clock, random: RandomSource, rotateMs = COOKIE_ROTATE_MS, graceMs = COOKIE_GRACE_MS) {
    this.clock = clock;
    this.random = random;
    this.rotateMs = rotateMs;
    this.graceMs = graceMs;
  }

  /** The cookie for an IKE_SA_INIT request with nonce `ni` and SPIi `spiI` from address `ip`. */
  make(ni: Buffer, ip: string, spiI: Buffer): Buffer {
    const s = this.secretNow();
    const out = Buffer.allocUnsafe(COOKIE_LEN);
    out[0] = s.period & 0xff;
    mac(s.key, ni, ip, spiI).copy(out, 1);
    return out;
  }

  /** Whether `cookie` is one we made for this request (with the current secret, or the previous one within its grace). */
  check(cookie: Buffer, ni: Buffer, ip: string, spiI: Buffer): CookieCheck {
    if (cookie.length !== COOKIE_LEN) return 'bad';
    const now = this.clock.now();
    const cur = this.secretNow();
    const version = cookie[0]!;
    let s: Secret | undefined;
    if (version === (cur.period & 0xff)) s = cur;
    else if (this.previous && version === (this.previous.period & 0xff) && now - cur.period * this.rotateMs < this.graceMs) s = this.previous;
    else return 'expired';
    return timingSafeEqual(mac(s.key, ni, ip, spiI), cookie.subarray(1)) ? 'ok' : 'bad';
  }

  /** The secret of the current period (made when the period starts; the one before it is kept as previous). */
  private secretNow(): Secret {
    const period = Math.floor(this.clock.now() / this.rotateMs);
    const cur = this.current;
    if (cur && cur.period === period) return cur;
    this.previous = cur && cur.period === period - 1 ? cur : undefined;
    const next = { period, key: this.random(SECRET_LEN) };
    this.current = next;
    return next;
  }
}

function mac(key: Buffer, ni: Buffer, ip: string, spiI: Buffer): Buffer {
  return createHmac('sha256', key)
    .update(ni)
    .update(ipToBytes(ip) ?? Buffer.alloc(0))
    .update(spiI)
    .digest();
}

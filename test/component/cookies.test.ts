/**
 * Responder cookies and half-open limits (RFC 7296 §2.6; strongSwan's cookie_threshold,
 * block_threshold, init_limit_half_open) and the initiator's answer to a cookie, on two engines over
 * the in-memory wire with a fake clock. Forged IKE_SA_INIT requests are copies of a real one with a
 * fresh SPIi each, from many source addresses (what a flood looks like).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pair, type Node } from '../helpers/engine-pair.ts';
import { FakeScheduler } from '../../src/common/clock.ts';
import { CookieJar, COOKIE_GRACE_MS, COOKIE_LEN, COOKIE_ROTATE_MS } from '../../src/ikev2/engine/cookies.ts';
import { MAX_COOKIE_RETRIES } from '../../src/ikev2/engine/ike-init.ts';
import { decodeMessage, encodeMessage } from '../../src/ikev2/codec/message.ts';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType } from '../../src/ikev2/constants.ts';
import type { OutPacket } from '../../src/ikev2/engine/engine.ts';
import type { Payload } from '../../src/ikev2/codec/types.ts';

const NI = Buffer.alloc(32, 1);
/** The responder takes IKE_SA_INITs from any address (as a hub does). */
const ANY_PEER = { remoteAddrs: [] };
const SPI = Buffer.from('0102030405060708', 'hex');

test('a cookie verifies for the request it was made for, and for nothing else', () => {
  const clock = new FakeScheduler(5_000);
  let n = 0;
  const jar = new CookieJar(clock, (len) => Buffer.alloc(len, ++n));
  const c = jar.make(NI, '192.0.2.9', SPI);
  assert.equal(c.length, COOKIE_LEN);
  assert.equal(jar.check(c, NI, '192.0.2.9', SPI), 'ok');
  assert.equal(jar.check(c, Buffer.alloc(32, 2), '192.0.2.9', SPI), 'bad', 'another nonce');
  assert.equal(jar.check(c, NI, '192.0.2.10', SPI), 'bad', 'another address');
  assert.equal(jar.check(c, NI, '2001:db8::9', SPI), 'bad', 'another family');
  assert.equal(jar.check(c, NI, '192.0.2.9', Buffer.alloc(8, 9)), 'bad', 'another SPI');
  const tampered = Buffer.from(c);
  tampered[10]! ^= 1;
  assert.equal(jar.check(tampered, NI, '192.0.2.9', SPI), 'bad');
  assert.equal(jar.check(c.subarray(0, 20), NI, '192.0.2.9', SPI), 'bad', 'truncated');
  assert.equal(jar.check(Buffer.alloc(0), NI, '192.0.2.9', SPI), 'bad', 'empty');
});

test('the secret rotates: the previous one is honoured for the grace period, then its cookies expire', () => {
  const clock = new FakeScheduler(0);
  let n = 0;
  const jar = new CookieJar(clock, (len) => Buffer.alloc(len, ++n));
  clock.advance(COOKIE_ROTATE_MS - 1); // the last millisecond of the first secret
  const old = jar.make(NI, '192.0.2.9', SPI);
  clock.advance(1); // a new secret
  const fresh = jar.make(NI, '192.0.2.9', SPI);
  assert.notEqual(fresh[0], old[0], 'a new version byte');
  assert.notDeepEqual(fresh.subarray(1), old.subarray(1));
  assert.equal(jar.check(old, NI, '192.0.2.9', SPI), 'ok', 'within the grace period');
  assert.equal(jar.check(fresh, NI, '192.0.2.9', SPI), 'ok');
  clock.advance(COOKIE_GRACE_MS);
  assert.equal(jar.check(old, NI, '192.0.2.9', SPI), 'expired', 'after the grace period');
  assert.equal(jar.check(fresh, NI, '192.0.2.9', SPI), 'ok');
  clock.advance(2 * COOKIE_ROTATE_MS);
  assert.equal(jar.check(fresh, NI, '192.0.2.9', SPI), 'expired', 'two secrets later');
  // A forged version byte that names the current secret still needs the right MAC.
  const now = jar.make(NI, '192.0.2.9', SPI);
  const forged = Buffer.from(fresh);
  forged[0] = now[0]!;
  assert.equal(jar.check(forged, NI, '192.0.2.9', SPI), 'bad');
});

/** A's IKE_SA_INIT request as it leaves A (recorded, not delivered). */
async function recordInit(): Promise<Buffer> {
  const { w, a } = pair();
  w.filter = () => 'drop';
  a.engine.initiate('lab').catch(() => {});
  await w.run();
  const p = w.log.find((x) => decodeMessage(x.data).header.exchange === ExchangeType.IKE_SA_INIT);
  assert.ok(p);
  return p.data;
}

/** A copy of an IKE_SA_INIT request with another SPIi (and optionally a COOKIE payload in front). */
function forged(init: Buffer, spi: number, cookie?: Buffer): Buffer {
  const m = decodeMessage(init);
  const spiI = Buffer.alloc(8);
  spiI.writeUInt32BE(0x7e000000 + spi, 4);
  const payloads: Payload[] = m.payloads.filter((p) => !(p.type === PayloadType.NOTIFY && p.notifyType === NotifyType.COOKIE));
  if (cookie) payloads.unshift({ type: PayloadType.NOTIFY, critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.COOKIE, data: cookie });
  return encodeMessage({ ...m.header, spiI }, payloads);
}

function answersTo(log: OutPacket[], addr: string): { cookie?: Buffer; kind: 'cookie' | 'sa' | 'other' }[] {
  return log
    .filter((p) => p.remote.addr === addr)
    .map((p) => {
      const m = decodeMessage(p.data);
      const first = m.payloads[0];
      if (first?.type === PayloadType.NOTIFY && first.notifyType === NotifyType.COOKIE) return { kind: 'cookie' as const, cookie: first.data };
      return { kind: m.payloads.some((x) => x.type === PayloadType.SA) ? ('sa' as const) : ('other' as const) };
    });
}

function receiveFrom(b: Node, addr: string, data: Buffer): void {
  b.engine.receive({ addr: b.addr, port: 500 }, { addr, port: 500 }, data);
}

test('over cookie_threshold half-open SAs a new IKE_SA_INIT gets only a COOKIE; its return with the cookie is admitted', async () => {
  const init = await recordInit();
  const { w, b } = pair({ b: ANY_PEER, engineB: { cookieThreshold: 3, blockThreshold: 0 } });
  for (let i = 0; i < 3; i++) receiveFrom(b, `198.51.100.${i + 1}`, forged(init, i));
  await w.run();
  assert.equal(b.engine.table.halfOpenCount, 3);
  assert.equal(b.engine.stats.cookiesSent, 0);
  // The fourth: a cookie, no state, no key exchange.
  w.log.length = 0;
  const sizeBefore = b.engine.table.size;
  receiveFrom(b, '198.51.100.50', forged(init, 50));
  await w.run();
  const ans = answersTo(w.log, '198.51.100.50');
  assert.equal(ans.length, 1);
  assert.equal(ans[0]!.kind, 'cookie');
  assert.equal(b.engine.table.size, sizeBefore, 'nothing kept for a request without a cookie');
  assert.equal(b.engine.stats.cookiesSent, 1);
  // A forged flood: thousands of requests from many addresses cost no state.
  for (let i = 0; i < 2000; i++) receiveFrom(b, `198.51.${100 + (i % 40)}.${1 + (i % 200)}`, forged(init, 1000 + i));
  await w.run();
  assert.equal(b.engine.table.size, sizeBefore);
  assert.equal(b.engine.stats.cookiesSent, 2001);
  // The same request again with its cookie: admitted (a response with SA, KE, Nr).
  w.log.length = 0;
  receiveFrom(b, '198.51.100.50', forged(init, 50, ans[0]!.cookie));
  await w.run();
  assert.deepEqual(answersTo(w.log, '198.51.100.50').map((x) => x.kind), ['sa']);
  assert.equal(b.engine.stats.cookiesVerified, 1);
  assert.equal(b.engine.table.halfOpenCount, 4);
  // Its cookie is no use from another address or with another SPI.
  w.log.length = 0;
  receiveFrom(b, '198.51.100.51', forged(init, 50, ans[0]!.cookie));
  receiveFrom(b, '198.51.100.50', forged(init, 51, ans[0]!.cookie));
  await w.run();
  assert.deepEqual(answersTo(w.log, '198.51.100.51').map((x) => x.kind), ['cookie']);
  assert.deepEqual(answersTo(w.log, '198.51.100.50').map((x) => x.kind), ['cookie']);
  assert.equal(b.engine.stats.cookiesInvalid, 2);
  assert.equal(b.engine.table.halfOpenCount, 4);
});

test('a legitimate initiator answers the cookie and gets its IKE SA and CHILD SA while cookies are required', async () => {
  const init = await recordInit();
  const { w, a, b } = pair({ b: ANY_PEER, engineB: { cookieThreshold: 2, blockThreshold: 0 } });
  for (let i = 0; i < 2; i++) receiveFrom(b, `198.51.100.${i + 1}`, forged(init, i));
  await w.run();
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  assert.equal(sa.state, 'ESTABLISHED');
  assert.equal(sa.children[0]?.state, 'INSTALLED');
  assert.equal(b.engine.stats.cookiesSent, 1);
  assert.equal(b.engine.stats.cookiesVerified, 1);
  const inits = w.log.filter((x) => x.remote.addr === b.addr && decodeMessage(x.data).header.exchange === ExchangeType.IKE_SA_INIT);
  assert.equal(inits.length, 2, 'the first request and its retry with the cookie');
  const retry = decodeMessage(inits[1]!.data);
  const first = retry.payloads[0];
  assert.ok(first?.type === PayloadType.NOTIFY && first.notifyType === NotifyType.COOKIE, 'the COOKIE comes first');
  // The same nonce both times (the cookie covers it).
  const nonceOf = (d: Buffer): Buffer | undefined => {
    const n = decodeMessage(d).payloads.find((x) => x.type === PayloadType.NONCE);
    return n?.type === PayloadType.NONCE ? n.data : undefined;
  };
  assert.deepEqual(nonceOf(inits[0]!.data), nonceOf(inits[1]!.data));
});

test('cookies stay required for 10 s after the half-open count fell below the threshold, then stop', async () => {
  const init = await recordInit();
  const { w, b } = pair({ b: ANY_PEER, engineB: { cookieThreshold: 1, blockThreshold: 0, halfOpenTimeout: 5 } });
  receiveFrom(b, '198.51.100.1', forged(init, 1));
  await w.run();
  w.log.length = 0;
  receiveFrom(b, '198.51.100.2', forged(init, 2));
  await w.run();
  assert.deepEqual(answersTo(w.log, '198.51.100.2').map((x) => x.kind), ['cookie']);
  await w.advance(6_000); // the half-open SA times out
  assert.equal(b.engine.table.halfOpenCount, 0);
  w.log.length = 0;
  receiveFrom(b, '198.51.100.3', forged(init, 3));
  await w.run();
  assert.deepEqual(answersTo(w.log, '198.51.100.3').map((x) => x.kind), ['cookie'], 'still within the calm-down');
  await w.advance(5_000);
  w.log.length = 0;
  receiveFrom(b, '198.51.100.4', forged(init, 4));
  await w.run();
  assert.deepEqual(answersTo(w.log, '198.51.100.4').map((x) => x.kind), ['sa']);
});

test('a cookie from an expired secret is refused with a new cookie', async () => {
  const init = await recordInit();
  const { w, b } = pair({ b: ANY_PEER, engineB: { cookieThreshold: 1, blockThreshold: 0, halfOpenTimeout: 600 } });
  receiveFrom(b, '198.51.100.1', forged(init, 1));
  await w.run();
  w.log.length = 0;
  receiveFrom(b, '198.51.100.2', forged(init, 2));
  await w.run();
  const [c] = answersTo(w.log, '198.51.100.2');
  assert.ok(c?.cookie);
  await w.advance(COOKIE_ROTATE_MS + COOKIE_GRACE_MS + 1_000, 5_000);
  w.log.length = 0;
  receiveFrom(b, '198.51.100.2', forged(init, 2, c.cookie));
  await w.run();
  const again = answersTo(w.log, '198.51.100.2');
  assert.deepEqual(again.map((x) => x.kind), ['cookie']);
  assert.notDeepEqual(again[0]!.cookie, c.cookie);
  assert.equal(b.engine.stats.cookiesInvalid, 1);
  assert.equal(b.engine.stats.cookiesVerified, 0);
  assert.equal(b.engine.table.halfOpenCount, 1);
});

test('block_threshold: requests from an address with that many half-open SAs are dropped; other addresses go on', async () => {
  const init = await recordInit();
  const { w, b } = pair({ b: ANY_PEER, engineB: { cookieThreshold: 0, blockThreshold: 2 } });
  for (let i = 0; i < 4; i++) receiveFrom(b, '198.51.100.7', forged(init, i));
  await w.run();
  assert.equal(b.engine.table.halfOpenCount, 2);
  assert.equal(b.engine.stats.initDroppedBlocked, 2);
  assert.equal(answersTo(w.log, '198.51.100.7').length, 2, 'dropped requests get no answer');
  receiveFrom(b, '198.51.100.8', forged(init, 9));
  await w.run();
  assert.equal(b.engine.table.halfOpenCount, 3);
  // A retransmission of an admitted request is still answered from its half-open SA.
  w.log.length = 0;
  receiveFrom(b, '198.51.100.7', forged(init, 0));
  await w.run();
  assert.deepEqual(answersTo(w.log, '198.51.100.7').map((x) => x.kind), ['sa']);
  assert.equal(b.engine.stats.initDroppedBlocked, 2);
});

test('init_limit_half_open: at the limit every new IKE_SA_INIT is dropped until half-open SAs complete or time out', async () => {
  const init = await recordInit();
  const { w, b } = pair({ b: ANY_PEER, engineB: { cookieThreshold: 0, blockThreshold: 0, initLimitHalfOpen: 3, halfOpenTimeout: 5 } });
  for (let i = 0; i < 5; i++) receiveFrom(b, `198.51.100.${i + 1}`, forged(init, i));
  await w.run();
  assert.equal(b.engine.table.halfOpenCount, 3);
  assert.equal(b.engine.stats.initDroppedHalfOpen, 2);
  await w.advance(6_000);
  assert.equal(b.engine.table.halfOpenCount, 0, 'half-open SAs time out');
  receiveFrom(b, '198.51.100.9', forged(init, 9));
  await w.run();
  assert.equal(b.engine.table.halfOpenCount, 1);
});

test(`an initiator answers at most ${MAX_COOKIE_RETRIES} cookies, then gives up`, async () => {
  const { w, a } = pair();
  // A responder that always wants another cookie.
  let sent = 0;
  w.filter = (p) => {
    if (p.remote.addr !== '192.0.2.2') return 'deliver';
    const m = decodeMessage(p.data);
    sent++;
    const cookie = Buffer.alloc(16, sent);
    const resp = encodeMessage(
      { ...m.header, flags: HeaderFlag.RESPONSE },
      [{ type: PayloadType.NOTIFY, critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.COOKIE, data: cookie }],
    );
    queueMicrotask(() => a.engine.receive({ ...p.local }, { ...p.remote }, resp));
    return 'drop';
  };
  const p = a.engine.initiate('lab');
  const r = p.then(
    () => 'up',
    (e: Error) => e.message,
  );
  await w.run();
  assert.match(await r, /cookie/);
  assert.equal(sent, 1 + MAX_COOKIE_RETRIES);
  assert.equal(a.engine.table.size, 0);
});

test('an oversized or empty COOKIE from a responder is dropped as malformed, never echoed', async () => {
  for (const bad of [Buffer.alloc(65, 1), Buffer.alloc(0)]) {
    const { w, a } = pair();
    let answered = 0;
    w.filter = (p) => {
      if (p.remote.addr !== '192.0.2.2') return 'deliver';
      if (answered++ > 0) return 'drop';
      const m = decodeMessage(p.data);
      const resp = encodeMessage({ ...m.header, flags: HeaderFlag.RESPONSE }, [
        { type: PayloadType.NOTIFY, critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.COOKIE, data: bad },
      ]);
      queueMicrotask(() => a.engine.receive({ ...p.local }, { ...p.remote }, resp));
      return 'drop';
    };
    a.engine.initiate('lab').catch(() => {});
    await w.run();
    assert.equal(a.engine.stats.rxInvalid, 1);
    await w.advance(4_000);
    assert.equal(w.log.length, 2, 'the request is retransmitted as it was');
    assert.deepEqual(w.log[1]!.data, w.log[0]!.data, 'without the cookie');
    a.engine.shutdown(false);
  }
});

/**
 * Fuzz test of the IKEv2 codec with fast-check: random bytes, random payload chains with
 * consistent lengths, mutations (bit flips, byte insert/delete/overwrite, truncation, length-field
 * tweaks) of valid messages of every exchange type, and generated valid payload lists.
 *
 * Properties: decodeMessage and decodePayloadChain throw nothing but ParseError (with an offset
 * inside the input); whatever decodes re-encodes without error and decodes again to the same
 * structure, and encoding is then byte-for-byte stable; every case finishes within a time bound.
 *
 * The properties run in a worker thread. The worker publishes each input and a case counter in
 * shared memory; if the counter stops moving, the main thread ends the worker and fails with
 * the input that hung (a synchronous infinite loop cannot be caught from inside its own thread).
 *
 * Environment: FUZZ_SEED replays a run (the seed is printed as `fuzz seed N`); FUZZ_RUNS sets
 * the total number of inputs (default 105,000, at least 100,000 across all groups).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ParseError } from '../../src/common/bytes.ts';
import { decodeMessage, decodePayloadChain, encodeMessage, encodePayloadChain } from '../../src/ikev2/codec/message.ts';
import { IKE_HEADER_LEN } from '../../src/ikev2/codec/header.ts';
import { PayloadType, TsType } from '../../src/ikev2/constants.ts';
import type { DecodedMessage, IkeHeader, Payload, TrafficSelector } from '../../src/ikev2/codec/types.ts';
import * as F from './codec-fixtures.ts';

const GROUPS = {
  /** Uniformly random bytes through decodeMessage and decodePayloadChain. */
  randomBytes: 10_000,
  /** A valid header followed by 1–5 payloads of random type with random bodies but consistent lengths. */
  randomChains: 25_000,
  /** Mutations of valid messages of every exchange type (and of plaintext versions of SK contents). */
  mutatedMessages: 45_000,
  /** Mutations of valid decrypted SK contents through decodePayloadChain. */
  mutatedChains: 15_000,
  /** Generated valid payload lists: encode, decode, compare. */
  generatedValid: 10_000,
} as const;
type Group = keyof typeof GROUPS;
const DEFAULT_TOTAL = Object.values(GROUPS).reduce((a, b) => a + b, 0);

/** Upper bound for one case (decode + re-encode + decode) of inputs of at most a few KB. */
const CASE_LIMIT_MS = 250;
/** No progress for this long means a hang. */
const HANG_MS = 5_000;
const INPUT_CAPACITY = 1 << 17;

// ------------------------------------------------------------------------------------------
// Properties (run inside the worker)
// ------------------------------------------------------------------------------------------

interface Progress {
  counter: Int32Array; // [0] cases started, [1] length of the current input
  input: Uint8Array;
}

let progress: Progress | undefined;

function publish(b: Buffer): void {
  if (!progress) return;
  const n = Math.min(b.length, INPUT_CAPACITY);
  progress.input.set(b.subarray(0, n));
  Atomics.store(progress.counter, 1, n);
  Atomics.add(progress.counter, 0, 1);
}

function timed(b: Buffer, fn: () => void): void {
  publish(b);
  const t0 = performance.now();
  fn();
  const ms = performance.now() - t0;
  if (ms > CASE_LIMIT_MS) throw new Error(`case took ${ms.toFixed(1)} ms (limit ${CASE_LIMIT_MS} ms)`);
}

/** Calls fn; a ParseError must carry an offset within the input; any other exception propagates. */
function decodeOrParseError<T>(fn: () => T, inputLength: number): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    if (!(Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= inputLength)) {
      throw new Error(`ParseError offset ${e.offset} outside 0..${inputLength}: ${e.message}`);
    }
    return undefined;
  }
}

function stripOffsets(payloads: Payload[]): unknown[] {
  return payloads.map((p) => (p.type === PayloadType.SK || p.type === PayloadType.SKF ? { ...p, offset: -1 } : p));
}

function headerFields(h: IkeHeader): Omit<IkeHeader, 'length' | 'nextPayload'> {
  return { spiI: h.spiI, spiR: h.spiR, version: h.version, exchange: h.exchange, flags: h.flags, messageId: h.messageId };
}

function assertSame(a: unknown, b: unknown, what: string): void {
  if (!isDeepStrictEqual(a, b)) throw new Error(`${what} differs after re-encoding`);
}

/** A decoded message re-encodes, decodes to the same structure, and encodes to the same bytes again. */
function checkMessageRoundTrip(d: DecodedMessage): void {
  if (d.header.version >> 4 !== 2) {
    assertSame(d.payloads, [], 'payloads of a foreign major version');
    return;
  }
  const bytes = encodeMessage(headerFields(d.header), d.payloads);
  const d2 = decodeMessage(bytes);
  assertSame(headerFields(d2.header), headerFields(d.header), 'header');
  const dropped = d.unknown.length + d.unsupportedCritical.length > 0;
  if (dropped) assertSame(stripOffsets(d2.payloads), stripOffsets(d.payloads), 'payloads');
  else assertSame(d2.payloads, d.payloads, 'payloads');
  assertSame([d2.unknown, d2.unsupportedCritical], [[], []], 'unknown payloads');
  if (!encodeMessage(headerFields(d2.header), d2.payloads).equals(bytes)) throw new Error('encoding is not stable');
}

function checkChainRoundTrip(payloads: Payload[]): void {
  const { firstType, bytes } = encodePayloadChain(payloads);
  const c = decodePayloadChain(bytes, firstType, 0, bytes.length);
  assertSame(c.payloads, payloads, 'chain payloads');
  if (!encodePayloadChain(c.payloads).bytes.equals(bytes)) throw new Error('chain encoding is not stable');
}

function fuzzMessage(b: Buffer): void {
  timed(b, () => {
    const d = decodeOrParseError(() => decodeMessage(b), b.length);
    if (d) checkMessageRoundTrip(d);
    // The same bytes as a decrypted chain starting after the header.
    if (b.length >= IKE_HEADER_LEN) fuzzChainNoPublish(b, b[16]!, IKE_HEADER_LEN);
  });
}

function fuzzChainNoPublish(b: Buffer, first: number, start: number): void {
  const c = decodeOrParseError(() => decodePayloadChain(b, first, start, b.length), b.length);
  if (c) checkChainRoundTrip(c.payloads);
}

function fuzzChain(b: Buffer, first: number): void {
  timed(b, () => fuzzChainNoPublish(b, first, 0));
}

// --- seeds -----------------------------------------------------------------------------------

function withHeader(first: number, chain: Buffer, exchange: number): Buffer {
  const h = F.hex(F.SPI_I, F.SPI_R, '00 20 00 08 00000005 00000000');
  h[16] = first;
  h[18] = exchange;
  const b = Buffer.concat([h, chain]);
  b.writeUInt32BE(b.length, 24);
  return b;
}

const UNKNOWN_PAYLOADS = F.hex(
  '28 00 0006 cafe', //      type 200 (C=0), next Nonce
  '31 00 0014', //           Nonce, next 49 (GSPM, not implemented)
  '000102030405060708090a0b0c0d0e0f',
  '00 80 0005 aa', //        type 49, C=1, next none
);

const MESSAGE_SEEDS: Buffer[] = [
  ...F.GOLDEN_MESSAGES.map(([, b]) => b),
  F.MAJOR_VERSION_3,
  withHeader(PayloadType.IDi, F.IKE_AUTH_REQUEST_INNER, 35),
  withHeader(PayloadType.IDr, F.IKE_AUTH_EAP_RESPONSE_INNER, 35),
  withHeader(PayloadType.NOTIFY, F.CREATE_CHILD_SA_REQUEST_INNER, 36),
  withHeader(PayloadType.DELETE, F.INFORMATIONAL_DELETE_ESP_INNER, 37),
  withHeader(PayloadType.DELETE, F.INFORMATIONAL_DELETE_IKE_INNER, 37),
  withHeader(200, UNKNOWN_PAYLOADS, 37),
];

const CHAIN_SEEDS: Array<readonly [number, Buffer]> = F.GOLDEN_CHAINS.map(([, t, b]) => [t, b] as const);

/** Offsets of 16-bit length fields in a valid chain: payload, proposal, transform, TLV attribute, selector, CP attribute. */
function lengthFields(b: Buffer, first: number, start: number): number[] {
  const out: number[] = [];
  let type = first;
  let at = start;
  while (type !== 0 && at + 4 <= b.length) {
    const len = b.readUInt16BE(at + 2);
    out.push(at + 2);
    const body = at + 4;
    const end = at + len;
    if (type === PayloadType.SA) {
      for (let p = body; p + 8 <= end; p += b.readUInt16BE(p + 2) || end) {
        out.push(p + 2);
        const pEnd = p + b.readUInt16BE(p + 2);
        for (let t = p + 8 + b[p + 6]!; t + 8 <= pEnd; t += b.readUInt16BE(t + 2) || pEnd) {
          out.push(t + 2);
          const tEnd = t + b.readUInt16BE(t + 2);
          for (let a = t + 8; a + 4 <= tEnd; a += b[a]! & 0x80 ? 4 : 4 + b.readUInt16BE(a + 2)) {
            if (!(b[a]! & 0x80)) out.push(a + 2);
          }
        }
      }
    } else if (type === PayloadType.TSi || type === PayloadType.TSr) {
      for (let s = body + 4; s + 4 <= end; s += b.readUInt16BE(s + 2) || end) out.push(s + 2);
    } else if (type === PayloadType.CP) {
      for (let a = body + 4; a + 4 <= end; a += 4 + b.readUInt16BE(a + 2)) out.push(a + 2);
    }
    if (type === PayloadType.SK || type === PayloadType.SKF || len < 4) break;
    type = b[at]!;
    at = end;
  }
  return out;
}

const MESSAGE_LENGTH_FIELDS = MESSAGE_SEEDS.map((b) => [24, ...lengthFields(b, b[16]!, IKE_HEADER_LEN)]);
const CHAIN_LENGTH_FIELDS = CHAIN_SEEDS.map(([t, b]) => lengthFields(b, t, 0));

// --- mutations -------------------------------------------------------------------------------

const INTERESTING_8 = [0, 1, 2, 3, 4, 7, 8, 0x10, 0x20, 0x21, 0x2e, 0x35, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_16 = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 39, 40, 41, 0x7fff, 0x8000, 0xfffe, 0xffff];

type Op = readonly [kind: number, a: number, b: number];

const opArb: fc.Arbitrary<Op> = fc.tuple(fc.integer({ min: 0, max: 7 }), fc.nat(), fc.nat());

function mutate(seed: Buffer, lengthOffsets: number[], ops: readonly Op[]): Buffer {
  let b = Buffer.from(seed);
  for (const [kind, a, v] of ops) {
    const n = b.length;
    switch (kind) {
      case 0: // flip one bit
        if (n > 0) b[a % n]! ^= 1 << v % 8;
        break;
      case 1: // overwrite a byte
        if (n > 0) b[a % n] = v % 2 ? INTERESTING_8[v % INTERESTING_8.length]! : v & 0xff;
        break;
      case 2: // insert a byte
        b = Buffer.concat([b.subarray(0, a % (n + 1)), Buffer.from([v & 0xff]), b.subarray(a % (n + 1))]);
        break;
      case 3: // delete a byte
        if (n > 0) b = Buffer.concat([b.subarray(0, a % n), b.subarray((a % n) + 1)]);
        break;
      case 4: // truncate
        b = b.subarray(0, a % (n + 1));
        break;
      case 5: // overwrite a 16-bit word with an interesting value
        if (n > 1) b.writeUInt16BE(INTERESTING_16[v % INTERESTING_16.length]!, a % (n - 1));
        break;
      case 6: // append garbage
        b = Buffer.concat([b, Buffer.from(Array.from({ length: (v % 16) + 1 }, (_, i) => (a + i * 37) & 0xff))]);
        break;
      case 7: {
        // nudge a length field (header Length, payload/proposal/transform/attribute/selector lengths)
        if (lengthOffsets.length === 0) break;
        const at = lengthOffsets[a % lengthOffsets.length]!;
        if (at === 24 && n >= 28) b.writeUInt32BE((b.readUInt32BE(24) + (v % 17) - 8) >>> 0, 24);
        else if (at + 2 <= n) b.writeUInt16BE((b.readUInt16BE(at) + (v % 17) - 8) & 0xffff, at);
        break;
      }
    }
  }
  return b;
}

// --- arbitraries for the random and generated groups ------------------------------------------

const KNOWN_TYPES = [33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 53];
const payloadTypeArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KNOWN_TYPES) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const bytesArb = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((u) => Buffer.from(u));

const rawPayloadArb = fc.record({
  type: payloadTypeArb,
  critical: fc.boolean(),
  body: bytesArb(0, 96),
  lengthDelta: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -5, max: 5 }) }),
});

function buildRawChain(ps: ReadonlyArray<{ type: number; critical: boolean; body: Buffer; lengthDelta: number }>): Buffer {
  return Buffer.concat(
    ps.flatMap((p, i) => {
      const h = Buffer.from([i + 1 < ps.length ? ps[i + 1]!.type : 0, p.critical ? 0x80 : 0, 0, 0]);
      h.writeUInt16BE((p.body.length + 4 + p.lengthDelta) & 0xffff, 2);
      return [h, p.body];
    }),
  );
}

/** fc.record with ordinary prototypes, so generated values compare equal to decoded ones. */
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });

const attributeArb = fc.oneof(
  rec({ type: fc.integer({ min: 0, max: 0x7fff }), value: u16 }),
  rec({
    type: fc.integer({ min: 0, max: 0x7fff }).filter((t) => t !== 14),
    value: bytesArb(0, 8),
  }),
);
const transformArb = rec({
  type: fc.integer({ min: 1, max: 12 }),
  id: u16,
  attributes: fc.array(attributeArb, { maxLength: 2 }),
});
const protocolSpiArb = fc.oneof(
  fc.constant({ protocol: 1, spi: Buffer.alloc(0) }),
  rec({ protocol: fc.constant(1), spi: bytesArb(8, 8) }),
  rec({ protocol: fc.constantFrom(2, 3), spi: bytesArb(4, 4) }),
  rec({ protocol: fc.integer({ min: 4, max: 255 }), spi: bytesArb(0, 6) }),
);
const saArb = fc
  .record({
    firstNum: fc.integer({ min: 1, max: 250 }),
    proposals: fc.array(rec({ ps: protocolSpiArb, transforms: fc.array(transformArb, { maxLength: 5 }) }), {
      minLength: 1,
      maxLength: 3,
    }),
    critical: fc.boolean(),
  })
  .map(
    ({ firstNum, proposals, critical }): Payload => ({
      type: PayloadType.SA,
      critical,
      proposals: proposals.map((p, i) => ({ num: firstNum + i, ...p.ps, transforms: p.transforms })),
    }),
  );

const v4 = bytesArb(4, 4);
const v6 = bytesArb(16, 16);
const selectorArb: fc.Arbitrary<TrafficSelector> = fc.oneof(
  rec({ tsType: fc.constant(TsType.TS_IPV4_ADDR_RANGE), ipProto: u8, startPort: u16, endPort: u16, start: v4, end: v4 }),
  rec({ tsType: fc.constant(TsType.TS_IPV6_ADDR_RANGE), ipProto: u8, startPort: u16, endPort: u16, start: v6, end: v6 }),
  rec({
    tsType: fc.integer({ min: 0, max: 255 }).filter((t) => t !== 7 && t !== 8),
    ipProto: u8,
    startPort: fc.constant(0),
    endPort: fc.constant(0),
    start: bytesArb(0, 12),
    end: fc.constant(Buffer.alloc(0)),
  }),
);

const notifyArb = fc.oneof(
  rec({
    protocol: u8,
    spi: fc.constant(Buffer.alloc(0)),
    notifyType: fc.constantFrom(1, 14, 24, 16384, 16393, 16430, 40000),
    data: bytesArb(0, 16),
  }),
  rec({ protocol: fc.constantFrom(2, 3), spi: bytesArb(4, 4), notifyType: fc.constantFrom(11, 16393), data: bytesArb(0, 8) }),
  rec({ protocol: fc.constant(0), spi: fc.constant(Buffer.alloc(0)), notifyType: fc.constantFrom(16388, 16389), data: bytesArb(20, 20) }),
  rec({ protocol: fc.constant(0), spi: fc.constant(Buffer.alloc(0)), notifyType: fc.constant(16390), data: bytesArb(1, 64) }),
);

const deleteArb = fc.oneof(
  fc.constant({ protocol: 1, spiSize: 0, spis: [] as Buffer[] }),
  rec({ protocol: fc.constantFrom(2, 3), spiSize: fc.constant(4), spis: fc.array(bytesArb(4, 4), { maxLength: 4 }) }),
);

const eapArb = fc.tuple(u8, u8, bytesArb(0, 16)).map(([code, id, rest]) => {
  const b = Buffer.concat([Buffer.from([code, id, 0, 0]), rest]);
  b.writeUInt16BE(b.length, 2);
  return b;
});

const plainPayloadArb: fc.Arbitrary<Payload> = fc.oneof(
  saArb,
  rec({ type: fc.constant(PayloadType.KE), critical: fc.boolean(), group: fc.integer({ min: 1, max: 0xffff }), data: bytesArb(1, 64) }),
  rec({ type: fc.constantFrom(PayloadType.IDi, PayloadType.IDr), critical: fc.boolean(), idType: u8, data: bytesArb(0, 24) }),
  rec({ type: fc.constant(PayloadType.CERT), critical: fc.boolean(), encoding: u8, data: bytesArb(0, 24) }),
  rec({ type: fc.constant(PayloadType.CERTREQ), critical: fc.boolean(), encoding: u8, data: bytesArb(0, 24) }),
  rec({ type: fc.constant(PayloadType.AUTH), critical: fc.boolean(), method: u8, data: bytesArb(0, 24) }),
  rec({ type: fc.constant(PayloadType.NONCE), critical: fc.boolean(), data: bytesArb(16, 256) }),
  notifyArb.chain((n) => rec({ type: fc.constant(PayloadType.NOTIFY), critical: fc.boolean() }).map((h) => ({ ...h, ...n }))),
  deleteArb.chain((d) => rec({ type: fc.constant(PayloadType.DELETE), critical: fc.boolean() }).map((h) => ({ ...h, ...d }))),
  rec({ type: fc.constant(PayloadType.VENDOR), critical: fc.boolean(), data: bytesArb(0, 24) }),
  rec({
    type: fc.constantFrom(PayloadType.TSi, PayloadType.TSr),
    critical: fc.boolean(),
    selectors: fc.array(selectorArb, { maxLength: 4 }),
  }),
  rec({
    type: fc.constant(PayloadType.CP),
    critical: fc.boolean(),
    cfgType: u8,
    attributes: fc.array(rec({ type: fc.integer({ min: 0, max: 0x7fff }), value: bytesArb(0, 20) }), { maxLength: 4 }),
  }),
  rec({ type: fc.constant(PayloadType.EAP), critical: fc.boolean(), data: eapArb }),
);

const encryptedArb: fc.Arbitrary<Payload> = fc.oneof(
  rec({ type: fc.constant(PayloadType.SK), critical: fc.boolean(), innerType: u8, body: bytesArb(0, 64), offset: fc.constant(0) }),
  fc
    .tuple(fc.integer({ min: 1, max: 0xffff }), fc.nat())
    .chain(([total, n]) =>
      rec({
        type: fc.constant(PayloadType.SKF),
        critical: fc.boolean(),
        innerType: u8,
        fragmentNumber: fc.constant((n % total) + 1),
        totalFragments: fc.constant(total),
        body: bytesArb(0, 64),
        offset: fc.constant(0),
      }),
    ),
);

const headerArb = rec({
  spiI: bytesArb(8, 8),
  spiR: bytesArb(8, 8),
  version: fc.integer({ min: 0x20, max: 0x2f }),
  exchange: u8,
  flags: fc.constantFrom(0, 0x08, 0x20, 0x28, 0x10),
  messageId: fc.integer({ min: 0, max: 0xffffffff }),
});

/** Encoded valid payloads decode to exactly what was encoded (SK/SKF offsets = their position). */
function checkGenerated(header: Omit<IkeHeader, 'length' | 'nextPayload'>, plain: Payload[], encrypted: Payload | null): void {
  const payloads = encrypted ? [...plain, encrypted] : plain;
  const bytes = encodeMessage(header, payloads);
  timed(bytes, () => {
    const d = decodeMessage(bytes);
    assertSame(stripOffsets(d.payloads), stripOffsets(payloads), 'generated payloads');
    const last = d.payloads.at(-1);
    if (last && (last.type === PayloadType.SK || last.type === PayloadType.SKF)) {
      if (bytes.readUInt16BE(last.offset + 2) !== bytes.length - last.offset) throw new Error('SK offset is wrong');
    }
    if (!encodeMessage(headerFields(d.header), d.payloads).equals(bytes)) throw new Error('generated: bytes differ');
    checkChainRoundTrip(plain);
  });
}

// --- group runner ------------------------------------------------------------------------------

function runGroup(group: Group, seed: number, numRuns: number): void {
  const params = { seed, numRuns };
  switch (group) {
    case 'randomBytes':
      fc.assert(
        fc.property(bytesArb(0, 600), payloadTypeArb, (b, first) => {
          fuzzMessage(b);
          fuzzChain(b, first);
        }),
        { ...params, numRuns: Math.ceil(numRuns / 2) },
      );
      return;
    case 'randomChains':
      fc.assert(
        fc.property(fc.array(rawPayloadArb, { minLength: 1, maxLength: 5 }), fc.constantFrom(34, 35, 36, 37), (ps, ex) => {
          fuzzMessage(withHeader(ps[0]!.type, buildRawChain(ps), ex));
        }),
        params,
      );
      return;
    case 'mutatedMessages':
      fc.assert(
        fc.property(
          fc.nat(),
          fc.array(opArb, { minLength: 1, maxLength: 4 }),
          fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
          (pick, ops, fixLength) => {
            const i = pick % MESSAGE_SEEDS.length;
            const b = mutate(MESSAGE_SEEDS[i]!, MESSAGE_LENGTH_FIELDS[i]!, ops);
            if (fixLength && b.length >= IKE_HEADER_LEN) b.writeUInt32BE(b.length, 24);
            fuzzMessage(b);
          },
        ),
        params,
      );
      return;
    case 'mutatedChains':
      fc.assert(
        fc.property(fc.nat(), fc.array(opArb, { minLength: 1, maxLength: 4 }), (pick, ops) => {
          const i = pick % CHAIN_SEEDS.length;
          const [first, seedBytes] = CHAIN_SEEDS[i]!;
          fuzzChain(mutate(seedBytes, CHAIN_LENGTH_FIELDS[i]!, ops), first);
        }),
        params,
      );
      return;
    case 'generatedValid':
      fc.assert(
        fc.property(
          headerArb,
          fc.array(plainPayloadArb, { maxLength: 5 }),
          fc.option(encryptedArb, { nil: null }),
          checkGenerated,
        ),
        params,
      );
      return;
  }
}

// ------------------------------------------------------------------------------------------
// Worker side
// ------------------------------------------------------------------------------------------

interface Job {
  group: Group;
  seed: number;
  runs: number;
  counter: SharedArrayBuffer;
  input: SharedArrayBuffer;
}
type Outcome = { ok: true; cases: number } | { ok: false; message: string };

if (!isMainThread && (workerData as { fuzzCodec?: Job } | null)?.fuzzCodec) {
  const job = (workerData as { fuzzCodec: Job }).fuzzCodec;
  progress = { counter: new Int32Array(job.counter), input: new Uint8Array(job.input) };
  let outcome: Outcome;
  try {
    runGroup(job.group, job.seed, job.runs);
    outcome = { ok: true, cases: Atomics.load(progress.counter, 0) };
  } catch (e) {
    outcome = { ok: false, message: e instanceof Error ? e.message : String(e) };
  }
  parentPort!.postMessage(outcome);
}

// ------------------------------------------------------------------------------------------
// Main side: the tests
// ------------------------------------------------------------------------------------------

function runInWorker(job: Omit<Job, 'counter' | 'input'>): Promise<Outcome & { inputs: number }> {
  const counter = new SharedArrayBuffer(8);
  const input = new SharedArrayBuffer(INPUT_CAPACITY);
  const view = new Int32Array(counter);
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { fuzzCodec: { ...job, counter, input } },
    execArgv: [],
  });
  return new Promise((resolve, reject) => {
    let last = -1;
    let lastChange = performance.now();
    const watchdog = setInterval(() => {
      const now = performance.now();
      const c = Atomics.load(view, 0);
      if (c !== last) {
        last = c;
        lastChange = now;
        return;
      }
      if (now - lastChange > HANG_MS) {
        clearInterval(watchdog);
        const n = Atomics.load(view, 1);
        const hex = Buffer.from(new Uint8Array(input, 0, n)).toString('hex');
        void worker.terminate();
        reject(new Error(`${job.group}: no progress for ${HANG_MS} ms at case ${c}; input (${n} bytes): ${hex}`));
      }
    }, 250);
    worker.once('message', (o: Outcome) => {
      clearInterval(watchdog);
      resolve({ ...o, inputs: Atomics.load(view, 0) });
    });
    worker.once('error', (e) => {
      clearInterval(watchdog);
      reject(e);
    });
  });
}

if (isMainThread) {
  const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0;
  if (!Number.isSafeInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got ${process.env.FUZZ_SEED}`);
  const total = process.env.FUZZ_RUNS !== undefined ? Math.max(Number(process.env.FUZZ_RUNS), DEFAULT_TOTAL) : DEFAULT_TOTAL;
  if (!Number.isFinite(total)) throw new Error(`FUZZ_RUNS must be a number, got ${process.env.FUZZ_RUNS}`);
  console.log(`fuzz seed ${seed}`);

  let inputs = 0;
  describe('IKEv2 codec fuzz', () => {
    for (const group of Object.keys(GROUPS) as Group[]) {
      const runs = Math.ceil((GROUPS[group] / DEFAULT_TOTAL) * total);
      it(`${group}: ${runs} cases — only ParseError, stable round trip, bounded time`, async () => {
        const o = await runInWorker({ group, seed, runs });
        if (!o.ok) assert.fail(`${group} (fuzz seed ${seed}): ${o.message}`);
        inputs += o.inputs;
        assert.ok(o.inputs >= runs, `${group}: ${o.inputs} inputs ran, expected at least ${runs}`);
      });
    }
    after(() => console.log(`fuzz inputs ${inputs} (seed ${seed})`));
  });
}

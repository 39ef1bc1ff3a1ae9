/**
 * IKEv2 codec throughput: decode + re-encode of a typical IKE_AUTH message (HDR + SK with a
 * 424-byte opaque body), of an IKE_SA_INIT request (2 proposals, X25519 KE, nonce, NAT-D, 3 more
 * notifies, vendor ID), and of a decrypted IKE_AUTH payload chain (IDi, AUTH, CP, SA, TSi, TSr).
 * A baseline from the same run — Buffer.from copies of the same bytes — lets results be compared
 * across machines as ratios. Run: node bench/codec.ts   (BENCH_MS sets the time per case, default 1000)
 */
import { performance } from 'node:perf_hooks';
import { decodeMessage, decodePayloadChain, encodeMessage, encodePayloadChain } from '../src/ikev2/codec/message.ts';
import {
  EncrId,
  ExchangeType,
  HeaderFlag,
  IdType,
  IntegId,
  KeId,
  NotifyType,
  PayloadType,
  PrfId,
  ProtocolId,
  TransformAttr,
  TransformType,
  TsType,
} from '../src/ikev2/constants.ts';
import type { DecodedMessage, IkeHeader, Payload } from '../src/ikev2/codec/types.ts';

const filled = (n: number, seed: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 131) & 0xff;
  return b;
};

const header = (exchange: number, messageId: number): Omit<IkeHeader, 'length' | 'nextPayload'> => ({
  spiI: filled(8, 1),
  spiR: messageId === 0 ? Buffer.alloc(8) : filled(8, 2),
  version: 0x20,
  exchange,
  flags: HeaderFlag.INITIATOR,
  messageId,
});

const notify = (notifyType: number, data: Buffer): Payload => ({
  type: PayloadType.NOTIFY,
  critical: false,
  protocol: 0,
  spi: Buffer.alloc(0),
  notifyType,
  data,
});

const ike = (num: number, ids: Array<[number, number, number?]>) => ({
  num,
  protocol: ProtocolId.IKE,
  spi: Buffer.alloc(0),
  transforms: ids.map(([type, id, keyLen]) => ({
    type,
    id,
    attributes: keyLen ? [{ type: TransformAttr.KEY_LENGTH, value: keyLen }] : [],
  })),
});

export const IKE_SA_INIT_REQUEST = encodeMessage(header(ExchangeType.IKE_SA_INIT, 0), [
  {
    type: PayloadType.SA,
    critical: false,
    proposals: [
      ike(1, [
        [TransformType.ENCR, EncrId.AES_GCM_16, 256],
        [TransformType.PRF, PrfId.HMAC_SHA2_256],
        [TransformType.KE, KeId.CURVE25519],
        [TransformType.KE, KeId.ECP_256],
      ]),
      ike(2, [
        [TransformType.ENCR, EncrId.AES_CBC, 256],
        [TransformType.PRF, PrfId.HMAC_SHA2_256],
        [TransformType.INTEG, IntegId.HMAC_SHA2_256_128],
        [TransformType.KE, KeId.MODP_3072],
      ]),
    ],
  },
  { type: PayloadType.KE, critical: false, group: KeId.CURVE25519, data: filled(32, 3) },
  { type: PayloadType.NONCE, critical: false, data: filled(32, 4) },
  notify(NotifyType.NAT_DETECTION_SOURCE_IP, filled(20, 5)),
  notify(NotifyType.NAT_DETECTION_DESTINATION_IP, filled(20, 6)),
  notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED, Buffer.alloc(0)),
  notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, Buffer.from('000200030004', 'hex')),
  { type: PayloadType.VENDOR, critical: false, data: filled(16, 7) },
]);

/** IV (8) || ciphertext (400) || ICV (16), as with AES-GCM-16 and a PSK IKE_AUTH request. */
export const IKE_AUTH_REQUEST = encodeMessage(header(ExchangeType.IKE_AUTH, 1), [
  { type: PayloadType.SK, critical: false, innerType: PayloadType.IDi, body: filled(424, 8), offset: 0 },
]);

const v4 = (a: string): Buffer => Buffer.from(a.split('.').map(Number));
export const IKE_AUTH_INNER = encodePayloadChain([
  { type: PayloadType.IDi, critical: false, idType: IdType.ID_FQDN, data: Buffer.from('client.example.net') },
  notify(NotifyType.INITIAL_CONTACT, Buffer.alloc(0)),
  { type: PayloadType.IDr, critical: false, idType: IdType.ID_FQDN, data: Buffer.from('gw.example.net') },
  { type: PayloadType.AUTH, critical: false, method: 2, data: filled(32, 9) },
  { type: PayloadType.CP, critical: false, cfgType: 1, attributes: [{ type: 1, value: Buffer.alloc(0) }] },
  {
    type: PayloadType.SA,
    critical: false,
    proposals: [
      {
        num: 1,
        protocol: ProtocolId.ESP,
        spi: filled(4, 10),
        transforms: [
          { type: TransformType.ENCR, id: EncrId.AES_GCM_16, attributes: [{ type: TransformAttr.KEY_LENGTH, value: 256 }] },
          { type: TransformType.ESN, id: 0, attributes: [] },
        ],
      },
    ],
  },
  ...([PayloadType.TSi, PayloadType.TSr] as const).map(
    (type): Payload => ({
      type,
      critical: false,
      selectors: [
        { tsType: TsType.TS_IPV4_ADDR_RANGE, ipProto: 0, startPort: 0, endPort: 65535, start: v4('10.0.0.0'), end: v4('10.0.0.255') },
      ],
    }),
  ),
  notify(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED, Buffer.alloc(0)),
]);

const headerOf = (d: DecodedMessage): Omit<IkeHeader, 'length' | 'nextPayload'> => d.header;

let sink = 0;

/** Runs `op` repeatedly for about `ms` milliseconds after a warm-up and returns operations per second. */
function measure(op: () => number, ms: number): number {
  const warmEnd = performance.now() + Math.min(200, ms / 4);
  while (performance.now() < warmEnd) for (let i = 0; i < 256; i++) sink ^= op();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 1024; i++) sink ^= op();
    n += 1024;
    t = performance.now();
  }
  return Math.round((n * 1000) / (t - t0));
}

/** ops/s of each case and of its baseline; keys are stable for bench aggregation. */
export async function runCodecBench(ms = Number(process.env.BENCH_MS ?? 1000)): Promise<Record<string, number>> {
  const auth = IKE_AUTH_REQUEST;
  const init = IKE_SA_INIT_REQUEST;
  const inner = IKE_AUTH_INNER.bytes;
  const first = IKE_AUTH_INNER.firstType;
  const r: Record<string, number> = {};
  r.ike_auth_sk_decode_encode = measure(() => {
    const d = decodeMessage(auth);
    return encodeMessage(headerOf(d), d.payloads).length;
  }, ms);
  r.ike_auth_sk_decode = measure(() => decodeMessage(auth).payloads.length, ms);
  r.ike_auth_sk_copy_baseline = measure(() => Buffer.from(auth).length, ms);
  r.ike_sa_init_decode_encode = measure(() => {
    const d = decodeMessage(init);
    return encodeMessage(headerOf(d), d.payloads).length;
  }, ms);
  r.ike_sa_init_decode = measure(() => decodeMessage(init).payloads.length, ms);
  r.ike_sa_init_copy_baseline = measure(() => Buffer.from(init).length, ms);
  r.ike_auth_inner_chain_decode_encode = measure(() => {
    const c = decodePayloadChain(inner, first, 0, inner.length);
    return encodePayloadChain(c.payloads).bytes.length;
  }, ms);
  r.ike_auth_inner_chain_copy_baseline = measure(() => Buffer.from(inner).length, ms);
  return r;
}

if (import.meta.main) {
  const r = await runCodecBench();
  const sizes: Record<string, number> = {
    ike_auth_sk: IKE_AUTH_REQUEST.length,
    ike_sa_init: IKE_SA_INIT_REQUEST.length,
    ike_auth_inner_chain: IKE_AUTH_INNER.bytes.length,
  };
  console.log(`node ${process.version}, ${process.env.BENCH_MS ?? 1000} ms per case`);
  for (const [msg, bytes] of Object.entries(sizes)) {
    const base = r[`${msg}_copy_baseline`]!;
    for (const [k, v] of Object.entries(r)) {
      if (!k.startsWith(`${msg}_`) || k.endsWith('_copy_baseline')) continue;
      const us = (1e6 / v).toFixed(2);
      console.log(`${k.padEnd(36)} ${String(v).padStart(10)} ops/s  ${us.padStart(6)} µs  (${bytes} B; copy baseline ${base} ops/s, ratio ${(base / v).toFixed(1)}x)`);
    }
  }
  if (sink === 0.5) console.log(sink);
}

import type { Cert, ChainResult, TrustStore, VerifyOptions } from './api.ts';

export function verifyChain(
  _end: Cert,
  _intermediates: readonly Cert[],
  _trust: TrustStore,
  _now: Date,
  _opts?: VerifyOptions,
): ChainResult {
  return { ok: false, reason: 'certificate chains are not supported yet' };
}

export function certReqData(cas: readonly Cert[]): Buffer {
  return Buffer.concat(cas.map((c) => c.spkiSha1));
}

export function casFromCertReq(trust: TrustStore, data: Buffer): Cert[] {
  if (data.length % 20 !== 0) return [];
  const out: Cert[] = [];
  for (let i = 0; i < data.length; i += 20) {
    const h = data.subarray(i, i + 20);
    for (const ca of trust.cas) if (ca.spkiSha1.equals(h) && !out.includes(ca)) out.push(ca);
  }
  return out;
}

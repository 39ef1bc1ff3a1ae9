/** PEM armour (RFC 7468): finds the blocks of the wanted labels and decodes them strictly. */
import { PkiError } from './errors.ts';

/** Largest certificate, key or CRL file read (CRLs of big CAs run to megabytes). */
export const MAX_INPUT = 16 * 1024 * 1024;

export interface PemBlock {
  label: string;
  /** The decoded contents. */
  der: Buffer;
  /** The block's text with its armour (for node:crypto, which reads PEM headers itself). */
  text: string;
}

/** Whether the data looks like PEM rather than DER. */
export function isPem(data: Buffer): boolean {
  return data.length > 0 && data[0] !== 0x30 && data.includes('-----BEGIN ');
}

const BLOCK_RE = /-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]{1,40})-----/g;

/** Every PEM block of the data, at most `max`; throws PkiError for malformed armour or base64. */
export function pemBlocks(data: Buffer, name: string, max: number): PemBlock[] {
  const text = data.toString('latin1');
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK_RE)) {
    const label = m[1]!;
    if (m[3] !== label) throw new PkiError(`${name}: PEM block BEGIN ${label} ends with END ${m[3]}`);
    let body = m[2]!;
    // RFC 1421 headers (Proc-Type, DEK-Info of encrypted keys) end with a blank line
    const headerEnd = /^[A-Za-z-]+:/.test(body) ? body.search(/\r?\n\r?\n/) : -1;
    if (headerEnd !== -1) body = body.slice(headerEnd).trimStart();
    const b64 = body.replace(/[\r\n\t ]/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
      throw new PkiError(`${name}: PEM block ${label} has invalid base64`);
    }
    out.push({ label, der: Buffer.from(b64, 'base64'), text: m[0] });
    if (out.length > max) throw new PkiError(`${name}: more than ${max} PEM blocks`);
  }
  return out;
}

export function checkSize(data: Buffer, name: string): void {
  if (data.length === 0) throw new PkiError(`${name}: empty`);
  if (data.length > MAX_INPUT) throw new PkiError(`${name}: ${data.length} bytes is larger than ${MAX_INPUT}`);
}

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

const BEGIN = '-----BEGIN ';
const DASHES = '-----';

/**
 * Every PEM block of the data, at most `max`; throws PkiError for malformed armour or base64.
 * One pass with indexOf (no backtracking regular expression over hostile input).
 */
export function pemBlocks(data: Buffer, name: string, max: number): PemBlock[] {
  const text = data.toString('latin1');
  const out: PemBlock[] = [];
  let pos = 0;
  for (;;) {
    const b = text.indexOf(BEGIN, pos);
    if (b === -1) break;
    const labelEnd = text.indexOf(DASHES, b + BEGIN.length);
    if (labelEnd === -1 || labelEnd - (b + BEGIN.length) > 40) throw new PkiError(`${name}: malformed PEM BEGIN line`);
    const label = text.slice(b + BEGIN.length, labelEnd);
    if (!/^[A-Z0-9 ]+$/.test(label)) throw new PkiError(`${name}: malformed PEM label`);
    const endLine = `-----END ${label}-----`;
    const e = text.indexOf(endLine, labelEnd + DASHES.length);
    if (e === -1) throw new PkiError(`${name}: PEM block ${label} has no END line`);
    let body = text.slice(labelEnd + DASHES.length, e);
    // RFC 1421 headers (Proc-Type, DEK-Info of encrypted keys) end with a blank line
    if (/^\s*[A-Za-z-]+:/.test(body)) {
      const headerEnd = body.search(/\r?\n\r?\n/);
      if (headerEnd === -1) throw new PkiError(`${name}: PEM block ${label} has headers without a blank line`);
      body = body.slice(headerEnd);
    }
    const b64 = body.replace(/[\r\n\t ]/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
      throw new PkiError(`${name}: PEM block ${label} has invalid base64`);
    }
    out.push({ label, der: Buffer.from(b64, 'base64'), text: text.slice(b, e + endLine.length) });
    if (out.length > max) throw new PkiError(`${name}: more than ${max} PEM blocks`);
    pos = e + endLine.length;
  }
  return out;
}

export function checkSize(data: Buffer, name: string): void {
  if (data.length === 0) throw new PkiError(`${name}: empty`);
  if (data.length > MAX_INPUT) throw new PkiError(`${name}: ${data.length} bytes is larger than ${MAX_INPUT}`);
}

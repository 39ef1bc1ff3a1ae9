/**
 * Private keys from files: PEM or DER; PKCS#1 RSA, SEC1 EC, PKCS#8 (plain or encrypted), and
 * OpenSSL's encrypted traditional PEM. node:crypto does the decoding and decryption.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type { Cert, PrivateKey } from './api.ts';
import { PkiError } from './errors.ts';
import { keyKind } from './kinds.ts';
import { checkSize, isPem, pemBlocks } from './pem.ts';

const KEY_LABELS = new Set(['PRIVATE KEY', 'ENCRYPTED PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']);

function failure(e: unknown, name: string, passphrase: string | undefined): PkiError {
  const err = e as { code?: string; message?: string };
  if (err.code === 'ERR_MISSING_PASSPHRASE') return new PkiError(`${name}: the key is encrypted and no passphrase (secret) is configured`);
  const msg = String(err.message ?? e);
  if (passphrase !== undefined && /decrypt|bad password|mac verify/i.test(msg)) {
    return new PkiError(`${name}: cannot decrypt the key: wrong passphrase?`);
  }
  return new PkiError(`${name}: not a usable private key (${msg})`);
}

/** The one private key of a PEM or DER file; `passphrase` decrypts encrypted keys. */
export function loadPrivateKey(data: Buffer, name: string, passphrase?: string): PrivateKey {
  checkSize(data, name);
  let key: KeyObject | undefined;
  if (isPem(data)) {
    const blocks = pemBlocks(data, name, 16).filter((b) => KEY_LABELS.has(b.label));
    if (blocks.length === 0) throw new PkiError(`${name}: no PRIVATE KEY block`);
    if (blocks.length > 1) throw new PkiError(`${name}: more than one private key`);
    const block = blocks[0]!;
    const encrypted = block.label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(block.text);
    if (encrypted && passphrase === undefined) {
      throw new PkiError(`${name}: the key is encrypted and no passphrase (secret) is configured`);
    }
    try {
      key = createPrivateKey({ key: block.text, format: 'pem', ...(encrypted ? { passphrase: passphrase ?? '' } : {}) });
    } catch (e) {
      throw failure(e, name, passphrase);
    }
  } else {
    if (data[0] !== 0x30) throw new PkiError(`${name}: neither PEM nor a DER private key`);
    const types = ['pkcs8', 'pkcs1', 'sec1'] as const;
    let first: unknown;
    for (const type of types) {
      try {
        key = createPrivateKey({ key: data, format: 'der', type, ...(type === 'pkcs8' && passphrase !== undefined ? { passphrase } : {}) });
        break;
      } catch (e) {
        first ??= e;
        if ((e as { code?: string }).code === 'ERR_MISSING_PASSPHRASE') throw failure(e, name, passphrase);
      }
    }
    if (!key) throw failure(first, name, passphrase);
  }
  const publicKey = createPublicKey(key);
  const { kind, bits } = keyKind(key, name);
  return { source: name, key, publicKey, kind, bits };
}

/** Whether the key's public half is the certificate's public key. */
export function matchesCert(key: PrivateKey, cert: Cert): boolean {
  // comparing the encodings: KeyObject.equals across key types leaves an OpenSSL error queued
  if (key.publicKey.asymmetricKeyType !== cert.publicKey.asymmetricKeyType) return false;
  const a = key.publicKey.export({ type: 'spki', format: 'der' });
  return a.equals(cert.publicKey.export({ type: 'spki', format: 'der' }));
}

import type { Cert, PrivateKey } from './api.ts';
import { PkiError } from './errors.ts';

export function loadPrivateKey(_data: Buffer, name: string, _passphrase?: string): PrivateKey {
  throw new PkiError(`${name}: private keys are not supported yet`);
}

export function matchesCert(_key: PrivateKey, _cert: Cert): boolean {
  return false;
}

import type { AuthSignature, AuthVerifyOptions, PrivateKey, PublicKeyInfo, SignOptions } from './api.ts';
import { PkiError } from './errors.ts';

export function ourHashAlgorithms(allowSha1: boolean): number[] {
  return allowSha1 ? [1, 2, 3, 4, 5] : [2, 3, 4, 5];
}

export async function signAuth(
  _key: PrivateKey,
  _octets: Buffer,
  _peerHashes: readonly number[] | undefined,
  _opts?: SignOptions,
): Promise<AuthSignature> {
  throw new PkiError('signatures are not supported yet');
}

export async function verifyAuth(
  _pub: PublicKeyInfo,
  _method: number,
  _data: Buffer,
  _octets: Buffer,
  _opts: AuthVerifyOptions,
): Promise<string | undefined> {
  return 'signatures are not supported yet';
}

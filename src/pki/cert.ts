import type { Cert } from './api.ts';
import { PkiError } from './errors.ts';

export function loadCertificates(_data: Buffer, name: string): Cert[] {
  throw new PkiError(`${name}: certificates are not supported yet`);
}

import type { Crl } from './api.ts';
import { PkiError } from './errors.ts';

export function loadCrl(_data: Buffer, name: string): Crl {
  throw new PkiError(`${name}: CRLs are not supported yet`);
}

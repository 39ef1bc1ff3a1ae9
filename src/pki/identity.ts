import type { Identity } from '../config/identity.ts';
import { IdType } from '../ikev2/constants.ts';
import type { Cert } from './api.ts';

export function certMatchesIdentity(_cert: Cert, _id: string | Identity): boolean {
  return false;
}

export function certIdentity(cert: Cert): Identity {
  return { type: IdType.ID_DER_ASN1_DN, data: cert.subjectDer };
}

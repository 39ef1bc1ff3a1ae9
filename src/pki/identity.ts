/**
 * Identities in certificates, matched as strongSwan's x509 has_subject does: the identity (which
 * may hold wildcards) is matched against the subject DN and each subjectAltName; an ID_KEY_ID
 * matches the SHA-1 of the public key (of the subjectPublicKey bits or the whole
 * SubjectPublicKeyInfo) or the subjectKeyIdentifier.
 */
import { ID_ANY, identityMatchesParsed, parseIdentity, type Identity } from '../config/identity.ts';
import { IdType } from '../ikev2/constants.ts';
import type { AltName, Cert } from './api.ts';

function altIdentity(a: AltName): Identity | undefined {
  switch (a.type) {
    case 'dns':
      return { type: IdType.ID_FQDN, data: a.data };
    case 'email':
      return { type: IdType.ID_RFC822_ADDR, data: a.data };
    case 'ip':
      return { type: a.data.length === 4 ? IdType.ID_IPV4_ADDR : IdType.ID_IPV6_ADDR, data: a.data };
    case 'dn':
      return { type: IdType.ID_DER_ASN1_DN, data: a.data };
    default:
      return undefined;
  }
}

export function certMatchesIdentity(cert: Cert, id: string | Identity): boolean {
  let pattern: Identity;
  if (typeof id === 'string') {
    try {
      pattern = parseIdentity(id);
    } catch {
      return false;
    }
  } else {
    pattern = id;
  }
  if (pattern.type === ID_ANY) return true;
  if (pattern.type === IdType.ID_KEY_ID) {
    return (
      pattern.data.equals(cert.keyIdSha1) ||
      pattern.data.equals(cert.spkiSha1) ||
      (cert.subjectKeyId !== undefined && pattern.data.equals(cert.subjectKeyId))
    );
  }
  if (identityMatchesParsed(pattern, { type: IdType.ID_DER_ASN1_DN, data: cert.subjectDer })) return true;
  for (const a of cert.altNames) {
    const alt = altIdentity(a);
    if (alt && identityMatchesParsed(pattern, alt)) return true;
  }
  return false;
}

export function certIdentity(cert: Cert): Identity {
  return { type: IdType.ID_DER_ASN1_DN, data: cert.subjectDer };
}

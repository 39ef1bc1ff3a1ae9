/**
 * How one side of an IKE SA proves who it is in IKE_AUTH (RFC 7296 §2.15). The IKE_AUTH exchange
 * computes the signed octets and picks the authenticator by the connection's `auth` setting; the
 * authenticator builds our AUTH payload and checks the peer's: pre-shared keys (psk.ts) and
 * certificates with RFC 7427 / RFC 7296 signatures (pubkey.ts); EAP would plug in here.
 */
import type { AuthPayload, Payload } from '../../codec/types.ts';
import type { IkeSa } from '../../sa/ike-sa.ts';
import type { EngineContext } from '../context.ts';
import { pskAuthenticator } from './psk.ts';
import { pubkeyAuthenticator } from './pubkey.ts';

export type AuthBuild = { method: number; data: Buffer } | { error: string };

export interface Authenticator {
  /** AUTH methods (RFC 7296 §3.8 registry) accepted from a peer that authenticates this way. */
  readonly methods: readonly number[];
  /**
   * Our AUTH payload over `octets` (our signed octets), or why we cannot authenticate. May be
   * asynchronous (signatures are computed off the event loop).
   */
  build(ctx: EngineContext, sa: IkeSa, octets: Buffer): AuthBuild | Promise<AuthBuild>;
  /**
   * Check the peer's AUTH payload over its signed octets: undefined when it verifies, otherwise the
   * reason (for the log; the peer only hears AUTHENTICATION_FAILED). `payloads` is the peer's
   * IKE_AUTH message (its identity, CERT payloads). May be asynchronous: the caller re-checks the
   * SA after it settles.
   */
  verify(
    ctx: EngineContext,
    sa: IkeSa,
    peerId: string,
    auth: AuthPayload,
    octets: Buffer,
    payloads: Payload[],
  ): string | undefined | Promise<string | undefined>;
}

const AUTHENTICATORS: Partial<Record<string, Authenticator>> = {
  psk: pskAuthenticator,
  pubkey: pubkeyAuthenticator,
};

/** The authenticator for a configured `auth` value, if we have one. */
export function authenticatorFor(auth: string): Authenticator | undefined {
  return AUTHENTICATORS[auth];
}

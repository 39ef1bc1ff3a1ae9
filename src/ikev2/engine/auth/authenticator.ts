/**
 * How one side of an IKE SA proves who it is in IKE_AUTH (RFC 7296 §2.15). The IKE_AUTH exchange
 * computes the signed octets and picks the authenticator by the connection's `auth` setting; the
 * authenticator builds our AUTH payload and checks the peer's. Pre-shared keys are the first kind;
 * certificates (RFC 7427 signatures) and EAP plug in here.
 */
import type { AuthPayload } from '../../codec/types.ts';
import type { IkeSa } from '../../sa/ike-sa.ts';
import type { EngineContext } from '../context.ts';
import { pskAuthenticator } from './psk.ts';

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
   * reason (for the log; the peer only hears AUTHENTICATION_FAILED).
   */
  verify(ctx: EngineContext, sa: IkeSa, peerId: string, auth: AuthPayload, octets: Buffer): string | undefined | Promise<string | undefined>;
}

const AUTHENTICATORS: Partial<Record<string, Authenticator>> = {
  psk: pskAuthenticator,
};

/** The authenticator for a configured `auth` value, if we have one. */
export function authenticatorFor(auth: string): Authenticator | undefined {
  return AUTHENTICATORS[auth];
}

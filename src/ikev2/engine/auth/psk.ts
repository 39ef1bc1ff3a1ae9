/**
 * Pre-shared key authentication (RFC 7296 §2.15, AUTH method 2): the secret is looked up by the two
 * identities in the `secrets` section; the MAC is compared in constant time.
 */
import { AuthMethod } from '../../constants.ts';
import { pskAuth, verifyPskAuth } from '../../crypto/auth.ts';
import type { Authenticator } from './authenticator.ts';

export const pskAuthenticator: Authenticator = {
  methods: [AuthMethod.SHARED_KEY_MIC],
  build(ctx, sa, octets) {
    const psk = ctx.index.psk(sa.localId, sa.remoteId);
    if (!psk) return { error: 'no PSK for our identity' };
    return { method: AuthMethod.SHARED_KEY_MIC, data: pskAuth(sa.prf!, psk, octets) };
  },
  verify(ctx, sa, peerId, auth, octets) {
    const psk = ctx.index.psk(sa.localId, peerId);
    if (!psk) return 'no PSK for these identities';
    if (!verifyPskAuth(sa.prf!, psk, octets, auth.data)) return 'PSK authentication failed';
    return undefined;
  },
};

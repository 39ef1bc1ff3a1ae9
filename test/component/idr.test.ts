/**
 * The IDr an initiator sends (RFC 7296 §3.5: the responder identity it wants): one named peer in
 * `remote.id` is sent; %any, a wildcard pattern or an address block names no one and is not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pair } from '../helpers/engine-pair.ts';
import { decodeMessage, decodePayloadChain } from '../../src/ikev2/codec/message.ts';
import { ExchangeType, PayloadType } from '../../src/ikev2/constants.ts';
import type { Payload } from '../../src/ikev2/codec/types.ts';
import type { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';

const side = (id: string) => ({ auth: 'psk' as const, id, certs: [], cacerts: [] });

for (const [remoteId, sent] of [
  ['b.lab', true],
  ['%any', false],
  ['*.lab', false],
  ['10.0.0.0/8', false],
  ['*', false],
] as const) {
  test(`remote.id = ${remoteId}: IDr ${sent ? 'sent' : 'not sent'} in IKE_AUTH`, async () => {
    const p = pair({ a: { remote: side(remoteId) } });
    // with the subnet, b's identity (b.lab) is not one A accepts: that handshake fails after IKE_AUTH
    // the keys of B's half of the SA, kept before a failed handshake removes it: they open A's request
    let cipher: IkeSa['cipher'];
    p.w.afterDelivery = () => void (cipher ??= [...p.b.engine.table.values()][0]?.cipher);
    const up = p.a.engine.initiate('lab').catch(() => undefined);
    await p.w.run();
    await up;
    const authReq = p.w.log.find((x) => {
      const h = decodeMessage(x.data).header;
      return h.exchange === ExchangeType.IKE_AUTH && x.local.addr === '192.0.2.1';
    });
    assert.ok(authReq, 'A sent an IKE_AUTH request');
    assert.ok(cipher);
    const m = decodeMessage(authReq.data);
    const sk = m.payloads.find((x) => x.type === PayloadType.SK);
    assert.ok(sk?.type === PayloadType.SK);
    const plain = cipher.open(authReq.data, sk);
    const inner: Payload[] = decodePayloadChain(plain, sk.innerType, 0, plain.length).payloads;
    assert.equal(inner.some((x) => x.type === PayloadType.IDr), sent);
    assert.ok(inner.some((x) => x.type === PayloadType.IDi));
  });
}

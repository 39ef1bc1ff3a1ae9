/**
 * RFC 7296 §1.2: after IKE_SA_INIT the initiator's next exchange is IKE_AUTH. A responder asked for
 * anything else on a half-open IKE SA answers INVALID_SYNTAX and does nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pair } from '../helpers/engine-pair.ts';
import { seal } from '../../src/ikev2/engine/message.ts';
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../../src/ikev2/constants.ts';
import { decodeMessage, decodePayloadChain } from '../../src/ikev2/codec/message.ts';
import { deletePayload } from '../../src/ikev2/engine/payload-util.ts';

test('a half-open responder SA answers a request other than IKE_AUTH with INVALID_SYNTAX and stays half-open', async () => {
  const env = pair();
  // Let IKE_SA_INIT through, hold back the initiator's IKE_AUTH.
  env.w.filter = (p) => (p.data[18] === ExchangeType.IKE_AUTH && p.remote.addr === '192.0.2.2' ? 'drop' : 'deliver');
  env.a.engine.initiate('lab').catch(() => undefined);
  await env.w.run();
  const ini = [...env.a.engine.table.values()][0]!;
  const resp = [...env.b.engine.table.values()][0]!;
  assert.equal(resp.state, 'CONNECTING');
  // An INFORMATIONAL (a delete of the IKE SA) at message ID 1, encrypted with the SA's keys.
  const [req] = seal(ini, ExchangeType.INFORMATIONAL, 1, false, [deletePayload(ProtocolId.IKE, [])]);
  const sent = env.w.log.length;
  env.b.engine.receive({ addr: '192.0.2.2', port: 500 }, { addr: '192.0.2.1', port: 500 }, req!);
  await env.w.run();
  const answer = env.w.log.slice(sent).find((p) => p.remote.addr === '192.0.2.1');
  assert.ok(answer, 'the request is answered');
  const msg = decodeMessage(answer.data);
  const sk = msg.payloads.find((p) => p.type === PayloadType.SK);
  assert.ok(sk && sk.type === PayloadType.SK);
  const plain = ini.cipher!.open(answer.data, sk);
  const inner = decodePayloadChain(plain, sk.innerType, 0, plain.length).payloads;
  assert.ok(inner.some((p) => p.type === PayloadType.NOTIFY && p.notifyType === NotifyType.INVALID_SYNTAX), 'with INVALID_SYNTAX');
  assert.ok(!resp.dead && resp.state === 'CONNECTING', 'the delete was not carried out');
  env.a.engine.shutdown(false);
  env.b.engine.shutdown(false);
});

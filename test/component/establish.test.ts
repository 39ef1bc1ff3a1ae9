import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pair } from '../helpers/engine-pair.ts';

test('IKE_SA_INIT + IKE_AUTH with PSK establishes the IKE SA and one CHILD SA on both sides', async () => {
  const { w, a, b } = pair();
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  assert.equal(sa.state, 'ESTABLISHED');
  const sb = [...b.engine.table.values()][0]!;
  assert.equal(sb.state, 'ESTABLISHED');
  assert.equal(sa.children.length, 1);
  assert.equal(sb.children.length, 1);
  const ca = sa.children[0]!;
  const cb = sb.children[0]!;
  assert.equal(ca.state, 'INSTALLED');
  assert.equal(ca.spiIn, cb.spiOut);
  assert.equal(ca.spiOut, cb.spiIn);
  // Both dataplanes hold the pair with matching keys crosswise.
  const ia = a.dp.installed.get(ca.id)!;
  const ib = b.dp.installed.get(cb.id)!;
  assert.deepEqual(ia.outbound.encKey, ib.inbound.encKey);
  assert.deepEqual(ia.inbound.encKey, ib.outbound.encKey);
  assert.equal(ia.outbound.spi, ib.inbound.spi);
  // what only the handshake needed (messages, nonces, the CHILD_SA config of IKE_AUTH) is gone on both sides
  assert.equal(sa.holdsHandshakeState, false, 'initiator');
  assert.equal(sb.holdsHandshakeState, false, 'responder');
});

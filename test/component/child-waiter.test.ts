/**
 * `vpp-ikectl initiate --ike NAME --child CHILD` on an IKE SA that is already up: the engine tells
 * the waiter when that CHILD_SA is installed, or why it could not be, or that the IKE SA went down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { child, pair } from '../helpers/engine-pair.ts';

function twoChildren() {
  return pair({
    a: {
      children: [
        child('net', { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] }),
        child('extra', { localTs: ['10.9.0.0/16'], remoteTs: ['10.8.0.0/16'] }),
      ],
    },
  });
}

test('waitForChild resolves when the requested CHILD_SA is installed on an established IKE SA', async () => {
  const env = pair({
    a: { children: [child('net', { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] }), child('two', { localTs: ['10.1.0.0/24'], remoteTs: ['10.2.0.0/24'] })] },
  });
  const [sa] = await Promise.all([env.a.engine.initiate('lab', 'net'), env.w.run()]);
  assert.equal(sa.children.length, 1);
  const again = env.a.engine.initiate('lab', 'two');
  const waited = env.a.engine.waitForChild(await again, 'two');
  await env.w.run();
  const c = await waited;
  assert.equal(c.name, 'two');
  assert.equal(c.state, 'INSTALLED');
  // Already installed: resolves at once.
  assert.equal(await env.a.engine.waitForChild(sa, 'two'), c);
});

test('waitForChild rejects with the reason when the peer refuses the CHILD_SA', async () => {
  const env = twoChildren();
  const [sa] = await Promise.all([env.a.engine.initiate('lab', 'net'), env.w.run()]);
  await env.a.engine.initiate('lab', 'extra');
  const waited = assert.rejects(env.a.engine.waitForChild(sa, 'extra'), /CHILD_SA 'extra' could not be established: TS_UNACCEPTABLE/);
  await env.w.run();
  await waited;
  assert.ok(!sa.dead, 'the IKE SA stays up');
});

test('waitForChild rejects when the IKE SA goes down first', async () => {
  const env = twoChildren();
  const [sa] = await Promise.all([env.a.engine.initiate('lab', 'net'), env.w.run()]);
  const waited = env.a.engine.waitForChild(sa, 'extra');
  env.a.engine.destroy(sa, 'test');
  await assert.rejects(waited, /went down/);
});

test('a CHILD_SA rekey: the side that answered it keeps sending on the old SA until the old CHILD_SA is deleted', async () => {
  const env = pair();
  const [sa] = await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  env.a.engine.rekeyChild(sa, sa.children[0]!);
  await env.w.run();
  const fresh = (dp: typeof env.a.dp) => [...dp.installed.values()].find((c) => c.replaces !== undefined)!;
  // a started the rekey: it switches at once; b answered it: its install waits for the old SA's delete.
  assert.equal(fresh(env.a.dp).outboundAfterReplaced, undefined);
  assert.equal(fresh(env.b.dp).outboundAfterReplaced, true);
});

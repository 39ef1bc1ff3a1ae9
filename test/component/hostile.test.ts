/**
 * Hostile input against the engine: truncated, mutated, replayed and out-of-state messages in every
 * state. The engine must never throw, never leave half-installed SAs, and clean up half-open state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pair } from '../helpers/engine-pair.ts';
import type { OutPacket } from '../../src/ikev2/engine/engine.ts';

async function recordHandshake() {
  const env = pair();
  const p = env.a.engine.initiate('lab');
  await env.w.run();
  await p;
  // One more exchange of each kind: CREATE_CHILD_SA (rekey) and INFORMATIONAL (delete).
  const sa = [...env.a.engine.table.values()][0]!;
  env.a.engine.rekeyChild(sa, sa.children[0]!);
  await env.w.run();
  env.a.engine.deleteIke(sa);
  await env.w.run();
  return env.w.log.slice();
}

test('mutated, truncated and replayed messages never crash the engine and leave nothing behind', async () => {
  const recorded = await recordHandshake();
  assert.ok(recorded.length >= 8);
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
  console.log(`engine fuzz seed ${seed}`);
  const runs = Number(process.env.ENGINE_FUZZ_RUNS ?? 300);
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          idx: fc.nat(recorded.length - 1),
          op: fc.constantFrom('flip', 'truncate', 'replay', 'extend', 'zero-len'),
          pos: fc.nat(2000),
          bit: fc.nat(7),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      async (muts) => {
        // A fresh pair in the middle of a real handshake: deliver valid traffic interleaved with hostile copies.
        const env = pair();
        const victims = [env.a, env.b];
        const p = env.a.engine.initiate('lab');
        p.catch(() => {});
        for (const m of muts) {
          const orig = recorded[m.idx]!;
          let data = Buffer.from(orig.data);
          if (m.op === 'flip') data[m.pos % data.length]! ^= 1 << m.bit;
          else if (m.op === 'truncate') data = data.subarray(0, m.pos % data.length);
          else if (m.op === 'extend') data = Buffer.concat([data, Buffer.alloc(1 + (m.pos % 64), m.bit)]);
          else if (m.op === 'zero-len') data = Buffer.alloc(0);
          const to = victims[m.idx % 2]!;
          const pkt: OutPacket = { local: orig.local, remote: orig.remote, data };
          assert.doesNotThrow(() => to.engine.receive({ ...pkt.remote, addr: to.addr }, { ...pkt.local }, pkt.data));
          await env.w.run();
        }
        await env.w.run();
        // Let every timer run out: retransmissions give up, half-open SAs expire.
        await env.w.advance(200_000, 5000);
        for (const n of victims) {
          const live = [...n.engine.table.values()];
          for (const sa of live) {
            // Whatever is left must be a complete, established SA whose children are installed.
            assert.equal(sa.state, 'ESTABLISHED', `leftover SA in state ${sa.state}`);
            for (const c of sa.children) assert.ok(n.dp.installed.has(c.id), 'child not in dataplane');
          }
          assert.equal(n.dp.pendingSpis, 0, 'allocated SPIs released');
          const installedChildren = live.reduce((k, sa) => k + sa.children.length, 0);
          assert.equal(n.dp.installed.size, installedChildren, 'dataplane holds exactly the live children');
        }
      },
    ),
    { numRuns: runs, seed },
  );
});

test('messages for an unknown SPI, responses without a request and requests out of window are dropped and counted', async () => {
  const recorded = await recordHandshake();
  const env = pair();
  const b = env.b;
  for (const r of recorded) b.engine.receive({ addr: b.addr, port: 500 }, r.local, r.data);
  await env.w.run();
  const s = b.engine.stats;
  assert.ok(s.rxUnknownSpi + s.rxUnmatchedResponse + s.rxInvalid > 0);
  // The replayed IKE_SA_INIT request creates at most one half-open SA, which expires.
  await env.w.advance(31_000, 1000);
  assert.equal(b.engine.table.size, 0);
});

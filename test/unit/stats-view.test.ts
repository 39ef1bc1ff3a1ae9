/**
 * The `vpp-ikectl stats` document: every engine counter keeps its own key next to the dataplane's
 * per-operation counts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statsView } from '../../src/control/views.ts';
import { MemoryDataplane } from '../../src/dataplane/memory.ts';
import { InstrumentedDataplane } from '../../src/daemon/instrumented-dataplane.ts';
import { childInstall } from '../helpers/child-install.ts';
import { Engine } from '../../src/ikev2/engine/engine.ts';
import { FakeScheduler } from '../../src/common/clock.ts';
import { snakeKeys } from '../../src/common/text.ts';
import pino from 'pino';
import { randomBytes } from 'node:crypto';

test('stats: the engine dataplane_errors counter and the per-operation dataplane_errors_by_op are both shown', async () => {
  const mem = new MemoryDataplane();
  const dp = new InstrumentedDataplane(mem);
  const engine = new Engine({
    scheduler: new FakeScheduler(0),
    random: (n) => randomBytes(n),
    send: () => undefined,
    dataplane: dp,
    log: pino({ level: 'silent' }),
    port: 500,
    portNatT: 4500,
    ikeSaLimit: 10,
  });
  // Two failed installs, one of them seen by the engine (the other, say, during start-up).
  for (const id of [1, 2]) {
    mem.failNextInstall('no room');
    await assert.rejects(dp.install(childInstall(id, await dp.allocateSpi(), 0x1000 + id)), /no room/);
  }
  engine.stats.dataplaneErrors = 1;
  await dp.install(childInstall(3, await dp.allocateSpi(), 0x1003));
  const v = statsView({
    ikeSas: 0,
    halfOpen: 0,
    ikeSaLimit: 10,
    engine: engine.stats,
    fragmentDrops: engine.fragmentDrops,
    reassemblyBytes: 0,
    transport: { sent: 3 },
    dataplane: 'memory',
    ops: dp.ops,
    more: { reloads: { ok: 0, refused: 0 } },
  });
  assert.equal(v.dataplane_errors, 1, "the engine's count");
  assert.deepEqual(v.dataplane_errors_by_op, { allocate_spi: 0, install: 2, update: 0, remove: 0, dump: 0 });
  assert.deepEqual(v.dataplane_calls, { allocate_spi: 3, install: 3, update: 0, remove: 0, dump: 0 });
  // No other key hides an engine counter either.
  for (const [k, x] of Object.entries(snakeKeys(engine.stats))) assert.equal(v[k], x, k);
  assert.deepEqual(v.transport, { sent: 3 });
  assert.deepEqual(v.reloads, { ok: 0, refused: 0 });
  // As it travels to vpp-ikectl.
  assert.deepEqual(JSON.parse(JSON.stringify(v)), v);
});

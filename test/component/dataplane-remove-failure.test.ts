/**
 * A CHILD_SA installed just as its IKE SA goes away is taken out of the dataplane again; when the
 * dataplane refuses that removal, the failure is logged and counted (the SA may be left in VPP).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { pair } from '../helpers/engine-pair.ts';
import type { ChildInstall, InstallResult } from '../../src/dataplane/types.ts';

test('a failed removal of a CHILD_SA whose IKE SA died during the install is logged and counted', async () => {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    }),
  );
  const env = pair({ logB: log });
  const dp = env.b.dp;
  const install = dp.install.bind(dp);
  dp.install = async (c: ChildInstall): Promise<InstallResult> => {
    const r = await install(c);
    // The responder's IKE SA disappears while the dataplane was busy with its CHILD_SA.
    for (const sa of env.b.engine.table.values()) env.b.engine.destroy(sa, 'gone during install');
    dp.failNextRemove('VPP refused');
    return r;
  };
  const before = env.b.engine.stats.dataplaneErrors;
  // The initiator hears nothing back (the responder's SA is gone); it is not what this test is about.
  env.a.engine.initiate('lab').catch(() => undefined);
  await env.w.run();
  assert.equal(env.b.engine.stats.dataplaneErrors, before + 1);
  const warn = lines.find((l) => l.msg === 'dataplane remove failed');
  assert.ok(warn, 'a warning names the failed removal');
  assert.match(String(warn.err), /VPP refused/);
  env.a.engine.shutdown(false);
});

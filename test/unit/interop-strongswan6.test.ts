/**
 * The interop harness finds strongSwan 6 or says why not: a missing tarball or tree is an error
 * naming it (so requireInterop6 fails under REQUIRE_INTEROP=1 instead of skipping), and the
 * tarball beside the repository unpacks into a cache with charon and swanctl.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { NODE } from '../helpers/daemon.ts';

const HARNESS = resolve(import.meta.dirname, '../interop/harness.ts');
const TARBALL = resolve(import.meta.dirname, '../../../shared/interop/strongswan6/strongswan-6.0.6-debian12-x86_64.tar.xz');

function probe(env: Record<string, string>): unknown {
  const code = `const h = await import(${JSON.stringify(HARNESS)}); console.log(JSON.stringify(h.strongSwan6()));`;
  const r = spawnSync(NODE, ['--input-type=module', '-e', code], { env: { ...process.env, STRONGSWAN6_DIR: '', STRONGSWAN6_TARBALL: '', ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('strongSwan 6: a missing tarball or tree is reported by name', () => {
  assert.match((probe({ STRONGSWAN6_TARBALL: '/nonexistent/ss6.tar.xz' }) as { error: string }).error, /\/nonexistent\/ss6\.tar\.xz not found/);
  assert.match((probe({ STRONGSWAN6_DIR: '/nonexistent/ss6' }) as { error: string }).error, /\/nonexistent\/ss6\/libexec\/ipsec\/charon not found/);
});

test('strongSwan 6: the build beside the repository unpacks into a cache with charon and swanctl', (t) => {
  if (!existsSync(TARBALL)) {
    if (process.env.REQUIRE_INTEROP === '1') assert.fail(`${TARBALL} is missing (REQUIRE_INTEROP=1)`);
    t.skip(`${TARBALL} not found`);
    return;
  }
  const r = probe({}) as { root: string; charon: string; swanctl: string };
  assert.ok(existsSync(r.charon) && existsSync(r.swanctl), JSON.stringify(r));
  assert.match(r.root, /viked-strongswan6-[0-9a-f]{12}\/strongswan6$/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultApiJsonDir } from '../../tools/gen-vpp-defs.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const VENDORED = join(ROOT, 'vpp-api');
const SHARED = resolve(ROOT, '../shared/vpp-api');
const TOOL = join(ROOT, 'tools/gen-vpp-defs.ts');

/** Runs the generator from a directory outside the repository, with only the given environment. */
function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [TOOL, ...args], { cwd: tmpdir(), encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } });
}

test('the API directory defaults to ../shared/vpp-api beside the repository, or $VPP_API_JSON_DIR', () => {
  assert.equal(defaultApiJsonDir({}), SHARED);
  assert.equal(defaultApiJsonDir({ VPP_API_JSON_DIR: '' }), SHARED);
  assert.equal(defaultApiJsonDir({ VPP_API_JSON_DIR: '/some/where/' }), '/some/where');
  assert.equal(defaultApiJsonDir({ VPP_API_JSON_DIR: 'rel' }), resolve('rel'));
  // from another working directory: the default is still found relative to the tool's file; whether
  // or not a shared/ copy is there, the check names that directory
  const d = run(['--check']);
  assert.ok(`${d.stdout}${d.stderr}`.includes(SHARED), `${d.stdout}${d.stderr}`);
  if (existsSync(SHARED)) assert.equal(d.status, 0, d.stderr);
  else assert.equal(d.status, 1);
  // the environment variable, and an argument over it
  const e = run(['--check'], { VPP_API_JSON_DIR: VENDORED });
  assert.equal(e.status, 0, e.stderr);
  assert.ok(e.stdout.includes(`matches ${VENDORED}`), e.stdout);
  const a = run([VENDORED, '--check'], { VPP_API_JSON_DIR: '/nonexistent/vpp-api' });
  assert.equal(a.status, 0, a.stderr);
  const bad = run(['--check'], { VPP_API_JSON_DIR: '/nonexistent/vpp-api' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /no such directory: \/nonexistent\/vpp-api/);
});

test('vpp-api/ holds data files only, the same bytes as ../shared/vpp-api', (t) => {
  const names = readdirSync(VENDORED).sort();
  assert.deepEqual(names.filter((n) => !n.endsWith('.api.json')), ['README.md']);
  if (!existsSync(SHARED)) {
    t.skip(`${SHARED} is not there: nothing to compare with`);
    return;
  }
  for (const n of names.filter((x) => x.endsWith('.api.json'))) {
    assert.ok(readFileSync(join(VENDORED, n)).equals(readFileSync(join(SHARED, n))), `${n} differs from ${SHARED}/${n}`);
  }
});

/**
 * conf/REFERENCE.md is generated from the key tables (src/config/schema.ts) by
 * tools/gen-reference.ts, and the same tables drive the loader: the known keys, their defaults and
 * which daemon/vpp keys a reload applies at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { diffReference, generateReference, REFERENCE_PATH } from '../../tools/gen-reference.ts';
import { CHILD, CONNECTION, DAEMON, DEFAULTS, IKE_SECRET, LIVE_SETTINGS, LOCAL, PRIVATE_SECRET, REMOTE, VPP } from '../../src/config/schema.ts';
import type { Section } from '../../src/config/schema.ts';
import { loadConfigText } from '../../src/config/load.ts';

const TOOL = new URL('../../tools/gen-reference.ts', import.meta.url).pathname;

test('conf/REFERENCE.md is what the key tables produce (run node tools/gen-reference.ts after changing them)', () => {
  assert.deepEqual(diffReference(readFileSync(REFERENCE_PATH, 'utf8'), generateReference()), []);
});

test('--check exits 1 and names the first stale line; 0 for the committed file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-ref-'));
  try {
    const stale = join(dir, 'REFERENCE.md');
    const text = readFileSync(REFERENCE_PATH, 'utf8');
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.startsWith('| `daemon.port` |'));
    assert.ok(at > 0);
    lines[at] = lines[at]!.replace('`500`', '`501`');
    writeFileSync(stale, lines.join('\n'));
    assert.deepEqual(diffReference(lines.join('\n'), text), [`line ${at + 1} differs`, `  file:      ${lines[at]}`, `  generated: ${text.split('\n')[at]}`]);
    const r = spawnSync(process.execPath, [TOOL, '--check', stale], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`line ${at + 1} differs`));
    const ok = spawnSync(process.execPath, [TOOL, '--check'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    // writing a file gives exactly the generated text
    const out = join(dir, 'fresh.md');
    assert.equal(spawnSync(process.execPath, [TOOL, out], { encoding: 'utf8' }).status, 0);
    assert.equal(readFileSync(out, 'utf8'), generateReference());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every key of every table is documented and known to the loader where the table puts it', () => {
  const ref = generateReference();
  const where: [Section, string, (key: string) => string][] = [
    [DAEMON, 'daemon.', (k) => `daemon {\n  ${k} =\n}\n`],
    [VPP, 'vpp.', (k) => `vpp {\n  ${k} =\n}\n`],
    [CONNECTION, '', (k) => `connections {\n  c {\n    ${k} =\n  }\n}\n`],
    [LOCAL, 'local.', (k) => `connections {\n  c {\n    local {\n      ${k} =\n    }\n  }\n}\n`],
    [REMOTE, 'remote.', (k) => `connections {\n  c {\n    remote {\n      ${k} =\n    }\n  }\n}\n`],
    [CHILD, '', (k) => `connections {\n  c {\n    children {\n      ch {\n        ${k} =\n      }\n    }\n  }\n}\n`],
    [IKE_SECRET, 'ike-NAME.', (k) => `secrets {\n  ike-x {\n    ${k} =\n  }\n}\n`],
    [PRIVATE_SECRET, 'private-NAME.', (k) => `secrets {\n  private-x {\n    ${k} =\n  }\n}\n`],
  ];
  for (const [s, prefix, conf] of where) {
    for (const { key, row } of s.rows) {
      assert.ok(row.doc.length > 0, `${prefix}${key} has a description`);
      assert.ok(ref.includes(`| \`${prefix}${key}\``), `${prefix}${key} is in the reference`);
      const errors = loadConfigText(conf(key), 'F').errors.map(String);
      assert.ok(!errors.some((e) => e.includes('unknown key')), `${prefix}${key}: ${errors.join('; ')}`);
      assert.ok(errors.some((e) => /empty (value|'secret')/.test(e)) || (prefix === 'private-NAME.' && key === 'secret'), `${prefix}${key}: ${errors.join('; ')}`);
      // the same name misspelt is unknown there, with the table's name suggested (in secrets without quoting it)
      const typo = loadConfigText(conf(`${key}x`).replace(`${key}x =`, `${key}x = 1`), 'F').errors.map(String);
      const unknown = prefix.endsWith('-NAME.') ? 'unknown key in' : `unknown key '${key}x'`;
      if (!row.prefix) assert.ok(typo.some((e) => e.includes(unknown) && e.includes(`did you mean '${key}'`)), `${prefix}${key}x: ${typo.join('; ')}`);
    }
  }
});

test('defaults come from the table: a config without daemon and vpp sections gets them', () => {
  const r = loadConfigText('', 'F');
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.config!.daemon, { ...DEFAULTS.daemon });
  assert.deepEqual(r.config!.vpp, { ...DEFAULTS.vpp });
  assert.equal(DEFAULTS.daemon.controlSocket, '/run/vpp-iked/control.sock');
});

test('the keys a reload applies at once are the live rows of the table', () => {
  assert.deepEqual([...LIVE_SETTINGS].sort(), ['daemon.logLevel', 'daemon.metrics', 'daemon.stopAction', 'daemon.stopTimeout']);
  const reload = generateReference().split('## Reload')[1]!;
  for (const k of ['daemon.log_level', 'daemon.metrics', 'daemon.stop_timeout', 'daemon.stop_action']) assert.ok(reload.includes(`\`${k}\``), k);
  for (const k of ['retransmit_timeout', 'listen', 'vpp.*']) assert.ok(reload.includes(`\`${k}\``), k);
});

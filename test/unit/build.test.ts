/**
 * The compiled build (`npm run build`, tools/build.ts): which code bin/entry.js picks, and that the
 * compiled crypto pool finds its compiled worker module.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { KeId, PrfId } from '../../src/ikev2/constants.ts';

const ROOT = resolve(import.meta.dirname, '../..');

test('bin/entry.js runs dist/ only while dist/BUILT describes every source file and tsconfig exactly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'viked-entry-'));
  try {
    mkdirSync(join(dir, 'bin'));
    copyFileSync(join(ROOT, 'bin/entry.js'), join(dir, 'bin/entry.js'));
    mkdirSync(join(dir, 'src/deep/er'), { recursive: true });
    mkdirSync(join(dir, 'dist/src'), { recursive: true });
    writeFileSync(join(dir, 'src/main.ts'), 'a');
    writeFileSync(join(dir, 'src/deep/er/x.ts'), 'b');
    writeFileSync(join(dir, 'tsconfig.json'), '{}');
    writeFileSync(join(dir, 'tsconfig.build.json'), '{}');
    const at = (p: string, s: number): void => utimesSync(join(dir, p), s, s);
    at('src/deep/er/x.ts', 2000);
    const { entry, sourceManifest } = (await import(pathToFileURL(join(dir, 'bin/entry.js')).href)) as { entry(p: string): string; sourceManifest(): string };
    assert.ok(entry('main').endsWith('/src/main.ts'), 'no build: the sources');
    writeFileSync(join(dir, 'dist/BUILT'), sourceManifest());
    assert.ok(entry('main').endsWith('/dist/src/main.js'), 'a current build');
    assert.ok(entry('cli/ikectl').endsWith('/dist/src/cli/ikectl.js'));
    at('src/deep/er/x.ts', 1000); // a copy that kept an older time, however deep
    assert.ok(entry('main').endsWith('/src/main.ts'), 'an older time: stale');
    at('src/deep/er/x.ts', 2000);
    assert.ok(entry('main').endsWith('/dist/src/main.js'), 'the same again: current');
    writeFileSync(join(dir, 'tsconfig.build.json'), '{ }');
    assert.ok(entry('main').endsWith('/src/main.ts'), 'a changed tsconfig: stale');
    writeFileSync(join(dir, 'dist/BUILT'), sourceManifest());
    writeFileSync(join(dir, 'src/new.ts'), '');
    assert.ok(entry('main').endsWith('/src/main.ts'), 'a new source file: stale');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the compiled crypto pool runs its jobs on the compiled worker module', async () => {
  const { entry } = (await import(pathToFileURL(join(ROOT, 'bin/entry.js')).href)) as { entry(p: string): string };
  const built = (): boolean => entry('main').endsWith('.js');
  if (!built()) {
    const r = spawnSync(process.execPath, [join(ROOT, 'tools/build.ts')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, `npm run build failed:\n${r.stdout}${r.stderr}`);
    assert.ok(built(), 'dist/ is current after the build');
  }
  const mod = (await import(pathToFileURL(join(ROOT, 'dist/src/ikev2/crypto/pool.js')).href)) as typeof import('../../src/ikev2/crypto/pool.ts');
  const results: { token: number; ok: boolean; pub: number; keymat: number }[] = [];
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const pool = new mod.InitCryptoPool<number>(1, (token, r) => {
    results.push({ token, ok: r.ok, pub: r.ok ? r.publicValue.length : 0, keymat: r.ok ? r.keymat.length : 0 });
    if (results.length === 2) done();
  });
  try {
    const peer = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' }).x!;
    const job = { group: KeId.CURVE25519, peerValue: Buffer.from(peer, 'base64url'), prfId: PrfId.HMAC_SHA2_256, keymatLen: 200, ni: randomBytes(32), nr: randomBytes(32), spiI: randomBytes(8), spiR: randomBytes(8) };
    pool.submit(job, 1);
    pool.submit({ ...job, peerValue: Buffer.alloc(32) }, 2); // the all-zero point: refused
    await finished;
    assert.deepEqual(results.sort((x, y) => x.token - y.token), [
      { token: 1, ok: true, pub: 32, keymat: 200 },
      { token: 2, ok: false, pub: 0, keymat: 0 },
    ]);
    assert.equal(pool.running, 1);
    assert.ok(pool.script.pathname.endsWith('/dist/src/ikev2/crypto/pool-worker.js'), pool.script.href);
  } finally {
    await pool.close();
  }
});

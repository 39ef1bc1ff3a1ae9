/**
 * `npm run build` (also run by `npm ci`, `npm install` and `npm test`): compiles src/ to JavaScript in
 * dist/src/ with the TypeScript compiler, then writes dist/BUILT: the size and modification time of
 * every file under src/ and of the tsconfig files, taken before compiling. bin/vpp-iked.js and
 * bin/vpp-ikectl.js run the compiled code only while those still match exactly (bin/entry.js), else
 * the TypeScript sources with Node's type stripping: an edit, a copy that kept older times, or an
 * edit made while the compiler ran all make the build stale. The compiled daemon starts faster and
 * uses about 30 MB less memory (the type stripper, a WebAssembly module, is never loaded; the crypto
 * worker threads load no copy of it either).
 *
 * Without the TypeScript compiler (an install with `--omit=dev`) nothing is built: the binaries run
 * the sources, and this says so.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '..');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

if (!existsSync(TSC)) {
  process.stdout.write('vpp-iked build: the TypeScript compiler is not installed; the binaries run the TypeScript sources\n');
  process.exit(0);
}
const { sourceManifest } = (await import(pathToFileURL(join(ROOT, 'bin/entry.js')).href)) as { sourceManifest(): string };
const dist = join(ROOT, 'dist');
// BUILT first: a binary starting meanwhile runs the sources, never a half-removed build
rmSync(join(dist, 'BUILT'), { force: true });
rmSync(join(dist, 'src'), { recursive: true, force: true });
const manifest = sourceManifest();
const r = spawnSync(process.execPath, [TSC, '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit', cwd: ROOT });
if (r.status !== 0) {
  process.stderr.write('vpp-iked build: compilation failed; the binaries run the TypeScript sources\n');
  process.exit(r.status ?? 1);
}
mkdirSync(dist, { recursive: true });
writeFileSync(join(dist, 'BUILT'), manifest);

/**
 * `npm run build` (also run by `npm ci` and `npm install`): compiles src/ to JavaScript in dist/src/
 * with the TypeScript compiler, then writes dist/BUILT. bin/vpp-iked.js and bin/vpp-ikectl.js run
 * the compiled code while dist/BUILT is newer than every file under src/, else the TypeScript
 * sources with Node's type stripping. The compiled daemon starts faster and uses about 30 MB less
 * memory (the type stripper, a WebAssembly module, is never loaded; the crypto worker threads load
 * no copy of it either).
 *
 * Without the TypeScript compiler (an install with `--omit=dev`) nothing is built: the binaries run
 * the sources, and this says so.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

if (!existsSync(TSC)) {
  process.stdout.write('vpp-iked build: the TypeScript compiler is not installed; the binaries run the TypeScript sources\n');
  process.exit(0);
}
const dist = join(ROOT, 'dist');
rmSync(join(dist, 'src'), { recursive: true, force: true });
rmSync(join(dist, 'BUILT'), { force: true });
const r = spawnSync(process.execPath, [TSC, '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit', cwd: ROOT });
if (r.status !== 0) {
  process.stderr.write('vpp-iked build: compilation failed; the binaries run the TypeScript sources\n');
  process.exit(r.status ?? 1);
}
mkdirSync(dist, { recursive: true });
writeFileSync(join(dist, 'BUILT'), `${new Date().toISOString()}\n`);

// Which code the binaries run: the JavaScript compiled into dist/ by `npm run build` while it is
// newer than every source file, else the TypeScript sources (Node's type stripping).
import { readdirSync, statSync } from 'node:fs';

const ROOT = new URL('../', import.meta.url);

function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = new URL(e.name + (e.isDirectory() ? '/' : ''), dir);
    const t = e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs;
    if (t > newest) newest = t;
  }
  return newest;
}

/** The module URL for `src/<path>.ts`: dist/src/<path>.js when the build is current. */
export function entry(path) {
  try {
    const built = statSync(new URL('dist/BUILT', ROOT)).mtimeMs;
    if (newestMtime(new URL('src/', ROOT)) <= built) return new URL(`dist/src/${path}.js`, ROOT).href;
  } catch {
    // no build: the sources
  }
  return new URL(`src/${path}.ts`, ROOT).href;
}

// Which code the binaries run: the JavaScript compiled into dist/ by `npm run build` while dist/BUILT
// still describes the sources exactly (every file under src/ and the tsconfig files, by size and
// modification time), else the TypeScript sources (Node's type stripping).
import { readdirSync, readFileSync, statSync } from 'node:fs';

const ROOT = new URL('../', import.meta.url);
const CONFIGS = ['tsconfig.json', 'tsconfig.build.json'];

function list(dir, rel, out) {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (e.isDirectory()) list(new URL(`${e.name}/`, dir), `${rel}${e.name}/`, out);
    else {
      const s = statSync(new URL(e.name, dir));
      out.push(`${rel}${e.name} ${s.size} ${s.mtimeMs}`);
    }
  }
}

/** One line per source file and tsconfig file: path, size, modification time (what dist/BUILT holds). */
export function sourceManifest() {
  const out = [];
  list(new URL('src/', ROOT), 'src/', out);
  for (const c of CONFIGS) {
    try {
      const s = statSync(new URL(c, ROOT));
      out.push(`${c} ${s.size} ${s.mtimeMs}`);
    } catch {
      out.push(`${c} missing`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** The module URL for `src/<path>.ts`: dist/src/<path>.js when the build is current. */
export function entry(path) {
  try {
    if (readFileSync(new URL('dist/BUILT', ROOT), 'utf8') === sourceManifest()) return new URL(`dist/src/${path}.js`, ROOT).href;
  } catch {
    // no build: the sources
  }
  return new URL(`src/${path}.ts`, ROOT).href;
}

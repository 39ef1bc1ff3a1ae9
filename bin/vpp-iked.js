#!/usr/bin/env node
// vpp-iked daemon entry point: the compiled JavaScript of `npm run build` when current, else the
// TypeScript sources with Node's type stripping (see bin/entry.js).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`vpp-iked needs Node.js 24 or newer (this is ${process.version}).\n`);
  process.exit(1);
}
const { entry } = await import('./entry.js');
const { runMain } = await import(entry('main'));
runMain(process.argv.slice(2));

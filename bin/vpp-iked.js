#!/usr/bin/env node
// vpp-iked daemon entry point (runs the TypeScript sources with Node's type stripping).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`vpp-iked needs Node.js 24 or newer (this is ${process.version}).\n`);
  process.exit(1);
}
const { runMain } = await import('../src/main.ts');
runMain(process.argv.slice(2));

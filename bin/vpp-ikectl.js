#!/usr/bin/env node
// vpp-ikectl operator CLI entry point (compiled or TypeScript sources: see bin/entry.js).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`vpp-ikectl needs Node.js 24 or newer (this is ${process.version}).\n`);
  process.exit(1);
}
const { entry } = await import('./entry.js');
const { runIkectl } = await import(entry('cli/ikectl'));
runIkectl(process.argv.slice(2));

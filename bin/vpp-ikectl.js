#!/usr/bin/env node
// vpp-ikectl operator CLI entry point.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`vpp-ikectl needs Node.js 24 or newer (this is ${process.version}).\n`);
  process.exit(1);
}
const { runIkectl } = await import('../src/cli/ikectl.ts');
runIkectl(process.argv.slice(2));

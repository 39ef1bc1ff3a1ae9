import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeBenchConfig } from '../../bench/config-load.ts';
import { loadConfig } from '../../src/config/load.ts';

test('10,000 connections with their own PSKs load from include files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-scale-'));
  try {
    const w = writeBenchConfig(dir, 10_000);
    const t0 = performance.now();
    const r = loadConfig(w.main);
    const ms = performance.now() - t0;
    assert.deepEqual(r.errors.map(String).slice(0, 5), []);
    const c = r.config!;
    assert.equal(c.connections.length, 10_000);
    assert.equal(c.secrets.length, 10_000);
    assert.equal(c.files.length, w.files);
    const last = c.connections[9999]!;
    assert.equal(last.name, 'peer09999');
    assert.deepEqual(last.remoteAddrs, ['10.100.39.15']);
    assert.deepEqual(last.children[0]!.remoteTs, ['172.16.39.15/32']);
    assert.equal(last.remote.id, 'peer9999.example.net');
    // a generous bound: the benchmark (bench/config-load.ts) measures the real figure
    assert.ok(ms < 10_000, `took ${ms.toFixed(0)} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a loaded configuration keeps neither the file text nor room for more list elements than it holds', () => {
  // a child process with --expose-gc; a first, smaller configuration is loaded (and kept) before the
  // measured one, so the loader's compiled code is not counted: the heap growth per connection
  const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-scale-mem-'));
  try {
    const warm = writeBenchConfig(join(dir, 'warm'), 1_000);
    const w = writeBenchConfig(join(dir, 'measured'), 5_000);
    const loadUrl = new URL('../../src/config/load.ts', import.meta.url).href;
    const script = `
      const { loadConfig } = await import(${JSON.stringify(loadUrl)});
      const first = loadConfig(${JSON.stringify(warm.main)});
      gc(); gc();
      const before = process.memoryUsage().heapUsed;
      const r = loadConfig(${JSON.stringify(w.main)});
      gc(); gc();
      const after = process.memoryUsage().heapUsed;
      globalThis.keep = [first, r];
      process.stdout.write(JSON.stringify({ n: r.config.connections.length, perConn: (after - before) / r.config.connections.length }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' })) as { n: number; perConn: number };
    assert.equal(out.n, 5_000);
    // each connection's own PSK secret, identities, addresses and selectors included: about 1.9 KB;
    // 3.5 KB when lists had room for 17 elements and values kept the file's text alive
    assert.ok(out.perConn < 2400, `${out.perConn.toFixed(0)} bytes of heap per connection`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

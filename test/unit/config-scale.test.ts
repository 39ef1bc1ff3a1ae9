import { test } from 'node:test';
import assert from 'node:assert/strict';
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

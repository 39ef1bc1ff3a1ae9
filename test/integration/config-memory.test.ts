/**
 * A daemon loading a configuration of thousands of connections gives back what parsing it left in
 * V8's heap (src/daemon/heap.ts): one memory-reducing collection after the load at start and after
 * a reload of it, logged and counted in `vpp-ikectl stats` (memory.compactions); a small
 * configuration gets none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/wait.ts';

const PORT = 38500;

function connections(n: number): string {
  const out = ['connections {'];
  for (let i = 1; i <= n; i++) {
    out.push(`  c${i} {
    remote_addrs = 10.${i >> 16}.${(i >> 8) & 255}.${i & 255}
    local { auth = psk
      id = gw.test }
    remote { auth = psk
      id = c${i}.test }
    children { net { local_ts = 10.0.0.0/8
        esp_proposals = aes256gcm16 } }
  }`);
  }
  out.push('}', 'secrets {', '  ike-all {', '    secret = config-memory-test-key', '  }', '}', '');
  return out.join('\n');
}

interface MemoryStats {
  memory: { rss: number; heap_total: number; compactions: number };
}

test('a configuration of 10,000 connections is followed by one memory-reducing collection at start and after a reload', { timeout: 120_000 }, async () => {
  const d = await startDaemon({ name: 'big-config', listen: ['127.0.0.1'], port: PORT, logLevel: 'info', conf: connections(10_000), portNatT: PORT + 1, startTimeoutMs: 60_000 });
  try {
    const compacted = (): number => (d.logs().match(/heap compacted after loading the configuration/g) ?? []).length;
    assert.equal(compacted(), 1, 'compacted once at start');
    const st = await d.json<MemoryStats>(['stats']);
    assert.equal(st.memory.compactions, 1);
    const conns = await d.json<unknown[]>(['list-conns']);
    assert.equal(conns.length, 10_000, 'the configuration is all there');
    const r = await d.ctl(['reload']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the compaction after the reload', async () => compacted() === 2, 10_000);
    assert.equal((await d.json<MemoryStats>(['stats'])).memory.compactions, 2);
  } finally {
    await d.stop();
  }
});

test('a small configuration is not followed by a collection', async () => {
  const d = await startDaemon({ name: 'small-config', listen: ['127.0.0.1'], port: PORT + 2, logLevel: 'info', conf: connections(10), portNatT: PORT + 3 });
  try {
    assert.equal((await d.json<MemoryStats>(['stats'])).memory.compactions, 0);
    assert.doesNotMatch(d.logs(), /heap compacted/);
  } finally {
    await d.stop();
  }
});

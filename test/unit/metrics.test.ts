/**
 * The instrumented dataplane (counts, failures, latency histogram, in-flight tracking, keep mode) and
 * the Prometheus text exposition (format 0.0.4 as documented by Prometheus' "Exposition formats":
 * HELP/TYPE lines, label quoting, cumulative histogram buckets ending in le="+Inf" equal to _count).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDataplane } from '../../src/dataplane/memory.ts';
import type { ChildInstall } from '../../src/dataplane/types.ts';
import { childInstall } from '../helpers/child-install.ts';
import { InstrumentedDataplane, LATENCY_BUCKETS, connectionOf } from '../../src/daemon/instrumented-dataplane.ts';
import { MetricsServer, escapeLabel, parseHostPort, renderMetrics, type MetricsSource } from '../../src/daemon/metrics.ts';
import { newGauges } from '../../src/ikev2/sa/ike-sa.ts';
import { Engine, type EngineStats } from '../../src/ikev2/engine/engine.ts';
import { RealScheduler } from '../../src/common/clock.ts';

/** A CHILD_SA with an outbound SPI of its own. */
function child(id: number, spiIn: number): ChildInstall {
  return childInstall(id, spiIn, 0x1000 + id);
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict reader of the text format: every line is HELP, TYPE or a sample of a declared family. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const closed = new Set<string>();
  let current = '';
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      assert.ok(!helps.has(m[1]!), `HELP for ${m[1]} once`);
      helps.add(m[1]!);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      assert.ok(!types.has(m[1]!), `TYPE for ${m[1]} once`);
      types.set(m[1]!, m[2]!);
      if (current) closed.add(current);
      current = m[1]!;
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `sample line: ${line}`);
    const name = m[1]!;
    const family = types.get(name) !== undefined ? name : name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(family), `${name} has a TYPE line before it`);
    assert.equal(family, current, `${name}: samples of one family are together`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let at = 0;
      while (at < m[2].length) {
        re.lastIndex = at;
        const l = re.exec(m[2]);
        assert.ok(l, `labels of ${line}`);
        labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        at = re.lastIndex;
      }
    }
    const v = m[3] === '+Inf' ? Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(v), `value of ${line}`);
    samples.push({ name, labels, value: v });
  }
  for (const t of types.keys()) assert.ok(helps.has(t), `HELP for ${t}`);
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

function source(dp: InstrumentedDataplane, stats: Partial<EngineStats> = {}): MetricsSource {
  const gauges = newGauges();
  gauges.ikeByState.ESTABLISHED = 50_000;
  gauges.ikeByState.CONNECTING = 3;
  gauges.childSas = 50_001;
  const engine = new Engine({
    scheduler: new RealScheduler(),
    random: (n) => Buffer.alloc(n, 1),
    send() {},
    dataplane: dp,
    log: { info() {}, warn() {}, debug() {}, error() {}, trace() {}, fatal() {}, child() { return this; } } as never,
    port: 500,
    portNatT: 4500,
    ikeSaLimit: 10,
  });
  Object.assign(engine.stats, stats);
  return {
    // The table offers only two counters: the renderer cannot walk SAs.
    engine: { stats: engine.stats, gauges, table: { halfOpenCount: 7, limit: 60_000 } },
    dataplane: dp,
    transport: { stats: { keepalives: 4, esp: 1, invalid: 2, oversized: 0, sendErrors: 0 } },
    vpp: { connected: true, disconnects: 2 },
    daemon: { version: '0.1.0', startTime: 1700000000, connections: 3, reloadsOk: 1, reloadsRefused: 2, lastReloadOk: false },
  };
}

test('InstrumentedDataplane counts calls and failures per operation and times them', async () => {
  const mem = new MemoryDataplane();
  const dp = new InstrumentedDataplane(mem);
  assert.equal(dp.name, 'memory');
  const spi = await dp.allocateSpi();
  await dp.install(child(1, spi));
  mem.failNextInstall('no room');
  const spi2 = await dp.allocateSpi();
  await assert.rejects(dp.install(child(2, spi2)), /no room/);
  await dp.remove(1);
  await dp.dump();
  assert.deepEqual(
    Object.fromEntries(Object.entries(dp.ops).map(([k, s]) => [k, [s.calls, s.errors]])),
    { allocate_spi: [2, 0], install: [2, 1], update: [0, 0], remove: [1, 0], dump: [1, 0] },
  );
  for (const s of Object.values(dp.ops)) {
    assert.equal(s.buckets.length, LATENCY_BUCKETS.length + 1);
    assert.equal(s.buckets.reduce((a, b) => a + b, 0), s.calls, 'one observation per call');
    assert.ok(s.sum >= 0);
  }
  assert.equal(dp.inFlight, 0);
  assert.equal(connectionOf(mem), undefined, 'the memory back end has no VPP connection');
});

test('InstrumentedDataplane: idle() waits for running operations; keepInstalled() leaves SAs in place', async () => {
  const mem = new MemoryDataplane();
  const dp = new InstrumentedDataplane(mem);
  const spi = await dp.allocateSpi();
  const p = dp.install(child(1, spi));
  assert.equal(dp.inFlight, 1);
  let idle = false;
  const w = dp.idle().then(() => (idle = true));
  await p;
  await w;
  assert.equal(idle, true);
  dp.keepInstalled();
  await dp.remove(1);
  assert.equal(dp.keptRemoves, 1);
  assert.equal(dp.ops.remove.calls, 0);
  assert.ok(mem.installed.has(1), 'the back end still holds the SA');
});

test('the exposition is well formed and carries every engine statistic, the SA gauges and the dataplane histogram', async () => {
  const dp = new InstrumentedDataplane(new MemoryDataplane());
  const spi = await dp.allocateSpi();
  await dp.install(child(1, spi));
  const src = source(dp, { ikeEstablished: 11, authFailed: 2, rxBadIcv: 5, retransmitsSent: 9 });
  const { samples, types } = parseExposition(renderMetrics(src));
  assert.equal(value(samples, 'vpp_iked_ike_sas', { state: 'ESTABLISHED' }), 50_000);
  assert.equal(value(samples, 'vpp_iked_ike_sas', { state: 'CONNECTING' }), 3);
  assert.equal(samples.filter((s) => s.name === 'vpp_iked_ike_sas').length, 7, 'one sample per IKE SA state');
  assert.equal(value(samples, 'vpp_iked_child_sas'), 50_001);
  assert.equal(value(samples, 'vpp_iked_ike_sas_half_open'), 7);
  assert.equal(value(samples, 'vpp_iked_ike_sa_limit'), 60_000);
  assert.equal(value(samples, 'vpp_iked_ike_sas_established_total'), 11);
  assert.equal(value(samples, 'vpp_iked_auth_failures_total'), 2);
  assert.equal(value(samples, 'vpp_iked_ike_packets_bad_icv_total'), 5);
  assert.equal(value(samples, 'vpp_iked_retransmits_sent_total'), 9);
  assert.equal(value(samples, 'vpp_iked_cookies_sent_total'), 0);
  assert.equal(value(samples, 'vpp_iked_vpp_connected'), 1);
  assert.equal(value(samples, 'vpp_iked_vpp_disconnects_total'), 2);
  assert.equal(value(samples, 'vpp_iked_udp_dropped_total', { reason: 'invalid' }), 2);
  assert.equal(value(samples, 'vpp_iked_config_reloads_total', { result: 'refused' }), 2);
  assert.equal(value(samples, 'vpp_iked_config_last_reload_successful'), 0);
  assert.equal(value(samples, 'vpp_iked_dataplane_calls_total', { op: 'install' }), 1);
  assert.equal(value(samples, 'vpp_iked_dataplane_calls_total', { op: 'allocate_spi' }), 1);
  assert.equal(value(samples, 'vpp_iked_dataplane_info', { dataplane: 'memory' }), 1);
  // every engine statistic has its own counter (a new statistic shows up without touching the renderer)
  const counters = [...types].filter(([, t]) => t === 'counter').map(([n]) => n);
  const engineStats = Object.keys(src.engine.stats);
  assert.ok(counters.length >= engineStats.length + 5);
  for (const n of counters) assert.match(n, /_total$/, `counter ${n} ends in _total`);
  // histogram: cumulative buckets, +Inf = _count, per operation
  assert.equal(types.get('vpp_iked_dataplane_call_duration_seconds'), 'histogram');
  for (const op of ['allocate_spi', 'install', 'update', 'remove', 'dump']) {
    const b = samples.filter((s) => s.name === 'vpp_iked_dataplane_call_duration_seconds_bucket' && s.labels.op === op);
    assert.equal(b.length, LATENCY_BUCKETS.length + 1);
    for (let i = 1; i < b.length; i++) assert.ok(b[i]!.value >= b[i - 1]!.value, 'cumulative');
    assert.equal(b.at(-1)!.labels.le, '+Inf');
    assert.equal(b.at(-1)!.value, value(samples, 'vpp_iked_dataplane_call_duration_seconds_count', { op }));
    assert.equal(b.at(-1)!.value, op === 'install' || op === 'allocate_spi' ? 1 : 0);
  }
});

test('a statistic the renderer has no name for is still exported, as vpp_iked_<snake_case>_total', () => {
  const src = source(new InstrumentedDataplane(new MemoryDataplane()));
  (src.engine.stats as unknown as Record<string, number>).someNewThing = 4;
  const { samples, types } = parseExposition(renderMetrics(src));
  assert.equal(types.get('vpp_iked_some_new_thing_total'), 'counter');
  assert.equal(value(samples, 'vpp_iked_some_new_thing_total'), 4);
});

test('label values are escaped; host:port parsing', () => {
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  assert.deepEqual(parseHostPort('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(parseHostPort('[::1]:9464'), { host: '::1', port: 9464 });
  assert.throws(() => parseHostPort('::1:9464'));
  assert.throws(() => parseHostPort('127.0.0.1:99999'));
});

test('MetricsServer: GET /metrics is the exposition; other paths 404, other methods 405', async () => {
  let n = 0;
  const srv = new MetricsServer('127.0.0.1:0', () => `# HELP x y\n# TYPE x counter\nx ${++n}\n`, { info() {}, warn() {} });
  await srv.start();
  const port = srv.port;
  assert.ok(port > 0);
  try {
    const base = `http://127.0.0.1:${port}`;
    const r = await fetch(`${base}/metrics`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(await r.text(), '# HELP x y\n# TYPE x counter\nx 1\n');
    assert.equal(await (await fetch(`${base}/metrics?x=1`)).text(), '# HELP x y\n# TYPE x counter\nx 2\n');
    assert.equal((await fetch(`${base}/`)).status, 404);
    const p = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(p.status, 405);
    assert.equal(p.headers.get('allow'), 'GET, HEAD');
    assert.equal(srv.scrapes, 2);
  } finally {
    await srv.close();
  }
  // the port is free again
  const again = new MetricsServer(`127.0.0.1:${port}`, () => '', { info() {}, warn() {} });
  await assert.doesNotReject(again.start().then(() => again.close()));
});

test('MetricsServer: an address in use is an error naming it', async () => {
  const a = new MetricsServer('127.0.0.1:0', () => '', { info() {}, warn() {} });
  await a.start();
  try {
    const b = new MetricsServer(`127.0.0.1:${a.port}`, () => '', { info() {}, warn() {} });
    await assert.rejects(b.start(), new RegExp(`cannot serve metrics on 127\\.0\\.0\\.1:${a.port}: .*EADDRINUSE`));
  } finally {
    await a.close();
  }
});

test('IKE fragmentation: counters, dropped fragments by reason and the reassembly gauge', () => {
  const src = source(new InstrumentedDataplane(new MemoryDataplane()), { fragmentsSent: 12, messagesReassembled: 3 });
  const drops = { unknown_sa: 1, not_negotiated: 0, unexpected: 2, invalid: 5, duplicate: 0, stale_total: 0, too_many: 0, too_big: 7, superseded: 0, timeout: 4, memory: 0, busy: 0 };
  const { samples, types } = parseExposition(renderMetrics({ ...src, engine: { ...src.engine, fragmentDrops: drops, reassemblyBytes: 1234 } }));
  assert.equal(value(samples, 'vpp_iked_ike_fragments_sent_total'), 12);
  assert.equal(value(samples, 'vpp_iked_ike_messages_reassembled_total'), 3);
  assert.equal(types.get('vpp_iked_ike_fragments_dropped_total'), 'counter');
  for (const [reason, n] of Object.entries(drops)) assert.equal(value(samples, 'vpp_iked_ike_fragments_dropped_total', { reason }), n);
  assert.equal(types.get('vpp_iked_ike_reassembly_bytes'), 'gauge');
  assert.equal(value(samples, 'vpp_iked_ike_reassembly_bytes'), 1234);
});

test('worker threads for IKE_SA_INIT: threads, jobs, pending jobs and restarts; absent without a pool', () => {
  const src = source(new InstrumentedDataplane(new MemoryDataplane()));
  const none = parseExposition(renderMetrics(src));
  assert.equal(none.samples.filter((s) => s.name.startsWith('vpp_iked_crypto_')).length, 0);
  const { samples, types } = parseExposition(renderMetrics({ ...src, engine: { ...src.engine, workers: { threads: 1, jobs: 500, pending: 3, worker_restarts: 0 } } }));
  assert.equal(types.get('vpp_iked_crypto_workers'), 'gauge');
  assert.equal(value(samples, 'vpp_iked_crypto_workers'), 1);
  assert.equal(types.get('vpp_iked_crypto_jobs_total'), 'counter');
  assert.equal(value(samples, 'vpp_iked_crypto_jobs_total'), 500);
  assert.equal(value(samples, 'vpp_iked_crypto_jobs_pending'), 3);
  assert.equal(value(samples, 'vpp_iked_crypto_worker_restarts_total'), 0);
});

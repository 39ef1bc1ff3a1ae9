/**
 * The daemon keys for operations: stop_timeout, stop_action and metrics (values, defaults, and
 * errors located at the value).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS, loadConfigText } from '../../src/config/load.ts';

function daemon(body: string) {
  return loadConfigText(`daemon {\n${body}\n}\n`, 'F');
}

test('stop_timeout and stop_action default to 10 s and delete', () => {
  const r = daemon('  port = 500');
  assert.deepEqual(r.errors, []);
  assert.equal(r.config?.daemon.stopTimeout, 10);
  assert.equal(r.config?.daemon.stopAction, 'delete');
  assert.equal(DEFAULTS.daemon.stopTimeout, 10);
});

test('stop_timeout takes durations; stop_action takes delete or keep (any case)', () => {
  for (const [text, secs] of [['30s', 30], ['2m', 120], ['45', 45], ['1h', 3600]] as const) {
    const r = daemon(`  stop_timeout = ${text}`);
    assert.deepEqual(r.errors.map(String), [], text);
    assert.equal(r.config?.daemon.stopTimeout, secs, text);
  }
  assert.equal(daemon('  stop_action = keep').config?.daemon.stopAction, 'keep');
  assert.equal(daemon('  stop_action = DELETE').config?.daemon.stopAction, 'delete');
});

test('bad stop_timeout / stop_action values are errors at the value', () => {
  assert.deepEqual(daemon('  stop_timeout = soon').errors.map(String), [
    "F:2:18: 'stop_timeout' must be a duration such as 30s, 5m, 4h or 1d, not 'soon'",
  ]);
  assert.deepEqual(daemon('  stop_timeout = 0').errors.map(String), ["F:2:18: 'stop_timeout' = 0s is out of range (1s..3600s)"]);
  assert.deepEqual(daemon('  stop_timeout = 2h').errors.map(String), ["F:2:18: 'stop_timeout' = 7200s is out of range (1s..3600s)"]);
  assert.deepEqual(daemon('  stop_action = flush').errors.map(String), ["F:2:17: 'stop_action' must be one of delete, keep, not 'flush'"]);
  assert.deepEqual(daemon('  stop_acton = keep').errors.map(String), ["F:2:3: unknown key 'stop_acton' in daemon (did you mean 'stop_action'?)"]);
});

test('metrics takes ADDRESS:PORT and [IPv6]:PORT', () => {
  assert.equal(daemon('  metrics = 127.0.0.1:9464').config?.daemon.metrics, '127.0.0.1:9464');
  assert.equal(daemon('  metrics = [::1]:9464').config?.daemon.metrics, '[::1]:9464');
  assert.equal(daemon('  port = 500').config?.daemon.metrics, undefined);
  for (const bad of ['localhost:9464', '127.0.0.1', '127.0.0.1:0', '::1:9464', '127.0.0.1:70000']) {
    const e = daemon(`  metrics = ${bad}`).errors.map(String);
    assert.equal(e.length, 1, bad);
    assert.match(e[0]!, /^F:2:13: 'metrics' must be ADDRESS:PORT/, bad);
  }
});

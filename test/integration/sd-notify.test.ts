/**
 * SdNotify against a stand-in notification socket (a unix datagram socket bound by the test), which
 * SdNotify sends to directly from this process: the messages arrive, in order, with the fields systemd
 * reads (sd_notify(3): READY=1, STATUS=, RELOADING=1 + MONOTONIC_USEC=, STOPPING=1, WATCHDOG=1).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SdNotify, monotonicUsec } from '../../src/daemon/sd-notify.ts';
import { notifyListenerUnavailable, startNotifyListener, type NotifyListener } from '../helpers/notify-listener.ts';
import { sleep } from '../helpers/wait.ts';

function recordingLog() {
  const warnings: string[] = [];
  return { warnings, log: { warn: (_o: object, m: string) => void warnings.push(m), debug() {} } };
}

test('without NOTIFY_SOCKET nothing is sent and nothing is logged', async () => {
  const { warnings, log } = recordingLog();
  // Any attempt to send would find no socket and log a warning.
  const n = new SdNotify({ env: {}, log });
  assert.equal(n.enabled, false);
  n.ready('up');
  n.reloading();
  n.stopping();
  n.startWatchdog();
  await n.flush();
  assert.equal(n.sent, 0);
  assert.deepEqual(warnings, []);
});

const why = notifyListenerUnavailable();

test('a missing notification socket is reported once and disables notification', { skip: why ?? false }, async () => {
  const { warnings, log } = recordingLog();
  const n = new SdNotify({ env: { NOTIFY_SOCKET: '/tmp/viked-no-such.sock' }, log });
  assert.equal(n.enabled, true);
  n.ready('up');
  n.status('again');
  await n.flush();
  assert.equal(n.enabled, false);
  assert.equal(n.sent, 0);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /could not notify systemd/);
});

test('an abstract NOTIFY_SOCKET (@name) is reported once and disables notification', async () => {
  const warned: { obj: object; msg: string }[] = [];
  const n = new SdNotify({ env: { NOTIFY_SOCKET: '@/org/freedesktop/systemd1/notify' }, log: { warn: (obj, msg) => void warned.push({ obj, msg }), debug() {} } });
  n.ready('up');
  n.stopping();
  await n.flush();
  assert.equal(n.enabled, false);
  assert.equal(n.sent, 0);
  assert.equal(warned.length, 1);
  assert.match(warned[0]!.msg, /could not notify systemd/);
  assert.match(JSON.stringify(warned[0]!.obj), /abstract socket name/);
});

describe('SdNotify to the notification socket', { skip: why ?? false }, () => {
  let l: NotifyListener;
  before(async () => {
    l = await startNotifyListener();
  });
  after(async () => {
    await l?.close();
  });

  test('READY, STATUS, RELOADING with MONOTONIC_USEC, READY, STOPPING arrive in order', async () => {
    const from = l.messages().length;
    const n = new SdNotify({ env: { NOTIFY_SOCKET: l.path } });
    const t0 = monotonicUsec();
    n.ready('2 connections, 0 IKE SAs');
    n.status('line one\nline two');
    n.reloading('reloading');
    n.ready('reloaded');
    n.stopping('stopping');
    await n.flush(10_000);
    const t1 = monotonicUsec();
    await l.waitFor((m) => m.fields.STOPPING === '1', 5000, from);
    const got = l.messages().slice(from).map((m) => m.fields);
    assert.equal(got.length, 5, JSON.stringify(got));
    assert.deepEqual(got[0], { READY: '1', STATUS: '2 connections, 0 IKE SAs' });
    // a newline would end the assignment: it is sent as a blank
    assert.deepEqual(got[1], { STATUS: 'line one line two' });
    assert.equal(got[2]!.RELOADING, '1');
    assert.equal(got[2]!.STATUS, 'reloading');
    assert.match(got[2]!.MONOTONIC_USEC ?? '', /^\d+$/);
    const mono = BigInt(got[2]!.MONOTONIC_USEC!);
    assert.ok(mono >= t0 && mono <= t1, `MONOTONIC_USEC ${mono} is CLOCK_MONOTONIC now (${t0}..${t1})`);
    assert.deepEqual(got[3], { READY: '1', STATUS: 'reloaded' });
    assert.deepEqual(got[4], { STOPPING: '1', STATUS: 'stopping' });
    assert.equal(n.sent, 5);
  });

  test('the watchdog is fed at half of WATCHDOG_USEC, only when WATCHDOG_PID is ours', async () => {
    const from = l.messages().length;
    const other = new SdNotify({ env: { NOTIFY_SOCKET: l.path, WATCHDOG_USEC: '300000', WATCHDOG_PID: String(process.pid + 1) } });
    other.startWatchdog();
    await sleep(450);
    assert.deepEqual(l.messages().slice(from).filter((m) => m.fields.WATCHDOG === '1'), [], 'WATCHDOG_PID of another process: not fed');
    other.stopWatchdog();
    const n = new SdNotify({ env: { NOTIFY_SOCKET: l.path, WATCHDOG_USEC: '300000', WATCHDOG_PID: String(process.pid) } });
    const t0 = Date.now();
    n.startWatchdog();
    const first = await l.waitFor((m) => m.fields.WATCHDOG === '1', 5000, from);
    const second = await l.waitFor((m) => m.fields.WATCHDOG === '1' && m !== first, 5000, from);
    n.stopping();
    await n.flush(5000);
    const dogs = l.messages().slice(from).filter((m) => m.fields.WATCHDOG === '1');
    assert.ok(first.at - t0 >= 100, `first WATCHDOG=1 after ~150 ms, got ${first.at - t0} ms`);
    assert.ok(second.at - first.at >= 80, `interval ~150 ms, got ${second.at - first.at} ms`);
    // stopping() ends the feeding
    const count = dogs.length;
    await sleep(500);
    const later = l.messages().slice(from).filter((m) => m.fields.WATCHDOG === '1').length;
    assert.ok(later <= count + 1, `no more WATCHDOG=1 after STOPPING (${count} then ${later})`);
  });
});

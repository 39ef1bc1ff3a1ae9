/**
 * systemd/vpp-iked.service: the settings operations rely on, `systemd-analyze verify` (no warnings),
 * the ExecStart/ExecStartPre command lines run, and the daemon's notifications under a stand-in
 * service manager (NOTIFY_SOCKET bound by the test as a unix datagram socket): READY=1 only once the control socket
 * and the IKE sockets are up, RELOADING=1 + MONOTONIC_USEC then READY=1 on SIGHUP (also when the
 * reload is refused), STOPPING=1 on SIGTERM, exit code 0.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS } from '../../src/config/load.ts';
import { controlRequest } from '../../src/control/server.ts';
import { NODE, ROOT, spawnDaemonWithConfig } from '../helpers/daemon.ts';
import { notifyListenerUnavailable, startNotifyListener, type NotifyListener } from '../helpers/notify-listener.ts';
import { sleep } from '../helpers/wait.ts';

const UNIT = join(ROOT, 'systemd/vpp-iked.service');
const INSTALL = '/opt/vpp-iked';

/** [Section] → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let sec: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const m = /^\[(.+)\]$/.exec(line);
    if (m) {
      sec = new Map();
      out.set(m[1]!, sec);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(sec && eq > 0, `key = value inside a section: ${line}`);
    const k = line.slice(0, eq);
    const l = sec.get(k) ?? [];
    l.push(line.slice(eq + 1));
    sec.set(k, l);
  }
  return out;
}

/** The unit with the install prefix pointing at this checkout (so its commands exist here). */
function localUnit(): string {
  return readFileSync(UNIT, 'utf8').replaceAll(`${INSTALL}/node_modules/.bin/node`, NODE).replaceAll(`${INSTALL}/`, `${ROOT}/`);
}

function seconds(v: string): number {
  const m = /^(\d+)(s|min|m)?$/.exec(v);
  assert.ok(m, `duration ${v}`);
  return Number(m[1]) * (m[2] === 'min' || m[2] === 'm' ? 60 : 1);
}

test('the unit: notify readiness, SIGHUP reload, restart on failure, runtime dir, hardening', () => {
  const unit = parseUnit(readFileSync(UNIT, 'utf8'));
  const s = unit.get('Service')!;
  const one = (k: string): string => {
    const v = s.get(k);
    assert.ok(v && v.length === 1, `[Service] ${k} set once`);
    return v[0]!;
  };
  assert.equal(one('Type'), 'notify');
  assert.equal(one('NotifyAccess'), 'main', 'the main process sends the notifications itself');
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(one('Restart'), 'on-failure');
  assert.equal(one('RuntimeDirectory'), 'vpp-iked');
  assert.equal(DEFAULTS.daemon.controlSocket, '/run/vpp-iked/control.sock', 'the default control socket is in the runtime directory');
  assert.match(one('ExecStart'), new RegExp(`^${INSTALL}/node_modules/\\.bin/node ${INSTALL}/bin/vpp-iked\\.js --config /etc/vpp-iked/vpp-iked\\.conf --foreground$`));
  assert.ok(seconds(one('TimeoutStopSec')) > DEFAULTS.daemon.stopTimeout, 'TimeoutStopSec leaves the daemon its stop_timeout');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('ProtectHome'), 'yes');
  assert.equal(one('PrivateTmp'), 'yes');
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE');
  assert.equal(one('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
  assert.equal(one('LimitNICE'), '-5', 'the punt reading thread may run at nice -5');
  assert.equal(one('SupplementaryGroups'), 'vpp');
  assert.deepEqual(one('RestrictAddressFamilies').split(/\s+/).sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
  assert.match(one('ReadWritePaths'), /(^|\s)-?\/run\/vpp(\s|$)/);
  assert.equal(s.get('MemoryDenyWriteExecute'), undefined, "V8's JIT needs W+X memory");
  assert.deepEqual(unit.get('Install')?.get('WantedBy'), ['multi-user.target']);
});

const analyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
test('systemd-analyze verify accepts the unit without a warning', { skip: analyze.error ? 'systemd-analyze is not installed' : false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'viked-unit-'));
  try {
    const path = join(dir, 'vpp-iked.service');
    writeFileSync(path, localUnit());
    const r = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warnings (unknown keys, bad values)');
    // The check catches mistakes: the same unit with a typo is reported.
    writeFileSync(path, localUnit().replace('TimeoutStopSec=', 'TimeoutStopSecs='));
    const bad = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
    assert.match(bad.stderr, /Unknown key 'TimeoutStopSecs'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ExecStartPre (--check) runs as written against the example config', () => {
  const s = parseUnit(localUnit()).get('Service')!;
  const argv = s.get('ExecStartPre')![0]!.split(' ').map((a) => (a === '/etc/vpp-iked/vpp-iked.conf' ? join(ROOT, 'conf/vpp-iked.conf') : a));
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: tmpdir() });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /: OK \(\d+ connections/);
});

const why = notifyListenerUnavailable();

/** A daemon a failed test left running is killed, so the test file still ends. */
function killOnFailure(t: TestContext, d: ReturnType<typeof spawnDaemonWithConfig>): void {
  let exited = false;
  void d.proc.exited.then(() => {
    exited = true;
  });
  t.after(() => {
    if (!exited) d.signal('SIGKILL');
  });
}

describe('the daemon under a stand-in service manager (NOTIFY_SOCKET)', { skip: why ?? false, timeout: 60_000 }, () => {
  let l: NotifyListener;
  let dir: string;
  before(async () => {
    l = await startNotifyListener();
    dir = mkdtempSync(join(tmpdir(), 'viked-notify-it-'));
  });
  after(async () => {
    await l?.close();
    if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
  });

  test('READY after the sockets are up; RELOADING/READY on SIGHUP, also when refused; STOPPING and exit 0 on SIGTERM', async (t) => {
    const socket = join(dir, 'control.sock');
    const port = 33500;
    const text = `daemon {
  listen = 127.0.0.1
  port = ${port}
  port_nat_t = ${port + 1}
  control_socket = ${socket}
  dataplane = memory
  log_level = info
}
`;
    const d = spawnDaemonWithConfig(dir, text, { NOTIFY_SOCKET: l.path });
    killOnFailure(t, d);
    const ready = await l.waitFor((m) => m.fields.READY === '1', 15_000);
    // Once READY=1 arrived, the control socket answers and the IKE port is taken.
    await controlRequest(socket, 'stats');
    const probe = createSocket('udp4');
    await assert.rejects(new Promise<void>((res, rej) => {
      probe.once('error', rej);
      probe.bind({ address: '127.0.0.1', port, exclusive: true }, () => res());
    }), /EADDRINUSE/);
    probe.close();
    assert.match(ready.fields.STATUS ?? '', /0 connections, 0 IKE SAs established; dataplane memory/);
    const before = l.messages().length;

    d.signal('SIGHUP');
    const reloading = await l.waitFor((m) => m.fields.RELOADING === '1', 10_000, before);
    assert.match(reloading.fields.MONOTONIC_USEC ?? '', /^\d+$/);
    await l.waitFor((m) => m.fields.READY === '1', 10_000, before);

    // A config with an error: RELOADING, then READY with a status that says the reload was refused.
    writeFileSync(d.configPath, text.replace('log_level = info', 'log_level = info\n  bogus = 1'));
    const before2 = l.messages().length;
    d.signal('SIGHUP');
    await l.waitFor((m) => m.fields.RELOADING === '1', 10_000, before2);
    const refused = await l.waitFor((m) => m.fields.READY === '1', 10_000, before2);
    assert.match(refused.fields.STATUS ?? '', /reload refused \(1 error\(s\)/);
    // The log line travels through the daemon's stdout, the notification through the socket:
    // READY=1 can arrive first, so give the log line a moment.
    const refusedLog = /reload refused, keeping the running config:\\n.*vpp-iked\.conf:8:3: unknown key 'bogus'/;
    for (let i = 0; i < 50 && !refusedLog.test(d.proc.output()); i++) await sleep(100);
    assert.match(d.proc.output(), refusedLog);

    const before3 = l.messages().length;
    d.signal('SIGTERM');
    await l.waitFor((m) => m.fields.STOPPING === '1', 10_000, before3);
    const exit = await d.proc.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, d.proc.output());
  });

  test('with dataplane = vpp, READY waits until VPP answers', async (t) => {
    const sub = join(dir, 'vpp');
    const socket = join(sub, 'control.sock');
    const api = join(sub, 'api.sock');
    const port = 33600;
    const from = l.messages().length;
    const d = spawnDaemonWithConfig(
      sub,
      `daemon {\n  listen = 127.0.0.1\n  port = ${port}\n  port_nat_t = ${port + 1}\n  control_socket = ${socket}\n  dataplane = vpp\n}\nvpp {\n  socket = ${api}\n}\n`,
      { NOTIFY_SOCKET: l.path },
    );
    killOnFailure(t, d);
    const connecting = await l.waitFor((m) => m.fields.STATUS !== undefined, 10_000, from);
    assert.equal(connecting.fields.STATUS, `connecting to VPP at ${api}`);
    await sleep(1500);
    assert.deepEqual(l.messages().slice(from).filter((m) => m.fields.READY === '1'), [], 'not ready while VPP is not there');
    const emu = spawn(NODE, [join(ROOT, 'src/vpp/emulator/main.ts'), '--socket', api, '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const t0 = Date.now();
      const ready = await l.waitFor((m) => m.fields.READY === '1', 20_000, from);
      assert.ok(ready.at >= t0, 'READY=1 came after VPP started');
      assert.match(ready.fields.STATUS ?? '', /dataplane vpp/);
      const stats = (await controlRequest(socket, 'stats')) as { vpp_connected?: boolean };
      assert.equal(stats.vpp_connected, true);
      d.signal('SIGTERM');
      assert.deepEqual(await d.proc.exited, { code: 0, signal: null }, d.proc.output());
    } finally {
      const gone = new Promise((r) => emu.once('close', r));
      emu.kill('SIGTERM');
      await gone;
    }
  });
});

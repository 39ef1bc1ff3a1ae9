/**
 * Operating two real daemons on loopback (127.0.0.1 <-> 127.0.0.2, non-standard ports so these suites
 * can run beside others):
 * - metrics: the Prometheus endpoint is scraped before and after a handshake and a delete;
 * - reload: connections kept (same IKE and ESP SPIs), removed (peer told), changed by settings or by
 *   PSK (replaced), added (brought up); a broken config is refused with FILE:LINE:COL, by
 *   `vpp-ikectl reload` and by SIGHUP, and the running SAs stay;
 * - stop: SIGTERM with stop_action = delete (peer told, VPP emulator emptied) and keep (peer not told,
 *   VPP keeps the SAs, the next start replaces them), and the stop deadline while VPP hangs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE, ROOT, startDaemon } from '../helpers/daemon.ts';
import type { DaemonHandle, IkeSaJson } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/wait.ts';
import { VppClient } from '../../src/vpp/client.ts';

const A_ADDR = '127.0.0.1';
const B_ADDR = '127.0.0.2';

interface ConnSpec {
  name: string;
  /** this side initiates (start_action = start) */
  start: boolean;
  esp?: string;
  psk?: string;
  net: number;
}

/** connections and secrets for one side; `me`/`peer` pick addresses, ids and subnets. */
function conf(side: 'a' | 'b', port: number, conns: ConnSpec[], extraDaemon = ''): string {
  const me = side === 'a' ? A_ADDR : B_ADDR;
  const peer = side === 'a' ? B_ADDR : A_ADDR;
  const other = side === 'a' ? 'b' : 'a';
  const body = conns
    .map(
      (c) => `  ${c.name} {
    local_addrs = ${me}
    remote_addrs = ${peer}
    remote_port = ${port}
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = psk
      id = ${c.name}.${side}.test
    }
    remote {
      auth = psk
      id = ${c.name}.${other}.test
    }
    children {
      net {
        local_ts = 10.${side === 'a' ? 1 : 2}.${c.net}.0/24
        remote_ts = 10.${side === 'a' ? 2 : 1}.${c.net}.0/24
        esp_proposals = ${c.esp ?? 'aes256gcm16'}
        start_action = ${c.start ? 'start' : 'none'}
      }
    }
  }
`,
    )
    .join('');
  const secrets = conns
    .map((c) => `  ike-${c.name} {\n    id-1 = ${c.name}.a.test\n    id-2 = ${c.name}.b.test\n    secret = "${c.psk ?? `psk-${c.name}-0123456789abcdef`}"\n  }\n`)
    .join('');
  return `${extraDaemon ? `daemon {\n${extraDaemon}\n}\n` : ''}connections {\n${body}}\nsecrets {\n${secrets}}\n`;
}

async function up(d: DaemonHandle, names: string[]): Promise<Map<string, IkeSaJson>> {
  return waitFor(`${d.name}: ${names.join(', ')} established`, async () => {
    const sas = await d.listSas();
    const m = new Map<string, IkeSaJson>();
    for (const n of names) {
      const s = sas.filter((x) => x.name === n && x.state === 'ESTABLISHED' && x.child_sas.some((c) => c.state === 'INSTALLED'));
      if (s.length !== 1) return undefined;
      m.set(n, s[0]!);
    }
    return m;
  }, 15_000);
}

async function scrape(addr: string): Promise<(name: string, labels?: Record<string, string>) => number> {
  const r = await fetch(`http://${addr}/metrics`);
  assert.equal(r.status, 200);
  const text = await r.text();
  return (name, labels = {}) => {
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const l = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
      if (Object.entries(labels).every(([k, v]) => l[k] === v)) return Number(m[3]);
    }
    throw new Error(`no sample ${name}${JSON.stringify(labels)} in\n${text}`);
  };
}

describe('metrics endpoint', { timeout: 60_000 }, () => {
  const port = 35500;
  const conns: ConnSpec[] = [{ name: 'm1', start: false, net: 1 }];
  let dir: string;
  let a: DaemonHandle;
  let b: DaemonHandle;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'viked-it-metrics-'));
    [a, b] = await Promise.all([
      startDaemon({ name: 'a', parentDir: dir, listen: [A_ADDR], port, portNatT: port + 1, conf: conf('a', port, conns, `  metrics = ${A_ADDR}:35464`) }),
      startDaemon({ name: 'b', parentDir: dir, listen: [B_ADDR], port, portNatT: port + 1, conf: conf('b', port, conns, `  metrics = ${B_ADDR}:35464`) }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
  });

  test('gauges and counters move with a handshake and a delete', async () => {
    const m0 = await scrape(`${A_ADDR}:35464`);
    assert.equal(m0('vpp_iked_ike_sas', { state: 'ESTABLISHED' }), 0);
    assert.equal(m0('vpp_iked_child_sas'), 0);
    assert.equal(m0('vpp_iked_ike_sas_established_total'), 0);
    assert.equal(m0('vpp_iked_ike_sa_limit'), 60000);
    assert.equal(m0('vpp_iked_dataplane_calls_total', { op: 'install' }), 0);
    assert.equal(m0('vpp_iked_cookies_sent_total'), 0);
    assert.equal(m0('vpp_iked_config_connections'), 1);

    await a.json(['initiate', '--ike', 'm1']);
    await up(b, ['m1']);
    const m1 = await scrape(`${A_ADDR}:35464`);
    assert.equal(m1('vpp_iked_ike_sas', { state: 'ESTABLISHED' }), 1);
    assert.equal(m1('vpp_iked_ike_sas', { state: 'CONNECTING' }), 0);
    assert.equal(m1('vpp_iked_ike_sas_half_open'), 0);
    assert.equal(m1('vpp_iked_child_sas'), 1);
    assert.equal(m1('vpp_iked_ike_sas_established_total'), 1);
    assert.equal(m1('vpp_iked_child_sas_established_total'), 1);
    assert.equal(m1('vpp_iked_dataplane_calls_total', { op: 'install' }), 1);
    assert.equal(m1('vpp_iked_dataplane_calls_total', { op: 'allocate_spi' }), 1);
    assert.equal(m1('vpp_iked_dataplane_errors_total', { op: 'install' }), 0);
    assert.equal(m1('vpp_iked_dataplane_call_duration_seconds_count', { op: 'install' }), 1);
    assert.equal(m1('vpp_iked_dataplane_call_duration_seconds_bucket', { op: 'install', le: '+Inf' }), 1);
    assert.ok(m1('vpp_iked_ike_packets_sent_total') >= 2, 'IKE_SA_INIT and IKE_AUTH sent');
    assert.ok(m1('vpp_iked_ike_packets_received_total') >= 2);
    // the responder counts too
    const mb = await scrape(`${B_ADDR}:35464`);
    assert.equal(mb('vpp_iked_ike_sas', { state: 'ESTABLISHED' }), 1);
    assert.equal(mb('vpp_iked_ike_sas_established_total'), 1);

    await a.json(['terminate', '--ike', 'm1']);
    await waitFor('A: m1 gone', async () => (await a.listSas()).length === 0, 5000);
    const m2 = await scrape(`${A_ADDR}:35464`);
    assert.equal(m2('vpp_iked_ike_sas', { state: 'ESTABLISHED' }), 0);
    assert.equal(m2('vpp_iked_child_sas'), 0);
    assert.equal(m2('vpp_iked_ike_sas_deleted_total'), 1);
    assert.equal(m2('vpp_iked_child_sas_deleted_total'), 1);
    assert.equal(m2('vpp_iked_dataplane_calls_total', { op: 'remove' }), 1);
  });
});

describe('reload', { timeout: 90_000 }, () => {
  const port = 36500;
  const aConns: ConnSpec[] = [
    { name: 'keep', start: true, net: 1 },
    { name: 'gone', start: true, net: 2 },
    { name: 'edit', start: true, net: 3 },
    { name: 'sec', start: true, net: 4 },
  ];
  // B answers all of them, and accepts the ESP proposal 'edit' is changed to.
  const bConns: ConnSpec[] = [
    { name: 'keep', start: false, net: 1 },
    { name: 'gone', start: false, net: 2 },
    { name: 'edit', start: false, net: 3, esp: 'aes256gcm16, aes128gcm16' },
    { name: 'sec', start: false, net: 4 },
    { name: 'new', start: false, net: 5 },
  ];
  let dir: string;
  let a: DaemonHandle;
  let b: DaemonHandle;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'viked-it-reload-'));
    b = await startDaemon({ name: 'b', parentDir: dir, listen: [B_ADDR], port, portNatT: port + 1, conf: conf('b', port, bConns) });
    a = await startDaemon({ name: 'a', parentDir: dir, listen: [A_ADDR], port, portNatT: port + 1, conf: conf('a', port, aConns) });
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
  });

  test('kept SAs are untouched, removed ones deleted, changed ones (settings or PSK) replaced, added ones up', async () => {
    const before = await up(a, ['keep', 'gone', 'edit', 'sec']);
    await up(b, ['keep', 'gone', 'edit', 'sec']);

    // The PSK of 'sec' changes on both sides; B reloads first (and deletes its 'sec' SA, telling A).
    const newPsk = 'psk-sec-changed-0123456789abcdef';
    b.rewrite(conf('b', port, bConns.map((c) => (c.name === 'sec' ? { ...c, psk: newPsk } : c))));
    const rb = await b.json<Record<string, string[]>>(['reload']);
    assert.deepEqual(rb.changed, ['sec'], 'B: only the PSK of sec changed');
    assert.deepEqual(rb.unchanged, ['keep', 'gone', 'edit', 'new']);
    await waitFor('A: sec deleted by B', async () => !(await a.listSas()).some((s) => s.name === 'sec'), 5000);

    // A: keep as is, gone removed, edit with another ESP proposal, sec with the new PSK, new added.
    const aNew: ConnSpec[] = [
      { name: 'keep', start: true, net: 1 },
      { name: 'edit', start: true, net: 3, esp: 'aes128gcm16' },
      { name: 'sec', start: true, net: 4, psk: newPsk },
      { name: 'new', start: true, net: 5 },
    ];
    a.rewrite(conf('a', port, aNew));
    const ra = await a.json<{ added: string[]; removed: string[]; changed: string[]; unchanged: string[]; restart_required: string[] }>(['reload']);
    assert.deepEqual(ra.added, ['new']);
    assert.deepEqual(ra.removed, ['gone']);
    assert.deepEqual(ra.changed.sort(), ['edit', 'sec']);
    assert.deepEqual(ra.unchanged, ['keep']);
    assert.deepEqual(ra.restart_required, []);

    const after = await up(a, ['keep', 'edit', 'sec', 'new']);
    await waitFor('A and B: gone deleted', async () => !(await a.listSas()).some((s) => s.name === 'gone') && !(await b.listSas()).some((s) => s.name === 'gone'), 5000);
    // keep: the same IKE SA and the same CHILD_SA (not rekeyed)
    const k0 = before.get('keep')!;
    const k1 = after.get('keep')!;
    assert.equal(k1.id, k0.id);
    assert.deepEqual([k1.spi_i, k1.spi_r], [k0.spi_i, k0.spi_r]);
    assert.deepEqual(k1.child_sas.map((c) => [c.id, c.spi_in, c.spi_out]), k0.child_sas.map((c) => [c.id, c.spi_in, c.spi_out]));
    // edit: a new IKE SA with the new ESP proposal
    const e0 = before.get('edit')!;
    const e1 = after.get('edit')!;
    assert.notEqual(e1.spi_i, e0.spi_i);
    assert.equal(e1.child_sas[0]!.proposal, 'AES_GCM_16_128');
    assert.equal(e0.child_sas[0]!.proposal, 'AES_GCM_16_256');
    // sec: a new IKE SA, authenticated with the new PSK on both sides
    assert.notEqual(after.get('sec')!.spi_i, before.get('sec')!.spi_i);
    const bAfter = await up(b, ['keep', 'edit', 'sec', 'new']);
    assert.equal(bAfter.get('sec')!.spi_i, after.get('sec')!.spi_i);
    assert.equal(bAfter.get('keep')!.spi_i, k0.spi_i);
    // each connection has exactly one IKE SA on each side
    for (const d of [a, b]) {
      const names = (await d.listSas()).map((s) => s.name).sort();
      assert.deepEqual(names, ['edit', 'keep', 'new', 'sec'], `${d.name}: one IKE SA per connection`);
    }
    // what the dataplane holds follows: A's memory dataplane has exactly the 4 live CHILD_SAs
    const dump = await a.json<{ sas: { child_id: number }[] }>(['vpp-sas']);
    assert.deepEqual(dump.sas.map((s) => s.child_id).sort((x, y) => x - y), [...after.values()].map((s) => s.child_sas[0]!.id).sort((x, y) => x - y));
  });

  test('a broken config is refused with FILE:LINE:COL (vpp-ikectl reload and SIGHUP); the running SAs stay', async () => {
    const sas0 = await a.listSas();
    const good = conf('a', port, [{ name: 'keep', start: true, net: 1 }]);
    const bad = good.replace('    proposals = aes256gcm16-prfsha256-x25519\n', '    proposals = aes256gcm16-prfsha256-x25519\n    rekey_time = soon\n');
    a.rewrite(bad);
    // The file is the generated daemon section followed by `bad`: find the line of the broken key.
    const { readFileSync } = await import('node:fs');
    const lines = readFileSync(a.configPath, 'utf8').split('\n');
    const line = lines.findIndex((l) => l.includes('rekey_time = soon')) + 1;
    const col = lines[line - 1]!.indexOf('soon') + 1;
    const r = await a.ctl(['reload']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${a.configPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}:${col}: 'rekey_time' must be a duration`));
    process.kill(a.proc.pid, 'SIGHUP');
    await waitFor('SIGHUP reload refused in the log', async () => (a.logs().match(/reload refused, keeping the running config/g) ?? []).length >= 2, 5000);
    const st = await a.json<{ reloads: { ok: number; refused: number } }>(['stats']);
    assert.deepEqual(st.reloads, { ok: 1, refused: 2 });
    const sas1 = await a.listSas();
    assert.deepEqual(sas1.map((s) => [s.name, s.spi_i, s.spi_r]).sort(), sas0.map((s) => [s.name, s.spi_i, s.spi_r]).sort(), 'nothing changed');
    const conns = await a.json<{ name: string }[]>(['list-conns']);
    assert.deepEqual(conns.map((c) => c.name), ['keep', 'edit', 'sec', 'new'], 'the running config stays');
  });
});

/** The VPP emulator as a process; resolves once it listens. */
async function startEmulator(socket: string): Promise<{ proc: ChildProcess; stop(): Promise<number | null>; sas(): Promise<number[]> }> {
  const proc = spawn(NODE, [join(ROOT, 'src/vpp/emulator/main.ts'), '--socket', socket, '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const closed = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening')) resolve();
    });
    void closed.then(() => reject(new Error('emulator exited')));
  });
  return {
    proc,
    async stop() {
      proc.kill('SIGCONT');
      proc.kill('SIGTERM');
      return closed;
    },
    /** SPIs of the SAs the emulator holds. */
    async sas() {
      const c = new VppClient({ socket, reconnect: false });
      await c.start();
      try {
        return (await c.dump('ipsec_sa_v5_dump', { sa_id: 0xffffffff })).map((d) => d.entry.spi).sort((x, y) => x - y);
      } finally {
        await c.close();
      }
    },
  };
}

describe('graceful stop', { timeout: 120_000 }, () => {
  const port = 37500;
  const conns: ConnSpec[] = [{ name: 's1', start: true, net: 1 }];
  let dir: string;
  let b: DaemonHandle;
  let emu: Awaited<ReturnType<typeof startEmulator>>;
  let api: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'viked-it-stop-'));
    api = join(dir, 'vpp-api.sock');
    emu = await startEmulator(api);
    b = await startDaemon({ name: 'b', parentDir: dir, listen: [B_ADDR], port, portNatT: port + 1, conf: conf('b', port, conns.map((c) => ({ ...c, start: false }))) });
  });
  after(async () => {
    await b?.stop();
    await emu?.stop();
    if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
  });

  const aDaemon = (name: string, extra: string): Promise<DaemonHandle> =>
    startDaemon({ name, parentDir: dir, listen: [A_ADDR], port, portNatT: port + 1, conf: conf('a', port, conns, `  dataplane = vpp\n${extra}`).replace('connections {', `vpp {\n  socket = ${api}\n}\nconnections {`) });

  function hex(spi: string): number {
    return Number.parseInt(spi, 16);
  }

  test('stop_action = delete: the peer is told, VPP is emptied, exit 0', async () => {
    const a = await aDaemon('a-delete', '  stop_action = delete');
    const sa = (await up(a, ['s1'])).get('s1')!;
    await up(b, ['s1']);
    const c = sa.child_sas[0]!;
    assert.deepEqual(await emu.sas(), [hex(c.spi_in), hex(c.spi_out)].sort((x, y) => x - y));
    const t0 = Date.now();
    await a.stop();
    assert.ok(Date.now() - t0 < 10_000);
    await waitFor('B: s1 deleted by A', async () => (await b.listSas()).length === 0, 5000);
    assert.deepEqual(await emu.sas(), []);
    assert.match(a.logs(), /"msg":"stopped"/);
  });

  test('stop_action = keep: the peer is not told, VPP keeps the SAs; the next start replaces them', async () => {
    const a = await aDaemon('a-keep', '  stop_action = keep');
    const sa = (await up(a, ['s1'])).get('s1')!;
    const bsa = (await up(b, ['s1'])).get('s1')!;
    assert.equal(bsa.spi_i, sa.spi_i);
    const c = sa.child_sas[0]!;
    const kept = [hex(c.spi_in), hex(c.spi_out)].sort((x, y) => x - y);
    await a.stop();
    assert.match(a.logs(), /"kept_in_dataplane":1/);
    assert.deepEqual(await emu.sas(), kept, 'VPP still holds the CHILD_SA');
    const still = await b.listSas();
    assert.deepEqual(still.map((s) => [s.spi_i, s.state]), [[sa.spi_i, 'ESTABLISHED']], 'B was not told');

    // The next start removes what it cannot adopt and negotiates again.
    const a2 = await aDaemon('a-keep-2', '  stop_action = delete');
    const sa2 = (await up(a2, ['s1'])).get('s1')!;
    assert.notEqual(sa2.spi_i, sa.spi_i);
    const c2 = sa2.child_sas[0]!;
    await waitFor('VPP holds only the new CHILD_SA', async () => JSON.stringify(await emu.sas()) === JSON.stringify([hex(c2.spi_in), hex(c2.spi_out)].sort((x, y) => x - y)), 5000);
    await waitFor('B: only the new IKE SA (INITIAL_CONTACT)', async () => {
      const l = await b.listSas();
      return l.length === 1 && l[0]!.spi_i === sa2.spi_i;
    }, 5000);
    await a2.stop();
    assert.deepEqual(await emu.sas(), []);
  });

  test('the stop deadline holds while VPP does not answer', async () => {
    const a = await aDaemon('a-deadline', '  stop_timeout = 2s');
    await up(a, ['s1']);
    await up(b, ['s1']);
    emu.proc.kill('SIGSTOP');
    try {
      const t0 = Date.now();
      await a.stop(10_000);
      const took = Date.now() - t0;
      assert.ok(took < 4000, `stopped in ${took} ms with stop_timeout = 2s`);
      assert.ok(took >= 1000, `waited for VPP until near the deadline (${took} ms)`);
      assert.match(a.logs(), /stop deadline reached/);
    } finally {
      emu.proc.kill('SIGCONT');
    }
    // B was told even though VPP hung
    await waitFor('B: s1 deleted by A', async () => (await b.listSas()).length === 0, 5000);
  });
});

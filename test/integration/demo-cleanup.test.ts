/**
 * tools/demo.ts outside the happy path: usage errors exit 2 before anything starts, and a signal
 * (SIGINT, SIGTERM, SIGHUP sent to the demo alone) kills every process it started and removes the
 * temporary IPv6 address it added to lo. Ports 34600.. (demo.test.ts uses 34500..).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { NODE, ROOT, runNode } from '../helpers/daemon.ts';
import { sleep } from '../helpers/wait.ts';

const DEMO = join(ROOT, 'tools/demo.ts');
const TEMP_V6 = 'fd00:7ea:de30::a';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const secondV6 = Object.values(networkInterfaces()).some((l) => (l ?? []).some((i) => i.family === 'IPv6' && !i.internal && !/^fe[89ab]/i.test(i.address)));

test('usage errors exit 2 and start nothing; --help shows every option', async () => {
  for (const args of [
    ['--timeout', 'abc'],
    ['--timeout', '0'],
    ['--timeout', '-5'],
    ['--timeout', 'NaN'],
    ['--timeout', '1e9'],
    ['--port-base', 'x'],
    ['--port-base', '65533'],
    ['--ipv6', 'not-an-address'],
    ['--ipv6', '::1'],
    ['--ipv6', 'fd00::9', '--temp-ipv6'],
    ['--bogus'],
    ['extra'],
  ]) {
    const r = await runNode(DEMO, args, 20_000);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^demo: [^]*\nusage: node tools\/demo\.ts /, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
  const h = await runNode(DEMO, ['--help'], 20_000);
  assert.equal(h.code, 0);
  for (const o of ['--port-base N', '--timeout SECONDS', '--ipv6 ADDR', '--temp-ipv6', '--keep']) assert.ok(h.stdout.includes(o), o);
});

/** Pids of the live (not zombie) children of `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === pid && f[0] !== 'Z') out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function loHasTempV6(): boolean {
  const r = spawnSync('ip', ['-6', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' });
  return r.stdout.includes(TEMP_V6);
}

const canRun = existsSync('/proc/self/stat') && (isRoot || secondV6);
// As root the demo adds its own address (--temp-ipv6), which the test checks is gone afterwards.
const useTemp = isRoot && spawnSync('ip', ['-V'], { stdio: 'ignore' }).status === 0;

for (const [signal, code, port] of [
  ['SIGINT', 130, 34600],
  ['SIGTERM', 143, 34610],
  ['SIGHUP', 129, 34620],
] as const) {
  test(`${signal} to the demo kills the processes it started${useTemp ? ' and removes the address it added to lo' : ''}`, { timeout: 60_000, skip: canRun ? false : 'needs /proc, and root or an IPv6 address besides ::1' }, async () => {
    assert.ok(!useTemp || !loHasTempV6(), `${TEMP_V6} is on lo before the test`);
    const p = spawn(NODE, [DEMO, '--port-base', String(port), '--timeout', '40', ...(useTemp ? ['--temp-ipv6'] : [])], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const closed = new Promise<number | null>((res) => p.on('close', (c) => res(c)));
    try {
      // the emulator and both daemons are running once A reports up
      const t0 = Date.now();
      while (!out.includes('daemon A up')) {
        assert.ok(Date.now() - t0 < 30_000, `the demo did not get to 'daemon A up'\n${out}\n${err}`);
        assert.equal(p.exitCode, null, `the demo exited early\n${out}\n${err}`);
        await sleep(50);
      }
      const kids = childrenOf(p.pid!);
      assert.ok(kids.length >= 3, `emulator and two daemons running: ${kids.join(', ')}`);
      if (useTemp) assert.ok(loHasTempV6(), `${TEMP_V6} added to lo`);
      p.kill(signal);
      assert.equal(await closed, code, err);
      assert.match(err, new RegExp(`demo: ${signal}: stopping`));
      // SIGKILLed children may take a moment to disappear
      const until = Date.now() + 5000;
      while (kids.some(alive) && Date.now() < until) await sleep(50);
      assert.deepEqual(kids.filter(alive), [], 'no process of the demo is left');
      if (useTemp) assert.ok(!loHasTempV6(), `${TEMP_V6} removed from lo`);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });
}

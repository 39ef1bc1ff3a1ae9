/**
 * The log output: lines gathered into few writes, in order, bounded, written out at exit, and counted
 * rather than piled up when the output cannot take them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { LineWriter } from '../../src/log/line-writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'viked-logw-'));
let seq = 0;
function file(): { path: string; fd: number } {
  const path = join(dir, `out-${++seq}.log`);
  return { path, fd: openSync(path, 'w') };
}
const line = (i: number): string => `{"n":${i},"msg":"IKE SA established"}\n`;

test('a burst of lines goes out in order in a few writes', async () => {
  const { path, fd } = file();
  const w = new LineWriter(fd, { intervalMs: 5, batchBytes: 64 * 1024 });
  for (let i = 0; i < 5000; i++) assert.equal(w.write(line(i)), true);
  await new Promise<void>((res) => w.flush(() => res()));
  const got = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
  assert.equal(got.length, 5000);
  for (let i = 0; i < 5000; i++) assert.equal(JSON.parse(got[i]!).n, i);
  assert.ok(w.writes <= 5, `${w.writes} writes for 5,000 lines`);
  assert.equal(w.dropped, 0);
  closeSync(fd);
});

test('by default a line goes out at once; lines that come meanwhile go out together next', async () => {
  const { path, fd } = file();
  const w = new LineWriter(fd);
  w.write(line(1));
  for (let i = 0; i < 50 && readFileSync(path, 'utf8') === ''; i++) await sleep(2);
  assert.equal(readFileSync(path, 'utf8'), line(1));
  // one write under way: the rest of this burst waits for it, then goes out in one more
  const before = w.writes;
  for (let i = 2; i < 500; i++) w.write(line(i));
  await new Promise<void>((res) => w.flush(() => res()));
  assert.equal(readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').length, 499);
  assert.ok(w.writes - before <= 2, `${w.writes - before} writes for a burst of 498 lines`);
  closeSync(fd);
});

test('with an interval a lone line waits at most the interval; a full batch goes at once', async () => {
  const { path, fd } = file();
  const w = new LineWriter(fd, { intervalMs: 150, batchBytes: 1000 });
  w.write(line(1));
  await sleep(5);
  assert.equal(readFileSync(path, 'utf8'), '', 'not written before the interval');
  await sleep(300);
  assert.equal(readFileSync(path, 'utf8'), line(1));
  // past batchBytes (1,000 bytes: 27 lines): written without waiting for the interval
  for (let i = 2; i < 40; i++) w.write(line(i));
  await sleep(30);
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').length;
  assert.ok(lines >= 1 + Math.floor(1000 / line(20).length) && lines < 39, `${lines} lines out: the full batch, not the rest`);
  await new Promise<void>((res) => w.flush(() => res()));
  assert.equal(readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').length, 39);
  closeSync(fd);
});

test('past the bound lines are dropped and counted, then a warning says how many', async () => {
  const { path, fd } = file();
  const one = line(0).length;
  const w = new LineWriter(fd, { intervalMs: 1, batchBytes: 2 * one, maxPendingBytes: 5 * one });
  // the first two lines start a write; while it is under way three more fit, the rest do not
  let accepted = 0;
  for (let i = 0; i < 20; i++) if (w.write(line(i))) accepted++;
  assert.equal(accepted, 5);
  assert.equal(w.dropped, 15);
  await new Promise<void>((res) => w.flush(() => res()));
  await sleep(20);
  const got = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  const warn = got.find((l) => l.level === 'warn');
  assert.ok(warn, 'a line reports the drops');
  assert.equal(warn.dropped, 15);
  assert.deepEqual(got.filter((l) => l.n !== undefined).map((l) => l.n), [0, 1, 2, 3, 4]);
  closeSync(fd);
});

test('a write that fails (/dev/full: ENOSPC) is tried again; lines wait up to the bound, nothing throws', async () => {
  const fd = openSync('/dev/full', 'w');
  const one = line(0).length;
  const w = new LineWriter(fd, { maxPendingBytes: 10 * one });
  w.write(line(1));
  await sleep(30);
  assert.equal(w.writes, 1);
  let accepted = 0;
  assert.doesNotThrow(() => {
    for (let i = 0; i < 20; i++) if (w.write(line(i))) accepted++;
  });
  assert.equal(accepted, 9, 'the failed line and nine more fit the bound');
  assert.equal(w.dropped, 11);
  await sleep(1100);
  assert.ok(w.writes >= 2, 'the batch was tried again after a second');
  w.writeOutAtExit();
  closeSync(fd);
});

test('an output gone for good (EBADF): later lines are counted as dropped, the failed batch too', async () => {
  const w = new LineWriter(0x7ffffff0);
  w.write(line(1));
  w.write(line(2));
  await sleep(30);
  assert.equal(w.write(line(3)), false);
  assert.equal(w.dropped, 3, 'line 2 waited for line 1, whose write failed; line 3 came after');
  assert.doesNotThrow(() => w.writeOutAtExit());
});

test('pino never sees a flushSync (it would call it after every fatal line)', () => {
  assert.equal('flushSync' in new LineWriter(1), false);
});

test('the daemon\'s exit: flushLogs, then process.exit(), every line out in order', () => {
  const src = `
    import { createLogs, flushLogs } from ${JSON.stringify(new URL('../../src/log/logger.ts', import.meta.url).href)};
    const logs = createLogs('info');
    for (let i = 0; i < 200; i++) logs.get('ike').info({ n: i }, 'line');
    setImmediate(async () => {
      for (let i = 200; i < 400; i++) logs.get('ike').info({ n: i }, 'line');
      await flushLogs(5000);
      process.exit(4);
    });
  `;
  for (let run = 0; run < 5; run++) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { encoding: 'utf8' });
    assert.equal(r.status, 4, r.stderr);
    assert.deepEqual(r.stdout.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { n: number }).n), [...Array(400).keys()]);
  }
});

test('what waits is written when the process exits, also through process.exit()', () => {
  const src = `
    import { createLogs } from ${JSON.stringify(new URL('../../src/log/logger.ts', import.meta.url).href)};
    const logs = createLogs('info');
    for (let i = 0; i < 3000; i++) logs.get('ike').info({ n: i }, 'IKE SA established');
    process.exit(3);
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 3, r.stderr);
  const got = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { n: number; subsystem: string });
  assert.equal(got.length, 3000);
  assert.deepEqual(got.map((l) => l.n), [...Array(3000).keys()]);
  assert.equal(got[0]!.subsystem, 'ike');
});

test('a daemon whose stdout fails (a full disk) goes on running and exits normally', () => {
  const src = `
    import { createLogs } from ${JSON.stringify(new URL('../../src/log/logger.ts', import.meta.url).href)};
    const logs = createLogs('info');
    for (let i = 0; i < 1000; i++) logs.get('ike').info({ n: i }, 'IKE SA established');
    setTimeout(() => { for (let i = 0; i < 10; i++) logs.get('ike').info({ n: i }, 'again'); }, 100);
    setTimeout(() => { process.stderr.write('dropped ' + logs.dropped()); process.exit(0); }, 300);
  `;
  const full = openSync('/dev/full', 'w');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8', timeout: 20_000 });
  closeSync(full);
  assert.equal(r.signal, null, 'not killed by the timeout: it did not hang');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^dropped \d+$/);
});

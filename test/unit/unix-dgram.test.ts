/**
 * src/net/unix-dgram.ts: two sockets in a temporary folder exchange datagrams (1 byte to 65535
 * bytes, with the sender's path), a send to a missing path fails with ENOENT and the path in the
 * message, a stale socket file is replaced by bind, another file is not, the socket gets mode
 * 0660, and close() removes the socket file. A receiver that stops reading (a paused child process,
 * test/helpers/pausable-receiver.ts) fills up: sends to it wait in our queue, in order, while the
 * socket goes on receiving without spinning the CPU, and all arrive once it reads again; our queue
 * is bounded in length (ENOBUFS) and in time (ETIMEDOUT), and close() rejects what waits. With
 * `receiveThread` the socket is read by a thread of its own: a child process's paced sends all go
 * through while the event loop is blocked (with the kernel's queue of 10 datagrams they could not
 * without it), and a process exiting with such a socket open exits with its own code.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { UNIX_DGRAM_MAX, UnixDgramError, UnixDgramSocket, unixDgramUnavailable } from '../../src/net/unix-dgram.ts';
import { startPausableReceiver } from '../helpers/pausable-receiver.ts';

const why = unixDgramUnavailable();

/** Collects datagrams; next() resolves with the next one (or rejects after ms). */
function inbox(s: UnixDgramSocket) {
  const got: { data: Buffer; from: string | undefined }[] = [];
  const waiters: (() => void)[] = [];
  s.on('message', (data, from) => {
    got.push({ data, from });
    for (const w of waiters.splice(0)) w();
  });
  let read = 0;
  return {
    got,
    async next(ms = 2000): Promise<{ data: Buffer; from: string | undefined }> {
      const deadline = Date.now() + ms;
      while (got.length <= read) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no datagram within ${ms} ms`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return got[read++]!;
    },
  };
}

describe('unix datagram sockets', { skip: why ?? false }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'viked-udg-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('two sockets exchange datagrams up to 65535 bytes, with the sender path', async () => {
    const a = new UnixDgramSocket();
    const b = new UnixDgramSocket();
    try {
      const pa = join(dir, 'a.sock');
      const pb = join(dir, 'b.sock');
      a.bind(pa);
      b.bind(pb);
      assert.equal(a.path, pa);
      assert.equal(statSync(pa).mode & 0o777, 0o660, 'socket mode 0660');
      assert.ok(statSync(pb).isSocket());
      const inA = inbox(a);
      const inB = inbox(b);
      const sizes = [1, 100, 1500, 2048 + 8 + 14, 9000, 32768, UNIX_DGRAM_MAX];
      const sent = sizes.map((n) => randomBytes(n));
      for (const d of sent) await a.send(d, pb);
      for (const d of sent) {
        const m = await inB.next();
        assert.equal(m.data.length, d.length);
        assert.ok(m.data.equals(d), `${d.length} bytes arrive unchanged`);
        assert.equal(m.from, pa, 'the sender path is reported');
      }
      // and back, answering to the reported sender
      await b.send(Buffer.from('pong'), inB.got[0]!.from!);
      const back = await inA.next();
      assert.equal(back.data.toString(), 'pong');
      assert.equal(back.from, pb);
      // an empty datagram is a datagram too
      await a.send(Buffer.alloc(0), pb);
      assert.equal((await inB.next()).data.length, 0);
    } finally {
      a.close();
      b.close();
    }
  });

  test('an unbound sender has no path; a Uint8Array is sent as it is', async () => {
    const r = new UnixDgramSocket();
    const s = new UnixDgramSocket();
    try {
      const pr = join(dir, 'r.sock');
      r.bind(pr);
      const inR = inbox(r);
      await s.send(new Uint8Array([1, 2, 3]), pr);
      const m = await inR.next();
      assert.deepEqual([...m.data], [1, 2, 3]);
      assert.equal(m.from, undefined);
    } finally {
      r.close();
      s.close();
    }
  });

  test('sending to a missing path fails cleanly, naming the path; the socket still works', async () => {
    const s = new UnixDgramSocket();
    const r = new UnixDgramSocket();
    try {
      const missing = join(dir, 'nobody.sock');
      await assert.rejects(s.send(Buffer.from('x'), missing), (e: unknown) => {
        assert.ok(e instanceof UnixDgramError);
        assert.equal(e.code, 'ENOENT');
        assert.equal(e.path, missing);
        assert.ok(e.message.includes(missing), e.message);
        return true;
      });
      // a socket file without a reader behind it (its owner closed without removing it)
      const stale = join(dir, 'stale.sock');
      const gone = new UnixDgramSocket();
      gone.bind(stale);
      gone.close();
      assert.equal(existsSync(stale), false, 'close() removes the socket file');
      const pr = join(dir, 'ok.sock');
      r.bind(pr);
      const inR = inbox(r);
      await s.send(Buffer.from('still here'), pr);
      assert.equal((await inR.next()).data.toString(), 'still here');
    } finally {
      s.close();
      r.close();
    }
  });

  test('too long datagrams, abstract names and long paths are refused before sending', async () => {
    const s = new UnixDgramSocket();
    try {
      const p = join(dir, 'x.sock');
      await assert.rejects(s.send(Buffer.alloc(UNIX_DGRAM_MAX + 1), p), (e: unknown) => e instanceof UnixDgramError && e.code === 'EMSGSIZE' && e.message.includes(p));
      await assert.rejects(s.send(Buffer.from('x'), '@abstract'), (e: unknown) => e instanceof UnixDgramError && e.code === 'EAFNOSUPPORT');
      const long = join(dir, 'x'.repeat(120));
      await assert.rejects(s.send(Buffer.from('x'), long), (e: unknown) => e instanceof UnixDgramError && e.code === 'ENAMETOOLONG');
      assert.throws(() => s.bind('@abstract'), /abstract socket names are not supported/);
    } finally {
      s.close();
    }
    await assert.rejects(s.send(Buffer.from('x'), join(dir, 'y.sock')), /socket is closed/);
  });

  test('bind replaces a stale socket file, refuses another kind of file, and close releases the path', async () => {
    const p = join(dir, 'reuse.sock');
    const first = new UnixDgramSocket();
    first.bind(p);
    // the first owner "crashed": its file stays (simulated by binding again while it is open)
    const second = new UnixDgramSocket();
    second.bind(p);
    const inSecond = inbox(second);
    const s = new UnixDgramSocket();
    try {
      await s.send(Buffer.from('to the new owner'), p);
      assert.equal((await inSecond.next()).data.toString(), 'to the new owner');
      first.close();
      assert.ok(statSync(p).isSocket(), "closing the old owner leaves the new owner's socket file");
      await s.send(Buffer.from('again'), p);
      assert.equal((await inSecond.next()).data.toString(), 'again');
    } finally {
      first.close();
      second.close();
      s.close();
    }
    assert.equal(existsSync(p), false, 'the path is free after close');
    const third = new UnixDgramSocket();
    try {
      third.bind(p);
      assert.ok(statSync(p).isSocket(), 'the path can be bound again');
    } finally {
      third.close();
    }
    const file = join(dir, 'plain-file');
    writeFileSync(file, 'keep me');
    const f = new UnixDgramSocket();
    try {
      assert.throws(() => f.bind(file), (e: unknown) => e instanceof UnixDgramError && e.code === 'EEXIST' && e.message.includes(file));
      assert.ok(statSync(file).isFile(), 'the file is left alone');
    } finally {
      f.close();
    }
    const busy = new UnixDgramSocket();
    try {
      busy.bind(join(dir, 'b1.sock'));
      assert.throws(() => busy.bind(join(dir, 'b2.sock')), /already bound/);
    } finally {
      busy.close();
    }
    const nowhere = new UnixDgramSocket();
    try {
      assert.throws(() => nowhere.bind(join(dir, 'missing-dir', 'x.sock')), (e: unknown) => e instanceof UnixDgramError && e.message.includes('missing-dir'));
    } finally {
      nowhere.close();
    }
  });

  /** Sends tagged 1500-byte datagrams from `s` to `to` until one has to wait (at most `max`). */
  function fill(s: UnixDgramSocket, to: string, max = 2000): Promise<void>[] {
    const sends: Promise<void>[] = [];
    for (let i = 0; i < max && s.queued === 0; i++) {
      const d = Buffer.alloc(1500, 0xab);
      d.writeUInt32BE(i, 0);
      sends.push(s.send(d, to));
    }
    return sends;
  }

  function cpuMs(): number {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }

  test('a receiver that does not read: sends wait in order, receiving goes on, nothing spins', async (t) => {
    const pv = join(dir, 'slow-vpp.sock');
    const pa = join(dir, 'us.sock');
    const v = await startPausableReceiver(pv);
    const a = new UnixDgramSocket();
    const other = new UnixDgramSocket();
    t.after(async () => {
      a.close();
      other.close();
      await v.close();
    });
    a.bind(pa);
    const inA = inbox(a);
    const blocked: string[] = [];
    a.on('sendBlocked', (path) => blocked.push(path));
    v.pause();
    const sends = fill(a, pv);
    assert.ok(a.queued > 0, `the paused receiver's queue filled up after ${sends.length} datagrams`);
    for (let i = 0; i < 30; i++) {
      const d = Buffer.alloc(1500, 0xcd);
      d.writeUInt32BE(sends.length, 0);
      sends.push(a.send(d, pv));
    }
    const total = sends.length;
    assert.equal(a.sendStats.blocked, a.queued, 'every datagram that waits was counted as blocked');
    assert.ok(blocked.length >= 31 && blocked.every((p) => p === pv), 'sendBlocked names the receiver');
    // Still receiving while our sends wait.
    await other.send(Buffer.from('while blocked'), pa);
    assert.equal((await inA.next()).data.toString(), 'while blocked');
    const c0 = cpuMs();
    await new Promise((r) => setTimeout(r, 500));
    const spent = cpuMs() - c0;
    assert.ok(spent < 200, `${spent.toFixed(0)} ms of CPU in 500 ms while sends wait (a spinning socket takes about all of it)`);
    v.resume();
    await Promise.all(sends);
    await v.until(total);
    assert.deepEqual(v.got.map((g) => g.tag), Array.from({ length: total }, (_, i) => i), 'every datagram arrived once, in order');
    assert.ok(v.got.every((g) => g.len === 1500), 'whole datagrams');
    assert.equal(v.got[0]!.from, pa, 'the first ones with our path as the sender');
    assert.equal(a.queued, 0);
    assert.equal(a.sendStats.timedOut + a.sendStats.queueFull, 0);
    // Still receiving afterwards, and idle.
    await other.send(Buffer.from('after'), pa);
    assert.equal((await inA.next()).data.toString(), 'after');
    const c1 = cpuMs();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(cpuMs() - c1 < 120, `idle once the queue drained (${(cpuMs() - c1).toFixed(0)} ms of CPU in 300 ms)`);
    t.diagnostic(`${total} datagrams, ${a.sendStats.blocked} waited; ${spent.toFixed(0)} ms CPU in 500 ms while blocked`);
  });

  test('our queue is bounded: ENOBUFS beyond its length, ETIMEDOUT after its time, EBADF at close', async (t) => {
    const pv = join(dir, 'stuck.sock');
    const v = await startPausableReceiver(pv);
    t.after(() => v.close());
    v.pause();
    const a = new UnixDgramSocket({ sendQueueLimit: 5, sendWaitMs: 300 });
    try {
      const sends = fill(a, pv);
      const first = sends.length - 1;
      const more = [0, 1, 2, 3].map(() => a.send(Buffer.alloc(1500), pv));
      const refused = a.send(Buffer.alloc(1500), pv);
      await assert.rejects(refused, (e: unknown) => e instanceof UnixDgramError && e.code === 'ENOBUFS' && e.message.includes(pv));
      assert.equal(a.sendStats.queueFull, 1);
      const t0 = Date.now();
      for (const p of [sends[first]!, ...more]) {
        await assert.rejects(p, (e: unknown) => e instanceof UnixDgramError && e.code === 'ETIMEDOUT');
      }
      assert.ok(Date.now() - t0 >= 250, 'given up after the wait time');
      assert.equal(a.sendStats.timedOut, 5);
      assert.equal(a.queued, 0);
      // close() while one waits
      const waiting = a.send(Buffer.alloc(1500), pv);
      assert.equal(a.queued, 1);
      a.close();
      await assert.rejects(waiting, (e: unknown) => e instanceof UnixDgramError && e.code === 'EBADF');
    } finally {
      a.close();
    }
  });

  test('setSendLimits: a stopping daemon keeps every datagram waiting, longer; all go once the receiver reads', async (t) => {
    const pv = join(dir, 'stop-vpp.sock');
    const v = await startPausableReceiver(pv);
    t.after(() => v.close());
    v.pause();
    const a = new UnixDgramSocket({ sendQueueLimit: 3, sendWaitMs: 100 });
    try {
      const sends = fill(a, pv);
      a.setSendLimits(10_000, 5_000);
      for (let i = 0; i < 50; i++) {
        const d = Buffer.alloc(1500, 0xab);
        d.writeUInt32BE(sends.length, 0);
        sends.push(a.send(d, pv));
      }
      const total = sends.length;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(a.sendStats.queueFull + a.sendStats.timedOut, 0, 'none refused beyond the old limit, none given up after the old wait');
      assert.ok(a.queued >= 50);
      v.resume();
      await Promise.all(sends);
      await v.until(total);
      assert.deepEqual(v.got.map((g) => g.tag), Array.from({ length: total }, (_, i) => i), 'every datagram arrived once, in order');
    } finally {
      a.close();
    }
  });

  test('receiveThread: a thread reads while the event loop is blocked; bind, close and the sender path as on the loop', async () => {
    const pr = join(dir, 'thr.sock');
    const r = new UnixDgramSocket({ receiveThread: true });
    const tx = new UnixDgramSocket();
    try {
      r.bind(pr);
      assert.equal(statSync(pr).mode & 0o777, 0o660);
      const inR = inbox(r);
      const ptx = join(dir, 'thr-tx.sock');
      tx.bind(ptx);
      await tx.send(Buffer.from('hello'), pr);
      const m = await inR.next();
      assert.equal(m.data.toString(), 'hello');
      assert.equal(m.from, ptx, 'the sender path is reported');

      // A child sends 100 datagrams 2 ms apart, each waiting for room when the queue is full; it
      // prints the time it finished. Our event loop is blocked for 1.5 s meanwhile: only a socket
      // read by another thread lets the child finish before the block ends (the kernel queues 10).
      const N = 100;
      const child = spawn(process.execPath, ['--input-type=module', '-e', SENDER, pr, String(N)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | null>((res) => child.on('exit', res));
      // wait for the child to start sending (it says so), then block
      for (let i = 0; i < 200 && !out.includes('sending'); i++) await new Promise((res) => setTimeout(res, 25));
      assert.ok(out.includes('sending'), `sender did not start: ${err}`);
      const blockEnd = Date.now() + 1500;
      while (Date.now() < blockEnd) {
        // the event loop does nothing else
      }
      assert.equal(await exited, 0, err);
      const finished = Number(/finished (\d+)/.exec(out)?.[1]);
      assert.ok(finished < blockEnd, `the sender finished ${finished - blockEnd} ms after the event loop was free again: the thread did not read`);
      for (let i = 0; i < N; i++) {
        const d = await inR.next();
        assert.equal(d.data.readUInt32BE(0), i, 'in order, none lost');
      }
    } finally {
      r.close();
      tx.close();
    }
    assert.ok(!existsSync(pr), 'close() removes the socket file');
  });

  test('receiveThread: a bind that fails says why, a closed socket is not bound again; the hand-over to the event loop is bounded', async () => {
    // a bind that fails (a folder that does not exist) says why; the socket can still be bound; once
    // closed it is not bound again
    const bad = new UnixDgramSocket({ receiveThread: true });
    try {
      assert.throws(() => bad.bind(join(dir, 'no-such-folder', 'x.sock')), (e: unknown) => e instanceof UnixDgramError && /No such file/i.test(e.message));
      bad.bind(join(dir, 'again.sock'));
    } finally {
      bad.close();
    }
    assert.throws(() => bad.bind(join(dir, 'again2.sock')), /closed/);

    // at most 20 handed on while the event loop is blocked: the rest dropped, counted
    const pr = join(dir, 'bounded.sock');
    const r = new UnixDgramSocket({ receiveThread: true, receiveQueueLimit: 20 });
    try {
      r.bind(pr);
      const got: number[] = [];
      r.on('message', (d) => got.push(d.readUInt32BE(0)));
      const N = 100;
      const child = spawn(process.execPath, ['--input-type=module', '-e', SENDER, pr, String(N)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((res) => child.on('exit', res));
      for (let i = 0; i < 200 && !out.includes('sending'); i++) await new Promise((res) => setTimeout(res, 25));
      const blockEnd = Date.now() + 1500;
      while (Date.now() < blockEnd) {
        // the event loop takes nothing
      }
      assert.equal(await exited, 0);
      for (let i = 0; i < 100 && got.length + r.receiveDropped < N; i++) await new Promise((res) => setTimeout(res, 20));
      assert.equal(got.length + r.receiveDropped, N, `${got.length} received and ${r.receiveDropped} dropped of ${N}`);
      assert.ok(r.receiveDropped > 0, 'some were dropped');
      assert.ok(got.length >= 20, `${got.length} received: the 20 handed on first, at least`);
      assert.deepEqual(got, [...got].sort((a, b) => a - b), 'in order');
    } finally {
      r.close();
    }
  });

  test('receiveThread: a process exits with its own code, the socket open or closed, its other sockets closed after', () => {
    const pr = join(dir, 'exit.sock');
    const head = `import { UnixDgramSocket } from ${JSON.stringify(MODULE)};
const s = new UnixDgramSocket({ receiveThread: true });
s.bind(process.argv[1]);
`;
    const scenarios: Record<string, string> = {
      'exit with the socket open': `setTimeout(() => process.exit(7), 50);`,
      'close, then exit at once': `s.close();\nprocess.exit(7);`,
      // as the daemon stops: the punt socket first, then its other sockets (systemd's notify socket)
      'close, then another socket used and closed, then exit': `const other = new UnixDgramSocket();
await new Promise((r) => setTimeout(r, 20));
s.close();
await new Promise((r) => setTimeout(r, 50));
await other.send(Buffer.from('x'), process.argv[1] + '.none').catch(() => {});
other.close();
process.exit(7);`,
    };
    for (const [name, tail] of Object.entries(scenarios)) {
      for (let i = 0; i < 3; i++) {
        const r = spawnSync(process.execPath, ['--input-type=module', '-e', head + tail, pr], { encoding: 'utf8', timeout: 20_000 });
        assert.equal(r.status, 7, `${name}: exit code ${r.status} (signal ${r.signal}): ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /Assertion|Aborted|open handles/, name);
      }
    }
  });
});

const MODULE = fileURLToPath(new URL('../../src/net/unix-dgram.ts', import.meta.url));

/** Sends argv[2] numbered datagrams to argv[1], 2 ms apart (each waits for room when the receiver is full). */
const SENDER = `import { UnixDgramSocket } from ${JSON.stringify(fileURLToPath(new URL('../../src/net/unix-dgram.ts', import.meta.url)))};
const [path, n] = [process.argv[1], Number(process.argv[2])];
const s = new UnixDgramSocket({ sendWaitMs: 20000 });
process.stdout.write('sending\\n');
for (let i = 0; i < n; i++) {
  const b = Buffer.alloc(300);
  b.writeUInt32BE(i, 0);
  await s.send(b, path);
  await new Promise((r) => setTimeout(r, 2));
}
process.stdout.write('finished ' + Date.now() + '\\n');
s.close();
`;

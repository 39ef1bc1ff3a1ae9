/**
 * src/net/unix-dgram.ts: two sockets in a temporary folder exchange datagrams (1 byte to 65535
 * bytes, with the sender's path), a send to a missing path fails with ENOENT and the path in the
 * message, a stale socket file is replaced by bind, another file is not, the socket gets mode
 * 0660, and close() removes the socket file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { UNIX_DGRAM_MAX, UnixDgramError, UnixDgramSocket, unixDgramUnavailable } from '../../src/net/unix-dgram.ts';

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
});

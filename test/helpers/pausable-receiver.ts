/**
 * A unix datagram receiver in a child process that a test can pause: SIGSTOP and it reads nothing,
 * so its socket's queue fills up (net.unix.max_dgram_qlen datagrams, or the sender's buffer) and
 * further sends find it full, as with a VPP whose punt socket is not read fast enough. SIGCONT and
 * it reads everything again. It reports every datagram (length, first and last 4 bytes as numbers,
 * sender path) to the test over its stdout.
 *
 *   const r = await startPausableReceiver(path);
 *   r.pause();  ...  r.resume();  await r.until(40);  r.got[0].from
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../src/net/unix-dgram.ts', import.meta.url));

const CHILD = `
import { UnixDgramSocket } from ${JSON.stringify(MODULE)};
const s = new UnixDgramSocket();
s.bind(process.argv[1]);
s.on('message', (d, from) => process.stdout.write(JSON.stringify({ len: d.length, tag: d.length >= 4 ? d.readUInt32BE(0) : -1, end: d.length >= 4 ? d.readUInt32BE(d.length - 4) : -1, from: from ?? null }) + '\\n'));
process.stdout.write('ready\\n');
process.stdin.on('end', () => { s.close(); process.exit(0); });
process.stdin.resume();
`;

export interface Received {
  len: number;
  /** The datagram's first 4 bytes (big-endian), -1 when shorter. */
  tag: number;
  /** The datagram's last 4 bytes (big-endian), -1 when shorter. */
  end: number;
  from: string | null;
}

export interface PausableReceiver {
  readonly got: Received[];
  readonly pid: number;
  pause(): void;
  resume(): void;
  /** Resolves once `n` datagrams have arrived in all; rejects after ms. */
  until(n: number, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startPausableReceiver(path: string): Promise<PausableReceiver> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  const got: Received[] = [];
  let buf = '';
  let ready: () => void = () => {};
  const readyP = new Promise<void>((r) => (ready = r));
  const waiters = new Set<() => void>();
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line === 'ready') ready();
      else if (line !== '') got.push(JSON.parse(line) as Received);
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await Promise.race([readyP, exited.then(() => Promise.reject(new Error('the receiver process exited before it was ready')))]);
  let paused = false;
  return {
    got,
    pid: child.pid!,
    pause() {
      child.kill('SIGSTOP');
      paused = true;
    },
    resume() {
      child.kill('SIGCONT');
      paused = false;
    },
    until(n: number, ms = 5000): Promise<void> {
      if (got.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${got.length} of ${n} datagrams arrived within ${ms} ms`));
        }, ms);
        const check = (): void => {
          if (got.length < n) return;
          clearTimeout(t);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      });
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (paused) child.kill('SIGCONT');
      child.stdin.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    },
  };
}

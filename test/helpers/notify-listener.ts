/**
 * A stand-in for systemd's notification socket: a unix datagram socket bound by a small python3
 * process (Node cannot bind AF_UNIX datagram sockets). Each datagram is parsed into its KEY=VALUE
 * assignments. BARRIER=1 datagrams (systemd-notify's synchronisation) are answered the way systemd
 * answers them: the file descriptor they carry is closed, which here happens because the listener
 * reads without ancillary data.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NotifyMessage {
  /** Arrival time (ms, Date.now()). */
  at: number;
  fields: Record<string, string>;
}

export interface NotifyListener {
  /** The socket path, for NOTIFY_SOCKET. */
  readonly path: string;
  /** Messages so far, without BARRIER=1 ones. */
  messages(): NotifyMessage[];
  /** Resolves with the first message (from index `from` on) that matches, or rejects after timeoutMs. */
  waitFor(pred: (m: NotifyMessage) => boolean, timeoutMs?: number, from?: number): Promise<NotifyMessage>;
  close(): Promise<void>;
}

const PY = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print('"ready"', flush=True)
while True:
    d = s.recv(65536)
    print(json.dumps(d.decode('utf-8', 'replace')), flush=True)
`;

/** Why the listener cannot run here, or undefined when it can. */
export function notifyListenerUnavailable(): string | undefined {
  const py = spawnSync('python3', ['-c', 'import socket; socket.AF_UNIX'], { stdio: 'ignore' });
  if (py.error || py.status !== 0) return 'python3 (used to bind a unix datagram socket) is not installed';
  const sn = spawnSync('systemd-notify', ['--help'], { stdio: 'ignore' });
  if (sn.error) return 'systemd-notify is not installed';
  return undefined;
}

export async function startNotifyListener(): Promise<NotifyListener> {
  const dir = mkdtempSync(join(tmpdir(), 'viked-notify-'));
  const path = join(dir, 'notify.sock');
  const child = spawn('python3', ['-c', PY, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const msgs: NotifyMessage[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  let stderr = '';
  let ready!: () => void;
  let failed!: (e: Error) => void;
  const up = new Promise<void>((res, rej) => {
    ready = res;
    failed = rej;
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr += d));
  child.on('error', (e) => failed(e));
  child.on('close', (code) => failed(new Error(`notify listener exited ${code}: ${stderr}`)));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!line) continue;
      const text = JSON.parse(line) as string;
      if (text === 'ready') {
        ready();
        continue;
      }
      const fields: Record<string, string> = {};
      for (const a of text.split('\n')) {
        const eq = a.indexOf('=');
        if (eq > 0) fields[a.slice(0, eq)] = a.slice(eq + 1);
      }
      if (fields.BARRIER === '1') continue;
      msgs.push({ at: Date.now(), fields });
      for (const w of [...waiters]) w();
    }
  });
  const timer = setTimeout(() => failed(new Error('notify listener did not start')), 5000);
  try {
    await up;
  } finally {
    clearTimeout(timer);
  }
  return {
    path,
    messages: () => [...msgs],
    waitFor(pred, timeoutMs = 10_000, from = 0): Promise<NotifyMessage> {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          for (let i = from; i < msgs.length; i++) {
            if (pred(msgs[i]!)) {
              waiters.delete(check);
              clearTimeout(t);
              resolve(msgs[i]!);
              return true;
            }
          }
          return false;
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching notification within ${timeoutMs} ms; got ${JSON.stringify(msgs.map((m) => m.fields))}`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    async close(): Promise<void> {
      child.removeAllListeners('close');
      const gone = new Promise<void>((r) => child.once('close', () => r()));
      child.kill('SIGTERM');
      await gone;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

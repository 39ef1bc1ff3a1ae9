/**
 * A stand-in for systemd's notification socket: a unix datagram socket (src/net/unix-dgram.ts)
 * bound in a temporary folder. Each datagram is parsed into its KEY=VALUE assignments, one per line,
 * as systemd reads them. BARRIER=1 datagrams (a synchronisation request, not a state change) are not
 * recorded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnixDgramSocket, unixDgramUnavailable } from '../../src/net/unix-dgram.ts';

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

/** Why the listener cannot run here, or undefined when it can. */
export function notifyListenerUnavailable(): string | undefined {
  return unixDgramUnavailable();
}

export async function startNotifyListener(): Promise<NotifyListener> {
  const dir = mkdtempSync(join(tmpdir(), 'viked-notify-'));
  const path = join(dir, 'notify.sock');
  const sock = new UnixDgramSocket();
  try {
    sock.bind(path);
  } catch (e) {
    sock.close();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const msgs: NotifyMessage[] = [];
  const waiters = new Set<() => void>();
  sock.on('message', (data) => {
    const fields: Record<string, string> = {};
    for (const a of data.toString('utf8').split('\n')) {
      const eq = a.indexOf('=');
      if (eq > 0) fields[a.slice(0, eq)] = a.slice(eq + 1);
    }
    if (fields.BARRIER === '1') return;
    msgs.push({ at: Date.now(), fields });
    for (const w of [...waiters]) w();
  });
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
      sock.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

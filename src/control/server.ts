/**
 * The control socket: a unix stream socket (mode 0660) speaking newline-delimited JSON.
 * Request:  {"cmd": "list-sas", "args": {...}}
 * Replies:  zero or more {"item": ...} lines (streamed, e.g. one per IKE SA), then one final line
 *           {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
 * `monitor` keeps the connection open and sends {"event": ...} lines until the client closes it.
 */
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

export interface Reply {
  /** Send one streamed item; resolves when the socket can take more (backpressure). */
  item(x: unknown): Promise<void>;
  /** Send an event line (monitor). */
  event(x: unknown): void;
  /** Called when the client goes away. */
  onClose(f: () => void): void;
  readonly closed: boolean;
}

export type Handler = (args: Record<string, unknown>, reply: Reply) => Promise<unknown>;

const MAX_REQUEST = 64 * 1024;
/** Bytes of unread events after which a monitor connection is closed. */
const MAX_EVENT_BACKLOG = 4 * 1024 * 1024;

export class ControlServer {
  private server: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  private readonly handlers: Map<string, Handler>;
  private readonly log: Logger;
  readonly path: string;

  constructor(socketPath: string, handlers: Map<string, Handler>, log: Logger) {
    this.path = socketPath;
    this.handlers = handlers;
    this.log = log;
  }

  async start(): Promise<void> {
    fs.mkdirSync(path.dirname(this.path), { recursive: true, mode: 0o750 });
    try {
      const st = fs.lstatSync(this.path);
      if (st.isSocket()) {
        // A socket left by a previous run: refuse if a live daemon still answers on it.
        const live = await new Promise<boolean>((resolve) => {
          const c = net.connect(this.path);
          c.once('connect', () => {
            c.destroy();
            resolve(true);
          });
          c.once('error', () => resolve(false));
        });
        if (live) throw new Error(`control socket ${this.path} is in use by another daemon`);
        fs.unlinkSync(this.path);
      } else throw new Error(`control socket path ${this.path} exists and is not a socket`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.server = net.createServer((s) => this.onConnection(s));
    const old = process.umask(0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', reject);
        this.server!.listen(this.path, () => {
          this.server!.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    fs.chmodSync(this.path, 0o660);
  }

  private onConnection(sock: net.Socket): void {
    this.conns.add(sock);
    let buf = '';
    let busy = false;
    const closers: (() => void)[] = [];
    let closed = false;
    sock.setEncoding('utf8');
    sock.on('close', () => {
      closed = true;
      this.conns.delete(sock);
      for (const f of closers) f();
    });
    sock.on('error', () => {});
    const write = (o: unknown): Promise<void> =>
      new Promise((resolve) => {
        if (closed) return resolve();
        if (sock.write(JSON.stringify(o) + '\n')) resolve();
        else sock.once('drain', () => resolve());
      });
    const reply: Reply = {
      item: (x) => write({ item: x }),
      event: (x) => {
        // A monitor that does not read is dropped rather than buffered without bound.
        if (sock.writableLength > MAX_EVENT_BACKLOG) {
          sock.destroy();
          return;
        }
        if (!closed) sock.write(JSON.stringify({ event: x }) + '\n');
      },
      onClose: (f) => closers.push(f),
      get closed() {
        return closed;
      },
    };
    const handleLine = async (line: string): Promise<void> => {
      let req: { cmd?: unknown; args?: unknown };
      try {
        req = JSON.parse(line) as { cmd?: unknown; args?: unknown };
      } catch {
        await write({ ok: false, error: 'request is not valid JSON' });
        return;
      }
      const cmd = typeof req.cmd === 'string' ? req.cmd : '';
      const h = this.handlers.get(cmd);
      if (!h) {
        await write({ ok: false, error: `unknown command '${cmd}'` });
        return;
      }
      const args = req.args && typeof req.args === 'object' ? (req.args as Record<string, unknown>) : {};
      try {
        const result = await h(args, reply);
        await write({ ok: true, result: result ?? null });
      } catch (e) {
        await write({ ok: false, error: e instanceof Error ? e.message : String(e) });
      }
    };
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        void write({ ok: false, error: 'request too large' }).then(() => sock.end());
        buf = '';
        return;
      }
      if (busy) return;
      void (async () => {
        busy = true;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) await handleLine(line);
        }
        busy = false;
      })().catch((e: unknown) => this.log.warn({ err: String(e) }, 'control connection error'));
    });
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    try {
      fs.unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

/** Client side: send one request, collect streamed items and the final result. */
export async function controlRequest(
  socketPath: string,
  cmd: string,
  args: Record<string, unknown> = {},
  onItem?: (x: unknown) => void,
  onEvent?: (x: unknown) => void,
  timeoutMs = 60_000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from ${socketPath} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    if (onEvent) clearTimeout(timer);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify({ cmd, args }) + '\n'));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? `vpp-iked is not running (no control socket at ${socketPath})` : `control socket ${socketPath}: ${e.message}`));
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const m = JSON.parse(line) as { item?: unknown; event?: unknown; ok?: boolean; result?: unknown; error?: string };
        if ('item' in m) onItem?.(m.item);
        else if ('event' in m) onEvent?.(m.event);
        else {
          clearTimeout(timer);
          sock.end();
          if (m.ok) resolve(m.result);
          else reject(new Error(m.error ?? 'request failed'));
        }
      }
    });
    sock.on('close', () => {
      clearTimeout(timer);
      reject(new Error('control connection closed'));
    });
  });
}

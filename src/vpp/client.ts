/**
 * A client for VPP's binary API over its UNIX stream socket (`socksvr`, default /run/vpp/api.sock).
 *
 * - Framing: every message has a 16-byte header whose bytes 8–11 hold the payload length
 *   (big-endian); the payload is the packed, big-endian message.
 * - Connect: `sockclnt_create` (message id 15) → `sockclnt_create_reply` (16) with the client handle
 *   and VPP's message table (name_crc → id). Every message vpp-iked uses must be in that table with
 *   the CRC it was generated with; otherwise connect() fails and names the messages. Messages the
 *   definitions mark `optional` may be missing; requests for them then reject with
 *   VppCompatibilityError.
 * - Requests are matched to replies by `context`; any number may be in flight (up to
 *   `maxInFlight`, the rest wait in a queue). Dumps are followed by `control_ping`; the details
 *   that arrive before the ping's reply are the dump's result: stream() hands them over one by
 *   one as they arrive, dump() collects them.
 * - Events (messages without a context, e.g. sw_interface_event) go to subscribers.
 * - A reply with retval ≠ 0 rejects with VppApiError (message name, code and VPP's error name).
 * - Health: control_ping every `healthCheckMs` when the socket has been quiet; a connection that
 *   stops answering is dropped. After the socket closes the client reconnects with backoff and emits
 *   'disconnected' / 'connected' (with `{ reconnect: true }`). Requests in flight or queued when the
 *   connection drops, and requests made while it is down, reject with VppDisconnectedError.
 *
 * - The bytes go over a VppTransport: VPP's UNIX socket unless the options name another.
 *
 * Self-contained: depends only on node: modules and the files in this directory.
 */

import { EventEmitter } from 'node:events';
import { vppCodec, VPP_MESSAGES, VPP_SERVICES } from './api.ts';
import type { VppDetailsOf, VppDumpName, VppMessageName, VppMessageTypes, VppReplyOf, VppRequestBody, VppRequestName } from './api.ts';
import { VppCodecError } from './codec.ts';
import { nameCrc, type VppMessageDef } from './schema.ts';
import { unixSocketTransport, type VppConnection, type VppTransport, type VppTransportHandlers } from './transport.ts';

import { NOOP_LOGGER, VppApiError, VppCompatibilityError, VppDisconnectedError, VppProtocolError, VppTimeoutError, DEFAULT_VPP_API_SOCKET, VPP_EXPECTED_VERSION } from './client-types.ts';
import type { VppClientOptions, VppClientStats, VppConnectedInfo, VppLogger, VppRequestOptions } from './client-types.ts';
import { DetailsStream, type DetailsSink } from './details-stream.ts';

/** sockclnt_create and its reply have fixed ids: memclnt is always registered first. */
const SOCKCLNT_CREATE_ID = 15;
const SOCKCLNT_CREATE_REPLY_ID = 16;
const HEADER_SIZE = 16;
/** Largest payload accepted from VPP (a full get_api_json is a few MB). */
const MAX_PAYLOAD = 64 * 1024 * 1024;

export {
  VPP_EXPECTED_VERSION,
  DEFAULT_VPP_API_SOCKET,
  VppApiError,
  VppCompatibilityError,
  VppTimeoutError,
  VppDisconnectedError,
  VppProtocolError,
} from './client-types.ts';
export type { VppLogger, VppClientOptions, VppConnectedInfo, VppClientStats, VppRequestOptions } from './client-types.ts';

type Obj = Record<string, unknown>;

interface Pending {
  context: number;
  name: string;
  reply: string;
  /** For dumps: the details message name, and where the details go. */
  details: string | undefined;
  sink: DetailsSink | undefined;
  /** For the control_ping that ends a dump: the dump's context. */
  endsDump: number;
  /** For a dump: the context of its control_ping. */
  pingContext: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
  timeoutMs: number;
  allow: readonly number[] | undefined;
  frame: Buffer | undefined;
  /** Counts against maxInFlight (true once written). */
  sent: boolean;
}

const EVENT_NAMES: ReadonlySet<string> = new Set(
  Object.values(VPP_SERVICES).flatMap((s) => ('events' in s ? [...(s.events as readonly string[])] : [])),
);

function timeoutFired(p: Pending, client: VppClient): void {
  client.expire(p);
}

export class VppClient extends EventEmitter {
  readonly socketPath: string;
  private readonly opts: Required<Omit<VppClientOptions, 'socket' | 'logger' | 'transport'>>;
  private readonly log: VppLogger;
  private readonly transport: VppTransport;
  private conn: VppConnection | undefined;
  /** The connection of a connect attempt whose handshake is still running. */
  private handshakeConn: VppConnection | undefined;
  private rx: Buffer = Buffer.alloc(0);
  /** name_crc → id (VPP's table) and our message name → id. */
  private idByName = new Map<string, number>();
  private idByMsg = new Map<string, number>();
  private nameById = new Map<number, string>();
  private ctxOffById = new Map<number, number>();
  private pending = new Map<number, Pending>();
  private queue: Pending[] = [];
  private queueHead = 0;
  private inFlight = 0;
  private nextContext = 1;
  private handle = 0;
  private isConnected = false;
  private closing = false;
  private everConnected = false;
  private reconnectDelay: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private lastRx = 0;
  private corked = false;
  private version: string | undefined;
  private readonly counters = { sent: 0, received: 0, timeouts: 0, errors: 0, reconnects: 0 };
  private readonly subscribers = new Map<string, Set<(msg: unknown) => void>>();

  constructor(options: VppClientOptions = {}) {
    super();
    this.socketPath = options.socket ?? DEFAULT_VPP_API_SOCKET;
    this.log = options.logger ?? NOOP_LOGGER;
    this.transport = options.transport ?? unixSocketTransport(this.socketPath);
    this.opts = {
      clientName: options.clientName ?? 'vpp-iked',
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      reconnect: options.reconnect ?? true,
      reconnectMinMs: options.reconnectMinMs ?? 100,
      reconnectMaxMs: options.reconnectMaxMs ?? 5_000,
      healthCheckMs: options.healthCheckMs ?? 5_000,
      maxInFlight: Math.max(1, options.maxInFlight ?? 512),
    };
    this.reconnectDelay = this.opts.reconnectMinMs;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /** The handle VPP gave this client (goes into every request's client_index). */
  get clientIndex(): number {
    return this.handle;
  }

  /** VPP's version string from the last connect, if known. */
  get vppVersion(): string | undefined {
    return this.version;
  }

  get stats(): VppClientStats {
    return { ...this.counters, inFlight: this.inFlight, queued: this.queue.length - this.queueHead };
  }

  /** The message id VPP assigned to one of our messages in this connection. */
  messageId(name: VppMessageName): number | undefined {
    return this.idByName.get(nameCrc(VPP_MESSAGES[name]));
  }

  /**
   * Connects and performs the handshake and compatibility check. Rejects with
   * VppCompatibilityError when VPP lacks our messages (no reconnect is attempted then), or with
   * the socket error. When `reconnect` is on, a failed first attempt is not retried by itself:
   * call connect() again or use start().
   */
  async connect(): Promise<VppConnectedInfo> {
    if (this.isConnected) throw new Error('already connected');
    this.closing = false;
    return this.openOnce();
  }

  /**
   * Connects, retrying with backoff until it works (or close() is called). Compatibility errors
   * are not retried.
   */
  async start(): Promise<VppConnectedInfo> {
    this.closing = false;
    for (;;) {
      try {
        return await this.openOnce();
      } catch (e) {
        if (e instanceof VppCompatibilityError || this.closing || !this.opts.reconnect) throw e;
        this.log.warn({ err: (e as Error).message, socket: this.socketPath }, 'VPP not reachable, retrying');
        await new Promise((r) => setTimeout(r, this.nextBackoff()));
        if (this.closing) throw new VppDisconnectedError('client closed');
      }
    }
  }

  private nextBackoff(): number {
    const d = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.opts.reconnectMaxMs, this.reconnectDelay * 2);
    return Math.round(d * (0.8 + Math.random() * 0.4));
  }

  private openOnce(): Promise<VppConnectedInfo> {
    if (this.closing) return Promise.reject(new VppDisconnectedError('client closed'));
    return new Promise<VppConnectedInfo>((resolve, reject) => {
      let settled = false;
      let replied = false;
      let buf: Buffer = Buffer.alloc(0);
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.handshakeConn === conn) this.handshakeConn = undefined;
        conn.destroy();
        reject(err);
      };
      const onData = (chunk: Buffer): void => {
        if (replied || settled) return;
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        if (buf.length < HEADER_SIZE) return;
        const len = buf.readUInt32BE(8);
        if (len > MAX_PAYLOAD) return fail(new VppProtocolError(`handshake reply of ${len} bytes`));
        if (buf.length < HEADER_SIZE + len) return;
        replied = true;
        let reply: VppMessageTypes['sockclnt_create_reply'];
        try {
          const id = buf.readUInt16BE(HEADER_SIZE);
          if (id !== SOCKCLNT_CREATE_REPLY_ID) throw new VppProtocolError(`expected sockclnt_create_reply (16), got message ${id}`);
          reply = vppCodec.decode('sockclnt_create_reply', buf, HEADER_SIZE, HEADER_SIZE + len);
        } catch (e) {
          return fail(e instanceof VppCodecError ? new VppProtocolError(`bad sockclnt_create_reply: ${e.message}`) : (e as Error));
        }
        if (reply.response !== 0) return fail(new VppApiError('sockclnt_create', reply.response));
        if (this.closing) return fail(new VppDisconnectedError('client closed'));
        const rest = buf.subarray(HEADER_SIZE + len);
        const check = this.loadTable(reply.message_table);
        if (check) return fail(check);
        settled = true;
        clearTimeout(timer);
        if (this.handshakeConn === conn) this.handshakeConn = undefined;
        this.attach(conn, reply.index, rest);
        this.afterConnect().then(resolve, reject);
      };
      const handshake: VppTransportHandlers = {
        open: () => {
          const name = this.opts.clientName;
          const frame = vppCodec.encode('sockclnt_create', SOCKCLNT_CREATE_ID, { name }, HEADER_SIZE, { context: 0x7fffffff });
          frame.writeUInt32BE(frame.length - HEADER_SIZE, 8);
          conn.write(frame);
        },
        data: onData,
        close: (err) => fail(err ?? new VppDisconnectedError('VPP closed the connection during the handshake')),
      };
      const timer = setTimeout(() => fail(new VppTimeoutError('sockclnt_create', this.opts.connectTimeoutMs)), this.opts.connectTimeoutMs);
      const conn = this.transport.connect(handshake);
      // close() during the handshake destroys this connection, which fails the attempt.
      this.handshakeConn = conn;
    });
  }

  /** Builds the id maps from VPP's table; returns the compatibility error, if any. */
  private loadTable(table: { index: number; name: string }[]): VppCompatibilityError | undefined {
    const byKey = new Map<string, number>();
    const crcByName = new Map<string, string>();
    for (const e of table) {
      byKey.set(e.name, e.index);
      const m = /^(.*)_([0-9a-f]{8})$/.exec(e.name);
      if (m) crcByName.set(m[1]!, `0x${m[2]}`);
    }
    const missing: string[] = [];
    const mismatched: { name: string; ours: string; vpps: string }[] = [];
    const idByName = new Map<string, number>();
    const nameById = new Map<number, string>();
    const ctxOff = new Map<number, number>();
    for (const def of Object.values(VPP_MESSAGES) as VppMessageDef[]) {
      const key = nameCrc(def);
      const id = byKey.get(key);
      if (id === undefined) {
        if (def.optional) continue;
        const theirs = crcByName.get(def.name);
        if (theirs) mismatched.push({ name: def.name, ours: def.crc, vpps: theirs });
        else missing.push(def.name);
        continue;
      }
      idByName.set(key, id);
      nameById.set(id, def.name);
      ctxOff.set(id, contextOffset(def.name));
    }
    if (missing.length || mismatched.length) return new VppCompatibilityError(missing.sort(), mismatched);
    this.idByName = idByName;
    this.idByMsg = new Map([...nameById].map(([id, n]) => [n, id]));
    this.nameById = nameById;
    this.ctxOffById = ctxOff;
    return undefined;
  }

  private attach(conn: VppConnection, handle: number, rest: Buffer): void {
    this.conn = conn;
    this.handle = handle;
    this.rx = Buffer.alloc(0);
    this.isConnected = true;
    this.lastRx = Date.now();
    conn.setHandlers({
      open: noop,
      data: (chunk) => this.onData(chunk),
      close: (err) => {
        if (err) this.log.warn({ err: err.message }, 'VPP API socket error');
        this.onClose();
      },
    });
    if (rest.length > 0) this.onData(Buffer.from(rest));
    this.startHealth();
  }

  private async afterConnect(): Promise<VppConnectedInfo> {
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.reconnectDelay = this.opts.reconnectMinMs;
    try {
      const v = await this.request('show_version', {}, { timeoutMs: this.opts.connectTimeoutMs });
      this.version = v.version;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'show_version failed');
    }
    // close() (or a lost connection) while show_version was on the wire: not connected after all.
    if (this.closing || !this.isConnected) throw new VppDisconnectedError(this.closing ? 'client closed' : 'connection to VPP lost');
    const info: VppConnectedInfo = {
      reconnect,
      clientIndex: this.handle,
      messages: this.nameById.size,
      ...(this.version !== undefined ? { version: this.version } : {}),
    };
    if (reconnect) this.counters.reconnects++;
    this.log.info({ socket: this.socketPath, version: this.version, client_index: this.handle, reconnect }, 'connected to VPP');
    this.emit('connected', info);
    // Requests made before the first connection go out now.
    this.pump();
    return info;
  }

  // ---------------------------------------------------------------- sending

  /** Sends a request and resolves with its reply (rejects on retval ≠ 0, timeout or disconnect). */
  request<N extends VppRequestName>(name: N, body: VppRequestBody<N>, options?: VppRequestOptions): Promise<VppReplyOf<N>> {
    const svc = VPP_SERVICES[name] as { reply: string; stream?: true };
    if (svc.stream) return Promise.reject(new TypeError(`${name} is a dump; use dump()`));
    return this.enqueue(name, svc.reply, undefined, body as Obj, options) as Promise<VppReplyOf<N>>;
  }

  /**
   * Sends a dump followed by control_ping (when iteration starts) and yields the details messages one
   * by one as they arrive, ending at the ping's reply. Only details not yet taken are held, so a
   * loop that handles each one as it comes needs memory for a few socket reads, not for the whole
   * list (there is no backpressure: a loop that awaits slow work per item lets them pile up).
   * Leaving the loop early is fine: the rest of the dump is read and skipped, the connection stays
   * usable. A timeout or a lost connection rejects the next step after the details already there.
   */
  stream<N extends VppDumpName>(name: N, body: VppRequestBody<N>, options?: VppRequestOptions): AsyncIterableIterator<VppDetailsOf<N>> {
    return new DetailsStream<VppDetailsOf<N>>((sink) => {
      const svc = VPP_SERVICES[name] as { reply: string; stream?: true };
      if (!svc.stream) return Promise.reject(new TypeError(`${name} is not a dump; use request()`));
      return this.enqueue(name, 'control_ping_reply', svc.reply, body as Obj, options, sink);
    });
  }

  /** Sends a dump followed by control_ping and resolves with every details message before the ping reply. */
  async dump<N extends VppDumpName>(name: N, body: VppRequestBody<N>, options?: VppRequestOptions): Promise<VppDetailsOf<N>[]> {
    const out: VppDetailsOf<N>[] = [];
    for await (const d of this.stream(name, body, options)) out.push(d);
    return out;
  }

  /** Round trip of a control_ping in ms. */
  async ping(timeoutMs?: number): Promise<number> {
    const t0 = performance.now();
    await this.request('control_ping', {}, timeoutMs !== undefined ? { timeoutMs } : undefined);
    return performance.now() - t0;
  }

  /** Calls `fn` for every event message of this type (e.g. 'sw_interface_event'). Returns an unsubscribe function. */
  subscribe<N extends VppMessageName>(event: N, fn: (msg: VppMessageTypes[N]) => void): () => void {
    let set = this.subscribers.get(event);
    if (!set) {
      set = new Set();
      this.subscribers.set(event, set);
    }
    const f = fn as (msg: unknown) => void;
    set.add(f);
    return () => {
      set.delete(f);
    };
  }

  private allocContext(): number {
    // Skip 0 and contexts still waiting for their reply.
    do {
      this.nextContext = (this.nextContext + 1) >>> 0;
      if (this.nextContext === 0) this.nextContext = 1;
    } while (this.pending.has(this.nextContext));
    return this.nextContext;
  }

  private enqueue(
    name: string,
    reply: string,
    details: string | undefined,
    body: Obj,
    options: VppRequestOptions | undefined,
    sink?: DetailsSink,
  ): Promise<unknown> {
    if (this.closing) return Promise.reject(new VppDisconnectedError('client closed'));
    // While the connection is down requests fail at once: they were meant for the VPP that went
    // away (after a restart its ids and indices mean other things).
    if (!this.isConnected && this.everConnected) {
      return Promise.reject(new VppDisconnectedError(`${name}: not connected to VPP`));
    }
    if (this.isConnected && !this.idByMsg.has(name)) return Promise.reject(this.unsupported(name));
    return new Promise<unknown>((resolve, reject) => {
      const p: Pending = {
        context: 0,
        name,
        reply,
        details,
        sink,
        endsDump: 0,
        pingContext: 0,
        resolve,
        reject,
        timer: undefined,
        timeoutMs: options?.timeoutMs ?? this.opts.requestTimeoutMs,
        allow: options?.allowRetval,
        frame: undefined,
        sent: false,
      };
      try {
        // Encode now, so bad values reject at the call site; the context is patched in on send.
        p.frame = this.frameFor(name, body);
      } catch (e) {
        reject(e as Error);
        return;
      }
      this.queue.push(p);
      this.pump();
    });
  }

  /** The error for a request whose message the connected VPP does not have (an optional one). */
  private unsupported(name: string): VppCompatibilityError {
    return new VppCompatibilityError([name], [], this.version);
  }

  private frameFor(name: string, body: Obj): Buffer {
    const id = this.idByMsg.get(name) ?? 0;
    const frame = vppCodec.encode(name, id, body, HEADER_SIZE, { client_index: this.handle, context: 0 });
    frame.writeUInt32BE(frame.length - HEADER_SIZE, 8);
    return frame;
  }

  /** Writes queued requests while the window allows. */
  private pump(): void {
    if (!this.isConnected || !this.conn) return;
    const max = this.opts.maxInFlight;
    while (this.inFlight < max && this.queueHead < this.queue.length) {
      const p = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as Pending;
      this.send(p);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private send(p: Pending): void {
    const conn = this.conn!;
    let frame = p.frame!;
    p.frame = undefined;
    // Ids and client_index may differ from when the frame was encoded (reconnect): patch them.
    const id = this.idByMsg.get(p.name);
    if (id === undefined) {
      p.reject(this.unsupported(p.name));
      return;
    }
    frame.writeUInt16BE(id, HEADER_SIZE);
    const off = offsets(p.name);
    if (off.ci >= 0) frame.writeUInt32BE(this.handle, HEADER_SIZE + off.ci);
    p.context = this.allocContext();
    frame.writeUInt32BE(p.context, HEADER_SIZE + off.ctx);
    this.pending.set(p.context, p);
    p.sent = true;
    this.inFlight++;
    p.timer = setTimeout(timeoutFired, p.timeoutMs, p, this);
    this.cork(conn);
    conn.write(frame);
    this.counters.sent++;
    if (p.details !== undefined) {
      // The control_ping that ends the dump: same order, own context.
      const ping: Pending = {
        context: this.allocContext(),
        name: 'control_ping',
        reply: 'control_ping_reply',
        details: undefined,
        sink: undefined,
        endsDump: p.context,
        pingContext: 0,
        resolve: noop,
        reject: noop,
        timer: undefined,
        timeoutMs: 0,
        allow: undefined,
        frame: undefined,
        sent: false,
      };
      p.pingContext = ping.context;
      frame = vppCodec.encode('control_ping', this.idByMsg.get('control_ping')!, {}, HEADER_SIZE, {
        client_index: this.handle,
        context: ping.context,
      });
      frame.writeUInt32BE(frame.length - HEADER_SIZE, 8);
      this.pending.set(ping.context, ping);
      conn.write(frame);
      this.counters.sent++;
    }
  }

  private cork(conn: VppConnection): void {
    if (this.corked) return;
    this.corked = true;
    conn.cork();
    process.nextTick(uncork, this, conn);
  }

  /** @internal */
  uncorkNow(conn: VppConnection): void {
    this.corked = false;
    conn.uncork();
  }

  /** @internal Called by the per-request timer. */
  expire(p: Pending): void {
    if (this.pending.get(p.context) !== p) return;
    this.finish(p);
    this.counters.timeouts++;
    this.log.warn({ msg: p.name, context: p.context, timeout_ms: p.timeoutMs }, 'VPP request timed out');
    p.reject(new VppTimeoutError(p.name, p.timeoutMs));
  }

  /** Removes a request from the in-flight set (and its dump's ping). */
  private finish(p: Pending): void {
    this.pending.delete(p.context);
    if (p.pingContext !== 0) this.pending.delete(p.pingContext);
    if (p.timer) clearTimeout(p.timer);
    p.timer = undefined;
    if (p.sent) {
      p.sent = false;
      this.inFlight--;
    }
    this.pump();
  }

  // ---------------------------------------------------------------- receiving

  private onData(chunk: Buffer): void {
    this.lastRx = Date.now();
    let buf = this.rx.length === 0 ? chunk : Buffer.concat([this.rx, chunk]);
    let off = 0;
    while (buf.length - off >= HEADER_SIZE) {
      const len = buf.readUInt32BE(off + 8);
      if (len > MAX_PAYLOAD || len < 2) {
        this.log.error({ len }, 'VPP sent an impossible message length; dropping the connection');
        this.conn?.destroy();
        this.rx = Buffer.alloc(0);
        return;
      }
      if (buf.length - off < HEADER_SIZE + len) break;
      const start = off + HEADER_SIZE;
      off = start + len;
      this.counters.received++;
      this.dispatch(buf, start, off);
    }
    if (off === buf.length) buf = Buffer.alloc(0);
    else if (off > 0) buf = Buffer.from(buf.subarray(off));
    this.rx = buf;
  }

  private dispatch(buf: Buffer, start: number, end: number): void {
    const id = buf.readUInt16BE(start);
    const name = this.nameById.get(id);
    if (name === undefined) {
      this.log.debug({ id }, 'message from VPP with an id we do not use; ignored');
      return;
    }
    if (EVENT_NAMES.has(name)) {
      let msg: unknown;
      try {
        msg = vppCodec.decode(name, buf, start, end);
      } catch (e) {
        this.log.warn({ msg: name, err: (e as Error).message }, 'undecodable event from VPP');
        return;
      }
      this.emit('event', name, msg);
      const subs = this.subscribers.get(name);
      if (subs) for (const f of subs) f(msg);
      return;
    }
    const ctxOff = this.ctxOffById.get(id) ?? -1;
    if (ctxOff < 0 || start + ctxOff + 4 > end) {
      this.log.warn({ msg: name }, 'message from VPP without a context; ignored');
      return;
    }
    const context = buf.readUInt32BE(start + ctxOff);
    const p = this.pending.get(context);
    if (!p) {
      this.log.debug({ msg: name, context }, 'reply for no pending request (late or unknown); ignored');
      return;
    }
    if (p.details !== undefined && name === p.details) {
      if (!p.sink?.accepting) return;
      try {
        p.sink.push(vppCodec.decode(name, buf, start, end));
      } catch (e) {
        this.log.warn({ msg: name, err: (e as Error).message }, 'undecodable details from VPP; skipped');
      }
      return;
    }
    if (name !== p.reply) {
      this.log.warn({ msg: name, expected: p.reply, context }, 'unexpected reply type from VPP; ignored');
      return;
    }
    let reply: Obj;
    try {
      reply = vppCodec.decode<Obj>(name, buf, start, end);
    } catch (e) {
      this.counters.errors++;
      const target = p.endsDump ? this.pending.get(p.endsDump) : p;
      this.finish(p);
      if (target && target !== p) this.finish(target);
      target?.reject(new VppProtocolError(`${target.name}: ${(e as Error).message}`));
      return;
    }
    if (p.endsDump) {
      // The ping that ends a dump: the dump is complete.
      this.pending.delete(p.context);
      const d = this.pending.get(p.endsDump);
      if (!d) return;
      this.finish(d);
      d.resolve(undefined);
      return;
    }
    this.finish(p);
    const rv = typeof reply.retval === 'number' ? reply.retval : 0;
    if (rv !== 0 && !(p.allow?.includes(rv) ?? false)) {
      this.counters.errors++;
      p.reject(new VppApiError(p.name, rv));
      return;
    }
    p.resolve(reply);
  }

  // ---------------------------------------------------------------- health and reconnect

  private startHealth(): void {
    if (this.opts.healthCheckMs <= 0) return;
    clearInterval(this.healthTimer);
    this.healthTimer = setInterval(() => void this.healthCheck(), this.opts.healthCheckMs);
    this.healthTimer.unref();
  }

  private async healthCheck(): Promise<void> {
    if (!this.isConnected) return;
    const quietSince = this.lastRx;
    if (Date.now() - quietSince < this.opts.healthCheckMs && this.inFlight === 0) return;
    try {
      await this.request('control_ping', {}, { timeoutMs: Math.max(1000, this.opts.healthCheckMs) });
    } catch (e) {
      if (!(e instanceof VppTimeoutError)) return;
      // A slow ping while other replies still arrive is not a dead VPP.
      if (this.lastRx !== quietSince) return;
      this.log.error({ socket: this.socketPath }, 'VPP stopped answering; dropping the connection');
      this.conn?.destroy();
    }
  }

  private onClose(): void {
    const wasConnected = this.isConnected;
    this.isConnected = false;
    this.conn = undefined;
    this.rx = Buffer.alloc(0);
    this.corked = false;
    clearInterval(this.healthTimer);
    this.healthTimer = undefined;
    // Everything on the wire is lost; queued requests wait for the next connection unless closing.
    const lost = [...this.pending.values()];
    this.pending.clear();
    this.inFlight = 0;
    for (const p of lost) {
      if (p.timer) clearTimeout(p.timer);
      p.sent = false;
      if (!p.endsDump) p.reject(new VppDisconnectedError(`${p.name}: connection to VPP lost`));
    }
    this.rejectQueued(this.closing ? 'client closed' : 'connection to VPP lost');
    if (wasConnected) {
      this.log.warn({ socket: this.socketPath, lost: lost.length }, 'disconnected from VPP');
      this.emit('disconnected', { reason: this.closing ? 'closed' : 'connection lost' });
    }
    if (!this.closing && this.opts.reconnect) this.scheduleReconnect();
  }

  private rejectQueued(reason: string): void {
    const q = this.queue.slice(this.queueHead);
    this.queue = [];
    this.queueHead = 0;
    for (const p of q) p.reject(new VppDisconnectedError(`${p.name}: ${reason}`));
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer) return;
    const delay = this.nextBackoff();
    this.emit('reconnecting', { delayMs: delay });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closing) return;
      this.openOnce().catch((e: Error) => {
        if (e instanceof VppCompatibilityError) {
          this.log.error({ err: e.message }, 'VPP came back with an incompatible API');
          this.emit('incompatible', e);
        } else {
          this.log.debug({ err: e.message }, 'reconnect failed');
        }
        if (!this.closing) this.scheduleReconnect();
      });
    }, delay);
  }

  /** Disconnects (sockclnt_delete when connected) and stops reconnecting. Pending requests reject. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    clearInterval(this.healthTimer);
    this.handshakeConn?.destroy();
    this.handshakeConn = undefined;
    const conn = this.conn;
    if (this.isConnected && conn) {
      try {
        await Promise.race([
          this.enqueueRaw('sockclnt_delete', { index: this.handle }),
          new Promise((r) => setTimeout(r, 1000)),
        ]);
      } catch {
        // VPP closes the socket after its reply; nothing else to do.
      }
      conn.destroy();
    }
    this.rejectQueued('client closed');
    if (this.conn) await new Promise<void>((r) => this.once('disconnected', () => r()));
  }

  private enqueueRaw(name: 'sockclnt_delete', body: Obj): Promise<unknown> {
    const wasClosing = this.closing;
    this.closing = false;
    const p = this.enqueue(name, 'sockclnt_delete_reply', undefined, body, { timeoutMs: 1000, allowRetval: [] });
    this.closing = wasClosing;
    return p;
  }
}

function noop(): void {}

function uncork(client: VppClient, conn: VppConnection): void {
  client.uncorkNow(conn);
}

const headerOffsets = new Map<string, { ci: number; ctx: number }>();
/**
 * Where client_index and context sit in a message's payload (-1 when the message has no such
 * field among its fixed leading fields).
 */
function offsets(name: string): { ci: number; ctx: number } {
  const cached = headerOffsets.get(name);
  if (cached !== undefined) return cached;
  let off = 0;
  const found = { ci: -1, ctx: -1 };
  for (const f of VPP_MESSAGES[name as VppMessageName].fields) {
    if (f.name === 'client_index') found.ci = off;
    if (f.name === 'context') found.ctx = off;
    if (f.type === 'u16') off += 2;
    else if (f.type === 'u32' || f.type === 'i32') off += 4;
    else break;
  }
  headerOffsets.set(name, found);
  return found;
}

function contextOffset(name: string): number {
  return offsets(name).ctx;
}

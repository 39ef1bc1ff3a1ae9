/**
 * The VPP emulator's socket server: VPP's binary-API wire protocol on a UNIX stream socket, as
 * src/vlibmemory/socket_api.c serves it. Each connection is a client registration with handle
 * 0x80000000 | pool index. sockclnt_create (id 15) returns the message table; ids other than
 * memclnt's are assigned per run. Replies go to the registration named by the request's
 * client_index (a wrong client_index means the reply is lost, as in VPP). A message shorter than its
 * fields imply is dropped and logged ("Truncated message"); an unknown id gets no reply
 * ("no handler for msg id"); bytes after a message are ignored, as VPP ignores them.
 */

import { createServer, type Server, type Socket } from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import { VppCodecError } from '../codec.ts';
import { nameCrc } from '../schema.ts';
import { vppCodec as emulatorCodec, VPP_MESSAGES as EMULATOR_MESSAGES_TYPED, VPP_SERVICES as EMULATOR_SERVICES_TYPED } from '../api.ts';
import type { VppMessageDef, VppServiceDef } from '../schema.ts';

const EMULATOR_MESSAGES: Readonly<Record<string, VppMessageDef>> = EMULATOR_MESSAGES_TYPED;
const EMULATOR_SERVICES: Readonly<Record<string, VppServiceDef | undefined>> = EMULATOR_SERVICES_TYPED;
import { VppEmulatorState, type EmuCtx, type EmuOptions } from './tables.ts';
import { EmuStatsSegment } from './stats.ts';

const HEADER_SIZE = 16;
const MAX_PAYLOAD = 16 * 1024 * 1024;

/** memclnt is registered first, so its ids are fixed (1-based, .api order). */
const MEMCLNT_IDS: Readonly<Record<string, number>> = {
  sockclnt_create: 15,
  sockclnt_create_reply: 16,
  sockclnt_delete: 17,
  sockclnt_delete_reply: 18,
  control_ping: 23,
  control_ping_reply: 24,
};

export interface EmulatorOptions extends EmuOptions {
  /** Socket path to listen on. */
  socket: string;
  /** First id for messages outside memclnt. Default 100. */
  idBase?: number;
  /** Advertise these CRCs instead of ours (to exercise clients' compatibility checks). */
  crcOverrides?: Readonly<Record<string, string>>;
  /** Leave these messages out of the message table (and do not answer them). */
  omitMessages?: readonly string[];
  /** Log sink (one line per call). Default: silent. */
  log?: (line: string) => void;
}

export interface EmulatorHandle {
  readonly socket: string;
  /** The current tables (replaced by a fresh one on restart()). */
  readonly state: VppEmulatorState;
  /** Number of open client connections. */
  readonly connections: number;
  /** The stats segment with the SA counters, as this process shows it (/proc/<pid>/fd/<n>). */
  readonly statsPath: string;
  /** Stop answering requests (they are read and dropped) — a hung VPP. */
  setPaused(paused: boolean): void;
  /** Drop every client connection but keep the tables: the API socket broke, VPP kept running. */
  dropConnections(): Promise<void>;
  /**
   * Drop every connection and start over with empty tables, like a VPP restart. `interfaces`: the
   * interfaces the new tables start with (a startup-config that has not run yet has fewer).
   */
  restart(options?: Partial<Pick<EmulatorOptions, 'idBase' | 'crcOverrides' | 'omitMessages' | 'interfaces'>>): Promise<void>;
  close(): Promise<void>;
}

interface Registration {
  handle: number;
  sock: Socket;
  name: string;
  rx: Buffer;
  corked: boolean;
}

function uncork(reg: Registration): void {
  reg.corked = false;
  reg.sock.uncork();
}

class EmulatorServer implements EmulatorHandle {
  readonly socket: string;
  state: VppEmulatorState;
  private readonly stats = new EmuStatsSegment();
  private server: Server | undefined;
  private readonly opts: EmulatorOptions;
  private readonly log: (line: string) => void;
  private regs = new Map<number, Registration>();
  private regIndexFree: number[] = [];
  private nextRegIndex = 1;
  private idByName = new Map<string, number>();
  private nameById = new Map<number, string>();
  private table: { index: number; name: string }[] = [];
  private paused = false;
  /** Set from a crash until the restart is done: nothing more is read. */
  private crashed = false;

  constructor(opts: EmulatorOptions) {
    this.opts = { ...opts };
    this.socket = opts.socket;
    this.log = opts.log ?? (() => {});
    this.state = this.newState();
    this.buildTable();
  }

  get connections(): number {
    return this.regs.size;
  }

  get statsPath(): string {
    return this.stats.path;
  }

  private newState(): VppEmulatorState {
    const s = new VppEmulatorState(this.opts);
    s.stats = this.stats;
    s.sendEvent = (client, name, fields) => {
      const reg = this.regs.get(client);
      if (reg) this.send(reg, name, fields);
    };
    return s;
  }

  private buildTable(): void {
    this.idByName.clear();
    this.nameById.clear();
    this.table = [];
    const omit = new Set(this.opts.omitMessages ?? []);
    let next = this.opts.idBase ?? 100;
    const names = Object.keys(EMULATOR_MESSAGES).sort((a, b) => {
      const ma = EMULATOR_MESSAGES[a]!.module;
      const mb = EMULATOR_MESSAGES[b]!.module;
      return ma === mb ? 0 : ma < mb ? -1 : 1;
    });
    for (const name of names) {
      const id = MEMCLNT_IDS[name] ?? next++;
      if (omit.has(name)) continue;
      this.idByName.set(name, id);
      this.nameById.set(id, name);
      const crc = this.opts.crcOverrides?.[name] ?? EMULATOR_MESSAGES[name]!.crc;
      this.table.push({ index: id, name: nameCrc({ name, crc }) });
    }
  }

  async listen(): Promise<void> {
    if (existsSync(this.socket)) {
      try {
        unlinkSync(this.socket);
      } catch {
        // listen() reports the real problem
      }
    }
    const server = createServer((sock) => this.accept(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socket, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.log(`listening on ${this.socket}`);
  }

  private accept(sock: Socket): void {
    const index = this.regIndexFree.pop() ?? this.nextRegIndex++;
    const reg: Registration = { handle: (0x80000000 | index) >>> 0, sock, name: '', rx: Buffer.alloc(0), corked: false };
    this.regs.set(reg.handle, reg);
    sock.on('data', (chunk: Buffer) => this.onData(reg, chunk));
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this.regs.get(reg.handle) === reg) {
        this.regs.delete(reg.handle);
        this.regIndexFree.push(reg.handle & 0x7fffffff);
        this.state.clientGone(reg.handle);
      }
    });
  }

  private onData(reg: Registration, chunk: Buffer): void {
    let buf = reg.rx.length === 0 ? chunk : Buffer.concat([reg.rx, chunk]);
    let off = 0;
    while (buf.length - off >= HEADER_SIZE) {
      const len = buf.readUInt32BE(off + 8);
      if (len > MAX_PAYLOAD) {
        this.log(`client ${reg.handle.toString(16)}: message length ${len} too large, closing`);
        reg.sock.destroy();
        return;
      }
      if (buf.length - off < HEADER_SIZE + len) break;
      const start = off + HEADER_SIZE;
      off = start + len;
      if (this.crashed) return;
      if (!this.paused) this.handleMessage(reg, buf, start, off);
    }
    reg.rx = off === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(off));
  }

  private handleMessage(from: Registration, buf: Buffer, start: number, end: number): void {
    if (end - start < 2) {
      this.log('message without an id dropped');
      return;
    }
    const id = buf.readUInt16BE(start);
    const name = this.nameById.get(id);
    const svc = name ? EMULATOR_SERVICES[name] : undefined;
    if (!name || (!svc && name !== 'sockclnt_create')) {
      this.log(`no handler for msg id ${id}`);
      return;
    }
    let msg: Record<string, unknown>;
    try {
      msg = emulatorCodec.decode(name, buf, start, end, true);
    } catch (e) {
      const why = e instanceof VppCodecError ? e.message : String(e);
      this.log(`Truncated message '${name}' (id ${id}) received, message dropped: ${why}`);
      return;
    }
    if (name === 'sockclnt_create') return this.sockclntCreate(from, msg);
    if (name === 'sockclnt_delete') return this.sockclntDelete(msg);
    const clientIndex = typeof msg.client_index === 'number' ? msg.client_index : from.handle;
    const context = typeof msg.context === 'number' ? msg.context : 0;
    const reg = this.regs.get(clientIndex);
    const replyName = svc!.reply;
    const isDump = svc?.stream === true;
    if (!reg) {
      this.log(`${name}: client_index 0x${clientIndex.toString(16)} is not a registration; reply lost`);
      if (isDump) return; // dump handlers look the registration up first
    }
    const ctx: EmuCtx = {
      clientIndex,
      reply: (fields) => {
        if (reg) this.send(reg, replyName, { ...fields, context });
      },
      details: (fields) => {
        if (reg) this.send(reg, replyName, { ...fields, context });
      },
      warn: (line) => this.log(`${name}: ${line}`),
      crash: (why) => {
        this.log(`${name}: VPP crashes here (${why}); starting over with empty tables`);
        this.crashed = true;
        void this.restart().finally(() => (this.crashed = false));
      },
    };
    this.state.handle(name, msg, ctx);
  }

  /** vl_api_sockclnt_create_t_handler (socket_api.c) */
  private sockclntCreate(reg: Registration, msg: Record<string, unknown>): void {
    reg.name = typeof msg.name === 'string' ? msg.name : '';
    this.send(reg, 'sockclnt_create_reply', {
      client_index: 0,
      context: msg.context,
      response: 0,
      index: reg.handle,
      message_table: this.table,
    });
  }

  /** vl_api_sockclnt_delete_t_handler: response 1 and the registration is closed; -1 for an unknown index. */
  private sockclntDelete(msg: Record<string, unknown>): void {
    const sender = this.regs.get(msg.client_index as number);
    if (!sender) return;
    const target = this.regs.get(((msg.index as number) | 0x80000000) >>> 0);
    if (target) {
      this.send(sender, 'sockclnt_delete_reply', { context: msg.context, response: 1 });
      this.regs.delete(target.handle);
      this.regIndexFree.push(target.handle & 0x7fffffff);
      this.state.clientGone(target.handle);
      target.sock.end();
    } else {
      this.log(`unknown client ID ${String(msg.index)}`);
      this.send(sender, 'sockclnt_delete_reply', { context: msg.context, response: -1 });
    }
  }

  private send(reg: Registration, name: string, fields: Record<string, unknown>): void {
    const id = this.idByName.get(name);
    if (id === undefined || reg.sock.destroyed) return;
    const frame = emulatorCodec.encode(name, id, fields, HEADER_SIZE);
    frame.writeUInt32BE(frame.length - HEADER_SIZE, 8);
    if (!reg.corked) {
      reg.corked = true;
      reg.sock.cork();
      process.nextTick(uncork, reg);
    }
    reg.sock.write(frame);
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
  }

  private async dropAll(): Promise<void> {
    const socks = [...this.regs.values()].map((r) => r.sock);
    this.regs.clear();
    this.regIndexFree = [];
    this.nextRegIndex = 1;
    await Promise.all(
      socks.map(
        (s) =>
          new Promise<void>((r) => {
            if (s.destroyed) return r();
            s.once('close', () => r());
            s.destroy();
          }),
      ),
    );
  }

  async dropConnections(): Promise<void> {
    for (const handle of this.regs.keys()) this.state.clientGone(handle);
    await this.dropAll();
  }

  async restart(options: Partial<Pick<EmulatorOptions, 'idBase' | 'crcOverrides' | 'omitMessages' | 'interfaces'>> = {}): Promise<void> {
    await this.closeServer();
    Object.assign(this.opts, options);
    this.stats.reset();
    this.state = this.newState();
    this.buildTable();
    this.paused = false;
    await this.listen();
    this.log('restarted with empty tables');
  }

  private async closeServer(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    await this.dropAll();
    await closed;
  }

  async close(): Promise<void> {
    await this.closeServer();
    this.stats.close();
    if (existsSync(this.socket)) {
      try {
        unlinkSync(this.socket);
      } catch {
        // already gone
      }
    }
  }
}

/** Starts an emulator listening on `options.socket`. */
export async function startEmulator(options: EmulatorOptions): Promise<EmulatorHandle> {
  const s = new EmulatorServer(options);
  await s.listen();
  return s;
}

/**
 * A small second connection to a VPP API socket (the emulator or a real VPP) for the read-only
 * requests outside the generated definitions that src/vpp/emulator/extra-defs.ts describes: an
 * interface's VRF (sw_interface_get_table) and the unnumbered interfaces (ip_unnumbered_dump).
 * One request at a time; for tests only.
 */
import { createConnection, type Socket } from 'node:net';
import { emulatorCodec, EMULATOR_MESSAGES } from '../../src/vpp/emulator/extra-defs.ts';
import { nameCrc } from '../../src/vpp/schema.ts';
import { vppErrorName } from '../../src/vpp/errors.ts';

const HEADER = 16;
const SOCKCLNT_CREATE = 15;
const SOCKCLNT_CREATE_REPLY = 16;

type Obj = Record<string, unknown>;

export class ExtraApi {
  private rx: Buffer = Buffer.alloc(0);
  private waiting: ((frame: { name: string; msg: Obj }) => void) | undefined;
  private readonly frames: { name: string; msg: Obj }[] = [];
  private idByName = new Map<string, number>();
  private nameById = new Map<number, string>();
  private handle = 0;
  private context = 1;
  private closed: Error | undefined;
  private readonly sock: Socket;

  private constructor(sock: Socket) {
    this.sock = sock;
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (e: Error) => (this.closed ??= e));
    sock.on('close', () => {
      this.closed ??= new Error('VPP closed the connection');
      this.waiting?.({ name: '', msg: {} });
    });
  }

  /** Connects and registers (sockclnt_create), learning VPP's message ids. */
  static async open(socket: string): Promise<ExtraApi> {
    const sock = createConnection({ path: socket });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const api = new ExtraApi(sock);
    const frame = emulatorCodec.encode('sockclnt_create', SOCKCLNT_CREATE, { name: 'vpp-iked-test', context: 0x7ffffffe }, HEADER);
    frame.writeUInt32BE(frame.length - HEADER, 8);
    sock.write(frame);
    const reply = await api.next();
    if (reply.name !== 'sockclnt_create_reply') throw new Error(`expected sockclnt_create_reply, got ${reply.name || 'nothing'}`);
    api.handle = reply.msg.index as number;
    for (const e of reply.msg.message_table as { index: number; name: string }[]) {
      for (const def of Object.values(EMULATOR_MESSAGES)) {
        if (nameCrc(def) === e.name) {
          api.idByName.set(def.name, e.index);
          api.nameById.set(e.index, def.name);
        }
      }
    }
    return api;
  }

  /** The VRF (table id) of the interface's IPv4 or IPv6 table. */
  async table(swIfIndex: number, ipv6: boolean): Promise<number> {
    const r = await this.request('sw_interface_get_table', { sw_if_index: swIfIndex, is_ipv6: ipv6 });
    if (r.retval !== 0) throw new Error(`sw_interface_get_table(${swIfIndex}) failed: ${vppErrorName(r.retval as number)}`);
    return r.vrf_id as number;
  }

  /** The unnumbered interfaces: sw_if_index → the sw_if_index of the interface lending its address. */
  async unnumbered(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    const ctx = this.send('ip_unnumbered_dump', { sw_if_index: 0xffffffff });
    const ping = this.send('control_ping', {});
    for (;;) {
      const f = await this.next();
      if (f.msg.context === ctx && f.name === 'ip_unnumbered_details') out.set(f.msg.sw_if_index as number, f.msg.ip_sw_if_index as number);
      if (f.msg.context === ping && f.name === 'control_ping_reply') return out;
    }
  }

  close(): void {
    this.sock.destroy();
  }

  private async request(name: string, body: Obj): Promise<Obj> {
    const ctx = this.send(name, body);
    for (;;) {
      const f = await this.next();
      if (f.msg.context === ctx) return f.msg;
    }
  }

  private send(name: string, body: Obj): number {
    const id = this.idByName.get(name);
    if (id === undefined) throw new Error(`VPP does not offer ${name}`);
    const context = this.context++;
    const frame = emulatorCodec.encode(name, id, { ...body, client_index: this.handle, context }, HEADER);
    frame.writeUInt32BE(frame.length - HEADER, 8);
    this.sock.write(frame);
    return context;
  }

  private next(): Promise<{ name: string; msg: Obj }> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error('no answer from VPP within 5 s'));
      }, 5000);
      this.waiting = (frame) => {
        clearTimeout(timer);
        this.waiting = undefined;
        if (frame.name === '') reject(this.closed ?? new Error('connection closed'));
        else resolve(frame);
      };
    });
  }

  private onData(chunk: Buffer): void {
    this.rx = this.rx.length === 0 ? chunk : Buffer.concat([this.rx, chunk]);
    while (this.rx.length >= HEADER) {
      const len = this.rx.readUInt32BE(8);
      if (this.rx.length < HEADER + len) break;
      const id = this.rx.readUInt16BE(HEADER);
      const name = id === SOCKCLNT_CREATE_REPLY && this.handle === 0 ? 'sockclnt_create_reply' : this.nameById.get(id);
      if (name !== undefined) {
        const msg = emulatorCodec.decode<Obj>(name, this.rx, HEADER, HEADER + len, true);
        const frame = { name, msg };
        if (this.waiting) this.waiting(frame);
        else this.frames.push(frame);
      }
      this.rx = this.rx.subarray(HEADER + len);
    }
  }
}

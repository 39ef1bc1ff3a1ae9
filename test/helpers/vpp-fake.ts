/**
 * A scripted stand-in for VPP behind an in-memory VppTransport, for driving VppClient into faults
 * without a socket or the emulator. It answers the handshake (sockclnt_create with a message table
 * of every message vpp-iked knows), show_version and control_ping; every other request goes to
 * `onRequest`, which answers as the test wants (or not at all). Bytes move on later turns of the
 * event loop, as they would over a socket.
 */
import { vppCodec, VPP_MESSAGES, type VppMessageName } from '../../src/vpp/api.ts';
import { nameCrc, type VppMessageDef } from '../../src/vpp/schema.ts';
import type { VppConnection, VppTransport, VppTransportHandlers } from '../../src/vpp/transport.ts';

const HEADER = 16;

export interface FakeRequest {
  name: string;
  context: number;
  msg: Record<string, unknown>;
}

export class FakeVpp {
  /** Requests seen (after the handshake), in order. */
  readonly requests: FakeRequest[] = [];
  /** Answers the requests the fake does not answer itself; default: none. */
  onRequest: (req: FakeRequest) => void = () => {};
  /** Whether control_ping is answered (it also ends every dump). */
  answerPings = true;
  private readonly idOf = new Map<string, number>();
  private readonly nameOf = new Map<number, string>();
  private readonly table: { index: number; name: string }[] = [];
  private client: VppTransportHandlers | undefined;
  private open = false;

  constructor() {
    let next = 100;
    for (const def of Object.values(VPP_MESSAGES) as VppMessageDef[]) {
      const id = def.name === 'sockclnt_create' ? 15 : def.name === 'sockclnt_create_reply' ? 16 : next++;
      this.idOf.set(def.name, id);
      this.nameOf.set(id, def.name);
      this.table.push({ index: id, name: nameCrc(def) });
    }
  }

  /** The transport to give VppClient. */
  readonly transport: VppTransport = {
    connect: (h: VppTransportHandlers): VppConnection => {
      this.client = h;
      this.open = true;
      setImmediate(() => {
        if (this.client === h && this.open) h.open();
      });
      return {
        write: (frame) => {
          const copy = Buffer.from(frame);
          setImmediate(() => {
            if (this.client === h && this.open) this.receive(copy);
          });
        },
        cork: () => {},
        uncork: () => {},
        destroy: () => {
          if (this.client === h && this.open) this.drop(h);
        },
        setHandlers: (next) => {
          if (this.client === h) this.client = next;
          h = next;
        },
      };
    },
  };

  /** Sends a message to the client (a reply or details: `body` includes the context). */
  send(name: VppMessageName, body: Record<string, unknown>): void {
    const h = this.client;
    if (!h || !this.open) return;
    const frame = vppCodec.encode(name, this.idOf.get(name)!, body, HEADER);
    frame.writeUInt32BE(frame.length - HEADER, 8);
    setImmediate(() => {
      if (this.client === h && this.open) h.data(frame);
    });
  }

  /** VPP closes the connection (after what was sent before). */
  close(): void {
    const h = this.client;
    if (!h || !this.open) return;
    setImmediate(() => {
      if (this.client === h && this.open) this.drop(h);
    });
  }

  private drop(h: VppTransportHandlers): void {
    this.open = false;
    this.client = undefined;
    setImmediate(() => h.close(undefined));
  }

  private receive(frame: Buffer): void {
    const name = this.nameOf.get(frame.readUInt16BE(HEADER));
    if (name === undefined) throw new Error(`fake VPP: unknown message id ${frame.readUInt16BE(HEADER)}`);
    const msg = vppCodec.decode<Record<string, unknown>>(name, frame, HEADER, frame.length);
    const context = msg.context as number;
    if (name === 'sockclnt_create') {
      this.send('sockclnt_create_reply', { context, response: 0, index: 0x80000001, message_table: this.table });
      return;
    }
    if (name === 'show_version') {
      this.send('show_version_reply', { context, retval: 0, program: 'vpe', version: '26.10-fake' });
      return;
    }
    if (name === 'control_ping') {
      if (this.answerPings) this.send('control_ping_reply', { context, retval: 0 });
      return;
    }
    const req = { name, context, msg };
    this.requests.push(req);
    this.onRequest(req);
  }
}

/**
 * What both IKE transports (host UDP sockets, VPP's punt socket) do with a received UDP payload and
 * with their sends.
 *
 * Receiving: the payload is classified (non-ESP marker, NAT-T keepalive, ESP) and IKE messages are
 * queued; the engine works through the queue in slices of a few milliseconds, so the event loop gets
 * back to the sockets between slices. A burst of thousands of IKE_SA_INITs (a hub restart) then waits
 * in our queue rather than overflowing a receive buffer, where it would be dropped and only come
 * back with the peers' retransmissions seconds later. Messages of SAs under way (IKE_AUTH, rekeys,
 * DPD, deletes) go before new IKE_SA_INIT requests; when a queue is full, what arrives for it is shed
 * and counted (`shed`). An IKE_SA_INIT request that arrives again (the peer's retransmission) while
 * the first copy is still queued is dropped and counted (`duplicates`): the first copy gets the answer.
 *
 * Sending: a count of datagrams handed over and not yet gone, so a stop can wait for them.
 */
import type { Logger } from 'pino';
import { classifyDatagram } from './framing.ts';
import { ExchangeType, IKE_PORT } from '../ikev2/constants.ts';
import type { Endpoint } from '../ikev2/engine/engine.ts';
import type { OnIkePacket } from './transport.ts';

/** How long the engine may work through queued messages before the sockets are read again. */
export const SLICE_MS = 2;
/** Queued IKE_SA_INIT requests (new peers), and queued other messages, at most. */
export const QUEUE_LIMIT = 16384;

/** The counters the inbox keeps (part of a transport's stats). */
export interface InboxStats {
  keepalives: number;
  esp: number;
  invalid: number;
  /** IKE messages dropped because the queue in front of the engine was full */
  shed: number;
  /** retransmitted IKE_SA_INIT requests dropped because the first copy was still queued */
  duplicates: number;
}

/** Whether IKE on this port pair carries the non-ESP marker. */
export function markerOn(localPort: number, remotePort: number): boolean {
  return localPort !== IKE_PORT && remotePort !== IKE_PORT;
}

/** An IKE message received, waiting for the engine. */
interface Queued {
  local: Endpoint;
  remote: Endpoint;
  ike: Buffer;
  /** IKE_SA_INIT requests: peer address, port and SPIi */
  initKey?: string;
}

/** FIFO of queued messages: an array with a moving head, compacted now and then. */
class Fifo {
  private items: (Queued | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(q: Queued): void {
    this.items.push(q);
  }

  shift(): Queued | undefined {
    if (this.head >= this.items.length) return undefined;
    const q = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return q;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/** An IKE_SA_INIT request that starts a new IKE SA: responder SPI zero, not a response. */
function isNewSaRequest(ike: Buffer): boolean {
  // header: SPIi 0..7, SPIr 8..15, next payload 16, version 17, exchange 18, flags 19 (0x20 = response)
  if (ike[18] !== ExchangeType.IKE_SA_INIT || (ike[19]! & 0x20) !== 0) return false;
  for (let i = 8; i < 16; i++) if (ike[i] !== 0) return false;
  return true;
}

export class IkeInbox {
  private readonly stats: InboxStats;
  private readonly onPacket: OnIkePacket;
  private readonly log: Logger;
  private readonly limit: number;
  /** Messages of existing SAs (and responses), served first. */
  private readonly ongoing = new Fifo();
  /** IKE_SA_INIT requests from new peers. */
  private readonly fresh = new Fifo();
  /** initKey of every request in `fresh`. */
  private readonly freshKeys = new Set<string>();
  private drainScheduled = false;
  private closed = false;

  constructor(stats: InboxStats, onPacket: OnIkePacket, log: Logger, queueLimit = QUEUE_LIMIT) {
    this.stats = stats;
    this.onPacket = onPacket;
    this.log = log;
    this.limit = queueLimit;
  }

  /**
   * A UDP payload that arrived on `local` from `remote`: IKE is queued for the engine (the engine may
   * keep what it is given: pass memory of the datagram's own), keepalives and ESP are counted.
   */
  deliver(local: Endpoint, remote: Endpoint, payload: Buffer): void {
    const d = classifyDatagram(payload, markerOn(local.port, remote.port));
    switch (d.kind) {
      case 'ike':
        return this.enqueue(local, remote, d.ike);
      case 'keepalive':
        this.stats.keepalives++;
        return;
      case 'esp':
        this.stats.esp++;
        return;
      default:
        this.stats.invalid++;
    }
  }

  private enqueue(local: Endpoint, remote: Endpoint, ike: Buffer): void {
    if (isNewSaRequest(ike)) {
      const initKey = `${remote.addr}|${remote.port}|${ike.toString('hex', 0, 8)}`;
      if (this.freshKeys.has(initKey)) {
        this.stats.duplicates++;
        return;
      }
      if (this.fresh.length >= this.limit) {
        this.stats.shed++;
        return;
      }
      this.freshKeys.add(initKey);
      this.fresh.push({ local, remote, ike, initKey });
    } else {
      if (this.ongoing.length >= this.limit) {
        this.stats.shed++;
        return;
      }
      this.ongoing.push({ local, remote, ike });
    }
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      setImmediate(this.drain);
    }
  }

  /** Hands queued messages to the engine for up to SLICE_MS, then lets the sockets be read again. */
  private readonly drain = (): void => {
    this.drainScheduled = false;
    if (this.closed) return;
    const until = performance.now() + SLICE_MS;
    for (;;) {
      const m = this.ongoing.shift() ?? this.fresh.shift();
      if (m === undefined) return;
      if (m.initKey !== undefined) this.freshKeys.delete(m.initKey);
      try {
        this.onPacket(m.local, m.remote, m.ike);
      } catch (e) {
        this.log.error({ peer: m.remote.addr, err: e instanceof Error ? e.stack : String(e) }, 'error processing IKE message');
      }
      if (this.closed) return;
      if (performance.now() >= until) break;
    }
    if (this.ongoing.length + this.fresh.length > 0) {
      this.drainScheduled = true;
      setImmediate(this.drain);
    }
  };

  /** IKE messages received and not yet handed to the engine. */
  get queued(): number {
    return this.ongoing.length + this.fresh.length;
  }

  close(): void {
    this.closed = true;
    this.ongoing.clear();
    this.fresh.clear();
    this.freshKeys.clear();
  }
}

/** Datagrams handed to the kernel (or VPP) whose send has not completed yet, for flush(). */
export class SendTracker {
  private sending = 0;
  private drained: (() => void)[] = [];

  started(): void {
    this.sending++;
  }

  done(): void {
    if (--this.sending === 0 && this.drained.length > 0) {
      const w = this.drained;
      this.drained = [];
      for (const f of w) f();
    }
  }

  /** Resolves once every datagram handed over so far has left (or failed), or after timeoutMs. */
  flush(timeoutMs: number): Promise<boolean> {
    if (this.sending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), Math.max(0, timeoutMs));
      this.drained.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }
}

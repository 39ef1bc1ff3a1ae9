/**
 * UDP transport for IKE: one socket per listening address and port (IKE port and NAT-T port), IPv4
 * and IPv6. Each socket is bound to its own address so that answers leave from the address the
 * request came to, and several daemons can share a host on different addresses. A wildcard listen
 * address (0.0.0.0 or ::) is expanded to the host's addresses of that family.
 *
 * Framing: IKE on the NAT-T port carries the 4-byte non-ESP marker (RFC 3948); like strongSwan we
 * use it on every port pair where neither side is port 500 (so custom ports interoperate), add it on
 * send and require and strip it on receive. A single 0xFF byte is a NAT-T keepalive and is ignored;
 * anything else there is ESP, which is not ours to handle.
 *
 * Bursts: what arrives is queued in front of the engine and handed over in slices (inbox.ts),
 * with messages of SAs under way before new IKE_SA_INITs.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import type { Logger } from 'pino';
import { addNonEspMarker } from './framing.ts';
import { IkeInbox, markerOn, SendTracker, type InboxStats } from './inbox.ts';
import { Limits } from '../ikev2/constants.ts';
import { ipFamily, normalizeIp } from '../common/addr.ts';
import { endpointText } from '../common/text.ts';
import type { Endpoint, OutPacket } from '../ikev2/engine/engine.ts';
import type { IkeTransport } from './transport.ts';

export interface UdpTransportOptions {
  listen: string[];
  port: number;
  portNatT: number;
  log: Logger;
  onPacket: (local: Endpoint, remote: Endpoint, ike: Buffer) => void;
  /**
   * SO_RCVBUF to ask for on every socket (bytes), so that a burst of datagrams waits in the socket
   * instead of being dropped by the kernel; 0 or unset leaves the kernel's default.
   */
  recvBufferSize?: number;
  /** Queued IKE_SA_INIT requests, and queued other messages, at most (default QUEUE_LIMIT). */
  queueLimit?: number;
}

/** What the kernel granted for one socket's receive buffer. */
export interface RecvBufferGrant {
  requested: number;
  /** as getsockopt(SO_RCVBUF) reports it (Linux reports twice the size set, for its bookkeeping) */
  granted: number;
  /** the kernel gave less than requested (Linux: capped by net.core.rmem_max) */
  capped: boolean;
}

export interface TransportStats extends InboxStats {
  [k: string]: number;
  oversized: number;
  sendErrors: number;
}

/**
 * The engine always hands over IP literals: answer them without a trip through the resolver (and the
 * extra tick it costs per datagram); anything else still goes to dns.lookup.
 */
function literalLookup(
  host: string,
  opts: dns.LookupOneOptions,
  cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const fam = net.isIP(host);
  if (fam !== 0) cb(null, host, fam);
  else dns.lookup(host, opts, cb);
}

export class UdpTransport implements IkeTransport {
  private readonly sockets = new Map<string, dgram.Socket>();
  private readonly opts: UdpTransportOptions;
  readonly stats: TransportStats = { keepalives: 0, esp: 0, invalid: 0, oversized: 0, sendErrors: 0, shed: 0, duplicates: 0 };
  readonly addresses: string[] = [];
  /** Receive buffer sizes granted per socket (`addr|port`), when one was asked for. */
  readonly recvBuffers = new Map<string, RecvBufferGrant>();
  private readonly sends = new SendTracker();
  private readonly inbox: IkeInbox;

  constructor(opts: UdpTransportOptions) {
    this.opts = opts;
    this.inbox = new IkeInbox(this.stats, opts.onPacket, opts.log, opts.queueLimit);
  }

  /** Addresses to bind for the configured listen list. */
  static expand(listen: string[]): string[] {
    const out = new Set<string>();
    for (const a of listen) {
      if (a === '0.0.0.0' || a === '::') {
        const fam = a === '0.0.0.0' ? 'IPv4' : 'IPv6';
        for (const list of Object.values(os.networkInterfaces())) {
          for (const i of list ?? []) {
            if (i.family !== fam) continue;
            if (fam === 'IPv6' && i.address.toLowerCase().startsWith('fe80')) continue;
            out.add(normalizeIp(i.address));
          }
        }
      } else out.add(normalizeIp(a));
    }
    return [...out];
  }

  async start(): Promise<void> {
    const addrs = UdpTransport.expand(this.opts.listen);
    const ports = [...new Set([this.opts.port, this.opts.portNatT])];
    for (const addr of addrs) {
      for (const port of ports) await this.bind(addr, port);
      this.addresses.push(addr);
    }
  }

  private bind(addr: string, port: number): Promise<void> {
    const fam = ipFamily(addr);
    const sock = dgram.createSocket({ type: fam === 6 ? 'udp6' : 'udp4', ipv6Only: fam === 6, lookup: literalLookup });
    const local: Endpoint = { addr, port };
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(new Error(`cannot bind UDP ${fmt(local)}: ${e.message}`));
      sock.once('error', onError);
      sock.bind({ address: addr, port, exclusive: true }, () => {
        sock.off('error', onError);
        this.sizeRecvBuffer(sock, local);
        sock.on('error', (e) => this.opts.log.warn({ local: fmt(local), err: e.message }, 'UDP socket error'));
        sock.on('message', (msg, rinfo) => this.onMessage(local, msg, rinfo));
        this.sockets.set(key(addr, port), sock);
        this.opts.log.info({ local: fmt(local) }, 'listening for IKE');
        resolve();
      });
    });
  }

  /** Sets SO_RCVBUF as configured; warns, naming the sysctl, when the kernel grants less. */
  private sizeRecvBuffer(sock: dgram.Socket, local: Endpoint): void {
    const requested = this.opts.recvBufferSize ?? 0;
    if (requested <= 0) return;
    try {
      sock.setRecvBufferSize(requested);
    } catch (e) {
      this.opts.log.warn({ local: fmt(local), requested, err: e instanceof Error ? e.message : String(e) }, 'cannot set the UDP receive buffer size');
      return;
    }
    const granted = sock.getRecvBufferSize();
    // Linux doubles the value set (the extra half is its bookkeeping) and caps the request at rmem_max
    const effective = process.platform === 'linux' ? Math.floor(granted / 2) : granted;
    const g: RecvBufferGrant = { requested, granted, capped: effective < requested };
    this.recvBuffers.set(key(local.addr, local.port), g);
    if (g.capped) {
      this.opts.log.warn(
        { local: fmt(local), requested, granted: effective },
        `UDP receive buffer capped by the kernel at ${effective} bytes (asked for ${requested}): bursts beyond it are dropped; raise the sysctl net.core.rmem_max to at least ${requested}`,
      );
    } else {
      this.opts.log.debug({ local: fmt(local), requested, granted }, 'UDP receive buffer set');
    }
  }

  private onMessage(local: Endpoint, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length > Limits.MAX_MESSAGE + 4) {
      this.stats.oversized++;
      return;
    }
    this.inbox.deliver(local, { addr: normalizeIp(rinfo.address), port: rinfo.port }, msg);
  }

  /** IKE messages received and not yet handed to the engine. */
  get queued(): number {
    return this.inbox.queued;
  }

  /** Pick our source address for a peer when the connection does not name one. */
  localAddressFor(remote: string): string | undefined {
    const fam = ipFamily(remote);
    const same = this.addresses.filter((a) => ipFamily(a) === fam);
    if (same.includes(remote)) return remote;
    if (remote === '127.0.0.1' || remote.startsWith('127.')) return same.find((a) => a.startsWith('127.')) ?? same[0];
    return same.find((a) => !a.startsWith('127.') && a !== '::1') ?? same[0];
  }

  send(p: OutPacket): void {
    let sock = this.sockets.get(key(p.local.addr, p.local.port));
    if (!sock) {
      const a = this.localAddressFor(p.remote.addr);
      if (a) sock = this.sockets.get(key(a, p.local.port));
    }
    if (!sock) {
      this.stats.sendErrors++;
      this.opts.log.warn({ local: fmt(p.local), remote: fmt(p.remote) }, 'no socket to send from');
      return;
    }
    // NAT-T keepalives go as they are (RFC 3948 §2.3); IKE on the NAT-T port gets the non-ESP marker.
    const data = !p.keepalive && markerOn(p.local.port, p.remote.port) ? addNonEspMarker(p.data) : p.data;
    this.sends.started();
    sock.send(data, p.remote.port, p.remote.addr, this.sent);
  }

  /** Completion of every send (one function for all, no closure per datagram). */
  private readonly sent = (err: Error | null): void => {
    if (err) {
      this.stats.sendErrors++;
      const e = err as Error & { address?: string; port?: number };
      this.opts.log.debug({ remote: e.address !== undefined ? endpointText(e.address, e.port ?? 0) : undefined, err: err.message }, 'send failed');
    }
    this.sends.done();
  };

  /** Resolves once every datagram handed to send() so far has left (or failed), or after timeoutMs. */
  flush(timeoutMs: number): Promise<boolean> {
    return this.sends.flush(timeoutMs);
  }

  async close(): Promise<void> {
    this.inbox.close();
    await Promise.all([...this.sockets.values()].map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.sockets.clear();
  }
}

function key(addr: string, port: number): string {
  return `${addr}|${port}`;
}

function fmt(e: Endpoint): string {
  return endpointText(e.addr, e.port);
}

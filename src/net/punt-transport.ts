/**
 * IKE through VPP's punt socket (`daemon.transport = punt`), for gateways where VPP owns the NIC and
 * the host kernel never sees UDP 500/4500.
 *
 * At start (and again whenever VPP comes back after a restart) we register our unix datagram socket
 * with VPP: an L4 punt for UDP/`port` (IPv4 and IPv6), and the exception reasons
 * `ipsec4-spi-o-udp-0` / `ipsec6-spi-o-udp-0` for IKE on UDP/4500, which VPP's IPsec input hands up
 * when the 4-byte non-ESP marker is there. Never an L4 punt on 4500: it would take ESP-in-UDP away
 * from VPP. We answer by writing complete IP packets (routed by VPP) to VPP's own punt socket, whose
 * path comes back in the registration reply.
 *
 * The sw_if_index in an injected packet selects the FIB VPP routes it in; VPP crashes on an index it
 * does not have, and indexes change when VPP restarts. So an index is never remembered across VPP
 * connections: it is the interface a request came in on, or the interface VPP reports our address
 * on, learned afresh after every (re)connect.
 *
 * VPP's punt socket holds net.unix.max_dgram_qlen datagrams (10 by default), and a message sent as
 * IKE fragments is a burst of datagrams. What does not fit waits in our socket's queue and is tried
 * again as VPP reads (src/net/unix-dgram.ts); receiving goes on meanwhile. A datagram that waits more
 * than SEND_WAIT_MS, or finds SEND_QUEUE_LIMIT waiting, is dropped: counted (`send_queue_full`,
 * `send_timeouts`) and logged at most once per DROP_LOG_INTERVAL_MS; the engine retransmits.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { addNonEspMarker } from './framing.ts';
import { IkeInbox, markerOn, SendTracker, type InboxStats } from './inbox.ts';
import { buildPuntFrame, parsePuntFrame, PUNT_HEADER_VERSION, PUNT_MAX_IP_PACKET } from './punt.ts';
import { UnixDgramError, UnixDgramSocket } from './unix-dgram.ts';
import type { IkeTransport, OnIkePacket } from './transport.ts';
import type { Endpoint, OutPacket } from '../ikev2/engine/engine.ts';
import { IKE_NATT_PORT, Limits } from '../ikev2/constants.ts';
import { ipFamily, normalizeIp } from '../common/addr.ts';
import { endpointText } from '../common/text.ts';
import { VppApiError, type VppClient } from '../vpp/client.ts';
import { AddressFamily, IpProto, PuntType, type Punt } from '../vpp/defs.generated.ts';
import { apiAddressText } from '../vpp/address.ts';

export interface PuntTransportOptions {
  client: VppClient;
  /** Our datagram socket, the one VPP sends punted packets to. */
  socketPath: string;
  /** VPP's interface addresses we serve IKE on; `0.0.0.0` / `::` for every address of that family. */
  listen: string[];
  port: number;
  portNatT: number;
  log: Logger;
  onPacket: OnIkePacket;
  /**
   * Register again by itself when the VPP connection comes back (default). The daemon turns this off
   * and has the VPP back end call `register()` before it replays SAs instead.
   */
  registerOnReconnect?: boolean;
  /** Datagrams to VPP that may wait for room in its punt socket's queue (default SEND_QUEUE_LIMIT). */
  sendQueueLimit?: number;
  /** How long one may wait (default SEND_WAIT_MS). */
  sendWaitMs?: number;
  /** Where net.unix.max_dgram_qlen is read at start (default /proc/sys/net/unix/max_dgram_qlen). */
  unixDgramQlenFile?: string;
  /** Read the punt socket in a thread of its own (default false: on the event loop). */
  receiveThread?: boolean;
}

export interface PuntTransportStats extends InboxStats {
  [k: string]: number;
  /** Messages not sent: over the 2048 bytes of IP VPP takes from its punt socket. */
  tooBig: number;
  sendErrors: number;
  /** Datagrams that found VPP's punt socket queue full and waited for room. */
  sendBlocked: number;
  /** Datagrams dropped: that many waited already (SEND_QUEUE_LIMIT). */
  sendQueueFull: number;
  /** Datagrams dropped: VPP's queue stayed full for SEND_WAIT_MS. */
  sendTimeouts: number;
  /** Packets to an address we do not serve. */
  notOurs: number;
  /** Packets we could not send because VPP has no interface with our address (yet). */
  noInterface: number;
  /** Datagrams on our punt socket that did not come from VPP's. */
  notFromVpp: number;
  /** Times we registered with VPP (start and every reconnect). */
  registrations: number;
  /** Datagrams the punt socket's reading thread dropped: the daemon had not taken 16,384 it read before. */
  readerDropped: number;
}

const U32_MAX = 0xffffffff;
/** Minimum pause between two address look-ups in VPP triggered by packets we cannot place. */
const LOOKUP_INTERVAL_MS = 1000;
/**
 * Datagrams held while the interface of their source address is looked up (after a VPP restart
 * the first answers and rekeys come before any packet has told us the interface). Beyond this
 * many, or when the look-up does not find the address, they are dropped (the engine retransmits).
 */
const MAX_PENDING = 1024;
const REGISTER_RETRY_MIN_MS = 1000;
const REGISTER_RETRY_MAX_MS = 30_000;
/** Descriptor, L2 and IP/UDP headers in front of an IKE message in a punted frame, at most. */
const PUNT_HEADROOM = 256;
const PUNT_MESSAGES = ['punt_socket_register', 'punt_socket_deregister', 'punt_reason_dump', 'ip_address_dump'] as const;
/**
 * Datagrams to VPP waiting for room in its punt socket's queue, at most: the IKE fragments of a few
 * hundred messages (a burst of rekeys after a VPP restart).
 */
export const SEND_QUEUE_LIMIT = 4096;
/** How long a datagram to VPP may wait for room: less than the engine's first retransmission. */
export const SEND_WAIT_MS = 1000;
/** At most one log line about dropped sends per this long. */
const DROP_LOG_INTERVAL_MS = 10_000;
/** Below this net.unix.max_dgram_qlen, start-up warns: a fragmented IKE_AUTH is some 20 datagrams. */
export const MIN_DGRAM_QLEN = 64;
const QLEN_FILE = '/proc/sys/net/unix/max_dgram_qlen';

export class PuntTransport implements IkeTransport {
  /** VPP takes at most one buffer of IP from its punt socket. */
  readonly maxDatagram = PUNT_MAX_IP_PACKET;
  readonly stats: PuntTransportStats = {
    keepalives: 0, esp: 0, invalid: 0, shed: 0, duplicates: 0, tooBig: 0, sendErrors: 0, sendBlocked: 0, sendQueueFull: 0, sendTimeouts: 0,
    notOurs: 0, noInterface: 0, notFromVpp: 0, registrations: 0, readerDropped: 0,
  };
  readonly addresses: string[];
  private readonly opts: PuntTransportOptions;
  private readonly any4: boolean;
  private readonly any6: boolean;
  private readonly served: Set<string>;
  private sock: UnixDgramSocket | undefined;
  /** VPP's punt socket, from the registration reply (undefined while not registered). */
  private vppPath: string | undefined;
  /** Our address → sw_if_index, for this VPP connection only. */
  private readonly ifByAddr = new Map<string, number>();
  /** VPP's addresses by family, for this VPP connection only (wildcard listen). */
  private vppAddrs: string[] = [];
  private registered: Punt[] = [];
  private lastLookup = 0;
  private lookingUp: Promise<void> | undefined;
  /** Datagrams waiting for the next address look-up (see MAX_PENDING). */
  private pending: OutPacket[] = [];
  private lookupTimer: NodeJS.Timeout | undefined;
  private ipId = 0;
  private readonly sends = new SendTracker();
  private readonly inbox: IkeInbox;
  private closed = false;
  /** Dropped sends not yet logged, and when the last line about them was written. */
  private dropsUnlogged = 0;
  private dropLoggedAt = -Infinity;
  /** The timer of the next registration attempt after a failed one (until it succeeds or VPP goes). */
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay = REGISTER_RETRY_MIN_MS;
  private readonly onDisconnected = (): void => this.forgetVpp();
  private readonly onConnected = (info: { reconnect?: boolean }): void => {
    if (info.reconnect && !this.closed) void this.registerOrRetry();
  };
  /** VPP deleted an interface: forget every address we routed through it (VPP crashes on a stale index). */
  private readonly onEvent = (name: string, msg: { sw_if_index?: number; deleted?: boolean }): void => {
    if (name !== 'sw_interface_event' || !msg.deleted) return;
    for (const [addr, sw] of this.ifByAddr) if (sw === msg.sw_if_index) this.ifByAddr.delete(addr);
  };

  constructor(opts: PuntTransportOptions) {
    this.opts = opts;
    this.inbox = new IkeInbox(this.stats, opts.onPacket, opts.log);
    const listen = opts.listen.map(normalizeIp);
    this.any4 = listen.includes('0.0.0.0');
    this.any6 = listen.includes('::');
    this.served = new Set(listen.filter((a) => a !== '0.0.0.0' && a !== '::'));
    this.addresses = [...listen];
  }

  private families(): (4 | 6)[] {
    const fams = new Set<4 | 6>();
    if (this.any4) fams.add(4);
    if (this.any6) fams.add(6);
    for (const a of this.served) fams.add(ipFamily(a) === 6 ? 6 : 4);
    return [...fams].sort();
  }

  async start(): Promise<void> {
    const c = this.opts.client;
    const missing = PUNT_MESSAGES.filter((m) => c.messageId(m) === undefined);
    if (missing.length) throw new Error(`VPP does not offer ${missing.join(', ')}: it cannot punt IKE to vpp-iked (transport = punt)`);
    if (this.opts.portNatT !== IKE_NATT_PORT) throw new Error(`transport = punt receives NAT-T IKE on VPP's IPsec port ${IKE_NATT_PORT} only (port_nat_t is ${this.opts.portNatT})`);
    this.checkDgramQlen();
    const sock = new UnixDgramSocket({
      sendQueueLimit: this.opts.sendQueueLimit ?? SEND_QUEUE_LIMIT,
      sendWaitMs: this.opts.sendWaitMs ?? SEND_WAIT_MS,
      receiveThread: this.opts.receiveThread === true,
    });
    sock.bind(this.opts.socketPath);
    sock.on('message', (data, from) => this.onFrame(data, from));
    sock.on('sendBlocked', () => void this.stats.sendBlocked++);
    // the reading thread counts its drops itself: read when the counters are
    Object.defineProperty(this.stats, 'readerDropped', { get: () => sock.receiveDropped, enumerable: true, configurable: true });
    sock.on('error', (e) => this.opts.log.error({ err: e.message, socket: this.opts.socketPath }, 'punt socket failed: IKE is no longer received'));
    this.sock = sock;
    c.on('disconnected', this.onDisconnected);
    c.on('event', this.onEvent);
    if (this.opts.registerOnReconnect !== false) c.on('connected', this.onConnected);
    await this.register();
    this.opts.log.info({ socket: this.opts.socketPath, vpp_socket: this.vppPath, listen: this.addresses, port: this.opts.port, port_nat_t: this.opts.portNatT, reader: this.opts.receiveThread === true ? 'thread' : 'event_loop' }, 'receiving IKE through VPP punt');
  }

  /**
   * One warning when net.unix.max_dgram_qlen (of our network namespace, which should be VPP's) is
   * low: VPP drops what does not fit into our socket's queue, and a fragmented message is a burst.
   */
  private checkDgramQlen(): void {
    const file = this.opts.unixDgramQlenFile ?? QLEN_FILE;
    let qlen: number;
    try {
      qlen = Number(readFileSync(file, 'utf8').trim());
    } catch {
      return;
    }
    if (!Number.isInteger(qlen) || qlen >= MIN_DGRAM_QLEN) return;
    this.opts.log.warn(
      { max_dgram_qlen: qlen, recommended: 256 },
      `net.unix.max_dgram_qlen is ${qlen}: VPP drops IKE fragments beyond that many queued at once on the punt socket; ` +
        'raise it in the network namespace of VPP and vpp-iked before starting them (sysctl -w net.unix.max_dgram_qlen=256)',
    );
  }

  /**
   * Register with VPP: UDP/port as an L4 punt, IKE on 4500 through the IPsec exception reasons
   * (their ids are looked up by name: they are not fixed). VPP's refusal is an error naming it.
   */
  async register(): Promise<void> {
    const c = this.opts.client;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    // Deleted interfaces are reported, so an index we learned never outlives its interface.
    if (c.messageId('want_interface_events') !== undefined) {
      await c.request('want_interface_events', { enable_disable: 1, pid: process.pid }).catch((e: Error) => this.opts.log.warn({ err: e.message }, 'VPP interface events not available'));
    }
    const reasons = await c.dump('punt_reason_dump', { reason: { id: 0, name: '' } });
    const reasonId = (name: string): number => {
      const r = reasons.find((x) => x.reason.name === name);
      if (!r) throw new Error(`VPP has no punt reason '${name}': IKE on UDP/${IKE_NATT_PORT} cannot reach vpp-iked`);
      return r.reason.id;
    };
    const want: { what: string; punt: Punt }[] = [];
    for (const fam of this.families()) {
      const af = fam === 4 ? AddressFamily.ADDRESS_IP4 : AddressFamily.ADDRESS_IP6;
      want.push({ what: `UDP/${this.opts.port} (IPv${fam})`, punt: { type: PuntType.PUNT_API_TYPE_L4, punt: { l4: { af, protocol: IpProto.IP_API_PROTO_UDP, port: this.opts.port } } } });
      const reason = fam === 4 ? 'ipsec4-spi-o-udp-0' : 'ipsec6-spi-o-udp-0';
      want.push({ what: `IKE on UDP/${IKE_NATT_PORT} (IPv${fam}, ${reason})`, punt: { type: PuntType.PUNT_API_TYPE_EXCEPTION, punt: { exception: { id: reasonId(reason) } } } });
    }
    const done: Punt[] = [];
    let vppPath: string | undefined;
    for (const w of want) {
      try {
        const r = await c.request('punt_socket_register', { header_version: PUNT_HEADER_VERSION, punt: w.punt, pathname: this.opts.socketPath });
        vppPath = r.pathname;
        done.push(w.punt);
      } catch (e) {
        // What did register is remembered, so that close() removes it.
        this.registered = done;
        const why = e instanceof VppApiError ? `${e.message}` : (e as Error).message;
        throw new Error(`VPP refused the punt registration for ${w.what}: ${why} (is 'punt { socket ... }' in VPP's startup.conf?)`);
      }
    }
    this.registered = done;
    this.vppPath = vppPath;
    this.retryDelay = REGISTER_RETRY_MIN_MS;
    this.stats.registrations++;
    await this.lookupAddresses(true);
  }

  /**
   * register(), and when it fails (VPP still starting, a request timing out), again with backoff
   * until it succeeds or the VPP connection changes: a daemon that is not registered hears no IKE.
   * Resolves after the first attempt either way.
   */
  async registerOrRetry(): Promise<void> {
    try {
      await this.register();
    } catch (e) {
      if (this.closed || !this.opts.client.connected) return;
      const delay = this.retryDelay;
      this.retryDelay = Math.min(REGISTER_RETRY_MAX_MS, this.retryDelay * 2);
      this.opts.log.error({ err: (e as Error).message, retry_ms: delay }, 'punt registration with VPP failed; IKE is not received until it succeeds; retrying');
      if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        if (!this.closed && this.opts.client.connected) void this.registerOrRetry();
      }, delay);
      this.retryTimer.unref();
    }
  }

  /** What VPP says our addresses are on (non-ipsec interfaces), for packets we send first. */
  private lookupAddresses(force = false): Promise<void> {
    const now = Date.now();
    if (this.lookingUp) return this.lookingUp;
    if (!force && now - this.lastLookup < LOOKUP_INTERVAL_MS) return Promise.resolve();
    this.lastLookup = now;
    const c = this.opts.client;
    const run = async (): Promise<void> => {
      const itfs = await c.dump('sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: false, name_filter: '' });
      const found = new Map<string, number>();
      for (const itf of itfs) {
        if (itf.interface_name.startsWith('ipsec')) continue;
        for (const is_ipv6 of [false, true]) {
          for (const a of await c.dump('ip_address_dump', { sw_if_index: itf.sw_if_index, is_ipv6 })) {
            const text = apiAddressText(a.prefix.address, undefined);
            if (text !== undefined && !found.has(text)) found.set(text, itf.sw_if_index);
          }
        }
      }
      // VPP's own answer wins over what was learned from packets.
      for (const [addr, sw] of found) this.ifByAddr.set(addr, sw);
      this.vppAddrs = [...found.keys()].filter((a) => this.serves(a));
    };
    this.lookingUp = run()
      .catch((e: Error) => this.opts.log.warn({ err: e.message }, 'looking up our addresses in VPP failed'))
      .finally(() => {
        this.lookingUp = undefined;
      });
    return this.lookingUp;
  }

  /** VPP went away: its punt socket and every sw_if_index we knew are gone with it. */
  private forgetVpp(): void {
    this.vppPath = undefined;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryDelay = REGISTER_RETRY_MIN_MS;
    this.ifByAddr.clear();
    this.vppAddrs = [];
    this.dropPending();
  }

  /**
   * Holds a datagram whose source address has no known VPP interface and looks the addresses up
   * (at once, or as soon as LOOKUP_INTERVAL_MS since the last look-up has passed); sends what it
   * can place afterwards.
   */
  private hold(p: OutPacket): void {
    if (this.pending.length >= MAX_PENDING) {
      this.stats.noInterface++;
      return;
    }
    this.pending.push(p);
    this.sends.started();
    if (this.lookupTimer !== undefined) return;
    const wait = Math.max(0, this.lastLookup + LOOKUP_INTERVAL_MS - Date.now());
    const timer = setTimeout(() => {
      void this.lookupAddresses(true).then(() => {
        // A disconnect meanwhile dropped what was held (and maybe a newer hold set its own timer).
        if (this.lookupTimer !== timer) return;
        this.lookupTimer = undefined;
        this.sendPending();
      });
    }, wait);
    this.lookupTimer = timer;
  }

  /** After a look-up: sends the held datagrams whose address VPP has now; drops the others. */
  private sendPending(): void {
    const held = this.pending;
    this.pending = [];
    for (const p of held) {
      if (!this.closed && this.vppPath !== undefined && this.ifByAddr.has(p.local.addr)) this.send(p);
      else {
        this.stats.noInterface++;
        this.opts.log.debug({ local: endpointText(p.local.addr, p.local.port) }, 'VPP has no interface with our address; datagram not sent');
      }
      this.sent();
    }
  }

  private dropPending(): void {
    if (this.lookupTimer !== undefined) clearTimeout(this.lookupTimer);
    this.lookupTimer = undefined;
    const n = this.pending.length;
    this.pending = [];
    this.stats.noInterface += n;
    for (let i = 0; i < n; i++) this.sent();
  }

  /** One datagram is out of our hands (sent, failed or dropped). */
  private sent(): void {
    this.sends.done();
  }

  private serves(addr: string): boolean {
    if (this.served.has(addr)) return true;
    return ipFamily(addr) === 6 ? this.any6 : this.any4;
  }

  private onFrame(data: Buffer, from: string | undefined): void {
    // Only VPP's punt socket may hand us packets: a frame's sw_if_index is used to answer it.
    if (from === undefined || from !== this.vppPath) {
      this.stats.notFromVpp++;
      this.opts.log.debug({ from: from ?? '(unbound)' }, 'datagram on the punt socket not from VPP dropped');
      return;
    }
    if (data.length > Limits.MAX_MESSAGE + PUNT_HEADROOM) {
      this.stats.invalid++;
      return;
    }
    const r = parsePuntFrame(data);
    if (!r.ok) {
      this.stats.invalid++;
      this.opts.log.debug({ reason: r.reason, bytes: data.length }, 'punted frame dropped');
      return;
    }
    const p = r.packet;
    if (!this.serves(p.dst) || (p.dstPort !== this.opts.port && p.dstPort !== this.opts.portNatT)) {
      this.stats.notOurs++;
      this.opts.log.debug({ dst: endpointText(p.dst, p.dstPort), sw_if_index: p.swIfIndex }, 'punted packet for an address or port we do not serve dropped');
      return;
    }
    // The interface the packet came in on routes our answers from this address (this connection only).
    if (this.vppPath !== undefined) this.ifByAddr.set(p.dst, p.swIfIndex);
    const local: Endpoint = { addr: p.dst, port: p.dstPort };
    const remote: Endpoint = { addr: p.src, port: p.srcPort };
    // The payload is a view into the received datagram, which the queue would keep alive: a copy.
    this.inbox.deliver(local, remote, Buffer.from(p.payload));
  }

  localAddressFor(remote: string): string | undefined {
    const fam = ipFamily(remote);
    for (const a of this.served) if (ipFamily(a) === fam) return a;
    return this.vppAddrs.find((a) => ipFamily(a) === fam && !a.toLowerCase().startsWith('fe80'));
  }

  send(p: OutPacket): void {
    const sock = this.sock;
    const vppPath = this.vppPath;
    const sw = this.ifByAddr.get(p.local.addr);
    if (sock && vppPath !== undefined && sw === undefined && !this.closed) {
      this.hold(p);
      return;
    }
    if (!sock || vppPath === undefined || sw === undefined) {
      this.stats.noInterface++;
      this.opts.log.debug({ local: endpointText(p.local.addr, p.local.port), registered: vppPath !== undefined }, 'not registered with VPP; datagram not sent');
      return;
    }
    const payload = !p.keepalive && markerOn(p.local.port, p.remote.port) ? addNonEspMarker(p.data) : p.data;
    this.ipId = (this.ipId + 1) & 0xffff;
    const f = buildPuntFrame({ swIfIndex: sw, src: p.local.addr, dst: p.remote.addr, srcPort: p.local.port, dstPort: p.remote.port, payload, ipId: this.ipId });
    if (!f.ok) {
      this.stats.tooBig++;
      this.opts.log.warn(
        { remote: endpointText(p.remote.addr, p.remote.port), ike_bytes: p.data.length, limit: PUNT_MAX_IP_PACKET, reason: f.reason },
        'IKE message not sent: VPP takes at most 2048 bytes of IP from its punt socket (IKE fragmentation cuts messages to fit when the peer supports it)',
      );
      return;
    }
    this.sends.started();
    sock
      .send(f.frame, vppPath)
      .catch((e: Error) => this.sendFailed(e, p))
      .finally(() => this.sent());
  }

  private sendFailed(e: Error, p: OutPacket): void {
    const code = e instanceof UnixDgramError ? e.code : undefined;
    if (code === 'ENOBUFS' || code === 'ETIMEDOUT') {
      if (code === 'ENOBUFS') this.stats.sendQueueFull++;
      else this.stats.sendTimeouts++;
      this.dropsUnlogged++;
      const now = Date.now();
      if (now - this.dropLoggedAt >= DROP_LOG_INTERVAL_MS) {
        this.opts.log.warn(
          { dropped: this.dropsUnlogged, send_queue_full: this.stats.sendQueueFull, send_timeouts: this.stats.sendTimeouts, remote: endpointText(p.remote.addr, p.remote.port) },
          "IKE datagrams to VPP dropped: VPP's punt socket queue stayed full (is VPP reading it? raise net.unix.max_dgram_qlen)",
        );
        this.dropLoggedAt = now;
        this.dropsUnlogged = 0;
      }
      return;
    }
    if (code === 'EBADF' && this.closed) return;
    this.stats.sendErrors++;
    this.opts.log.debug({ remote: endpointText(p.remote.addr, p.remote.port), err: e.message }, 'send to VPP failed');
  }

  flush(timeoutMs: number): Promise<boolean> {
    return this.sends.flush(timeoutMs);
  }

  stopping(ms: number): void {
    this.sock?.setSendLimits(Number.MAX_SAFE_INTEGER, Math.max(this.opts.sendWaitMs ?? SEND_WAIT_MS, ms));
  }

  /** Deregister from VPP (when it is there) and close our socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.inbox.close();
    this.dropPending();
    const c = this.opts.client;
    c.off('disconnected', this.onDisconnected);
    c.off('event', this.onEvent);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    c.off('connected', this.onConnected);
    if (c.connected) {
      for (const punt of this.registered) {
        await c.request('punt_socket_deregister', { punt }).catch((e: Error) => this.opts.log.warn({ err: e.message }, 'punt deregistration failed'));
      }
    }
    this.registered = [];
    this.sock?.close();
    this.sock = undefined;
  }
}

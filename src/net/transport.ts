/**
 * What the daemon needs from the way IKE datagrams come and go: the host's UDP sockets
 * (`daemon.transport = udp`) or VPP's punt socket (`daemon.transport = punt`). The engine never knows
 * which one it runs on: it gets `(local, remote, ike)` for every IKE message received and hands
 * back `OutPacket`s; the transport deals with the non-ESP marker, NAT-T keepalives and ESP.
 */
import type { Endpoint, OutPacket } from '../ikev2/engine/engine.ts';

export interface IkeTransport {
  /** Counters for `vpp-ikectl stats` and the metrics endpoint (`vpp_iked_udp_<name>_total`). */
  readonly stats: Readonly<Record<string, number>>;
  /**
   * Largest IP datagram (headers included) the transport can send, when it has a limit of its own
   * (the punt socket: one VPP buffer); IKE fragments are cut to fit it.
   */
  readonly maxDatagram?: number;
  /** The addresses IKE is served on. */
  readonly addresses: readonly string[];
  /** Start receiving; rejects (with what went wrong) when the transport cannot serve IKE. */
  start(): Promise<void>;
  send(p: OutPacket): void;
  /** Our source address towards a peer when the connection names none. */
  localAddressFor(remote: string): string | undefined;
  /** Resolves once every datagram handed to send() so far has left (or failed), or after timeoutMs. */
  flush(timeoutMs: number): Promise<boolean>;
  /**
   * The daemon is stopping and will send every peer a Delete, then flush() for at most `ms`: a
   * transport that queues datagrams keeps them all for that long instead of dropping what a burst
   * would not be allowed.
   */
  stopping?(ms: number): void;
  close(): Promise<void>;
}

export type OnIkePacket = (local: Endpoint, remote: Endpoint, ike: Buffer) => void;

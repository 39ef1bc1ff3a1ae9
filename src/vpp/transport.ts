/**
 * How the VPP client reaches VPP: a byte stream that carries the API's framed messages. The default
 * is VPP's UNIX stream socket (`socksvr`); anything else that moves the same bytes (an in-memory
 * stand-in for VPP in fault-injection tests, say) can take its place.
 */

import { createConnection } from 'node:net';

/** What a connection tells its user. */
export interface VppTransportHandlers {
  /** The connection is up: frames may be written. */
  open(): void;
  /** Bytes from VPP, in order, cut anywhere. */
  data(chunk: Buffer): void;
  /** The connection is gone (closed by either side, or never made); `err` says why when it failed. Called once. */
  close(err: Error | undefined): void;
}

/** One connection to VPP. */
export interface VppConnection {
  /** Sends a frame (after the ones written before it). */
  write(frame: Buffer): void;
  /** Holds writes back until uncork(), so that they go out together. */
  cork(): void;
  uncork(): void;
  /** Closes the connection; the handlers' close() follows. */
  destroy(): void;
  /** Sends what happens from now on to other handlers (the handshake hands the connection over). */
  setHandlers(h: VppTransportHandlers): void;
}

export interface VppTransport {
  /** Starts a connection attempt; `h` hears how it goes. */
  connect(h: VppTransportHandlers): VppConnection;
}

/** VPP's API socket at `path`. */
export function unixSocketTransport(path: string): VppTransport {
  return {
    connect(h: VppTransportHandlers): VppConnection {
      let handlers = h;
      let error: Error | undefined;
      const sock = createConnection({ path });
      sock.on('connect', () => {
        sock.setNoDelay?.(true);
        handlers.open();
      });
      sock.on('data', (chunk: Buffer) => handlers.data(chunk));
      // 'close' always follows 'error'.
      sock.on('error', (err: Error) => {
        error ??= err;
      });
      sock.on('close', () => handlers.close(error));
      return {
        write: (frame) => void sock.write(frame),
        cork: () => sock.cork(),
        uncork: () => sock.uncork(),
        destroy: () => void sock.destroy(),
        setHandlers: (next) => {
          handlers = next;
        },
      };
    },
  };
}

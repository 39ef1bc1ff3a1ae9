/**
 * Reading and forging encrypted IKE messages between two test engines: a message is opened with the
 * receiving IKE SA's keys and sealed again with the sending SA's keys, so a test can make a peer
 * answer what a real implementation answered (an empty KE payload, a malformed payload).
 */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { decodeMessage, decodePayloadChain, encodePayloadChain } from '../../src/ikev2/codec/message.ts';
import { PayloadType } from '../../src/ikev2/constants.ts';
import type { Payload } from '../../src/ikev2/codec/types.ts';
import type { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';

/** The inner payloads of an encrypted message, opened with the receiver's SA. */
export function openMessage(receiver: IkeSa, data: Buffer): { exchange: number; response: boolean; mid: number; payloads: Payload[] } {
  const msg = decodeMessage(data);
  const sk = msg.payloads.find((p) => p.type === PayloadType.SK);
  if (!sk || sk.type !== PayloadType.SK) throw new Error('no SK payload');
  const plain = receiver.cipher!.open(data, sk);
  return {
    exchange: msg.header.exchange,
    response: (msg.header.flags & 0x20) !== 0,
    mid: msg.header.messageId,
    payloads: decodePayloadChain(plain, sk.innerType, 0, plain.length).payloads,
  };
}

/**
 * The message `data` (sent by `sender`, received by `receiver`) with its inner payload chain replaced:
 * `edit` gets the encoded chain and returns the bytes to seal (the first payload type stays).
 */
export function resealMessage(sender: IkeSa, receiver: IkeSa, data: Buffer, edit: (chain: Buffer, payloads: Payload[]) => Buffer | Payload[]): Buffer {
  const msg = decodeMessage(data);
  const { payloads } = openMessage(receiver, data);
  const edited = edit(encodePayloadChain(payloads).bytes, payloads);
  const chain = Array.isArray(edited) ? encodePayloadChain(edited) : { firstType: encodePayloadChain(payloads).firstType, bytes: edited };
  return sender.cipher!.seal({ ...msg.header, length: 0, nextPayload: PayloadType.SK }, chain.firstType, chain.bytes);
}

/** A pino logger whose lines are collected (parsed) for assertions. */
export function captureLog(level = 'info'): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level }, stream), lines };
}

/**
 * The generated definitions bound to the codec, plus the type-level maps the client uses
 * (request → reply, dump → details).
 */

import { VppCodec } from './codec.ts';
import { VPP_MESSAGES, VPP_SERVICES, VPP_TYPES } from './defs.generated.ts';
import type { VppMessageName, VppMessageTypes } from './defs.generated.ts';

export type { VppMessageName, VppMessageTypes };

type Services = typeof VPP_SERVICES;

/** Requests answered by one reply. */
export type VppRequestName = {
  [K in keyof Services]: Services[K] extends { readonly stream: true } ? never : K;
}[keyof Services];

/** Dumps answered by a stream of details. */
export type VppDumpName = {
  [K in keyof Services]: Services[K] extends { readonly stream: true } ? K : never;
}[keyof Services];

export type VppReplyName<N extends keyof Services> = Services[N]['reply'];

/** The request's fields, without the header fields the client fills in. */
export type VppRequestBody<N extends VppMessageName> = Omit<VppMessageTypes[N], 'client_index' | 'context'>;

export type VppReplyOf<N extends VppRequestName> = VppMessageTypes[VppReplyName<N>];
export type VppDetailsOf<N extends VppDumpName> = VppMessageTypes[VppReplyName<N>];

/** The codec over the generated tables (one per process). */
export const vppCodec = new VppCodec(VPP_TYPES, VPP_MESSAGES);

export { VPP_MESSAGES, VPP_SERVICES, VPP_TYPES };

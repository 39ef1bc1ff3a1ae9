/**
 * VPP messages the emulator serves besides the generated definitions (src/vpp/defs.generated.ts):
 * read-only requests vpp-iked itself never sends, so that tests can check through the API what the
 * generated set cannot show, against the emulator and a real VPP alike: an interface's VRF
 * (sw_interface_get_table) and its unnumbered lender (ip_unnumbered_dump). Names, CRCs and fields
 * are those of vpp-api/interface.api.json and vpp-api/ip.api.json (VPP 26.10);
 * test/component/vpp-emulator.test.ts compares them with those files.
 */

import { VppCodec } from '../codec.ts';
import { VPP_MESSAGES, VPP_SERVICES, VPP_TYPES } from '../defs.generated.ts';
import type { VppMessageDef, VppServiceDef } from '../schema.ts';

export const EXTRA_MESSAGES: Readonly<Record<string, VppMessageDef>> = {
  sw_interface_get_table: {
    name: 'sw_interface_get_table',
    crc: '0x2d033de4',
    module: 'interface',
    fields: [
      { name: '_vl_msg_id', type: 'u16' },
      { name: 'client_index', type: 'u32' },
      { name: 'context', type: 'u32' },
      { name: 'sw_if_index', type: 'interface_index' },
      { name: 'is_ipv6', type: 'bool' },
    ],
  },
  sw_interface_get_table_reply: {
    name: 'sw_interface_get_table_reply',
    crc: '0xa6eb0109',
    module: 'interface',
    fields: [
      { name: '_vl_msg_id', type: 'u16' },
      { name: 'context', type: 'u32' },
      { name: 'retval', type: 'i32' },
      { name: 'vrf_id', type: 'u32' },
    ],
  },
  ip_unnumbered_dump: {
    name: 'ip_unnumbered_dump',
    crc: '0xf9e6675e',
    module: 'ip',
    fields: [
      { name: '_vl_msg_id', type: 'u16' },
      { name: 'client_index', type: 'u32' },
      { name: 'context', type: 'u32' },
      { name: 'sw_if_index', type: 'interface_index', default: 4294967295 },
    ],
  },
  ip_unnumbered_details: {
    name: 'ip_unnumbered_details',
    crc: '0xcc59bd42',
    module: 'ip',
    fields: [
      { name: '_vl_msg_id', type: 'u16' },
      { name: 'context', type: 'u32' },
      { name: 'sw_if_index', type: 'interface_index' },
      { name: 'ip_sw_if_index', type: 'interface_index' },
    ],
  },
};

export const EXTRA_SERVICES: Readonly<Record<string, VppServiceDef>> = {
  sw_interface_get_table: { reply: 'sw_interface_get_table_reply' },
  ip_unnumbered_dump: { reply: 'ip_unnumbered_details', stream: true },
};

/** sw_interface_get_table */
export interface SwInterfaceGetTable {
  sw_if_index: number;
  is_ipv6: boolean;
}

/** ip_unnumbered_dump */
export interface IpUnnumberedDump {
  sw_if_index: number;
}

/** Every message the emulator knows (generated plus extra), for its codec and message table. */
export const EMULATOR_MESSAGES: Readonly<Record<string, VppMessageDef>> = { ...VPP_MESSAGES, ...EXTRA_MESSAGES };
export const EMULATOR_SERVICES: Readonly<Record<string, VppServiceDef>> = { ...VPP_SERVICES, ...EXTRA_SERVICES };

/** The codec over EMULATOR_MESSAGES. */
export const emulatorCodec = new VppCodec(VPP_TYPES, EMULATOR_MESSAGES);

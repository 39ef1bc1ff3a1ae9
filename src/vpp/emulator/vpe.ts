/** memclnt / vpe requests of the VPP emulator (src/vpp/emulator/tables.ts has the tables). */

import type { VppMessageTypes } from '../defs.generated.ts';
import type { EmuCtx } from './common.ts';
import type { VppEmulatorState } from './tables.ts';

/** vl_api_show_version_t_handler (vpe_api.c) */
export function show_version(s: VppEmulatorState, _m: VppMessageTypes['show_version'], ctx: EmuCtx): void {
  ctx.reply({
    retval: 0,
    program: 'vpe',
    version: s.options.version,
    build_date: 'Sat Aug 22 03:00:55 UTC 2026',
    build_directory: '/usr/src/vpp (emulated)',
  });
}

/** vl_api_control_ping_t_handler (vlibmemory/vlib_api.c): retval 0 and VPP's pid. */
export function control_ping(s: VppEmulatorState, _m: VppMessageTypes['control_ping'], ctx: EmuCtx): void {
  ctx.reply({ retval: 0, client_index: 0, vpe_pid: s.options.pid });
}

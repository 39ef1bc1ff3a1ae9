/**
 * What differs between the three `vpp_mode`s, behind one interface: each mode has a driver, looked
 * up in DRIVERS by the CHILD_SA's mode. What all modes share (the two SAs, rollback, bookkeeping,
 * routes by reference, the resync) is done by the callers.
 */

import type { SaEndpoint, VppMode } from '../types.ts';
import type { ChildInstall } from '../types.ts';
import type { Backend, InstalledChild, Snapshot } from './state.ts';
import type { Undo } from './txn.ts';
import { P2P_DRIVER } from './driver-p2p.ts';
import { P2MP_DRIVER } from './driver-p2mp.ts';
import { POLICY_DRIVER } from './driver-policy.ts';

export interface ModeDriver {
  /**
   * Adds the CHILD_SA's two SAs (st.saIn, st.saOut) and what its mode needs, registering every
   * step in `undo` (the caller rolls back on failure). `old`: the installed CHILD_SA of the same
   * mode it replaces (make-before-break) or rebuilds (update()). `preset`: a replay after a VPP
   * restart, which keeps the ids, interface and SPD entries it had.
   */
  install(b: Backend, c: ChildInstall, st: InstalledChild, old: InstalledChild | undefined, undo: Undo, preset: InstalledChild | undefined): Promise<void>;
  /** Takes the CHILD_SA out of VPP, bar its two SAs (the caller deletes them afterwards). */
  teardown(b: Backend, st: InstalledChild): Promise<void>;
  /** After update() rebuilt the CHILD_SA as `st`: removes what only its previous SAs used (routes and SAs aside). */
  retire(b: Backend, prev: InstalledChild, st: InstalledChild): Promise<void>;
  /** VPP still holds what the CHILD_SA uses besides its SAs (interface, protection, SPD). */
  intact(st: InstalledChild, snap: Snapshot): boolean;
  /**
   * Like intact(), for what belongs to this CHILD_SA alone. What it shares and what is judged as a
   * whole (an SPD with all its users, by the resync) counts as intact here.
   */
  ownPartsIntact(st: InstalledChild, snap: Snapshot): boolean;
  /**
   * Interfaces of VPP's own configuration (not ones this back end creates) the CHILD_SA needs, e.g.
   * the interface lending its address or the SPD's interface. After a VPP restart the replay waits
   * for them: VPP answers its API before its startup-config has created them.
   */
  requiredInterfaces(b: Backend, c: ChildInstall): string[];
  /** update() to these endpoints needs new SAs rather than an update of the SAs it has. */
  rebuildsOnMove(c: ChildInstall, remote: SaEndpoint): boolean;
}

export const DRIVERS: Readonly<Record<VppMode, ModeDriver>> = {
  p2p: P2P_DRIVER,
  p2mp: P2MP_DRIVER,
  policy: POLICY_DRIVER,
};

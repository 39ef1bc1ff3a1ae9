/**
 * The identifiers this back end hands out, since VPP allocates none of them: inbound SPIs, sad_ids
 * and SPD ids (top byte 0x7e, OUR_ID_PREFIX) and p2p ipsec interface instances (from
 * p2pInstanceBase up). Ids VPP holds for others, or that it keeps although we deleted them, are
 * avoided.
 */

import { SpiAllocator } from '../spi.ts';

/** Top byte of every sad_id and SPD id this back end creates. */
export const OUR_ID_PREFIX = 0x7e000000;
const OUR_ID_MASK = 0xff000000;
const OUR_ID_SPAN = 0x00ffffff;
/** VPP's ipsec interface instances are 0..16383 (ipsec_itf_instance_alloc). */
export const MAX_INSTANCES = 16 * 1024;

export function isOurId(id: number): boolean {
  return ((id & OUR_ID_MASK) >>> 0) === OUR_ID_PREFIX;
}

export interface Ids {
  readonly p2pInstanceBase: number;
  /** SPIs handed out by allocateSpi() and not yet installed or released. */
  readonly allocatedSpis: Set<number>;
  /** Inbound SPIs of installed CHILD_SAs → child id. */
  readonly liveSpis: Map<number, number>;
  /** SPIs of inbound SAs VPP holds that are not ours (never handed out). */
  readonly foreignSpis: Set<number>;
  readonly spis: SpiAllocator;
  readonly liveSadIds: Set<number>;
  /** sad_ids with our prefix that VPP holds although no CHILD_SA owns them (never handed out). */
  readonly avoidSadIds: Set<number>;
  nextSad: number;
  /** SPD ids with our prefix that VPP holds although no SPD state owns them (never handed out). */
  readonly avoidSpdIds: Set<number>;
  nextSpd: number;
  readonly usedInstances: Set<number>;
  /** A lower bound of the free instances. */
  instanceHint: number;
  /** Instances VPP uses for interfaces that are not ours. */
  readonly foreignInstances: Set<number>;
}

export function newIds(p2pInstanceBase: number): Ids {
  const allocatedSpis = new Set<number>();
  const liveSpis = new Map<number, number>();
  const foreignSpis = new Set<number>();
  return {
    p2pInstanceBase,
    allocatedSpis,
    liveSpis,
    foreignSpis,
    spis: new SpiAllocator((spi) => allocatedSpis.has(spi) || liveSpis.has(spi) || foreignSpis.has(spi)),
    liveSadIds: new Set(),
    avoidSadIds: new Set(),
    nextSad: 1,
    avoidSpdIds: new Set(),
    nextSpd: 1,
    usedInstances: new Set(),
    instanceHint: 0,
    foreignInstances: new Set(),
  };
}

export function allocSadId(ids: Ids): number {
  for (let i = 0; i < OUR_ID_SPAN; i++) {
    const id = (OUR_ID_PREFIX | ids.nextSad) >>> 0;
    ids.nextSad = ids.nextSad >= OUR_ID_SPAN ? 1 : ids.nextSad + 1;
    if (!ids.liveSadIds.has(id) && !ids.avoidSadIds.has(id)) {
      ids.liveSadIds.add(id);
      return id;
    }
  }
  throw new Error('no free SA ids');
}

/** An SPD id with our prefix that is not in `used` (`prefer` when it is free: a replay keeps ids). */
export function allocSpdId(ids: Ids, used: ReadonlySet<number>, prefer?: number): number {
  const free = (id: number): boolean => isOurId(id) && (id & OUR_ID_SPAN) !== 0 && !used.has(id) && !ids.avoidSpdIds.has(id);
  if (prefer !== undefined && free(prefer)) return prefer;
  for (let i = 0; i < OUR_ID_SPAN; i++) {
    const id = (OUR_ID_PREFIX | ids.nextSpd) >>> 0;
    ids.nextSpd = ids.nextSpd >= OUR_ID_SPAN ? 1 : ids.nextSpd + 1;
    if (free(id)) return id;
  }
  throw new Error('no free SPD ids');
}

/** Lowest free p2p instance. */
export function allocInstance(ids: Ids): number {
  for (let i = Math.max(ids.instanceHint, ids.p2pInstanceBase); i < MAX_INSTANCES; i++) {
    if (!ids.usedInstances.has(i) && !ids.foreignInstances.has(i)) {
      ids.usedInstances.add(i);
      ids.instanceHint = i + 1;
      return i;
    }
  }
  throw new Error(`no free ipsec interface instance from ${ids.p2pInstanceBase} up (VPP allows ipsec0..ipsec${MAX_INSTANCES - 1})`);
}

export function freeInstance(ids: Ids, i: number): void {
  ids.usedInstances.delete(i);
  if (i < ids.instanceHint) ids.instanceHint = i;
}

/** Gives back the sad_ids of a CHILD_SA that no longer has them. */
export function freeSadIds(ids: Ids, saIn: number, saOut: number): void {
  ids.liveSadIds.delete(saIn);
  ids.liveSadIds.delete(saOut);
}

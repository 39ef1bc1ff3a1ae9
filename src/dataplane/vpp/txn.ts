/**
 * How the back end changes VPP in steps that can be taken back: every step that succeeds registers
 * how to undo it, independent steps go out together, and a failure undoes what was done (newest
 * first).
 */

import type { VppLogger } from '../../vpp/client.ts';
import { isGone } from './state.ts';

/** Undo steps, oldest first. */
export type Undo = (() => Promise<unknown>)[];

/** An undoable step: resolves with how to undo it (undefined: nothing to undo). */
export type Step = Promise<(() => Promise<unknown>) | undefined>;

/** Runs undo steps newest first; failures are logged, not thrown. */
export async function rollback(log: VppLogger, undo: Undo, what: string): Promise<void> {
  for (let i = undo.length - 1; i >= 0; i--) {
    try {
      await undo[i]!();
    } catch (e) {
      if (!isGone(e)) log.warn({ err: (e as Error).message, what }, 'rollback step failed');
    }
  }
}

/** Runs independent steps at once; every success is registered for undo before the first failure is thrown. */
export async function parallel(steps: Step[], undo: Undo): Promise<void> {
  const res = await Promise.allSettled(steps);
  let err: unknown;
  for (const r of res) {
    if (r.status === 'fulfilled') {
      if (r.value) undo.push(r.value);
    } else if (err === undefined) err = r.reason;
  }
  if (err !== undefined) throw err;
}

/** A step that has nothing to undo (its own undo steps, if any, went into the list already). */
export function noUndo(p: Promise<unknown>): Step {
  return p.then(() => undefined);
}

/**
 * Control-socket commands that only read engine state, shared by the daemon and the benchmarks.
 */
import type { Handler } from './server.ts';
import type { SaTable } from '../ikev2/sa/table.ts';
import type { ChildCounters } from '../dataplane/types.ts';
import { ikeView, type WallTime } from './views.ts';

/** Reads the traffic counters of CHILD_SAs (the dataplane's counters()). */
export type CounterSource = (childIds: readonly number[]) => Promise<Map<number, ChildCounters>>;

/** IKE SAs whose CHILD_SAs' counters are read together, in one dataplane call. */
const COUNTER_BATCH = 256;

/**
 * `list-sas [--ike NAME]`: one streamed item per IKE SA, so 50,000 SAs never become one giant string.
 * It walks a snapshot of the table, so SAs added or removed while the client reads do not disturb it.
 */
export function listSasHandler(table: () => SaTable, wall: WallTime, counters?: CounterSource): Handler {
  return async (args, reply) => {
    const name = typeof args.ike === 'string' ? args.ike : undefined;
    const all = [...table().values()];
    const sas = name ? all.filter((sa) => sa.conn?.name === name) : all;
    let n = 0;
    for (let i = 0; i < sas.length && !reply.closed; i += COUNTER_BATCH) {
      const batch = sas.slice(i, i + COUNTER_BATCH);
      // bytes and packets of the batch's CHILD_SAs in one read; without counters the fields are null
      let counts: Map<number, ChildCounters> | undefined;
      if (counters) {
        const ids = batch.flatMap((sa) => sa.children.map((c) => c.id));
        if (ids.length > 0) counts = await counters(ids).catch(() => undefined);
      }
      for (const sa of batch) {
        if (sa.dead || reply.closed) continue;
        await reply.item(ikeView(sa, wall, counts));
        n++;
      }
    }
    return { count: n };
  };
}

/**
 * Control-socket commands that only read engine state, shared by the daemon and the benchmarks.
 */
import type { Handler } from './server.ts';
import type { SaTable } from '../ikev2/sa/table.ts';
import { ikeView, type WallTime } from './views.ts';

/**
 * `list-sas [--ike NAME]`: one streamed item per IKE SA, so 50,000 SAs never become one giant string.
 * It walks a snapshot of the table, so SAs added or removed while the client reads do not disturb it.
 */
export function listSasHandler(table: () => SaTable, wall: WallTime): Handler {
  return async (args, reply) => {
    const name = typeof args.ike === 'string' ? args.ike : undefined;
    const all = [...table().values()];
    const sas = name ? all.filter((sa) => sa.conn?.name === name) : all;
    let n = 0;
    for (const sa of sas) {
      if (sa.dead || reply.closed) continue;
      await reply.item(ikeView(sa, wall));
      n++;
    }
    return { count: n };
  };
}

/**
 * What a reload changes: connections added, removed, changed (their effective config, PSKs included)
 * and unchanged; daemon/vpp settings that apply at once and those that need a restart. Pure functions
 * over two configs; the daemon applies the result.
 */
import type { Config, ConnectionConfig } from '../config/types.ts';
import { LIVE_SETTINGS } from '../config/schema.ts';
import { snakeCase } from '../common/text.ts';

/** daemon/vpp settings (config field names) a reload applies without a restart: the rows marked live in the key table. */
export { LIVE_SETTINGS };

export interface ReloadReport {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  /** Settings that changed in the file but only take effect after a restart (e.g. `daemon.listen`). */
  restart_required: string[];
  /** Problems applying settings that do apply at once (e.g. the new metrics address cannot be bound). */
  warnings: string[];
}

/** Looks up the PSK for a pair of identities, as the engine does at IKE_AUTH. */
export type PskLookup = (localId: string, remoteId: string) => Buffer | undefined;

/** Effective config of a connection, for comparison (source positions excluded, buffers as hex). */
export function connectionKey(c: ConnectionConfig): string {
  return JSON.stringify(c, (k, v: unknown) => (k === 'loc' ? undefined : Buffer.isBuffer(v) ? v.toString('hex') : v));
}

/**
 * The identities a connection authenticates with when both are fixed by its config (an id, or else a
 * single host address, which is what the engine uses when no id is set); undefined when either side
 * is open (%any, wildcards, ranges), where only live SAs tell which PSK is in use.
 */
export function fixedIds(c: ConnectionConfig): { local: string; remote: string } | undefined {
  const side = (id: string, addrs: string[]): string | undefined => {
    if (id && id !== '%any') return /[*]/.test(id) ? undefined : id;
    if (addrs.length === 1 && !addrs[0]!.includes('/') && !addrs[0]!.includes('-')) return addrs[0];
    return undefined;
  };
  const local = side(c.local.id, c.localAddrs);
  const remote = side(c.remote.id, c.remoteAddrs);
  return local !== undefined && remote !== undefined ? { local, remote } : undefined;
}

function sameKey(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.equals(b);
}

function usesPsk(c: ConnectionConfig): boolean {
  return c.local.auth === 'psk' || c.remote.auth === 'psk';
}

/**
 * Sorts the connections of `fresh` against `old`. A connection counts as changed when its settings
 * differ, when the certificates, private key or CRLs it uses differ (files are read again at every
 * load), or when it uses PSKs and the key for its identities differs: for fixed identities that is
 * checked from the configs, for the identities of its live IKE SAs (`liveIds`) from each SA.
 */
export function diffConnections(
  old: Config,
  fresh: Config,
  oldPsk: PskLookup,
  newPsk: PskLookup,
  liveIds: (name: string) => Iterable<{ localId: string; remoteId: string }>,
): Pick<ReloadReport, 'added' | 'removed' | 'changed' | 'unchanged'> {
  const before = new Map(old.connections.map((c) => [c.name, c]));
  const names = new Set(fresh.connections.map((c) => c.name));
  const r: Pick<ReloadReport, 'added' | 'removed' | 'changed' | 'unchanged'> = { added: [], removed: [], changed: [], unchanged: [] };
  for (const c of fresh.connections) {
    const o = before.get(c.name);
    if (!o) {
      r.added.push(c.name);
      continue;
    }
    let changed = connectionKey(o) !== connectionKey(c);
    // certificates, keys and CRLs are re-read by every reload: new contents change the connection
    if (!changed && old.credentials?.digest.get(c.name) !== fresh.credentials?.digest.get(c.name)) changed = true;
    if (!changed && usesPsk(c)) {
      const ids = fixedIds(c);
      if (ids && !sameKey(oldPsk(ids.local, ids.remote), newPsk(ids.local, ids.remote))) changed = true;
      if (!changed) {
        for (const sa of liveIds(c.name)) {
          if (!sameKey(oldPsk(sa.localId, sa.remoteId), newPsk(sa.localId, sa.remoteId))) {
            changed = true;
            break;
          }
        }
      }
    }
    (changed ? r.changed : r.unchanged).push(c.name);
  }
  for (const name of before.keys()) if (!names.has(name)) r.removed.push(name);
  return r;
}

function configName(section: string, field: string): string {
  return `${section}.${snakeCase(field)}`;
}

/** daemon/vpp settings that differ, split into those applied now and those needing a restart (config key names). */
export function settingChanges(old: Config, fresh: Config): { live: string[]; restart: string[] } {
  const live: string[] = [];
  const restart: string[] = [];
  for (const section of ['daemon', 'vpp'] as const) {
    const a = old[section] as unknown as Record<string, unknown>;
    const b = fresh[section] as unknown as Record<string, unknown>;
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (JSON.stringify(a[k]) === JSON.stringify(b[k])) continue;
      if (LIVE_SETTINGS.has(`${section}.${k}`)) live.push(`${section}.${k}`);
      else restart.push(configName(section, k));
    }
  }
  return { live, restart };
}

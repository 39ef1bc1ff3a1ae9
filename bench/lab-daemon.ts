/**
 * vpp-iked as a benchmark runs it: inside a lab namespace (test/interop/harness.ts), its output
 * written to a file rather than kept in memory (a long run at `log_level = info` writes hundreds of
 * thousands of lines), ready once its control socket answers. Used by bench/vs-strongswan.ts and
 * bench/soak.ts.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Lab, LabProcess, Side } from '../test/interop/harness.ts';
import { controlRequest } from '../src/control/server.ts';
import { readLog } from '../test/helpers/load-tester.ts';
import { sleep } from '../test/helpers/wait.ts';

const ROOT = resolve(import.meta.dirname, '..');
const NODE = join(ROOT, 'node_modules/.bin/node');

export interface DaemonProc {
  proc: LabProcess;
  /** the control socket */
  ctl: string;
  /** stdout and stderr of the daemon */
  logPath: string;
  startedAt: number;
}

/** Which code the daemon runs (its `vpp-iked started` line): `compiled` (dist/, `npm run build`) or `typescript`. */
export function daemonCode(d: DaemonProc): string {
  try {
    return /"code":"(\w+)"/.exec(readFileSync(d.logPath, 'utf8'))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Writes `config` (the whole vpp-iked.conf; it must set `daemon.control_socket` to `ctl`) into
 * `dir` and starts `bin/vpp-iked.js` of the checkout `root` in the lab's `side` namespace with the
 * node options `nodeFlags`; resolves once the control socket answers (rejects if the daemon exits
 * first, or after timeoutMs).
 */
export async function spawnDaemon(
  lab: Lab,
  side: Side,
  dir: string,
  ctl: string,
  config: string,
  nodeFlags: readonly string[],
  root = ROOT,
  timeoutMs = 60_000,
  /** More environment for the daemon (e.g. MALLOC_ARENA_MAX, as the systemd unit sets it). */
  env: NodeJS.ProcessEnv = {},
): Promise<DaemonProc> {
  mkdirSync(dir, { recursive: true });
  const cfgPath = join(dir, 'vpp-iked.conf');
  writeFileSync(cfgPath, config);
  const logPath = join(dir, 'vpp-iked.log');
  const startedAt = performance.now();
  // `sh -c exec`: the process's pid is the daemon's own (its /proc figures are the daemon's)
  const proc = lab.spawn(
    side,
    'sh',
    ['-c', 'out="$1"; shift; exec "$@" >"$out" 2>&1', 'sh', logPath, NODE, ...nodeFlags, join(root, 'bin/vpp-iked.js'), '--config', cfgPath],
    env,
    { name: `vpp-iked-${Date.now()}` },
  );
  let exited = false;
  void proc.exited.then(() => { exited = true; });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) throw new Error(`vpp-iked exited during start-up:\n${readLog(logPath)}`);
    try {
      await controlRequest(ctl, 'stats', {}, undefined, undefined, 5000);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`vpp-iked did not answer on ${ctl} within ${timeoutMs / 1000} s:\n${readLog(logPath)}`);
      await sleep(50);
    }
  }
  return { proc, ctl, logPath, startedAt };
}

/** `vpp-ikectl stats` over the control socket. */
export async function daemonStats(d: DaemonProc): Promise<Record<string, unknown>> {
  return (await controlRequest(d.ctl, 'stats', {}, undefined, undefined, 10_000)) as Record<string, unknown>;
}

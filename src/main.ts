/**
 * vpp-iked: the IKEv2 daemon. Parses the command line, loads the config, starts the daemon and
 * wires signals (SIGHUP reload, SIGTERM/SIGINT graceful stop, a second signal stops at once).
 */
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.ts';
import { limitHeapGrowth } from './daemon/heap.ts';
import { Daemon } from './daemon/daemon.ts';
import { flushLogs, isLevel } from './log/logger.ts';

const USAGE = `Usage: vpp-iked [--config FILE] [--check] [--log-level LEVEL] [--foreground]

IKEv2 key-management daemon: negotiates IPsec SAs with peers and installs them into FD.io VPP.

Options:
  -c, --config FILE      configuration file (default /etc/vpp-iked/vpp-iked.conf)
      --check            parse and validate the configuration, print FILE:LINE:COL: message
                         for each error, exit 0 (valid) or 1 (errors); nothing is started
  -l, --log-level LEVEL  trace | debug | info | warn | error (overrides daemon.log_level)
  -f, --foreground       run in the foreground (the default; systemd runs it this way)
  -h, --help             show this help

Signals: SIGHUP reloads the configuration; SIGTERM or SIGINT stops gracefully within
daemon.stop_timeout (daemon.stop_action: delete tells peers and cleans VPP, keep leaves VPP's SAs
installed); a second signal stops at once.
systemd: with NOTIFY_SOCKET set (Type=notify), readiness, reloads and the stop are reported.
Exit codes: 0 clean stop, 1 fatal error, 2 usage error.
Control: vpp-ikectl (see vpp-ikectl --help).`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c', default: '/etc/vpp-iked/vpp-iked.conf' },
        check: { type: 'boolean', default: false },
        'log-level': { type: 'string', short: 'l' },
        foreground: { type: 'boolean', short: 'f', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    process.stderr.write(`vpp-iked: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const level = values['log-level'];
  if (level !== undefined && !isLevel(level)) {
    process.stderr.write(`vpp-iked: unknown log level '${level}'\n`);
    return 2;
  }
  // a file of thousands of connections is parsed with V8's old generation held as the daemon holds it
  if (!values.check) limitHeapGrowth();
  const heapBeforeConfig = process.memoryUsage().heapTotal;
  const { config, errors } = loadConfig(values.config);
  if (values.check) {
    for (const e of errors) process.stdout.write(`${e.toString()}\n`);
    if (!config) return 1;
    process.stdout.write(`${values.config}: OK (${config.connections.length} connections, ${config.secrets.length} secrets)\n`);
    return 0;
  }
  if (!config) {
    for (const e of errors) process.stderr.write(`${e.toString()}\n`);
    process.stderr.write(`vpp-iked: configuration has ${errors.length} error(s), not starting\n`);
    return 1;
  }
  const daemon = new Daemon({ configPath: values.config, config, logLevel: level, heapBeforeConfig });
  // Signals during start-up (which can wait a long time for VPP): SIGHUP is ignored, SIGTERM/SIGINT
  // exit at once; no SA exists yet and a stale control socket is cleaned by the next start.
  let started = false;
  let stopNow: (sig: string) => void = (sig) => {
    process.stderr.write(`vpp-iked: ${sig} during start-up, exiting\n`);
    process.exit(0);
  };
  const onTerm = (): void => stopNow('SIGTERM');
  const onInt = (): void => stopNow('SIGINT');
  const onHup = (): void => {
    if (!started) {
      process.stderr.write('vpp-iked: SIGHUP during start-up ignored\n');
      return;
    }
    daemon.reload().catch(() => {
      // logged by the daemon; the running config stays
    });
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  try {
    await daemon.start();
  } catch (e) {
    process.stderr.write(`vpp-iked: ${(e as Error).message}\n`);
    await daemon.stop().catch(() => {});
    return 1;
  }
  started = true;
  return new Promise<number>((resolve) => {
    let stops = 0;
    stopNow = (sig: string): void => {
      stops++;
      if (stops > 1) {
        process.stderr.write(`vpp-iked: second ${sig}, exiting now\n`);
        process.exit(1);
      }
      // The daemon keeps to daemon.stop_timeout itself; this only catches a stop that hangs.
      const limit = daemon.runningConfig.daemon.stopTimeout * 1000 + 3000;
      const hard = setTimeout(() => {
        process.stderr.write(`vpp-iked: graceful stop did not finish within ${limit / 1000} s, exiting\n`);
        process.exit(1);
      }, limit);
      hard.unref();
      daemon.stop().then(
        () => resolve(0),
        (e: unknown) => {
          process.stderr.write(`vpp-iked: stop failed: ${e instanceof Error ? e.message : String(e)}\n`);
          resolve(1);
        },
      );
    };
  });
}

/** Run as a program: exit with main()'s code once logs are flushed. */
export function runMain(argv: string[]): void {
  main(argv).then(
    (code) => {
      process.exitCode = code;
      // log lines are written off the event loop: out first (2 s at most), then exit
      void flushLogs(2000).then(() => process.exit(code));
    },
    (e: unknown) => {
      process.stderr.write(`vpp-iked: fatal: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}

if (import.meta.main) runMain(process.argv.slice(2));

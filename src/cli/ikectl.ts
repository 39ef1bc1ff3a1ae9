/**
 * vpp-ikectl: operator CLI for a running vpp-iked, over its control socket.
 * Exit codes: 0 success, 1 failure (message on stderr), 2 usage error.
 */
import { parseArgs } from 'node:util';
import { controlRequest } from '../control/server.ts';
import { formatIkeText, table, type CertView, type IkeView } from '../control/views.ts';
import { DEFAULTS } from '../config/schema.ts';

const DEFAULT_SOCKET = DEFAULTS.daemon.controlSocket;

const USAGE = `Usage: vpp-ikectl [--socket PATH] COMMAND [options] [--json]

Commands:
  list-sas [--ike NAME]                 IKE SAs with their CHILD SAs
  list-conns                            loaded connections
  list-certs                            loaded certificates: subject, issuer, validity, key type,
                                        the connections that use them
  initiate --ike NAME [--child NAME]    bring up a connection (or one of its children)
  terminate --ike NAME | --ike-id ID | --child-id ID
                                        delete SAs (the peer is told)
  rekey --ike-id ID | --child-id ID     rekey an IKE SA (its CHILD SAs move along) or a CHILD SA
                                        (make-before-break)
  reload                                re-read the config file, print what changed
  stats                                 counters
  vpp-sas                               what the dataplane (VPP) holds
  log-level LEVEL [--subsystem NAME]    change the log level at run time
  monitor                               print IKE/CHILD SA events as they happen

Options:
  -s, --socket PATH   control socket (default ${DEFAULT_SOCKET})
  -j, --json          print one JSON document (snake_case keys) instead of text
  -h, --help          show this help`;

export async function ikectl(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string', short: 's', default: process.env.VPP_IKED_SOCKET ?? DEFAULT_SOCKET },
        json: { type: 'boolean', short: 'j', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        ike: { type: 'string' },
        child: { type: 'string' },
        'ike-id': { type: 'string' },
        'child-id': { type: 'string' },
        subsystem: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    process.stderr.write(`vpp-ikectl: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const cmd = positionals[0];
  if (!cmd) {
    process.stderr.write(USAGE + '\n');
    return 2;
  }
  const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : s + '\n');
  const json = (x: unknown): void => out(JSON.stringify(x, null, 2));
  const id = (s: string | undefined, name: string): number | undefined => {
    if (s === undefined) return undefined;
    if (!/^\d+$/.test(s)) throw new UsageError(`--${name} must be a number`);
    return Number(s);
  };
  const sock = v.socket!;
  try {
    switch (cmd) {
      case 'list-sas': {
        const items: IkeView[] = [];
        if (v.json) {
          // Stream the array: one element per IKE SA as it arrives.
          let first = true;
          process.stdout.write('[');
          await controlRequest(sock, 'list-sas', { ike: v.ike }, (x) => {
            process.stdout.write((first ? '\n' : ',\n') + JSON.stringify(x));
            first = false;
          });
          process.stdout.write(first ? ']\n' : '\n]\n');
        } else {
          await controlRequest(sock, 'list-sas', { ike: v.ike }, (x) => {
            items.push(x as IkeView);
            out(formatIkeText(x as IkeView));
          });
          if (items.length === 0) out('no IKE SAs');
        }
        return 0;
      }
      case 'list-conns': {
        const r = (await controlRequest(sock, 'list-conns')) as {
          name: string;
          local_addrs: string[];
          remote_addrs: string[];
          local: { auth: string; id: string | null };
          remote: { auth: string; id: string | null };
          children: { name: string; local_ts: string[]; remote_ts: string[]; vpp_mode: string; start_action: string }[];
        }[];
        if (v.json) json(r);
        else
          out(
            table(
              ['NAME', 'LOCAL', 'REMOTE', 'AUTH', 'CHILDREN'],
              r.map((c) => [
                c.name,
                `${c.local_addrs.join(',') || '%any'} ${c.local.id ?? ''}`.trim(),
                `${c.remote_addrs.join(',') || '%any'} ${c.remote.id ?? ''}`.trim(),
                `${c.local.auth}/${c.remote.auth}`,
                c.children.map((ch) => `${ch.name}(${ch.local_ts.join(',') || 'dynamic'} === ${ch.remote_ts.join(',') || 'dynamic'}, ${ch.vpp_mode})`).join(' '),
              ]),
            ),
          );
        return 0;
      }
      case 'list-certs': {
        const r = (await controlRequest(sock, 'list-certs')) as CertView[];
        if (v.json) json(r);
        else if (r.length === 0) out('no certificates');
        else
          out(
            table(
              ['SUBJECT', 'ISSUER', 'VALID', 'KEY', 'USED BY'],
              r.map((c) => [
                c.subject,
                c.issuer,
                `${c.not_before.slice(0, 10)} .. ${c.not_after.slice(0, 10)} (${c.days_left < 0 ? 'expired' : `${c.days_left} days left`})`,
                `${c.key_type}${c.has_private_key ? ', private key' : ''}`,
                c.used_by.map((u) => `${u.connection} (${u.use})`).join(', '),
              ]),
            ),
          );
        return 0;
      }
      case 'initiate': {
        if (!v.ike) throw new UsageError('initiate needs --ike NAME');
        const r = (await controlRequest(sock, 'initiate', { ike: v.ike, child: v.child }, undefined, undefined, 120_000)) as IkeView;
        if (v.json) json(r);
        else out(`initiated: ${formatIkeText(r)}`);
        return 0;
      }
      case 'terminate': {
        const args = { ike: v.ike, ike_id: id(v['ike-id'], 'ike-id'), child_id: id(v['child-id'], 'child-id') };
        if (args.ike === undefined && args.ike_id === undefined && args.child_id === undefined) throw new UsageError('terminate needs --ike, --ike-id or --child-id');
        const r = await controlRequest(sock, 'terminate', args);
        if (v.json) json(r);
        else out(`terminating: ${JSON.stringify((r as { terminated: unknown }).terminated)}`);
        return 0;
      }
      case 'rekey': {
        const args = { ike_id: id(v['ike-id'], 'ike-id'), child_id: id(v['child-id'], 'child-id') };
        if (args.ike_id === undefined && args.child_id === undefined) throw new UsageError('rekey needs --ike-id or --child-id');
        const r = await controlRequest(sock, 'rekey', args);
        if (v.json) json(r);
        else out(`rekeying: ${JSON.stringify(r)}`);
        return 0;
      }
      case 'reload': {
        const r = (await controlRequest(sock, 'reload')) as Record<string, string[]>;
        if (v.json) json(r);
        else {
          for (const k of ['added', 'removed', 'changed', 'unchanged']) {
            const names = r[k] ?? [];
            out(`${k}: ${names.length}${names.length ? ` (${names.join(', ')})` : ''}`);
          }
          const restart = r.restart_required ?? [];
          if (restart.length) out(`needs a restart to take effect: ${restart.join(', ')}`);
          for (const w of r.warnings ?? []) out(`warning: ${w}`);
        }
        return 0;
      }
      case 'stats': {
        const r = (await controlRequest(sock, 'stats')) as Record<string, unknown>;
        if (v.json) json(r);
        else out(table(['COUNTER', 'VALUE'], flatten(r).map(([k, x]) => [k, String(x)])));
        return 0;
      }
      case 'vpp-sas': {
        const r = await controlRequest(sock, 'vpp-sas');
        // The dump is structured data either way; text mode prints it indented.
        json(r);
        return 0;
      }
      case 'log-level': {
        const level = positionals[1];
        if (!level) throw new UsageError('log-level needs LEVEL');
        const r = await controlRequest(sock, 'log-level', { level, subsystem: v.subsystem });
        if (v.json) json(r);
        else out(table(['SUBSYSTEM', 'LEVEL'], Object.entries(r as Record<string, string>)));
        return 0;
      }
      case 'monitor': {
        await controlRequest(sock, 'monitor', {}, undefined, (ev) => {
          if (v.json) out(JSON.stringify(ev));
          else {
            const e = ev as Record<string, unknown>;
            out(`${String(e.time)} ${String(e.type)} ike=${String(e.ike_id)} ${e.name ?? ''}${e.child ? ` child=${String(e.child)}#${String(e.child_id)}` : ''}${e.reason ? ` (${String(e.reason)})` : ''}`);
          }
        });
        return 0;
      }
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`vpp-ikectl: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`vpp-ikectl: ${(e as Error).message}\n`);
    return 1;
  }
}

class UsageError extends Error {}

function flatten(o: Record<string, unknown>, prefix = ''): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(o)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...flatten(v as Record<string, unknown>, `${prefix}${k}.`));
    else out.push([`${prefix}${k}`, v]);
  }
  return out;
}

/** Run as a program. */
export function runIkectl(argv: string[]): void {
  // Output to a pipe goes out as the reader takes it: exit only once stdout and stderr hold nothing
  // more (a long `list-sas --json` piped to jq would otherwise end cut off). A reader that went away
  // (EPIPE) ends it too.
  const exit = (code: number): void => {
    let left = 2;
    const done = (): void => void (--left === 0 && process.exit(code));
    process.stdout.write('', done);
    process.stderr.write('', done);
  };
  for (const s of [process.stdout, process.stderr]) s.on('error', () => process.exit(1));
  ikectl(argv).then(exit, (e: unknown) => {
    process.stderr.write(`vpp-ikectl: ${e instanceof Error ? e.message : String(e)}\n`);
    exit(1);
  });
}

if (import.meta.main) runIkectl(process.argv.slice(2));

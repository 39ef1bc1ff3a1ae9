/**
 * Runs the VPP emulator until SIGTERM/SIGINT:
 *   node src/vpp/emulator/main.ts --socket PATH [--punt-socket PATH] [--interfaces a,b] [--id-base N] [--quiet]
 * Serves VPP's binary-API wire protocol on PATH with empty tables.
 */

import { startEmulator } from './server.ts';

function usage(msg?: string): never {
  if (msg) process.stderr.write(`vpp-emulator: ${msg}\n`);
  process.stderr.write('usage: vpp-emulator --socket PATH [--punt-socket PATH] [--interfaces a,b] [--id-base N] [--quiet]\n');
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  let socket: string | undefined;
  let puntSocket: string | undefined;
  let interfaces: string[] | undefined;
  let idBase: number | undefined;
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--socket') socket = val();
    else if (a === '--punt-socket') puntSocket = val();
    else if (a === '--interfaces') interfaces = val().split(',').filter((s) => s.length > 0);
    else if (a === '--id-base') {
      idBase = Number(val());
      if (!Number.isInteger(idBase) || idBase < 30 || idBase > 60000) usage('--id-base must be an integer in 30..60000');
    } else if (a === '--quiet') quiet = true;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!socket) usage('--socket is required');
  const log = quiet ? undefined : (line: string): void => void process.stderr.write(`vpp-emulator: ${line}\n`);
  const emu = await startEmulator({
    socket,
    ...(puntSocket !== undefined ? { puntSocket } : {}),
    ...(interfaces !== undefined ? { interfaces } : {}),
    ...(idBase !== undefined ? { idBase } : {}),
    ...(log ? { log } : {}),
  });
  process.stdout.write(`vpp-emulator listening on ${socket}\n`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    emu.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`vpp-emulator: ${(e as Error).message}\n`);
  process.exit(1);
});

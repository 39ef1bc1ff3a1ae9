/**
 * Runs the VPP emulator (src/vpp/emulator/main.ts) as a separate process, as `npm run vpp-emulator`
 * does, for tests that need a VPP binary-API socket outside the test process (a daemon talking to it,
 * or a VPP that crashes and comes back empty).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { NODE, ROOT } from './daemon.ts';

export const EMULATOR_MAIN = join(ROOT, 'src/vpp/emulator/main.ts');

export interface EmulatorProcess {
  readonly socket: string;
  readonly pid: number;
  /** stdout and stderr so far */
  output(): string;
  /** SIGKILL (a crash: the socket file stays behind); resolves when the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

/** Starts the emulator on `socket` (empty tables plus `interfaces`) and waits until it listens. */
export async function startEmulatorProcess(socket: string, o: { interfaces?: string[]; timeoutMs?: number } = {}): Promise<EmulatorProcess> {
  const args = [EMULATOR_MAIN, '--socket', socket];
  if (o.interfaces && o.interfaces.length > 0) args.push('--interfaces', o.interfaces.join(','));
  const child = spawn(NODE, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('vpp-emulator did not start');
  live.add(child);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (out += d));
  const closed = new Promise<number | null>((r) =>
    child.on('close', (code) => {
      live.delete(child);
      r(code);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vpp-emulator did not listen on ${socket} in time\n${out}`));
    }, o.timeoutMs ?? 15_000);
    child.stdout.on('data', (d: string) => {
      out += d;
      if (out.includes(`listening on ${socket}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void closed.then((code) => {
      clearTimeout(timer);
      reject(new Error(`vpp-emulator exited (${code}) during start-up\n${out}`));
    });
  });
  return {
    socket,
    pid: child.pid,
    output: () => out,
    async kill(): Promise<void> {
      child.kill('SIGKILL');
      await closed;
    },
    async stop(): Promise<number | null> {
      child.kill('SIGTERM');
      return closed;
    },
  };
}

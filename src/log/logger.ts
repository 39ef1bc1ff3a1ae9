/**
 * Logging: pino JSON lines on stdout (journald picks them up). Fields are stable: `ike` (IKE SA id),
 * `child_id`, `peer`, `conn`, `child`. Levels can be set per subsystem at run time. Anything that
 * could hold key material is redacted by path, and the engine never passes keys to the logger.
 */
import pino, { type Logger, type DestinationStream } from 'pino';

export const SUBSYSTEMS = ['daemon', 'ike', 'net', 'dataplane', 'vpp', 'control', 'config'] as const;
export type Subsystem = (typeof SUBSYSTEMS)[number];
export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const REDACT = [
  'psk',
  'secret',
  'key',
  'keys',
  'encKey',
  'integKey',
  'privateKey',
  '*.psk',
  '*.secret',
  '*.key',
  '*.keys',
  '*.encKey',
  '*.integKey',
  '*.privateKey',
  '*.*.encKey',
  '*.*.integKey',
];

export interface Logs {
  root: Logger;
  get(s: Subsystem): Logger;
  /** Set the level of one subsystem, or of all when `s` is undefined. */
  setLevel(level: string, s?: Subsystem): void;
  levels(): Record<string, string>;
}

export function isLevel(l: string): boolean {
  return (LEVELS as readonly string[]).includes(l);
}

export function createLogs(level: string, dest?: DestinationStream): Logs {
  const root = pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest ?? pino.destination({ dest: 1, sync: false }),
  );
  const subs = new Map<string, Logger>();
  for (const s of SUBSYSTEMS) subs.set(s, root.child({ subsystem: s }));
  return {
    root,
    get: (s) => subs.get(s)!,
    setLevel(l, s) {
      if (s) subs.get(s)!.level = l;
      else {
        root.level = l;
        for (const c of subs.values()) c.level = l;
      }
    },
    levels: () => Object.fromEntries([...subs].map(([k, v]) => [k, v.level])),
  };
}

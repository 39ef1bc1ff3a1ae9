/**
 * Logging: pino JSON lines on stdout (journald picks them up). Fields are stable: `ike` (IKE SA id),
 * `child_id`, `peer`, `conn`, `child`. Levels can be set per subsystem at run time. Anything that
 * could hold key material is redacted by field name (redact()), and the engine never passes keys to
 * the logger. Only the subsystem loggers are child loggers (pino does not pass child bindings through
 * a formatter): log fields go with each call, where they are redacted.
 */
import pino, { type Logger, type DestinationStream } from 'pino';
import { LineWriter } from './line-writer.ts';

export const SUBSYSTEMS = ['daemon', 'ike', 'net', 'dataplane', 'vpp', 'control', 'config'] as const;
export type Subsystem = (typeof SUBSYSTEMS)[number];
export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/**
 * Field names whose values are replaced by `[redacted]` wherever they appear in a log line's object
 * (nested objects and arrays too, down to MAX_DEPTH levels). The engine never passes keys to the
 * logger; this is the safety net.
 */
const SENSITIVE: ReadonlySet<string> = new Set(['psk', 'secret', 'secrets', 'key', 'keys', 'encKey', 'integKey', 'privateKey', 'skeyseed', 'keymat']);
const CENSOR = '[redacted]';
const MAX_DEPTH = 4;

function isNested(v: unknown): v is object {
  return v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer);
}

/** Whether `o` holds a sensitive field name within MAX_DEPTH levels (checked before anything is copied). */
function holdsSensitive(o: object, depth: number): boolean {
  if (Array.isArray(o)) {
    if (depth >= MAX_DEPTH) return false;
    for (const v of o) if (isNested(v) && holdsSensitive(v, depth + 1)) return true;
    return false;
  }
  for (const k in o) {
    if (SENSITIVE.has(k)) return true;
    const v = (o as Record<string, unknown>)[k];
    if (depth < MAX_DEPTH && isNested(v) && holdsSensitive(v, depth + 1)) return true;
  }
  return false;
}

/** A copy of `o` with the sensitive fields' values replaced (only the parts that hold one are copied). */
function censored(o: object, depth: number): unknown {
  if (Array.isArray(o)) return o.map((v: unknown) => (depth < MAX_DEPTH && isNested(v) && holdsSensitive(v, depth + 1) ? censored(v, depth + 1) : v));
  const out: Record<string, unknown> = {};
  // an Error's own name, message and stack are not enumerable: keep them in the copy
  if (o instanceof Error) {
    out.type = o.name;
    out.message = o.message;
    out.stack = o.stack;
  }
  for (const k in o) {
    const v = (o as Record<string, unknown>)[k];
    out[k] = SENSITIVE.has(k) ? CENSOR : depth < MAX_DEPTH && isNested(v) && holdsSensitive(v, depth + 1) ? censored(v, depth + 1) : v;
  }
  return out;
}

/**
 * The log line's object with sensitive fields redacted. Most lines hold none and are returned as
 * they are after one pass over their field names (pino's path-based redaction cost ~35 µs a line,
 * as much as a tenth of what a whole IKE SA costs the event loop).
 */
export function redact(o: Record<string, unknown>): Record<string, unknown> {
  try {
    return holdsSensitive(o, 0) ? (censored(o, 0) as Record<string, unknown>) : o;
  } catch {
    // a getter that throws, a revoked Proxy: the line goes out without its fields, the caller goes on
    return { redaction_failed: true };
  }
}

export interface Logs {
  root: Logger;
  get(s: Subsystem): Logger;
  /** Set the level of one subsystem, or of all when `s` is undefined. */
  setLevel(level: string, s?: Subsystem): void;
  levels(): Record<string, string>;
  /** Log lines dropped because the output did not keep up or was gone (0 with a caller's destination). */
  dropped(): number;
}

export function isLevel(l: string): boolean {
  return (LEVELS as readonly string[]).includes(l);
}

let stdoutWriter: LineWriter | undefined;

/** The one writer of stdout in this process (batched writes off the event loop; what waits is written at exit). */
function stdout(): LineWriter {
  if (!stdoutWriter) {
    const w = (stdoutWriter = new LineWriter(1));
    process.once('exit', () => w.writeOutAtExit());
  }
  return stdoutWriter;
}

/**
 * Resolves once the log lines written so far to stdout are out, or after `timeoutMs` (a reader that
 * stopped reading); for exits.
 */
export function flushLogs(timeoutMs = 2000): Promise<void> {
  const w = stdoutWriter;
  return new Promise((resolve) => (w ? w.flush(() => resolve(), timeoutMs) : resolve()));
}

/** The daemon's loggers; their lines go to `dest`, by default stdout. */
export function createLogs(level: string, dest?: DestinationStream): Logs {
  const writer = dest ? undefined : stdout();
  const root = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: redact, bindings: redact },
    },
    dest ?? writer!,
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
    dropped: () => writer?.dropped ?? 0,
  };
}

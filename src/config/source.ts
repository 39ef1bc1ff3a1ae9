/**
 * The files of a configuration: reading one with its limits (size, UTF-8 text without control
 * characters, line length), expanding include globs as glob(3) does, and ConfigError, the
 * "FILE:LINE:COL: message" every layer of the loader reports with. parse.ts builds the tree.
 */
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, resolve, sep as pathSep } from 'node:path';
import type { SourceLocation } from './types.ts';

export const MAX_FILE_BYTES = 4 * 1024 * 1024;
export const MAX_LINE_CHARS = 64 * 1024;

/** One problem in a config file, printed as "FILE:LINE:COL: message" (lines and columns from 1). */
export class ConfigError {
  file: string;
  line: number;
  col: number;
  message: string;
  constructor(file: string, line: number, col: number, message: string) {
    this.file = file;
    this.line = line;
    this.col = col;
    this.message = message;
  }
  static at(loc: SourceLocation, message: string): ConfigError {
    return new ConfigError(loc.file, loc.line, loc.col, message);
  }
  toString(): string {
    return `${this.file}:${this.line}:${this.col}: ${this.message}`;
  }
}

/** Reads a config file with the size/type checks; errors are located at `from` (the include), or file:1:1. */
export function readConfigFile(
  path: string,
  from?: SourceLocation,
): { text: string; error?: undefined } | { text?: undefined; error: ConfigError } {
  const at = from ?? { file: path, line: 1, col: 1 };
  const fail = (msg: string) => ({ error: ConfigError.at(at, msg) });
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    return fail(`cannot read '${path}': ${describeFsError(e)}`);
  }
  if (st.isDirectory()) return fail(`'${path}' is a directory, not a config file`);
  if (!st.isFile()) return fail(`'${path}' is not a regular file`);
  if (st.size > MAX_FILE_BYTES) return fail(`'${path}' is larger than 4 MiB (${st.size} bytes)`);
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    return fail(`cannot read '${path}': ${describeFsError(e)}`);
  }
  if (buf.length > MAX_FILE_BYTES) return fail(`'${path}' is larger than 4 MiB (${buf.length} bytes)`);
  const decoded = decodeUtf8(buf, path);
  if (decoded.error) return { error: decoded.error };
  return { text: decoded.text! };
}

export function describeFsError(e: unknown): string {
  const code = (e as { code?: string } | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ELOOP':
      return 'too many symbolic links';
    case 'ENOTDIR':
      return 'a path component is not a directory';
    default:
      return code ?? 'unknown error';
  }
}

/** Strict UTF-8 decode; the error points at the first invalid byte. */
function decodeUtf8(buf: Buffer, file: string): { text?: string; error?: ConfigError } {
  const nul = buf.indexOf(0);
  const limit = nul === -1 ? buf.length : nul;
  try {
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(buf.subarray(0, limit));
    if (nul !== -1) {
      const { line, col } = lineColOf(text, text.length);
      return { error: new ConfigError(file, line, col, 'NUL byte: this is binary data, not a config file') };
    }
    return { text };
  } catch {
    // find the first byte that breaks UTF-8 by decoding ever longer valid prefixes
    let lo = 0;
    let hi = limit;
    const dec = new TextDecoder('utf-8', { fatal: true });
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      try {
        dec.decode(buf.subarray(0, mid), { stream: true });
        lo = mid;
      } catch {
        hi = mid - 1;
      }
    }
    const prefix = new TextDecoder('utf-8').decode(buf.subarray(0, lo));
    const { line, col } = lineColOf(prefix, prefix.length);
    return { error: new ConfigError(file, line, col, 'invalid UTF-8: this is binary data, not a config file') };
  }
}

function lineColOf(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1 };
}

const CONTROL_CHAR = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

/** Checks for control characters and over-long lines; returns the first problem in text order. */
export function checkText(text: string, file: string): ConfigError | undefined {
  const m = CONTROL_CHAR.exec(text);
  const bad = m ? m.index : text.length;
  let line = 1;
  let lineStart = 0;
  for (;;) {
    let nl = text.indexOf('\n', lineStart);
    if (nl === -1) nl = text.length;
    if (bad < nl) {
      const c = text.charCodeAt(bad);
      if (bad - lineStart > MAX_LINE_CHARS) break;
      const what = c === 0 ? 'NUL byte' : `control character 0x${c.toString(16).padStart(2, '0')}`;
      return new ConfigError(file, line, bad - lineStart + 1, `${what}: this is binary data, not a config file`);
    }
    if (nl - lineStart > MAX_LINE_CHARS) break;
    if (nl >= text.length) return undefined;
    line++;
    lineStart = nl + 1;
  }
  return new ConfigError(file, line, MAX_LINE_CHARS + 1, `line is longer than ${MAX_LINE_CHARS} characters`);
}

export function hasGlob(s: string): boolean {
  return /[*?]/.test(s);
}

function globToRegExp(segment: string): RegExp {
  let re = '^';
  for (const ch of segment) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`${re}$`);
}

/**
 * Expands a '*'/'?' glob over absolute paths: sorted regular files, as glob(3) would list them;
 * names starting with '.' only match a pattern segment that starts with '.'.
 * Returns an error message when a directory on the way cannot be read for another reason than absence.
 */
export function expandGlob(absPattern: string): { files: string[]; error?: string } {
  const parts = absPattern.split(pathSep).filter((p, i) => p !== '' || i === 0);
  let bases = [parts[0] === '' ? pathSep : parts[0]!];
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!;
    const last = i === parts.length - 1;
    const next: string[] = [];
    if (!hasGlob(seg)) {
      for (const b of bases) next.push(join(b, seg));
    } else {
      const re = globToRegExp(seg);
      for (const b of bases) {
        let names: string[];
        try {
          names = readdirSync(b);
        } catch (e) {
          const code = (e as { code?: string }).code;
          if (code === 'ENOENT' || code === 'ENOTDIR') continue;
          return { files: [], error: `cannot list '${b}': ${describeFsError(e)}` };
        }
        names.sort();
        for (const name of names) {
          if (name.startsWith('.') && !seg.startsWith('.')) continue;
          if (re.test(name)) next.push(join(b, name));
        }
      }
    }
    bases = last
      ? next
      : next.filter((p) => {
          try {
            return statSync(p).isDirectory();
          } catch {
            return false;
          }
        });
  }
  const files = bases.filter((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });
  return { files };
}

export function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

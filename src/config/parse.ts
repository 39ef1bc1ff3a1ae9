/**
 * The syntax layer of the config loader: swanctl.conf / strongswan.conf text → a tree of sections
 * and keys, each with its file:line:col. No schema knowledge here; load.ts validates the tree.
 *
 * Syntax (as strongSwan's settings parser, libstrongswan/settings/settings_lexer.l):
 *   name { ... }          sections, nested; "name" and "{" may be on consecutive lines
 *   key = value           the value runs to the end of the line, a '#' or a '}' and is trimmed;
 *                         double-quoted parts keep '#', '}' and blanks and may span lines, with the
 *                         escapes \" \\ \n \r \t, and a backslash before a newline joins lines
 *   # comment             to the end of the line (not inside quotes)
 *   include PATTERN       other files, relative to the including file, '*' and '?' globs; their
 *                         statements go into the section the include appears in
 * Input limits: a file is at most 4 MiB (all files together 64 MiB), a line at most 64 KiB
 * characters, the text must be UTF-8 without NUL bytes or other control characters (tab, CR and LF
 * aside); sections nest at most 64 deep, includes at most 32; a file stops being parsed at 1000
 * errors. Every violation is a ConfigError with file:line:col — nothing throws.
 *
 * Secrets: text from the lines of the `secrets` section is never quoted in messages (a PSK written
 * on the line after `secret =`, or after a '}' in an unquoted value, is parsed as names). Those lines
 * are returned as `secretLines`, so that the loader can do the same. Inside `secrets`, a line whose
 * text cannot be parsed is skipped as a whole, and an unquoted '}' that ends a value must be the last
 * thing on its line (besides more '}' and a comment): the rest would be the tail of the secret.
 */
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { canonical, checkText, ConfigError, expandGlob, hasGlob, MAX_FILE_BYTES, readConfigFile } from './source.ts';
import type { SourceLocation } from './types.ts';
import { ownCopy } from '../common/text.ts';

export { ConfigError, MAX_FILE_BYTES, MAX_LINE_CHARS, readConfigFile } from './source.ts';

export const MAX_SECTION_DEPTH = 64;
export const MAX_INCLUDE_DEPTH = 32;
/** All files of one configuration together. */
export const MAX_TOTAL_BYTES = 64 * 1024 * 1024;
/** Parsing a file stops at this many errors (hostile input cannot make the error list huge). */
export const MAX_ERRORS = 1000;

/**
 * The lines of each file that belong to the `secrets` section (from the line of `secrets {` to the
 * line of its '}'; whole files included there): file → [firstLine, lastLine, firstLine, ...].
 */
export type SecretLines = Map<string, number[]>;

/** Whether `loc` is on a line of the secrets section. */
export function onSecretLine(lines: SecretLines, loc: SourceLocation): boolean {
  const r = lines.get(loc.file);
  if (!r) return false;
  for (let i = 0; i + 1 < r.length; i += 2) if (loc.line >= r[i]! && loc.line <= r[i + 1]!) return true;
  return false;
}

/**
 * Names the secrets section is made of (`secrets`, `ike-NAME`, `private-NAME` and the like, the keys
 * `secret`, `file`, `id`, `id-NAME`): these may be quoted in messages even from its lines.
 */
export function isSecretsSectionName(name: string): boolean {
  return /^(secrets|secret|file|(ike|private|eap|xauth|ntlm|ppk|rsa|ecdsa|pkcs8|pkcs12|token|id)([-_.][A-Za-z0-9_.-]{0,64})?)$/i.test(name);
}

export interface ConfNode {
  kind: 'section';
  name: string;
  loc: SourceLocation;
  children: (ConfNode | ConfKey)[];
}

export interface ConfKey {
  kind: 'key';
  name: string;
  /** The value with quotes and escapes resolved, trimmed. */
  value: string;
  /** Where the key name starts. */
  loc: SourceLocation;
  /** Where the value starts (just after '=' and blanks when the value is empty). */
  valueLoc: SourceLocation;
  /**
   * Only for values that do not map 1:1 onto one source line (quotes, escapes, continuation
   * lines): triples [valueOffset, line, col], each starting a run of characters copied 1:1.
   * Use valueLocAt() rather than reading this.
   */
  segments?: number[];
}

/**
 * The parser's ConfKey: positions kept as numbers, location objects made on access (a config with
 * 10,000 connections has hundreds of thousands of keys).
 */
class KeyNode implements ConfKey {
  readonly kind = 'key' as const;
  name: string;
  value: string;
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly vline: number;
  readonly vcol: number;
  segments?: number[];
  constructor(name: string, value: string, file: string, line: number, col: number, vline: number, vcol: number) {
    // the configuration outlives the file's text: its values must not keep it (names are copied by readName)
    this.name = name;
    this.value = ownCopy(value);
    this.file = file;
    this.line = line;
    this.col = col;
    this.vline = vline;
    this.vcol = vcol;
  }
  get loc(): SourceLocation {
    return { file: this.file, line: this.line, col: this.col };
  }
  get valueLoc(): SourceLocation {
    return { file: this.file, line: this.vline, col: this.vcol };
  }
  toJSON(): object {
    const o: Record<string, unknown> = { kind: this.kind, name: this.name, value: this.value, loc: this.loc, valueLoc: this.valueLoc };
    if (this.segments) o.segments = this.segments;
    return o;
  }
}

/** Source location of the character at `offset` in key.value (for errors about one list element). */
export function valueLocAt(key: ConfKey, offset: number): SourceLocation {
  const segs = key.segments;
  if (!segs) return { file: key.valueLoc.file, line: key.valueLoc.line, col: key.valueLoc.col + offset };
  let i = 0;
  while (i + 3 < segs.length && segs[i + 3]! <= offset) i += 3;
  return { file: key.valueLoc.file, line: segs[i + 1]!, col: segs[i + 2]! + (offset - segs[i]!) };
}

/** Shared state while one file and its includes are parsed. */
interface ParseContext {
  errors: ConfigError[];
  /** Files read so far (the main file first), as given/resolved, not canonicalised. */
  files: string[];
  /** Canonical paths of the files currently being parsed (the include chain). */
  stack: string[];
  /** Directories of those files as named (the base for their relative includes). */
  dirs: string[];
  /** Bytes of all files read so far. */
  bytes: number;
  /** Recently read names (see FileParser.readName). */
  names: (string | undefined)[];
  /** Lines of the secrets section, per file. */
  secretLines: SecretLines;
}

function addSecretLines(ctx: ParseContext, file: string, first: number, last: number): void {
  let r = ctx.secretLines.get(file);
  if (!r) ctx.secretLines.set(file, (r = []));
  r.push(first, last);
}

const NAME_CACHE_SIZE = 1024;

class Abort extends Error {}

/** Printable, length-limited rendering of user text in messages. */
export function show(s: string, max = 64): string {
  const clean = s.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

const C_TAB = 9;
const C_LF = 10;
const C_CR = 13;
const C_SPACE = 32;
const C_QUOTE = 34;
const C_HASH = 35;
const C_EQ = 61;
const C_BACKSLASH = 92;
const C_SEMICOLON = 59;
/** After a ';' in a value: blanks, a name and '=' (what a statement would look like). */
const STATEMENT_AFTER_SEMICOLON = /[ \t]*[^#{}="\r\n\t ;]+[ \t]*=/y;
const C_LBRACE = 123;
const C_RBRACE = 125;

/** Whether c may appear in a section or key name (strongSwan: [^#{}="\r\n\t ]). */
function isNameChar(c: number): boolean {
  return !(c === C_HASH || c === C_LBRACE || c === C_RBRACE || c === C_EQ || c === C_QUOTE || c === C_CR || c === C_LF || c === C_TAB || c === C_SPACE);
}

/** Recursive-descent parser over one file's text; included files get their own FileParser. */
class FileParser {
  readonly text: string;
  readonly file: string;
  readonly ctx: ParseContext;
  readonly includeDepth: number;
  pos = 0;
  line = 1;
  lineStart = 0;

  constructor(text: string, file: string, ctx: ParseContext, includeDepth: number) {
    this.text = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    // keep columns of the first line right when a BOM was removed
    this.file = file;
    this.ctx = ctx;
    this.includeDepth = includeDepth;
  }

  loc(): SourceLocation {
    return { file: this.file, line: this.line, col: this.pos - this.lineStart + 1 };
  }

  err(loc: SourceLocation, message: string): void {
    this.ctx.errors.push(ConfigError.at(loc, message));
    if (this.ctx.errors.length >= MAX_ERRORS) throw new Abort();
  }

  peek(): number {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  newline(): void {
    // at a '\n'
    this.pos++;
    this.line++;
    this.lineStart = this.pos;
  }

  skipBlanks(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === C_SPACE || c === C_TAB || c === C_CR) this.pos++;
      else break;
    }
  }

  skipComment(): void {
    const nl = this.text.indexOf('\n', this.pos);
    this.pos = nl === -1 ? this.text.length : nl;
  }

  /** Skips to the end of the current line (not consuming the newline). */
  skipLine(): void {
    this.skipComment();
  }

  /**
   * Reads a section or key name. Names repeat a lot (10,000 connections have the same keys), so a
   * small cache keyed by first character and length returns the same string without a new copy.
   */
  readName(): string {
    const t = this.text;
    const start = this.pos;
    while (this.pos < t.length && isNameChar(t.charCodeAt(this.pos))) this.pos++;
    const len = this.pos - start;
    const slot = (t.charCodeAt(start) * 31 + len) & (NAME_CACHE_SIZE - 1);
    const names = this.ctx.names;
    const hit = names[slot];
    if (hit !== undefined && hit.length === len && t.startsWith(hit, start)) return hit;
    const name = ownCopy(t.slice(start, this.pos));
    names[slot] = name;
    return name;
  }

  /**
   * Whether the rest of the current line, from the position on, holds more than '}', blanks and a
   * comment (text that, in the secrets section, is likely the tail of a secret).
   */
  moreOnLine(): boolean {
    const t = this.text;
    for (let i = this.pos; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c === C_LF || c === C_HASH) return false;
      if (c !== C_RBRACE && c !== C_SPACE && c !== C_TAB && c !== C_CR) return true;
    }
    return false;
  }

  /**
   * Parses statements into `into` until EOF (closing = false) or the matching '}' (closing = true).
   * `secrets`: the statements are inside the secrets section.
   */
  statements(into: ConfNode, depth: number, closing: boolean, secrets: boolean): void {
    for (;;) {
      this.skipBlanks();
      const c = this.peek();
      if (c === -1) {
        if (closing) {
          const what = !secrets || isSecretsSectionName(into.name) ? `section '${show(into.name)}'` : 'this section (its name is not shown: it is in the secrets section)';
          this.err(into.loc, `${what} is not closed: '}' missing at end of file`);
        }
        return;
      }
      if (c === C_HASH) {
        this.skipComment();
        continue;
      }
      if (c === C_LF) {
        this.newline();
        continue;
      }
      if (c === C_RBRACE) {
        if (closing) {
          this.pos++;
          return;
        }
        this.err(this.loc(), "unexpected '}' (no section is open)");
        this.pos++;
        continue;
      }
      if (c === C_LBRACE) {
        const at = this.loc();
        this.err(at, "section name missing before '{'");
        this.pos++;
        const sink: ConfNode = { kind: 'section', name: '', loc: at, children: [] };
        this.section(sink, depth + 1, secrets);
        continue;
      }
      if (c === C_EQ) {
        this.err(this.loc(), "key name missing before '='");
        this.pos++;
        this.value('', this.line, this.pos - this.lineStart + 1, secrets);
        continue;
      }
      if (c === C_QUOTE) {
        this.err(this.loc(), 'unexpected quoted string: quotes are only allowed in values');
        this.skipLine();
        continue;
      }
      const atLine = this.line;
      const atCol = this.pos - this.lineStart + 1;
      const name = this.readName();
      if (name === 'include') {
        const save = this.pos;
        this.skipBlanks();
        if (this.pos > save && this.peek() !== C_EQ) {
          this.include({ file: this.file, line: atLine, col: atCol }, into, depth, secrets);
          continue;
        }
        this.pos = save;
      }
      this.skipBlanks();
      let d = this.peek();
      if (d === C_LF || d === C_HASH) {
        // strongSwan allows the '{' of a section on the next line
        const save = { pos: this.pos, line: this.line, lineStart: this.lineStart };
        if (d === C_HASH) this.skipComment();
        if (this.peek() === C_LF) {
          this.newline();
          this.skipBlanks();
          if (this.peek() === C_LBRACE) d = C_LBRACE;
        }
        if (d !== C_LBRACE) {
          this.pos = save.pos;
          this.line = save.line;
          this.lineStart = save.lineStart;
        }
      }
      if (d === C_LBRACE) {
        this.pos++;
        const node: ConfNode = { kind: 'section', name, loc: { file: this.file, line: atLine, col: atCol }, children: [] };
        if (!secrets && depth === 0 && name === 'secrets') {
          // the lines of the secrets section, up to the one with its '}', even when parsing stops early
          try {
            this.section(node, depth + 1, true);
          } finally {
            addSecretLines(this.ctx, this.file, atLine, this.line);
          }
        } else {
          this.section(node, depth + 1, secrets);
        }
        into.children.push(node);
      } else if (d === C_EQ) {
        this.pos++;
        into.children.push(this.value(name, atLine, atCol, secrets));
      } else {
        // The name is not quoted: it can be a secret (a PSK on the line after 'secret =', or the part
        // after a '}' in an unquoted value), and the location points at it anyway.
        const at = { file: this.file, line: atLine, col: atCol };
        if (secrets) {
          this.err(at, "expected '=' or '{' after the name that starts here (not shown: in the secrets section a misplaced line can be a secret; a secret goes on the line of 'secret =')");
          // the whole line, '}' included, unless only '}' follow (then they close sections)
          if (this.moreOnLine()) this.skipLine();
        } else {
          this.err(at, "expected '=' or '{' after the name that starts here");
          if (d !== C_RBRACE) this.skipLine();
        }
      }
    }
  }

  section(node: ConfNode, depth: number, secrets: boolean): void {
    if (depth > MAX_SECTION_DEPTH) {
      this.err(node.loc, `sections are nested more than ${MAX_SECTION_DEPTH} deep`);
      throw new Abort();
    }
    this.statements(node, depth, true, secrets);
  }

  /**
   * Parses a value after '=' up to newline, '#', '}' or EOF (not consumed); the key's name is left
   * empty. In the secrets section, a '}' that ends the value with more text after it on the line is
   * an error, and the rest of the line is skipped (braces included).
   */
  value(name: string, keyLine: number, keyCol: number, secrets: boolean): ConfKey {
    const t = this.text;
    this.skipBlanks();
    const vline = this.line;
    const vcol = this.pos - this.lineStart + 1;
    let out = '';
    let committed = 0; // out.length up to the last non-blank or quoted character
    this.segments = undefined;
    this.segOff = 0;
    this.segLine = vline;
    this.segCol = vcol;
    for (;;) {
      const c = this.peek();
      if (c === -1 || c === C_LF || c === C_HASH || c === C_RBRACE) break;
      if (c === C_CR) {
        this.pos++;
        continue;
      }
      if (c === C_QUOTE) {
        const qloc = this.loc();
        this.pos++;
        this.buf = out;
        const closed = this.quoted(true);
        out = this.buf;
        if (!closed) {
          // the string ran to the end of the file: nothing after it can be parsed sensibly
          this.err(qloc, 'unterminated quoted string');
          throw new Abort();
        }
        committed = out.length;
        continue;
      }
      // an unquoted run
      this.mark(out.length);
      const start = this.pos;
      let lastNonBlank = -1;
      let semicolon = false;
      while (this.pos < t.length) {
        const d = t.charCodeAt(this.pos);
        if (d === C_LF || d === C_HASH || d === C_RBRACE || d === C_QUOTE || d === C_CR) break;
        if (d === C_SEMICOLON) {
          STATEMENT_AFTER_SEMICOLON.lastIndex = this.pos + 1;
          if (STATEMENT_AFTER_SEMICOLON.test(t)) {
            semicolon = true;
            break;
          }
        }
        if (d !== C_SPACE && d !== C_TAB) lastNonBlank = this.pos;
        this.pos++;
      }
      out += t.slice(start, this.pos);
      if (lastNonBlank !== -1) committed = out.length - (this.pos - lastNonBlank - 1);
      if (semicolon) {
        // "a = 1; b = 2" is not swanctl.conf syntax (the value would be "1; b = 2"): report it and
        // go on with "b = 2" as a statement, so that later keys (often a secret) are not swallowed
        this.err(this.loc(), "';' does not separate statements: put each 'key = value' on its own line");
        this.pos++;
        break;
      }
    }
    if (committed < out.length) out = out.slice(0, committed);
    if (secrets && this.peek() === C_RBRACE && this.moreOnLine()) {
      this.err(
        this.loc(),
        "an unquoted '}' ends this value in the secrets section, and more text follows on the line: put a secret that contains '}' in quotes (the rest of the line is ignored and not shown)",
      );
      this.skipLine();
    }
    const key = new KeyNode(name, out, this.file, keyLine, keyCol, vline, vcol);
    if (this.segments) key.segments = this.segments;
    return key;
  }

  // value-to-source mapping state of the value being read (see ConfKey.segments)
  segments: number[] | undefined;
  segOff = 0;
  segLine = 0;
  segCol = 0;
  /** Quoted text decoded so far (shared with quoted()). */
  buf = '';

  /** Notes that the value text from offset `len` on maps 1:1 to the source from the current position. */
  mark(len: number): void {
    const col = this.pos - this.lineStart + 1;
    if (this.segLine === this.line && this.segCol + (len - this.segOff) === col) return;
    if (!this.segments) this.segments = len === this.segOff ? [] : [this.segOff, this.segLine, this.segCol];
    else if (this.segments[this.segments.length - 3] === len) this.segments.length -= 3; // empty run
    this.segOff = len;
    this.segLine = this.line;
    this.segCol = col;
    this.segments.push(len, this.line, col);
  }

  /**
   * Reads a quoted string after the opening quote, appending the decoded text to this.buf (and
   * recording source positions when `track`). False if the string is not terminated.
   */
  quoted(track: boolean): boolean {
    const t = this.text;
    const emit = (s: string): void => {
      this.buf += s;
    };
    const mark = (): void => {
      if (track) this.mark(this.buf.length);
    };
    for (;;) {
      if (this.pos >= t.length) return false;
      const c = t.charCodeAt(this.pos);
      if (c === C_QUOTE) {
        this.pos++;
        return true;
      }
      if (c === C_CR) {
        this.pos++;
        continue;
      }
      if (c === C_LF) {
        mark();
        emit('\n');
        this.newline();
        continue;
      }
      if (c === C_BACKSLASH) {
        mark();
        const e = this.pos + 1 < t.length ? t.charCodeAt(this.pos + 1) : -1;
        if (e === -1) return false;
        if (e === C_LF || (e === C_CR && t.charCodeAt(this.pos + 2) === C_LF)) {
          // line continuation: drop backslash and newline
          this.pos += e === C_CR ? 2 : 1;
          this.newline();
          continue;
        }
        this.pos += 2;
        emit(e === 0x6e ? '\n' : e === 0x72 ? '\r' : e === 0x74 ? '\t' : String.fromCharCode(e));
        continue;
      }
      mark();
      const start = this.pos;
      while (this.pos < t.length) {
        const d = t.charCodeAt(this.pos);
        if (d === C_QUOTE || d === C_BACKSLASH || d === C_LF || d === C_CR) break;
        this.pos++;
      }
      emit(t.slice(start, this.pos));
    }
  }

  /** `include PATTERN` (the keyword is consumed, blanks skipped). */
  include(at: SourceLocation, into: ConfNode, depth: number, secrets: boolean): void {
    const t = this.text;
    let pattern = '';
    const c = this.peek();
    if (c === C_QUOTE) {
      const qloc = this.loc();
      this.pos++;
      this.buf = '';
      const closed = this.quoted(false);
      pattern = this.buf;
      if (!closed) {
        this.err(qloc, 'unterminated quoted string');
        throw new Abort();
      }
    } else {
      while (this.pos < t.length) {
        const d = t.charCodeAt(this.pos);
        if (d === C_LF || d === C_CR || d === C_HASH || d === C_RBRACE || d === C_SPACE || d === C_TAB) break;
        if (d === C_BACKSLASH && this.pos + 1 < t.length) {
          const e = t.charCodeAt(this.pos + 1);
          if (e === C_QUOTE || e === C_HASH || e === C_RBRACE || e === C_SPACE) {
            pattern += String.fromCharCode(e);
            this.pos += 2;
            continue;
          }
        }
        pattern += t[this.pos];
        this.pos++;
      }
    }
    this.skipBlanks();
    const rest = this.peek();
    if (rest !== -1 && rest !== C_LF && rest !== C_HASH && rest !== C_RBRACE) {
      this.err(this.loc(), 'unexpected text after the include pattern (quote a pattern that contains blanks)');
      this.skipLine();
      return;
    }
    if (pattern === '') {
      this.err(at, 'include needs a file name or pattern');
      return;
    }
    includeInto(pattern, at, into, this.ctx, depth, this.includeDepth + 1, secrets);
  }
}

/** Resolves an include pattern relative to the including file and parses the files into `into`. */
function includeInto(
  pattern: string,
  at: SourceLocation,
  into: ConfNode,
  ctx: ParseContext,
  sectionDepth: number,
  includeDepth: number,
  secrets: boolean,
): void {
  if (includeDepth > MAX_INCLUDE_DEPTH) {
    ctx.errors.push(ConfigError.at(at, `includes are nested more than ${MAX_INCLUDE_DEPTH} deep`));
    return;
  }
  const base = ctx.dirs.length > 0 ? ctx.dirs[ctx.dirs.length - 1]! : process.cwd();
  const abs = isAbsolute(pattern) ? pattern : join(base, pattern);
  let paths: string[];
  if (hasGlob(pattern)) {
    const g = expandGlob(abs);
    if (g.error) ctx.errors.push(ConfigError.at(at, `include '${show(pattern)}': ${g.error}`));
    paths = g.files;
  } else {
    paths = [abs];
  }
  for (const path of paths) {
    const real = canonical(path);
    const loopAt = ctx.stack.indexOf(real);
    if (loopAt !== -1) {
      const chain = [...ctx.stack.slice(loopAt), real].join(' -> ');
      ctx.errors.push(ConfigError.at(at, `include loop: ${chain}`));
      continue;
    }
    if (ctx.errors.length >= MAX_ERRORS) return;
    const r = readConfigFile(path, at);
    if (r.error) {
      ctx.errors.push(r.error);
      continue;
    }
    ctx.bytes += r.text.length;
    if (ctx.bytes > MAX_TOTAL_BYTES) {
      ctx.errors.push(ConfigError.at(at, `the configuration is larger than 64 MiB in total; '${show(path)}' is not read`));
      return;
    }
    parseFileText(r.text, path, real, into, ctx, sectionDepth, includeDepth, secrets);
  }
}

function parseFileText(
  text: string,
  file: string,
  real: string,
  into: ConfNode,
  ctx: ParseContext,
  sectionDepth: number,
  includeDepth: number,
  secrets: boolean,
): void {
  ctx.files.push(file);
  // a file included into the secrets section is secret from its first line to its last
  if (secrets) addSecretLines(ctx, file, 1, Number.MAX_SAFE_INTEGER);
  const bad = checkText(text, file);
  if (bad) {
    ctx.errors.push(bad);
    return;
  }
  ctx.stack.push(real);
  ctx.dirs.push(dirname(resolve(file)));
  try {
    new FileParser(text, file, ctx, includeDepth).statements(into, sectionDepth, false, secrets);
  } catch (e) {
    if (!(e instanceof Abort)) throw e;
  } finally {
    ctx.stack.pop();
    ctx.dirs.pop();
  }
}

/**
 * Parses config text into a tree. `file` names the text in locations, and relative includes resolve
 * against its directory (the current directory for a bare name such as "<config>"). Included files
 * are read from disk and their statements spliced in where the include stands.
 */
export function parseConfigText(text: string, file: string): ParsedConfig {
  const ctx: ParseContext = {
    errors: [],
    files: [],
    stack: [],
    dirs: [],
    bytes: text.length,
    names: new Array<string | undefined>(NAME_CACHE_SIZE),
    secretLines: new Map(),
  };
  const root: ConfNode = { kind: 'section', name: '', loc: { file, line: 1, col: 1 }, children: [] };
  if (Buffer.byteLength(text, 'utf8') > MAX_FILE_BYTES) {
    ctx.errors.push(new ConfigError(file, 1, 1, 'config text is larger than 4 MiB'));
    return { root, errors: ctx.errors, files: [file], secretLines: ctx.secretLines };
  }
  parseFileText(text, file, canonical(file), root, ctx, 0, 0, false);
  return { root, errors: ctx.errors, files: ctx.files, secretLines: ctx.secretLines };
}

/** What the parser returns: the tree, the errors, the files read and the lines of the secrets section. */
export interface ParsedConfig {
  root: ConfNode;
  errors: ConfigError[];
  files: string[];
  secretLines: SecretLines;
}

/** Reads and parses a config file and its includes. */
export function parseConfigFile(path: string): ParsedConfig {
  const r = readConfigFile(path);
  if (r.error) {
    return { root: { kind: 'section', name: '', loc: { file: path, line: 1, col: 1 }, children: [] }, errors: [r.error], files: [path], secretLines: new Map() };
  }
  return parseConfigText(r.text, path);
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { loadConfigText } from '../../src/config/load.ts';
import { parseConfigFile, parseConfigText, valueLocAt } from '../../src/config/parse.ts';
import type { ConfKey, ConfNode } from '../../src/config/parse.ts';

/** Compact view of a tree: sections as [name@line:col, ...children], keys as "name=value@line:col>vline:vcol". */
function dump(n: ConfNode | ConfKey): unknown {
  if (n.kind === 'key') return `${n.name}=${n.value}@${n.loc.line}:${n.loc.col}>${n.valueLoc.line}:${n.valueLoc.col}`;
  return [`${n.name}@${n.loc.line}:${n.loc.col}`, ...n.children.map(dump)];
}

function parse(text: string, file = '/nonexistent/t.conf') {
  const r = parseConfigText(text, file);
  return { tree: (dump(r.root) as unknown[]).slice(1), errors: r.errors.map(String), root: r.root };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'vpp-iked-parse-'));
}

test('sections, keys and values with exact locations', () => {
  const r = parse('a {\n  k = v\n  b { x=1 }\n}\n');
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.tree, [['a@1:1', 'k=v@2:3>2:7', ['b@3:3', 'x=1@3:7>3:9']]]);
});

test('strongSwan syntax edge cases', () => {
  const r = parse(
    [
      '# leading comment',
      'sec', // '{' on the next line (settings_parser.y: NAME NEWLINE '{')
      '{',
      '  spaced   =   a  b\t c   # trailing comment',
      '  eq = x=y{z',
      '  quoted = "a # b } c"',
      '  mixed = pre "in  side" post',
      '  esc = "q\\"b\\\\n\\n\\tt"',
      '  multi = "line1',
      'line2"',
      '  cont = "ab\\',
      'cd"',
      '  empty =',
      '  one { k = v } two { } three{k=w}',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(r.errors, []);
  const sec = r.root.children[0] as ConfNode;
  const v = (name: string) => (sec.children.find((c) => c.name === name) as ConfKey).value;
  assert.equal(v('spaced'), 'a  b\t c');
  assert.equal(v('eq'), 'x=y{z');
  assert.equal(v('quoted'), 'a # b } c');
  assert.equal(v('mixed'), 'pre in  side post');
  assert.equal(v('esc'), 'q"b\\n\n\tt');
  assert.equal(v('multi'), 'line1\nline2');
  assert.equal(v('cont'), 'abcd');
  assert.equal(v('empty'), '');
  assert.deepEqual(
    sec.children.filter((c) => c.kind === 'section').map((c) => dump(c)),
    [['one@14:3', 'k=v@14:9>14:13'], ['two@14:17'], ['three@14:25', 'k=w@14:31>14:33']],
  );
  assert.equal((r.tree[0] as unknown[])[0], 'sec@2:1');
});

test('CRLF line ends and a UTF-8 BOM are accepted', () => {
  const r = parse('\ufeffa {\r\n  k = v \r\n}\r\n');
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.tree, [['a@1:1', 'k=v@2:3>2:7']]);
});

test('valueLocAt maps list elements back to the source, also through quotes and line joins', () => {
  const root = parseConfigText('x {\n  k = a, "b #, c"  , d\n  m = "one\\\ntwo, three"\n}\n', 'f').root;
  const sec = root.children[0] as ConfNode;
  const k = sec.children[0] as ConfKey;
  assert.equal(k.value, 'a, b #, c  , d');
  assert.deepEqual(valueLocAt(k, 0), { file: 'f', line: 2, col: 7 });
  assert.deepEqual(valueLocAt(k, 3), { file: 'f', line: 2, col: 11 }); // 'b' inside the quotes
  assert.deepEqual(valueLocAt(k, k.value.indexOf('d')), { file: 'f', line: 2, col: 22 });
  const m = sec.children[1] as ConfKey;
  assert.equal(m.value, 'onetwo, three');
  assert.deepEqual(valueLocAt(m, m.value.indexOf('two')), { file: 'f', line: 4, col: 1 });
  assert.deepEqual(valueLocAt(m, m.value.indexOf('three')), { file: 'f', line: 4, col: 6 });
});

test('syntax errors with exact line:col, parsing goes on after each', () => {
  const cases: [string, string[]][] = [
    ['}\n', ["F:1:1: unexpected '}' (no section is open)"]],
    ['a {\n  k = v\n', ["F:1:1: section 'a' is not closed: '}' missing at end of file"]],
    ['a {\n  k = "open\n}\n', ['F:2:7: unterminated quoted string']],
    ['lonely\nk = v\n', ["F:1:1: expected '=' or '{' after the name that starts here"]],
    ['a b = c\n', ["F:1:1: expected '=' or '{' after the name that starts here"]],
    ['  = v\n', ["F:1:3: key name missing before '='"]],
    ['{ k = v }\n', ["F:1:1: section name missing before '{'"]],
    ['"q" = v\n', ['F:1:1: unexpected quoted string: quotes are only allowed in values']],
    ['s { id = x; secret = y }\n', ["F:1:11: ';' does not separate statements: put each 'key = value' on its own line"]],
    ['a {\n}\n}\nb = \n{\n', ["F:3:1: unexpected '}' (no section is open)", "F:5:1: section name missing before '{'", "F:5:1: section '' is not closed: '}' missing at end of file"]],
    ['include\n', ["F:1:1: expected '=' or '{' after the name that starts here"]],
    ['include   \n', ['F:1:1: include needs a file name or pattern']],
    ['include a b\n', ['F:1:11: unexpected text after the include pattern (quote a pattern that contains blanks)']],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseConfigText(text, 'F').errors.map(String), want, text);
  // a semicolon that does not start another statement is part of the value
  const r = parse('s { secret = a;b }\n');
  assert.deepEqual(r.errors, []);
  assert.equal(((r.root.children[0] as ConfNode).children[0] as ConfKey).value, 'a;b');
  // after the ';' report, the following key is still parsed
  const s = parse('s { id = x; secret = y }\n');
  assert.deepEqual((dump(s.root.children[0]!) as unknown[]).slice(1), ['id=x@1:5>1:10', 'secret=y@1:13>1:22']);
  // "include = x" is a key named include (strongSwan lexer: "include"[\t ]+/[^=])
  assert.deepEqual(parse('include = x\n').tree, ['include=x@1:1>1:11']);
});

test('sections nested too deep are an error, not a stack overflow', () => {
  const r = parseConfigText('a{'.repeat(30000), 'F');
  assert.equal(r.errors.length, 1);
  assert.match(String(r.errors[0]), /^F:1:129: sections are nested more than 64 deep$/);
});

test('includes: globs relative to the including file, sorted, spliced into the enclosing section', () => {
  const dir = tmp();
  try {
    mkdirSync(join(dir, 'conf.d'));
    mkdirSync(join(dir, 'conf.d', 'sub'));
    writeFileSync(join(dir, 'conf.d', 'b.conf'), 'b { k = 2 }\n');
    writeFileSync(join(dir, 'conf.d', 'a.conf'), 'a { k = 1 }\ninclude sub/x?.conf\n');
    writeFileSync(join(dir, 'conf.d', 'sub', 'x1.conf'), 'x1 = yes\n');
    writeFileSync(join(dir, 'conf.d', 'sub', 'x22.conf'), 'x22 = no\n'); // '?' matches one character
    writeFileSync(join(dir, 'conf.d', '.hidden.conf'), 'hidden = 1\n');
    writeFileSync(join(dir, 'conf.d', 'c.txt'), 'txt = 1\n');
    writeFileSync(join(dir, 'main.conf'), 'top {\n  include conf.d/*.conf\n  include nothing/*.conf\n}\nafter = 1\n');
    const r = parseConfigFile(join(dir, 'main.conf'));
    assert.deepEqual(r.errors.map(String), []);
    assert.deepEqual((dump(r.root) as unknown[]).slice(1), [
      ['top@1:1', ['a@1:1', 'k=1@1:5>1:9'], 'x1=yes@1:1>1:6', ['b@1:1', 'k=2@1:5>1:9']],
      'after=1@5:1>5:9',
    ]);
    // locations name the file each statement came from
    const top = r.root.children[0] as ConfNode;
    assert.equal(top.children[1]!.loc.file, join(dir, 'conf.d', 'sub', 'x1.conf'));
    assert.deepEqual(r.files, [join(dir, 'main.conf'), join(dir, 'conf.d', 'a.conf'), join(dir, 'conf.d', 'sub', 'x1.conf'), join(dir, 'conf.d', 'b.conf')]);
    // a quoted pattern may contain blanks
    mkdirSync(join(dir, 'with space'));
    writeFileSync(join(dir, 'with space', 'q.conf'), 'q = 1\n');
    const q = parseConfigText('include "with space/*.conf"\n', join(dir, 'x.conf'));
    assert.deepEqual(q.errors.map(String), []);
    assert.equal((q.root.children[0] as ConfKey).name, 'q');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('include errors: missing file, directory, loops, binary include', () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'loop1.conf'), 'a = 1\ninclude loop2.conf\n');
    writeFileSync(join(dir, 'loop2.conf'), 'b = 2\n  include loop1.conf\n');
    writeFileSync(join(dir, 'self.conf'), 'include *.conf\n');
    mkdirSync(join(dir, 'adir'));
    writeFileSync(join(dir, 'bin.dat'), Buffer.from([0x61, 0x20, 0x3d, 0x20, 0x62, 0x0a, 0x01, 0x02]));
    const main = join(dir, 'main.conf');
    writeFileSync(main, 'include missing.conf\ninclude adir\ninclude loop1.conf\ninclude bin.dat\n');
    const r = parseConfigFile(main);
    const real = (f: string) => join(dir, f);
    assert.deepEqual(r.errors.map(String), [
      `${main}:1:1: cannot read '${real('missing.conf')}': no such file`,
      `${main}:2:1: '${real('adir')}' is a directory, not a config file`,
      `${real('loop2.conf')}:2:3: include loop: ${real('loop1.conf')} -> ${real('loop2.conf')} -> ${real('loop1.conf')}`,
      `${real('bin.dat')}:2:1: control character 0x01: this is binary data, not a config file`,
    ]);
    // a glob that matches the including file itself is a loop too; a symlinked path is the same file
    symlinkSync(join(dir, 'self.conf'), join(dir, 'link.conf'));
    const s = parseConfigFile(join(dir, 'self.conf'));
    assert.ok(s.errors.some((e) => /include loop/.test(String(e))), String(s.errors));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile input: size, long lines, NUL, invalid UTF-8, directories, FIFOs, permissions', (t) => {
  const dir = tmp();
  try {
    const big = join(dir, 'big.conf');
    writeFileSync(big, `# ${'x'.repeat(60)}\n`.repeat(70_000)); // > 4 MiB
    assert.match(String(parseConfigFile(big).errors[0]), /big\.conf:1:1: '.*big\.conf' is larger than 4 MiB \(\d+ bytes\)$/);

    const long = join(dir, 'long.conf');
    writeFileSync(long, `a = 1\nk = ${'v'.repeat(70_000)}\n`);
    assert.deepEqual(parseConfigFile(long).errors.map(String), [`${long}:2:65537: line is longer than 65536 characters`]);

    const nul = join(dir, 'nul.conf');
    writeFileSync(nul, 'a {\n  k = v\u0000w\n}\n');
    assert.deepEqual(parseConfigFile(nul).errors.map(String), [`${nul}:2:8: NUL byte: this is binary data, not a config file`]);

    const utf = join(dir, 'utf.conf');
    writeFileSync(utf, Buffer.concat([Buffer.from('ok = 1\nk = ab'), Buffer.from([0xff, 0xfe]), Buffer.from('\n')]));
    assert.deepEqual(parseConfigFile(utf).errors.map(String), [`${utf}:2:7: invalid UTF-8: this is binary data, not a config file`]);

    assert.deepEqual(parseConfigFile(dir).errors.map(String), [`${dir}:1:1: '${dir}' is a directory, not a config file`]);
    assert.deepEqual(parseConfigFile(join(dir, 'nope.conf')).errors.map(String), [
      `${join(dir, 'nope.conf')}:1:1: cannot read '${join(dir, 'nope.conf')}': no such file`,
    ]);

    const fifo = join(dir, 'fifo.conf');
    execFileSync('mkfifo', [fifo]);
    assert.deepEqual(parseConfigFile(fifo).errors.map(String), [`${fifo}:1:1: '${fifo}' is not a regular file`]);

    // text given directly gets the same checks
    assert.deepEqual(parseConfigText('a = \u0007\n', 'T').errors.map(String), ['T:1:5: control character 0x07: this is binary data, not a config file']);
    assert.deepEqual(parseConfigText('x'.repeat(4 * 1024 * 1024 + 1), 'T').errors.map(String), ['T:1:1: config text is larger than 4 MiB']);

    const locked = join(dir, 'locked.conf');
    writeFileSync(locked, 'a = 1\n');
    chmodSync(locked, 0o000);
    if (process.getuid?.() === 0) {
      t.diagnostic('running as root: file permissions are not enforced, the permission-denied case is not exercised');
    } else {
      assert.deepEqual(parseConfigFile(locked).errors.map(String), [`${locked}:1:1: cannot read '${locked}': permission denied`]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('arbitrary text never throws: every problem is a located ConfigError (property)', () => {
  // config-like fragments mixed with arbitrary characters
  const piece = fc.oneof(
    fc.constantFrom('{', '}', '=', '"', '#', '\\', '\n', ' ', '\t', ';', ',', 'include ', 'connections', 'children', 'local', 'secrets', 'ike-x', 'secret', 'id', 'daemon', 'port', '500', '10.0.0.0/8', '*.example.net', 'C=CH, CN=x', 'aes256gcm16', 'vpp_mode', 'p2mp', '\u0000', '\r'),
    fc.string({ maxLength: 6 }),
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 60 }), (parts) => {
      // keep includes relative (to the nonexistent directory): the fuzz must not read real files
      const text = parts.join('').replace(/include([\t ]+"?)\//g, 'include$1x/');
      const r = loadConfigText(text, '/nonexistent/fuzz.conf');
      assert.ok(r.config !== undefined || r.errors.length > 0);
      for (const e of r.errors) {
        assert.ok(e.line >= 1 && e.col >= 1, String(e));
        assert.match(String(e), /^\/nonexistent\/fuzz\.conf:\d+:\d+: /);
      }
    }),
    { numRuns: 400 },
  );
});

test('secrets section: its lines are reported, misplaced secret text is skipped and never quoted', () => {
  const r = parseConfigText('a {\n}\nsecrets {\n  ike-a {\n    secret = x\n  }\n}\nb {\n}\n', 'F');
  assert.deepEqual(r.errors, []);
  assert.deepEqual([...r.secretLines], [['F', [3, 7]]]);
  // '}' closing sections after a value is fine, as long as nothing else follows on the line
  assert.deepEqual(parse('secrets {\n  ike-a { secret = x } }  # comment\n').errors, []);
  // an unquoted '}' inside a PSK: the rest of the line is skipped, braces included, so the section
  // structure stays as meant (one error, nothing quoted)
  const tail = parse('secrets {\n  ike-a {\n    secret = ab}c}d{e\n  }\n  ike-b {\n    secret = y\n  }\n}\n');
  assert.deepEqual(tail.errors, [
    "/nonexistent/t.conf:3:16: an unquoted '}' ends this value in the secrets section, and more text follows on the line: put a secret that contains '}' in quotes (the rest of the line is ignored and not shown)",
  ]);
  assert.deepEqual(tail.tree, [['secrets@1:1', ['ike-a@2:3', 'secret=ab@3:5>3:14'], ['ike-b@5:3', 'secret=y@6:5>6:14']]]);
  // so is a one-line pair of secret sections (split the line); the skipped '}' leaves a section open
  assert.deepEqual(
    parse('secrets {\n  ike-a { secret = x } ike-b { secret = y }\n}\n').errors.map((e) => e.slice(0, e.indexOf(': '))),
    ['/nonexistent/t.conf:2:22', '/nonexistent/t.conf:1:1'],
  );
  // a PSK on its own line with braces in it: the whole line is skipped
  const own = parse('secrets {\n  ike-a {\n    secret =\n    Sup3r}S3cret}}\n  }\n}\n');
  assert.deepEqual(own.errors, [
    "/nonexistent/t.conf:4:5: expected '=' or '{' after the name that starts here (not shown: in the secrets section a misplaced line can be a secret; a secret goes on the line of 'secret =')",
  ]);
  assert.deepEqual(own.tree, [['secrets@1:1', ['ike-a@2:3', 'secret=@3:5>3:13']]]);
  // a name followed only by '}' still closes the sections
  assert.deepEqual(parse('secrets {\n  ike-a {\n    oops }\n}\n').errors.length, 1);
  // section names in "not closed": secrets' own names are shown, others not
  assert.deepEqual(parse('secrets {\n  ike-a {\n    Sup3r {\n').errors, [
    "/nonexistent/t.conf:3:5: this section (its name is not shown: it is in the secrets section) is not closed: '}' missing at end of file",
    "/nonexistent/t.conf:2:3: section 'ike-a' is not closed: '}' missing at end of file",
    "/nonexistent/t.conf:1:1: section 'secrets' is not closed: '}' missing at end of file",
  ]);
  assert.deepEqual(parse('conns {\n  Plain {\n').errors, [
    "/nonexistent/t.conf:2:3: section 'Plain' is not closed: '}' missing at end of file",
    "/nonexistent/t.conf:1:1: section 'conns' is not closed: '}' missing at end of file",
  ]);
  // only the top-level secrets section is special
  assert.deepEqual([...parseConfigText('x {\n  secrets {\n  }\n}\n', 'F').secretLines], []);
});

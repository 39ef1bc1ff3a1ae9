/**
 * The logger's safety net: values of key-like fields never reach a log line, at any of the first
 * levels of nesting; other lines pass unchanged (and uncopied).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogs, redact } from '../../src/log/logger.ts';

function capture(): { lines: Record<string, unknown>[]; dest: { write(s: string): boolean } } {
  const lines: Record<string, unknown>[] = [];
  return { lines, dest: { write: (s: string) => (lines.push(JSON.parse(s) as Record<string, unknown>), true) } };
}

test('key-like fields are redacted in the line written, nested and in arrays; the caller\'s object is untouched', () => {
  const { lines, dest } = capture();
  const logs = createLogs('info', dest);
  const fields = {
    ike: 7,
    psk: 'topsecret',
    nested: { secret: 'x', fine: 1, deeper: { encKey: 'aa', integKey: 'bb', list: [{ privateKey: 'k' }, 3] } },
    keys: ['a'],
    buf: Buffer.from('key'),
  };
  logs.get('ike').info(fields, 'hello');
  const l = lines[0]!;
  assert.equal(l.msg, 'hello');
  assert.equal(l.subsystem, 'ike');
  assert.equal(l.ike, 7);
  assert.equal(l.psk, '[redacted]');
  assert.equal(l.keys, '[redacted]');
  assert.deepEqual(l.nested, { secret: '[redacted]', fine: 1, deeper: { encKey: '[redacted]', integKey: '[redacted]', list: [{ privateKey: '[redacted]' }, 3] } });
  assert.equal(fields.psk, 'topsecret', 'the object logged is not modified');
  assert.equal(fields.nested.deeper.list[0] && (fields.nested.deeper.list[0] as { privateKey: string }).privateKey, 'k');
  const text = JSON.stringify(lines);
  for (const s of ['topsecret', '"aa"', '"bb"', '"k"']) assert.ok(!text.includes(s), `${s} leaked: ${text}`);
});

test('a line without key-like fields is passed on as it is', () => {
  const o = { ike: 1, peer: '192.0.2.1', child: { id: 2, spi: 'c0ffee' }, list: [1, 2] };
  assert.equal(redact(o), o);
  const { lines, dest } = capture();
  createLogs('info', dest).root.info(o, 'up');
  assert.deepEqual({ ike: lines[0]!.ike, peer: lines[0]!.peer, child: lines[0]!.child, list: lines[0]!.list }, o);
});

test('a cyclic object is walked no deeper than the limit', () => {
  const a: Record<string, unknown> = { name: 'a' };
  a.self = a;
  assert.equal(redact(a), a);
});

test('an Error keeps its message when a field of it is redacted; a throwing getter does not throw', () => {
  const { lines, dest } = capture();
  const logs = createLogs('info', dest);
  logs.root.info('first');
  const e = Object.assign(new Error('went wrong'), { secret: 's3' });
  logs.root.info({ err: e }, 'failed');
  const err = lines[1]!.err as Record<string, unknown>;
  assert.equal(err.secret, '[redacted]');
  assert.equal(err.message, 'went wrong');
  assert.ok(!JSON.stringify(lines[1]).includes('s3'));
  const hostile = { ike: 1, nested: Object.defineProperty({}, 'x', { enumerable: true, get: () => { throw new Error('boom'); } }) };
  assert.doesNotThrow(() => logs.root.info(hostile, 'hostile'));
  assert.equal(lines[2]!.msg, 'hostile');
});

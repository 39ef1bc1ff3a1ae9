/**
 * What a reload considers added, removed, changed and unchanged (PSKs included), and which settings
 * apply at once or need a restart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { ConfigIndex } from '../../src/ikev2/sa/config-index.ts';
import { diffConnections, fixedIds, settingChanges } from '../../src/daemon/reload.ts';

function conn(name: string, remote: string, extra = '', ids = { l: `${name}.a.test`, r: `${name}.b.test` }, start = 'start'): string {
  return `  ${name} {
    remote_addrs = ${remote}
    proposals = aes256gcm16-prfsha256-x25519${extra}
    local {
      auth = psk
      id = ${ids.l}
    }
    remote {
      auth = psk
      id = ${ids.r}
    }
    children {
      net {
        local_ts = 10.0.0.0/24
        remote_ts = 10.1.0.0/24
        start_action = ${start}
      }
    }
  }
`;
}

function secret(name: string, value: string, ids: string[] = [`${name}.a.test`, `${name}.b.test`]): string {
  return `  ike-${name} {\n${ids.map((id, i) => `    id-${i} = ${id}\n`).join('')}    secret = ${value}\n  }\n`;
}

function cfg(daemon: string, conns: string[], secrets: string[]): Config {
  const r = loadConfigText(`daemon {\n${daemon}\n}\nconnections {\n${conns.join('')}}\nsecrets {\n${secrets.join('')}}\n`, 'F');
  assert.deepEqual(r.errors.map(String), []);
  return r.config!;
}

function diff(a: Config, b: Config, live: Record<string, { localId: string; remoteId: string }[]> = {}) {
  const ia = new ConfigIndex([...a.connections], [...a.secrets]);
  const ib = new ConfigIndex([...b.connections], [...b.secrets]);
  return diffConnections(
    a,
    b,
    (l, r) => ia.psk(l, r),
    (l, r) => ib.psk(l, r),
    (n) => live[n] ?? [],
  );
}

test('added, removed, changed and unchanged connections', () => {
  const a = cfg('  port = 500', [conn('keep', '192.0.2.1'), conn('gone', '192.0.2.2'), conn('edit', '192.0.2.3')], [secret('keep', 'k'), secret('gone', 'g'), secret('edit', 'e')]);
  const b = cfg('  port = 500', [conn('keep', '192.0.2.1'), conn('edit', '192.0.2.33'), conn('new', '192.0.2.4')], [secret('keep', 'k'), secret('edit', 'e'), secret('new', 'n')]);
  assert.deepEqual(diff(a, b), { added: ['new'], removed: ['gone'], changed: ['edit'], unchanged: ['keep'] });
  // moving a connection to another line or file is not a change
  const moved = cfg('  port = 500\n\n\n', [conn('new', '192.0.2.4'), conn('edit', '192.0.2.33'), conn('keep', '192.0.2.1')], [secret('new', 'n'), secret('keep', 'k'), secret('edit', 'e')]);
  assert.deepEqual(diff(b, moved), { added: [], removed: [], changed: [], unchanged: ['new', 'edit', 'keep'] });
  // a changed proposal is a change
  const prop = cfg('  port = 500', [conn('keep', '192.0.2.1', ', aes128gcm16-prfsha256-ecp256'), conn('edit', '192.0.2.33'), conn('new', '192.0.2.4')], [secret('keep', 'k'), secret('edit', 'e'), secret('new', 'n')]);
  assert.deepEqual(diff(b, prop).changed, ['keep']);
});

test('a changed PSK changes the connection it belongs to, and only that one', () => {
  const a = cfg('  port = 500', [conn('one', '192.0.2.1'), conn('two', '192.0.2.2')], [secret('one', 'first'), secret('two', 'second')]);
  const b = cfg('  port = 500', [conn('one', '192.0.2.1'), conn('two', '192.0.2.2')], [secret('one', 'first'), secret('two', 'second-new')]);
  assert.deepEqual(diff(a, b), { added: [], removed: [], changed: ['two'], unchanged: ['one'] });
  // the same key under another section name is no change
  const renamed = cfg('  port = 500', [conn('one', '192.0.2.1'), conn('two', '192.0.2.2')], [secret('uno', 'first', ['one.a.test', 'one.b.test']), secret('two', 'second')]);
  assert.deepEqual(diff(a, renamed).unchanged, ['one', 'two']);
});

test('with an open remote id, the identities of live SAs decide whether the PSK changed', () => {
  const anyIds = { l: 'gw.test', r: '%any' };
  const a = cfg('  port = 500', [conn('road', '%any', '', anyIds, 'none')], [secret('alice', 'a1', ['gw.test', 'alice.test']), secret('bob', 'b1', ['gw.test', 'bob.test'])]);
  const b = cfg('  port = 500', [conn('road', '%any', '', anyIds, 'none')], [secret('alice', 'a1', ['gw.test', 'alice.test']), secret('bob', 'b2', ['gw.test', 'bob.test'])]);
  assert.equal(fixedIds(a.connections[0]!), undefined);
  assert.deepEqual(diff(a, b, { road: [{ localId: 'gw.test', remoteId: 'alice.test' }] }).unchanged, ['road'], "alice's key did not change");
  assert.deepEqual(diff(a, b, { road: [{ localId: 'gw.test', remoteId: 'alice.test' }, { localId: 'gw.test', remoteId: 'bob.test' }] }).changed, ['road'], "bob's key changed");
});

test('fixed identities: configured ids, else single host addresses', () => {
  const c = cfg('  port = 500', [conn('x', '192.0.2.1')], [secret('x', 'k')]).connections[0]!;
  assert.deepEqual(fixedIds(c), { local: 'x.a.test', remote: 'x.b.test' });
  const noIds = cfg('  port = 500', [`  y {\n    local_addrs = 192.0.2.9\n    remote_addrs = 192.0.2.1\n    local {\n      auth = psk\n    }\n    remote {\n      auth = psk\n    }\n  }\n`], [`  ike-y {\n    secret = s\n  }\n`]).connections[0]!;
  assert.deepEqual(fixedIds(noIds), { local: '192.0.2.9', remote: '192.0.2.1' });
});

test('settings: log_level, metrics, stop_* apply at once; listen, ports, vpp.socket need a restart', () => {
  const a = cfg('  port = 500\n  log_level = info', [], []);
  const b = cfg('  port = 5500\n  log_level = debug\n  metrics = 127.0.0.1:9464\n  stop_action = keep\n  listen = 127.0.0.1', [], []);
  const s = settingChanges(a, b);
  assert.deepEqual(s.live.sort(), ['daemon.logLevel', 'daemon.metrics', 'daemon.stopAction']);
  assert.deepEqual(s.restart.sort(), ['daemon.listen', 'daemon.port']);
  const c = loadConfigText('vpp {\n  socket = /run/vpp/other.sock\n}\n', 'F').config!;
  assert.deepEqual(settingChanges(a, c).restart, ['vpp.socket']);
  assert.deepEqual(settingChanges(a, a), { live: [], restart: [] });
});

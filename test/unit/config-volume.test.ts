/**
 * Volume lifetimes in the config: rekey_/life_/rand_ bytes and packets read and derived as
 * strongSwan's vici check_lifetimes() does, bytes with strongSwan's k/m/g suffixes, errors at
 * FILE:LINE:COL; daemon.traffic_poll.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.ts';
import type { ChildConfig, Config } from '../../src/config/types.ts';

function text(childKeys: string[], daemon: string[] = []): string {
  return [
    'daemon {',
    ...daemon.map((k) => `  ${k}`),
    '}',
    'connections {',
    '  c {',
    '    local {',
    '      auth = psk',
    '    }',
    '    remote {',
    '      auth = psk',
    '    }',
    '    children {',
    '      ch {',
    ...childKeys.map((k) => `        ${k}`),
    '      }',
    '    }',
    '  }',
    '}',
    'secrets {',
    '  ike-all {',
    '    secret = abc',
    '  }',
    '}',
    '',
  ].join('\n');
}

function load(childKeys: string[], daemon: string[] = []): Config {
  const r = loadConfigText(text(childKeys, daemon), 'F');
  assert.deepEqual(r.errors.map(String), []);
  return r.config!;
}

function volume(childKeys: string[]): Pick<ChildConfig, 'rekeyBytes' | 'lifeBytes' | 'randBytes' | 'rekeyPackets' | 'lifePackets' | 'randPackets'> {
  const ch = load(childKeys).connections[0]!.children[0]!;
  return { rekeyBytes: ch.rekeyBytes, lifeBytes: ch.lifeBytes, randBytes: ch.randBytes, rekeyPackets: ch.rekeyPackets, lifePackets: ch.lifePackets, randPackets: ch.randPackets };
}

function errors(childKeys: string[], daemon: string[] = []): string[] {
  const r = loadConfigText(text(childKeys, daemon), 'F');
  assert.equal(r.config, undefined);
  return r.errors.map(String);
}

test('no volume limits by default; traffic_poll 10 s', () => {
  assert.deepEqual(volume([]), { rekeyBytes: 0, lifeBytes: 0, randBytes: 0, rekeyPackets: 0, lifePackets: 0, randPackets: 0 });
  assert.equal(load([]).daemon.trafficPoll, 10);
  assert.equal(load([], ['traffic_poll = 2s']).daemon.trafficPoll, 2);
  assert.equal(load([], ['traffic_poll = 1m']).daemon.trafficPoll, 60);
});

test('derived as strongSwan: life = 1.1 × rekey, rekey = life / 1.1, rand = life − rekey', () => {
  assert.deepEqual(volume(['rekey_bytes = 1000000', 'rekey_packets = 1000']), {
    rekeyBytes: 1_000_000,
    lifeBytes: 1_100_000,
    randBytes: 100_000,
    rekeyPackets: 1000,
    lifePackets: 1100,
    randPackets: 100,
  });
  // life / 1.1 in floating point, truncated, as strongSwan computes it: 1100 / 1.1 = 999.99... → 999
  assert.deepEqual(volume(['life_bytes = 1100', 'life_packets = 55']), { rekeyBytes: 999, lifeBytes: 1100, randBytes: 101, rekeyPackets: 49, lifePackets: 55, randPackets: 6 });
  assert.equal(volume(['life_bytes = 2200000']).rekeyBytes, 1_999_999);
  assert.deepEqual(volume(['rekey_bytes = 1000', 'life_bytes = 5000', 'rand_bytes = 10']), {
    rekeyBytes: 1000,
    lifeBytes: 5000,
    randBytes: 10,
    rekeyPackets: 0,
    lifePackets: 0,
    randPackets: 0,
  });
  // only a hard limit of 0 set: nothing
  assert.equal(volume(['life_bytes = 0']).rekeyBytes, 0);
});

test("bytes take strongSwan's binary suffixes k, m, g (any case); packets are plain numbers", () => {
  assert.equal(volume(['rekey_bytes = 512k']).rekeyBytes, 512 * 1024);
  assert.equal(volume(['rekey_bytes = 100M']).rekeyBytes, 100 * 1024 ** 2);
  assert.equal(volume(['rekey_bytes = 2g']).rekeyBytes, 2 * 1024 ** 3);
  assert.equal(volume(['life_bytes = 4 G']).lifeBytes, 4 * 1024 ** 3);
  assert.equal(volume(['rekey_packets = 4000000000']).rekeyPackets, 4_000_000_000);
});

test('bad values and inconsistent limits are errors at FILE:LINE:COL', () => {
  // child keys start on line 13, column 9; values after "key = "
  assert.deepEqual(errors(['rekey_bytes = 10x']), ["F:13:23: 'rekey_bytes' must be a number of bytes such as 500000, 512k, 100m or 2g, not '10x'"]);
  assert.deepEqual(errors(['rekey_packets = 10k']), ["F:13:25: 'rekey_packets' must be a number of packets, not '10k'"]);
  assert.deepEqual(errors(['life_bytes = -1']), ["F:13:22: 'life_bytes' must be a number of bytes such as 500000, 512k, 100m or 2g, not '-1'"]);
  assert.deepEqual(errors(['rekey_bytes = 9999999999999999g']), ["F:13:23: 'rekey_bytes' is too large (at most 9007199254740991 bytes)"]);
  assert.deepEqual(errors(['rekey_bytes = 2000', 'life_bytes = 1000']), ['F:14:22: life_bytes (1000) must be larger than rekey_bytes (2000)']);
  assert.deepEqual(errors(['rekey_packets = 100', 'rand_packets = 100']), ['F:14:24: rand_packets (100) must be smaller than rekey_packets (100)']);
  assert.deepEqual(errors([], ['traffic_poll = 0']), ["F:2:18: 'traffic_poll' = 0s is out of range (1s..3600s)"]);
});

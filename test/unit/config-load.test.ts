import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSecret, loadConfig, loadConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { pkiMissing, TestPki } from '../helpers/pki.ts';

/** Lines joined into a config text, with a helper for "F:LINE:COL" of a substring on a line. */
function lines(...ls: string[]) {
  return {
    text: `${ls.join('\n')}\n`,
    at(line: number, sub: string, file = 'F'): string {
      const l = ls[line - 1];
      assert.ok(l !== undefined && l.includes(sub), `line ${line} has no '${sub}'`);
      return `${file}:${line}:${l.indexOf(sub) + 1}`;
    },
  };
}

function ok(text: string, file?: string): Config {
  const r = loadConfigText(text, file);
  assert.deepEqual(r.errors.map(String), []);
  assert.ok(r.config);
  return r.config;
}

function errs(text: string, file = 'F'): string[] {
  const r = loadConfigText(text, file);
  assert.equal(r.config, undefined);
  return r.errors.map(String);
}

const PSK_PAIR = `
    local {
      auth = psk
    }
    remote {
      auth = psk
    }`;

test('defaults as swanctl.conf documents them', () => {
  const c = ok(`connections {\n  c {${PSK_PAIR}\n    children {\n      ch {\n      }\n    }\n  }\n}\nsecrets {\n  ike-all {\n    secret = abc\n  }\n}\n`);
  assert.deepEqual(c.daemon, {
    listen: ['0.0.0.0', '::'],
    transport: 'udp',
    port: 500,
    portNatT: 4500,
    controlSocket: '/run/vpp-iked/control.sock',
    logLevel: 'info',
    ikeSaLimit: 60000,
    dataplane: 'vpp',
    stopTimeout: 10,
    stopAction: 'delete',
    recvBufferSize: 4194304,
    workers: 'auto',
    retransmitTimeout: 4,
    retransmitBase: 1.8,
    retransmitTries: 5,
    cookieThreshold: 30,
    blockThreshold: 5,
    initLimitHalfOpen: 0,
    startLimitHalfOpen: 1000,
    keepAlive: 20,
    trafficPoll: 10,
    fragmentSize: 1280,
  });
  assert.deepEqual(c.vpp, { socket: '/run/vpp/api.sock', puntSocket: '/run/vpp-iked/punt.sock', puntReader: 'thread' });
  const conn = c.connections[0]!;
  const { proposals, children, loc, local, remote, ...rest } = conn;
  assert.deepEqual(rest, {
    name: 'c',
    localAddrs: [],
    remoteAddrs: [],
    localPort: 500,
    remotePort: 500,
    encap: false,
    dpdDelay: 0,
    dpdTimeout: 0,
    rekeyTime: 4 * 3600,
    reauthTime: 0,
    overTime: 1440, // 10% of rekey_time
    randTime: 1440, // = over_time
    fragmentation: 'yes',
    unique: 'no',
    sendCert: 'ifasked',
    sendCertreq: true,
    mobike: true,
    keyingtries: 1,
  });
  assert.deepEqual(local, { auth: 'psk', id: '%any', certs: [], cacerts: [] });
  assert.deepEqual(remote, { auth: 'psk', id: '%any', certs: [], cacerts: [], crls: [], revocation: 'relaxed' });
  assert.deepEqual(loc, { file: '<config>', line: 2, col: 3 });
  assert.ok(proposals.length >= 2 && proposals.every((p) => p.protocol === 'ike'), 'IKE default proposals');
  const { espProposals, loc: chLoc, ...ch } = children[0]!;
  assert.deepEqual(ch, {
    name: 'ch',
    localTs: ['dynamic'],
    remoteTs: ['dynamic'],
    mode: 'tunnel',
    startAction: 'none',
    closeAction: 'none',
    dpdAction: 'clear',
    rekeyTime: 3600,
    lifeTime: 3960, // 1.1 x rekey_time
    randTime: 360, // life_time - rekey_time
    rekeyBytes: 0, // no volume limits by default
    lifeBytes: 0,
    randBytes: 0,
    rekeyPackets: 0,
    lifePackets: 0,
    randPackets: 0,
    replayWindow: 32,
    vppMode: 'p2p',
    vppTable: 0,
    vppRoutes: true,
  });
  assert.deepEqual(chLoc, { file: '<config>', line: 10, col: 7 });
  assert.ok(espProposals.length >= 2 && espProposals.every((p) => p.protocol === 'esp'), 'ESP default proposals');
  assert.deepEqual(c.files, ['<config>']);
  // local_port follows daemon.port
  assert.equal(ok(`daemon {\n  port = 5500\n}\n${`connections {\n  c {${PSK_PAIR}\n  }\n}\nsecrets {\n  ike {\n    secret = x\n  }\n}`}`).connections[0]!.localPort, 5500);
});

test('the annotated example conf/vpp-iked.conf loads', () => {
  const r = loadConfig(join(import.meta.dirname, '../../conf/vpp-iked.conf'));
  assert.deepEqual(r.errors.map(String), []);
  assert.deepEqual(
    r.config!.connections.map((c) => [c.name, c.children.map((ch) => `${ch.name}:${ch.vppMode}`)]),
    [
      ['site-b', ['lan:p2p']],
      ['spokes', ['spoke-nets:p2mp']],
    ],
  );
  assert.deepEqual(r.config!.secrets[0]!.secretBytes, Buffer.from('8a7f4c2e9b1d3f5a6c8e0b2d4f6a8c0e1f3a5c7e9b2d4f6a8c0e2b4d6f8a0c2e', 'hex'));
  assert.equal(r.config!.secrets[1]!.secretBytes!.toString(), 'a long passphrase # with a hash, quoted');
});

test('every error class is reported at its line:col, all at once, in order', () => {
  const L = lines(
    /* 1 */ 'daemon {',
    /* 2 */ '  port = 500',
    /* 3 */ '  port = 501',
    /* 4 */ '  listen = 0.0.0.0, 10.0.0.300',
    /* 5 */ '  port_nat_t = 501',
    /* 6 */ '  metrics = localhost:9464',
    /* 7 */ '  log_level = loud',
    /* 8 */ '}',
    /* 9 */ 'foo {',
    /* 10 */ '}',
    /* 11 */ 'connections {',
    /* 12 */ '  c {',
    /* 13 */ '    rekey_tme = 1h',
    /* 14 */ '    mobike = maybe',
    /* 15 */ '    keyingtries = many',
    /* 16 */ '    dpd_delay = 10x',
    /* 17 */ '    local_addrs = 192.0.2.1, gw.example.net',
    /* 18 */ '    remote_addrs = 192.0.2.300',
    /* 19 */ '    local_port = 70000',
    /* 20 */ '    remote_port = 0',
    /* 21 */ '    version = 1',
    /* 22 */ '    proposals = aes256gcm16-prfsha256-x25519, aes256-sha999-modp2048',
    /* 23 */ '    encap =',
    /* 24 */ '    local {',
    /* 25 */ '      auth = eap-mschapv2',
    /* 26 */ '      id = foo=bar',
    /* 27 */ '    }',
    /* 28 */ '    remote = x',
    /* 29 */ '    children {',
    /* 30 */ '      net {',
    /* 31 */ '        remote_ts = 10.0.0.0/8, 10.1.0.0/33',
    /* 32 */ '        vpp_mode = p2mp',
    /* 33 */ '        mode = beet',
    /* 34 */ '        start_action = start',
    /* 35 */ '        rekey_time = 1h',
    /* 36 */ '        life_time = 30m',
    /* 37 */ '        close_action = constructor',
    /* 38 */ '        esp_proposals = aes256gcm16-foo',
    /* 39 */ '      }',
    /* 40 */ '    }',
    /* 41 */ '    proposals2 {',
    /* 42 */ '    }',
    /* 43 */ '  }',
    /* 44 */ '}',
  );
  assert.deepEqual(errs(L.text), [
    `${L.at(3, 'port')}: duplicate key 'port' (already set at line 2)`,
    `${L.at(4, '10.0.0.300')}: '10.0.0.300' is not an IP address`,
    `${L.at(5, '501')}: 'port_nat_t' must differ from 'port' (both are 501)`,
    `${L.at(6, 'localhost')}: 'metrics' must be ADDRESS:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), not 'localhost:9464'`,
    `${L.at(7, 'loud')}: 'log_level' must be one of fatal, error, warn, info, debug, trace, silent, not 'loud'`,
    `${L.at(9, 'foo')}: unknown section 'foo' in the top level`,
    `${L.at(12, 'c')}: connection 'c' expects the peer to authenticate with auth = pubkey but names no CA: set cacerts in its remote section (or auth = psk)`,
    `${L.at(13, 'rekey_tme')}: unknown key 'rekey_tme' in connection 'c' (did you mean 'rekey_time'?)`,
    `${L.at(14, 'maybe')}: 'mobike' must be yes or no, not 'maybe'`,
    `${L.at(15, 'many')}: 'keyingtries' must be a number, not 'many'`,
    `${L.at(16, '10x')}: 'dpd_delay' must be a duration such as 30s, 5m, 4h or 1d, not '10x'`,
    `${L.at(17, 'gw.example')}: 'gw.example.net' in 'local_addrs': host names are not supported, use IP addresses`,
    `${L.at(18, '192')}: '192.0.2.300' in 'remote_addrs' is not an IP address, subnet or range: '192.0.2.300' is not an IP address`,
    `${L.at(19, '70000')}: 'local_port' = 70000 is out of range (1..65535)`,
    `${L.at(20, '0')}: 'remote_port' = 0 is out of range (1..65535)`,
    `${L.at(21, '1')}: only IKEv2 is supported: 'version' must be 2, not '1'`,
    `${L.at(22, 'sha999')}: invalid IKE proposal: unknown algorithm 'sha999' in proposal 'aes256-sha999-modp2048'`,
    `${L.at(23, '=') .replace(/:(\d+)$/, (_, c) => `:${Number(c) + 1}`)}: empty value for 'encap' (remove the line to get the default)`,
    `${L.at(24, 'local')}: connection 'c' authenticates with auth = pubkey but names no certificate: set certs in its local section`,
    `${L.at(25, 'eap')}: auth method 'eap-mschapv2' is not supported; use psk or pubkey`,
    `${L.at(26, 'foo')}: invalid identity: unknown attribute 'foo' in distinguished name 'foo=bar'`,
    `${L.at(28, 'remote')}: 'remote' is a section in connection 'c': write remote { ... }`,
    `${L.at(31, '10.1.0.0/33')}: invalid traffic selector in 'remote_ts': '33' is not a prefix length (0..32)`,
    `${L.at(32, 'p2mp')}: vpp_mode = p2mp needs vpp_interface (the shared multipoint interface)`,
    `${L.at(33, 'beet')}: mode 'beet' is not supported (tunnel or transport)`,
    `${L.at(34, 'start', 'F').replace(/:\d+$/, `:${'        start_action = '.length + 1}`)}: start_action = start needs an address to initiate to: set remote_addrs of connection 'c' to an IP address`,
    `${L.at(36, '30m')}: life_time (1800s) must be longer than rekey_time (3600s)`,
    `${L.at(37, 'constructor')}: 'close_action' must be one of none, start, not 'constructor'`,
    `${L.at(38, 'foo')}: invalid ESP proposal: unknown algorithm 'foo' in proposal 'aes256gcm16-foo'`,
    `${L.at(41, 'proposals2')}: unknown section 'proposals2' in connection 'c'`,
  ]);
});

test('secrets: decoding as strongSwan, errors never show the secret', () => {
  assert.deepEqual(decodeSecret('0x0102ff'), Buffer.from([1, 2, 255]));
  assert.deepEqual(decodeSecret('0X01:02'), Buffer.from([1, 2]));
  assert.deepEqual(decodeSecret('0sAQID'), Buffer.from([1, 2, 3]));
  assert.deepEqual(decodeSecret('plain text'), Buffer.from('plain text'));
  const L = lines(
    'secrets {',
    '  ike-a {',
    '    secret = 0xNOTHEXSECRET',
    '  }',
    '  ike-b {',
    '    secret = 0s!!base64secret',
    '  }',
    '  ike-c {',
    '    id = peer.example.net',
    '  }',
    '  eap-d {',
    '    secret = topsecretvalue',
    '  }',
    '  ike-e {',
    '    secret = "x"; id = topsecretvalue2',
    '  }',
    '  bogus {',
    '  }',
    '  ike-f {',
    '    idd = peer.example.net',
    '    secret = 1',
    '  }',
    '}',
  );
  const e = errs(L.text);
  assert.deepEqual(e, [
    `${L.at(3, '0x')}: the value of 'secret' is not valid hex after "0x"`,
    `${L.at(6, '0s')}: the value of 'secret' is not valid base64 after "0s"`,
    `${L.at(8, 'ike-c')}: secret 'ike-c' has no 'secret' value`,
    `${L.at(11, 'eap-d')}: secret type of 'eap-d' is not supported (ike-NAME, or private-NAME, rsa-NAME, ecdsa-NAME, pkcs8-NAME for private keys)`,
    `${L.at(15, ';')}: ';' does not separate statements: put each 'key = value' on its own line`,
    `${L.at(17, 'bogus')}: unknown secret section (the name is not shown: it is in the secrets section, where a misplaced line can be a secret): names start with 'ike' or 'private' (or 'rsa', 'ecdsa', 'pkcs8')`,
  ]);
  for (const s of ['NOTHEX', 'base64secret', 'topsecretvalue']) assert.ok(!e.some((m) => m.includes(s)), s);
  // a forgotten line break puts the secret into the id value: the identity error must not quote it
  const typo = errs('secrets {\n  ike-x {\n    id = peer secret = hunter2hunter2\n  }\n}\n');
  assert.deepEqual(typo, [
    "F:2:3: secret 'ike-x' has no 'secret' value",
    'F:3:10: invalid identity (the value is not shown because it is in the secrets section)',
  ]);
  // "idd" starts with "id": as strongSwan, any key starting with "id" is an identity of the secret
  assert.deepEqual(ok(`secrets {\n  ike-f {\n    idd = peer.example.net\n    secret = 1\n  }\n}\n`).secrets[0]!.ids, ['peer.example.net']);
});

function pskConn(name: string, localId: string | undefined, remoteId: string | undefined): string {
  return `  ${name} {
    local {
      auth = psk${localId ? `\n      id = ${localId}` : ''}
    }
    remote {
      auth = psk${remoteId ? `\n      id = ${remoteId}` : ''}
    }
  }
`;
}

test('PSK connections need a secret whose ids match the local or remote id', () => {
  const conf = (conns: string, secrets: string) => `connections {\n${conns}}\nsecrets {\n${secrets}}\n`;
  const secret = (name: string, ...ids: string[]) => `  ike-${name} {\n${ids.map((id, i) => `    id${i ? `-${i}` : ''} = ${id}\n`).join('')}    secret = s3cret\n  }\n`;
  // a secret without ids applies to everything
  ok(conf(pskConn('a', 'gw.example.net', 'peer.example.net'), secret('all')));
  // exact remote id, case-insensitive FQDN, second id key
  ok(conf(pskConn('a', 'gw.example.net', 'peer.example.net'), secret('p', 'other.example.net', 'PEER.example.net')));
  // the local id matches
  ok(conf(pskConn('a', 'gw.example.net', 'peer.example.net'), secret('g', 'gw.example.net')));
  // wildcard secret id, wildcard connection id, %any remote id
  ok(conf(pskConn('a', 'gw.example.net', 'peer.example.net'), secret('w', '*.example.net')));
  ok(conf(pskConn('a', 'gw.example.net', '*.spokes.example.net'), secret('s', 'one.spokes.example.net')));
  ok(conf(pskConn('a', 'gw.example.net', undefined), secret('x', 'anyone@example.net')));
  // DN ids compare by attributes, not spelling
  ok(conf(pskConn('a', 'gw.example.net', '"C=CH, O=Org, CN=peer"'), secret('d', '"/C=ch/O=Org/CN=peer"')));
  // address ids
  ok(conf(pskConn('a', '192.0.2.1', '198.51.100.7'), secret('n', '198.51.100.0/24')));
  // no match: the error names the connection, at its location
  assert.deepEqual(errs(conf(pskConn('a', 'gw.example.net', 'peer.example.net'), secret('o', 'other.example.net', '192.0.2.9'))), [
    "F:2:3: connection 'a' uses PSK authentication but no secrets { ike-... } entry matches its local id 'gw.example.net' or remote id 'peer.example.net'",
  ]);
  // no secrets at all; a private key does not count
  const noPsk = errs(`connections {\n${pskConn('a', undefined, undefined)}}\n`);
  assert.equal(noPsk.length, 1);
  assert.match(noPsk[0]!, /^F:2:3: connection 'a' uses PSK authentication but no secrets/);
});

test('repeated sections merge as in strongSwan; a later block overrides, a repeat in one block is an error', () => {
  const c = ok(
    `connections {\n  a {\n    remote_addrs = 192.0.2.1\n${PSK_PAIR}\n  }\n}\nconnections {\n  a {\n    remote_addrs = 192.0.2.2\n    local_port = 4500\n  }\n  b {${PSK_PAIR}\n  }\n}\nsecrets {\n  ike {\n    secret = x\n  }\n}\n`,
  );
  assert.deepEqual(
    c.connections.map((x) => [x.name, x.remoteAddrs, x.localPort, x.local.auth]),
    [
      ['a', ['192.0.2.2'], 4500, 'psk'],
      ['b', [], 500, 'psk'],
    ],
  );
  assert.deepEqual(errs('vpp {\n  socket = /a\n  socket = /b\n}\n'), ["F:3:3: duplicate key 'socket' (already set at line 2)"]);
  // daemon.port moved onto the default NAT-T port
  assert.deepEqual(errs('daemon {\n  port = 4500\n}\n'), ["F:2:10: 'port_nat_t' must differ from 'port' (both are 4500)"]);
  assert.deepEqual(errs('vpp {\n  socket = /a\n  socket {\n  }\n}\n'), [
    "F:3:3: 'socket' is already a key here; it cannot also be a section",
  ]);
});

test('values: addresses, selectors, lists, lifetimes, actions', () => {
  const c = ok(
    `daemon {
  listen = 192.0.2.1, 2001:DB8::1
  metrics = [::1]:9464
  dataplane = memory
  log_level = debug
}
vpp {
  policy_interface = eth0
}
connections {
  a {
    local_addrs = 192.0.2.1, 10.0.0.5/08, %any6
    remote_addrs = 198.51.100.1-198.51.100.9, 2001:db8::7
    rekey_time = 2h
    reauth_time = 0
    dpd_delay = 1m
    fragmentation = force
    unique = replace
    send_cert = always
    send_certreq = no
    mobike = false
    keyingtries = 0
    encap = yes
    version = 2
${PSK_PAIR}
    children {
      one {
        local_ts = 10.0.0.0/24, 2001:db8::/64[tcp/443]
        remote_ts = 10.1.0.1-10.1.0.9
        life_time = 2h
        start_action = start
        close_action = restart
        dpd_action = start
        replay_window = 0
        vpp_mode = p2mp
        vpp_interface = ipsec100
        vpp_table = 7
        vpp_routes = no
      }
      two {
        rekey_time = 1h
        rand_time = 5m
        mode = transport
        vpp_mode = policy
      }
    }
  }
}
secrets {
  ike {
    secret = x
  }
}
`,
  );
  assert.deepEqual(c.daemon.listen, ['192.0.2.1', '2001:db8::1']);
  assert.equal(c.daemon.metrics, '[::1]:9464');
  assert.equal(c.daemon.dataplane, 'memory');
  const a = c.connections[0]!;
  assert.deepEqual(a.localAddrs, ['192.0.2.1', '10.0.0.0/8', '::/0']);
  assert.deepEqual(a.remoteAddrs, ['198.51.100.1-198.51.100.9', '2001:db8::7']);
  // over_time 10% of rekey_time; rand_time min(over_time, half of it) (strongSwan vici config_sn)
  assert.deepEqual([a.rekeyTime, a.reauthTime, a.overTime, a.randTime], [7200, 0, 720, 720]);
  assert.deepEqual(
    [a.dpdDelay, a.fragmentation, a.unique, a.sendCert, a.sendCertreq, a.mobike, a.keyingtries, a.encap],
    [60, 'force', 'replace', 'always', false, false, 0, true],
  );
  const [one, two] = a.children;
  assert.deepEqual(one!.localTs, ['10.0.0.0/24', '2001:db8::/64[tcp/443]']);
  assert.deepEqual(one!.remoteTs, ['10.1.0.1-10.1.0.9']);
  // only life_time set: rekey_time = life_time / 1.1, rand_time = the difference (strongSwan check_lifetimes)
  assert.deepEqual([one!.rekeyTime, one!.lifeTime, one!.randTime], [6545, 7200, 655]);
  assert.deepEqual(
    [one!.mode, one!.startAction, one!.closeAction, one!.dpdAction, one!.replayWindow, one!.vppMode, one!.vppInterface, one!.vppTable, one!.vppRoutes],
    ['tunnel', 'start', 'start', 'restart', 0, 'p2mp', 'ipsec100', 7, false],
  );
  assert.deepEqual([two!.rekeyTime, two!.lifeTime, two!.randTime, two!.mode, two!.vppMode], [3600, 3960, 300, 'transport', 'policy']);
  assert.equal(two!.vppInterface, undefined);
  // durations
  const dur = (v: string) => ok(`connections {\n  a {\n    dpd_delay = ${v}\n${PSK_PAIR}\n  }\n}\nsecrets {\n  ike {\n    secret = x\n  }\n}\n`).connections[0]!.dpdDelay;
  assert.deepEqual(['30', '30s', '5m', '4h', '1d', '2 D', '0'].map(dur), [30, 30, 300, 14400, 86400, 172800, 0]);
  for (const bad of ['1.5h', '-1', '1w', '0x10', '99999999999']) {
    assert.equal(errs(`connections {\n  a {\n    dpd_delay = ${bad}\n${PSK_PAIR}\n  }\n}\nsecrets {\n  ike {\n    secret = x\n  }\n}\n`).length, 1, bad);
  }
});

test('certificate and key files resolve relative to the file naming them and must exist', (t) => {
  const noPki = pkiMissing();
  if (noPki) return t.skip(noPki);
  const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-load-'));
  try {
    mkdirSync(join(dir, 'conf.d'));
    mkdirSync(join(dir, 'conf.d', 'x509'));
    // real files (the loader reads them): a CA and a certificate with its key, made by strongSwan's pki
    const pki = new TestPki(dir);
    const ca = pki.ca('made-ca', { type: 'ecdsa', size: 256 }, 'C=CH, CN=Made CA');
    const me = pki.endEntity('made-me', { type: 'ecdsa', size: 256 }, ca, 'me.example');
    copyFileSync(me.cert, join(dir, 'conf.d', 'x509', 'me.pem'));
    copyFileSync(ca.cert, join(dir, 'conf.d', 'x509', 'ca.pem'));
    copyFileSync(me.key, join(dir, 'key.pem'));
    writeFileSync(
      join(dir, 'conf.d', 'c.conf'),
      'c {\n  local {\n    auth = psk\n    certs = x509/me.pem\n  }\n  remote {\n    auth = psk\n    cacerts = x509/ca.pem, x509/missing.pem\n    id = "C=CH, CN=*"\n  }\n}\n',
    );
    const main = join(dir, 'main.conf');
    const secrets = 'secrets {\n  private-me {\n    file = key.pem\n  }\n  ike-all {\n    secret = x\n  }\n}\n';
    writeFileSync(main, `connections {\n  include conf.d/*.conf\n}\n${secrets}`);
    const cfile = join(dir, 'conf.d', 'c.conf');
    assert.deepEqual(loadConfig(main).errors.map(String), [`${cfile}:8:28: CA certificate 'x509/missing.pem' does not exist`]);
    writeFileSync(cfile, 'c {\n  local {\n    auth = psk\n    certs = x509/me.pem\n  }\n  remote {\n    auth = psk\n    cacerts = x509/ca.pem\n  }\n}\n');
    const r = loadConfig(main);
    assert.deepEqual(r.errors.map(String), []);
    const c = r.config!.connections[0]!;
    assert.deepEqual(c.local.certs, [join(dir, 'conf.d', 'x509', 'me.pem')]);
    assert.deepEqual(c.remote.cacerts, [join(dir, 'conf.d', 'x509', 'ca.pem')]);
    assert.equal(r.config!.secrets[0]!.file, join(dir, 'key.pem'));
    assert.deepEqual(r.config!.files, [main, cfile]);
    // a missing private key file: the path is not quoted (a forgotten line break puts the
    // passphrase into it)
    writeFileSync(main, `connections {\n  include conf.d/*.conf\n}\n${secrets.replace('key.pem', 'nokey.pem secret = pa55phrase')}`);
    const nokey = loadConfig(main).errors.map(String);
    assert.deepEqual(nokey, [`${main}:6:12: the private key file named here does not exist (the path is not shown: it is in the secrets section)`]);
    // errors from several files come sorted by file, then line
    writeFileSync(main, 'connections {\n  include conf.d/*.conf\n}\nvpp {\n  sock = 1\n}\n');
    writeFileSync(join(dir, 'conf.d', 'a.conf'), 'a {\n  bad = 1\n}\n');
    const sorted = loadConfig(main).errors.map(String);
    assert.deepEqual(
      sorted.map((s) => s.replace(dir, 'D').replace(/: .*/, '')),
      ['D/conf.d/a.conf:1:1', 'D/conf.d/a.conf:1:1', 'D/conf.d/a.conf:2:3', 'D/conf.d/c.conf:1:1', 'D/main.conf:5:3'],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the loaded config is frozen', () => {
  const c = ok(`connections {\n  c {${PSK_PAIR}\n    children {\n      ch {\n      }\n    }\n  }\n}\nsecrets {\n  ike {\n    secret = x\n  }\n}\n`);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.connections) && Object.isFrozen(c.connections[0]));
  assert.ok(Object.isFrozen(c.connections[0]!.children[0]!.localTs) && Object.isFrozen(c.daemon.listen));
  assert.throws(() => (c.connections as unknown as unknown[]).push(1), TypeError);
  assert.throws(() => {
    (c.connections[0] as { name: string }).name = 'x';
  }, TypeError);
});

test('loadConfig reports unreadable paths as errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-load-'));
  try {
    assert.deepEqual(loadConfig(dir).errors.map(String), [`${dir}:1:1: '${dir}' is a directory, not a config file`]);
    const r = loadConfig(join(dir, 'none.conf'));
    assert.equal(r.config, undefined);
    assert.match(String(r.errors[0]), /none\.conf:1:1: cannot read .*: no such file$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile input cannot make the error list unbounded', () => {
  const r = loadConfigText('}\n'.repeat(5000), 'F');
  assert.equal(r.errors.length, 1001);
  assert.equal(String(r.errors[999]), "F:1000:1: unexpected '}' (no section is open)");
  assert.equal(String(r.errors[1000]), 'F:1000:1: too many errors (1000): checking stopped there');
  const many = Array.from({ length: 1500 }, (_, i) => `  k${i} = 1\n`).join('');
  const v = loadConfigText(`vpp {\n${many}}\n`, 'F');
  assert.equal(v.errors.length, 1001);
  assert.equal(String(v.errors[1000]), 'F:1001:3: too many errors (1000): 500 more not shown');
});

test('vpp.unnumbered_interface and vpp.policy_interface: unset by default, validated, required for policy mode', () => {
  const conn = (child: string, daemon = '') =>
    `${daemon}connections {\n  c {${PSK_PAIR}\n    children {\n      ch {\n${child}      }\n    }\n  }\n}\nsecrets {\n  ike {\n    secret = x\n  }\n}\n`;
  const d = ok(conn(''));
  assert.equal(d.vpp.unnumberedInterface, undefined);
  assert.equal(d.vpp.policyInterface, undefined);
  const c = ok(`vpp {\n  socket = /tmp/api.sock\n  unnumbered_interface = loop0\n  policy_interface = GigabitEthernet0/8/0.100\n}\n` + conn('        vpp_mode = policy\n'));
  assert.deepEqual(c.vpp, { socket: '/tmp/api.sock', puntSocket: '/run/vpp-iked/punt.sock', puntReader: 'thread', unnumberedInterface: 'loop0', policyInterface: 'GigabitEthernet0/8/0.100' });
  assert.ok(Object.isFrozen(c.vpp));
  assert.deepEqual(errs('vpp {\n  unnumbered_interface = loop 0\n  policy_interface = "eth;0"\n  policy_iface = x\n}\n'), [
    "F:2:26: 'unnumbered_interface' must be a VPP interface name (letters, digits, _ . / : -), not 'loop 0'",
    "F:3:22: 'policy_interface' must be a VPP interface name (letters, digits, _ . / : -), not 'eth;0'",
    "F:4:3: unknown key 'policy_iface' in vpp (did you mean 'policy_interface'?)",
  ]);
  assert.deepEqual(errs('vpp {\n  policy_interface =\n}\n'), ["F:2:21: empty value for 'policy_interface' (remove the line to get the default)"]);
  // who reads the punt socket: a thread of its own by default, or the event loop
  assert.equal(ok(`vpp {\n  punt_reader = event_loop\n}\n` + conn('')).vpp.puntReader, 'event_loop');
  assert.equal(errs('vpp {\n  punt_reader = threads\n}\n').length, 1);
  assert.match(errs('vpp {\n  punt_reader = threads\n}\n')[0]!, /^F:2:17: .*punt_reader/);
  // A policy CHILD_SA needs an interface for its SPD: its own vpp_interface or vpp.policy_interface.
  const e = errs(conn('        vpp_mode = policy\n'));
  assert.equal(e.length, 1);
  assert.match(e[0]!, /^F:\d+:\d+: child 'ch' of connection 'c': vpp_mode = policy needs vpp_interface or vpp\.policy_interface/);
  assert.equal(ok(conn('        vpp_mode = policy\n        vpp_interface = host-eth0\n')).connections[0]!.children[0]!.vppInterface, 'host-eth0');
  // The memory dataplane checks what VPP would, so the rule holds for it too.
  assert.equal(errs(conn('        vpp_mode = policy\n', 'daemon {\n  dataplane = memory\n}\n')).length, 1);
});

test('retransmission keys: decimals accepted, bad values located', () => {
  const good = loadConfigText('daemon {\n  retransmit_timeout = 0.5\n  retransmit_base = 1.4\n  retransmit_tries = 3\n}\n', '/x/r.conf');
  assert.deepEqual(good.errors.map(String), []);
  assert.equal(good.config!.daemon.retransmitTimeout, 0.5);
  assert.equal(good.config!.daemon.retransmitBase, 1.4);
  assert.equal(good.config!.daemon.retransmitTries, 3);
  const bad = loadConfigText('daemon {\n  retransmit_base = fast\n  retransmit_timeout = 0\n}\n', '/x/r.conf');
  assert.deepEqual(bad.errors.map(String), [
    "/x/r.conf:2:21: 'retransmit_base' must be a decimal number, not 'fast'",
    "/x/r.conf:3:24: 'retransmit_timeout' = 0 is out of range (0.1..300)",
  ]);
});

test('no error message quotes text from the secrets section, however the secret is misplaced', () => {
  const head = ['connections {', '  c {', '    local {', '      auth = psk', '    }', '    remote {', '      auth = psk', '    }', '  }', '}'];
  // the PSK on the line after "secret =": parsed as a name
  const nextLine = lines(...head, 'secrets {', '  ike-c {', '    secret =', '      Sup3rS3cretPSK', '  }', '}');
  assert.deepEqual(errs(nextLine.text), [
    "F:2:3: connection 'c' uses PSK authentication but no secrets { ike-... } entry matches its local id '%any' or remote id '%any'",
    `${nextLine.at(13, '=').replace(/\d+$/, (c) => String(Number(c) + 1))}: empty 'secret' in secret 'ike-c'`,
    `${nextLine.at(14, 'Sup3r')}: expected '=' or '{' after the name that starts here (not shown: in the secrets section a misplaced line can be a secret; a secret goes on the line of 'secret =')`,
  ]);
  // an unquoted '}' inside the PSK ends the value; the tail must not be parsed (nor quoted)
  const brace = lines(...head, 'secrets {', '  ike-c {', '    secret = abc}S3cretTail', '  }', '}');
  assert.deepEqual(errs(brace.text), [
    `${brace.at(13, '}')}: an unquoted '}' ends this value in the secrets section, and more text follows on the line: put a secret that contains '}' in quotes (the rest of the line is ignored and not shown)`,
  ]);
  // more ways for secret text to end up as names or values of other keys
  const secretLine = (...ls: string[]) => [...head, 'secrets {', '  ike-c {', '    secret = x', ...ls].join('\n') + '\n';
  const variants = [
    secretLine('    secret2 =', '      0sU3VwM3JTM2NyZXQ=', '  }', '}'), // base64 PSK on its own line: a key "0sU3VwM3JTM2NyZXQ"
    secretLine('    Sup3rS3cret = 1', '    Sup3rS3cret = 2', '  }', '}'), // unknown key, twice
    secretLine('    Sup3r{S3cret}', '  }', '}'), // a section and a name from the PSK
    secretLine('    Sup3r{S3cret', '  }', '}'), // a section that is never closed
    secretLine('  }', '  Sup3rS3cret = x', '  Sup3rS3cret {', '  }', '}'), // keys and sections directly in secrets
    secretLine('  }}}Sup3rS3cret = x', '}'), // braces first: the text lands at the top level, on the line of the secrets' '}'
    secretLine('    }}Sup3rS3cret = x', '  }', '}'),
    secretLine('    secret3 = abc}}}Sup3rS3cret = x'),
    secretLine('    id = peer secret = Sup3rS3cret', '  }', '}'),
    secretLine('    idSup3rS3cret =', '  }', '}'),
    secretLine('  }', '  Sup3rS3cret-x {', '    secret = y', '  }', '}'),
    `${head.join('\n')}\nsecrets {\n  private-k {\n    file = k.pem Sup3rS3cret\n  }\n  ike-c {\n    secret = x\n  }\n}\n`,
    `${head.join('\n')}\nsecrets {\n  ike-c {\n    secret = "x"; Sup3rS3cret = y\n  }\n}\n`,
  ];
  for (const v of variants) {
    const e = errs(v, '/nonexistent/F');
    assert.ok(e.length > 0, v);
    for (const m of e) assert.ok(!/Sup3r|S3cret|U3VwM3/.test(m), `${m}\n--- from ---\n${v}`);
  }
  // text before the secrets section and after its closing line is quoted as usual
  assert.deepEqual(errs(`foo = 1\n${nextLine.text.replace('      Sup3rS3cretPSK\n', '')}bar = 2\n`).filter((m) => /foo|bar/.test(m)), [
    "F:1:1: unknown key 'foo' in the top level",
    "F:17:1: unknown key 'bar' in the top level",
  ]);
});

test('a file included into the secrets section is secret as a whole', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-load-'));
  try {
    mkdirSync(join(dir, 'secrets.d'));
    writeFileSync(join(dir, 'secrets.d', 'c.conf'), 'ike-c {\n  secret =\n  Sup3rS3cret\n  Sup3rS3cret2 = 1\n}\nSup3rS3cret3 = 2\n');
    const main = join(dir, 'main.conf');
    writeFileSync(main, 'secrets {\n  include secrets.d/*.conf\n}\n');
    const e = loadConfig(main).errors.map(String);
    assert.equal(e.length, 4, e.join('\n'));
    for (const m of e) assert.ok(!m.includes('Sup3r'), m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('settings the daemon cannot run yet are refused where they are written', () => {
  const conf = (child: string, side = '      auth = psk') =>
    `connections {\n  c {\n    remote_addrs = 192.0.2.2\n    local {\n${side}\n    }\n    remote {\n      auth = psk\n    }\n    children {\n      ch {\n${child}\n      }\n    }\n  }\n}\nsecrets {\n  ike {\n    secret = x\n  }\n}\n`;
  // certificate authentication, asked for or by default (strongSwan's default is pubkey), needs
  // certificates (test/unit/config-credentials.test.ts has the rest)
  assert.deepEqual(errs(conf('', '      auth = pubkey')), ["F:4:5: connection 'c' authenticates with auth = pubkey but names no certificate: set certs in its local section"]);
  assert.deepEqual(errs(conf('', '      id = a.example')), ["F:4:5: connection 'c' authenticates with auth = pubkey but names no certificate: set certs in its local section"]);
  assert.deepEqual(errs('connections {\n  c {\n  }\n}\n'), [
    "F:2:3: connection 'c' authenticates with auth = pubkey but names no certificate: set certs in its local section",
    "F:2:3: connection 'c' expects the peer to authenticate with auth = pubkey but names no CA: set cacerts in its remote section (or auth = psk)",
  ]);
  // trap (alias route) in all three actions
  assert.deepEqual(errs(conf('        start_action = trap\n        close_action = route\n        dpd_action = TRAP')), [
    'F:12:24: start_action = trap is not supported yet (trap policies are not implemented); use start or none',
    'F:13:24: close_action = route is not supported yet (trap policies are not implemented); use none or start',
    'F:14:22: dpd_action = trap is not supported yet (trap policies are not implemented); use clear or restart',
  ]);
  // transport mode on ipsec interfaces (p2p is the default)
  const transport = 'mode = transport is not supported with vpp_mode = %s: VPP refuses transport-mode SAs on ipsec interfaces; use vpp_mode = policy or mode = tunnel';
  assert.deepEqual(errs(conf('        mode = transport')), [`F:12:16: ${transport.replace('%s', 'p2p')}`]);
  assert.deepEqual(errs(conf('        mode = transport\n        vpp_mode = p2mp\n        vpp_interface = ipsec1')), [`F:12:16: ${transport.replace('%s', 'p2mp')}`]);
  assert.equal(ok(conf('        mode = transport\n        vpp_mode = policy\n        vpp_interface = eth0')).connections[0]!.children[0]!.mode, 'transport');
  // p2mp: an ipsec interface VPP can have (instances 0..16383)
  const p2mp = (name: string) => loadConfigText(conf(`        vpp_mode = p2mp\n        vpp_interface = ${name}`), 'F');
  for (const good of ['ipsec0', 'ipsec7', 'ipsec100', 'ipsec16383']) {
    assert.deepEqual(p2mp(good).errors.map(String), [], good);
    assert.equal(p2mp(good).config!.connections[0]!.children[0]!.vppInterface, good);
  }
  for (const bad of ['ipsec16384', 'ipsec99999', 'ipsec100000', 'ipsec01', 'ipsec', 'ipsec-1', 'loop0', 'IPSEC1', 'ipsec1.5']) {
    assert.deepEqual(p2mp(bad).errors.map(String), [
      `F:13:25: vpp_mode = p2mp needs an ipsec interface, ipsecN with N from 0 to 16383 (VPP's limit), as vpp_interface, not '${bad}'`,
    ], bad);
  }
  // replay_window: at most 65536 packets
  assert.equal(ok(conf('        replay_window = 65536')).connections[0]!.children[0]!.replayWindow, 65536);
  assert.deepEqual(errs(conf('        replay_window = 65537')), ["F:12:25: 'replay_window' = 65537 is out of range (0..65536)"]);
  assert.deepEqual(errs(conf('        replay_window = 4294967295')), ["F:12:25: 'replay_window' = 4294967295 is out of range (0..65536)"]);
});

test('IKE lifetimes with reauth_time: defaults derived as strongSwan does, bad values refused where they are written', () => {
  const conf = (keys: string) =>
    `connections {\n  c {\n    remote_addrs = 192.0.2.2\n${keys}\n    local {\n      auth = psk\n    }\n    remote {\n      auth = psk\n    }\n  }\n}\nsecrets {\n  ike {\n    secret = x\n  }\n}\n`;
  const times = (keys: string) => {
    const a = ok(conf(keys)).connections[0]!;
    return [a.rekeyTime, a.reauthTime, a.overTime, a.randTime];
  };
  // reauth_time alone turns rekeying off; over_time is 10% of it, rand_time over_time (at most half)
  assert.deepEqual(times('    reauth_time = 4h'), [0, 14400, 1440, 1440]);
  // both: over_time from the longer, rand_time at most half of the shorter
  assert.deepEqual(times('    rekey_time = 30m\n    reauth_time = 4h'), [1800, 14400, 1440, 900]);
  assert.deepEqual(times('    rekey_time = 4h\n    reauth_time = 1h'), [14400, 3600, 1440, 1440]);
  assert.deepEqual(times('    reauth_time = 1h\n    over_time = 5m\n    rand_time = 1m'), [0, 3600, 300, 60]);
  // neither: the default rekey_time, no reauthentication
  assert.deepEqual(times(''), [14400, 0, 1440, 1440]);
  assert.deepEqual(errs(conf('    reauth_time = 4 hours')), ["F:4:19: 'reauth_time' must be a duration such as 30s, 5m, 4h or 1d, not '4 hours'"]);
  assert.deepEqual(errs(conf('    reauth_time = -1h')), ["F:4:19: 'reauth_time' must be a duration such as 30s, 5m, 4h or 1d, not '-1h'"]);
  assert.deepEqual(errs(conf('    reauth_time = 1h\n    rand_time = 2h')), ['F:5:17: rand_time (7200s) must be shorter than reauth_time (3600s)']);
  assert.deepEqual(errs(conf('    rekey_time = 4h\n    reauth_time = 10m\n    rand_time = 10m')), ['F:6:17: rand_time (600s) must be shorter than reauth_time (600s)']);
});

test('daemon.transport = punt: needs dataplane = vpp and port_nat_t = 4500; vpp.punt_socket names our socket', () => {
  const base = `connections {\n  c {${PSK_PAIR}\n  }\n}\nsecrets {\n  ike-all {\n    secret = abc\n  }\n}\n`;
  const c = ok(`daemon {\n  transport = punt\n}\nvpp {\n  punt_socket = /run/x/punt.sock\n}\n${base}`);
  assert.equal(c.daemon.transport, 'punt');
  assert.equal(c.vpp.puntSocket, '/run/x/punt.sock');
  assert.deepEqual(errs(`daemon {\n  transport = punt\n  dataplane = memory\n}\n${base}`), ["F:3:15: transport = punt receives IKE through VPP: it needs dataplane = vpp"]);
  assert.deepEqual(errs(`daemon {\n  transport = punt\n  port_nat_t = 4501\n}\n${base}`), [
    "F:3:16: transport = punt receives NAT-T IKE on VPP's IPsec port 4500 only (port_nat_t is 4501)",
  ]);
  assert.deepEqual(errs(`daemon {\n  transport = tcp\n}\n${base}`), ["F:2:15: 'transport' must be one of udp, punt, not 'tcp'"]);
});

test('post-quantum proposals: ML-KEM alone or as additional key exchanges load; a bad one is refused at its line:col', () => {
  const c = ok(
    `connections {\n  c {${PSK_PAIR}\n    proposals = aes256gcm16-prfsha256-x25519-ke1_mlkem768, aes256gcm16-prfsha256-mlkem1024\n    children {\n      ch {\n        esp_proposals = aes256gcm16-x25519-ke1_mlkem768-ke2_none\n      }\n    }\n  }\n}\nsecrets {\n  ike-all {\n    secret = abc\n  }\n}\n`,
  );
  const conn = c.connections[0]!;
  assert.deepEqual(conn.proposals[0]!.addKe?.[0], [36]);
  assert.deepEqual(conn.proposals[1]!.ke, [37]);
  assert.deepEqual(conn.children[0]!.espProposals[0]!.addKe?.[0], [36]);
  const e = errs(`connections {\n  c {${PSK_PAIR}\n    proposals = aes256gcm16-prfsha256-x25519-ke8_mlkem768\n  }\n}\n`);
  assert.ok(e.includes(`F:9:46: invalid IKE proposal: unknown algorithm 'ke8_mlkem768' in proposal 'aes256gcm16-prfsha256-x25519-ke8_mlkem768'`), e.join('\n'));
});

test('daemon.workers: auto (any case) or a number of threads; other values located', () => {
  for (const [text, want] of [['auto', 'auto'], ['AUTO', 'auto'], ['0', 0], ['3', 3]] as const) {
    const r = loadConfigText(`daemon {\n  workers = ${text}\n}\n`, '/x/w.conf');
    assert.deepEqual(r.errors.map(String), []);
    assert.equal(r.config!.daemon.workers, want);
  }
  assert.deepEqual(loadConfigText('daemon {\n  workers = many\n}\n', '/x/w.conf').errors.map(String), ["/x/w.conf:2:13: 'workers' must be auto or a number, not 'many'"]);
  assert.deepEqual(loadConfigText('daemon {\n  workers = 65\n}\n', '/x/w.conf').errors.map(String), ["/x/w.conf:2:13: 'workers' = 65 is out of range (0..64)"]);
});

test('fragmentation keys: fragment_size and per-family sizes read, sizes without room for a fragment located', () => {
  const good = loadConfigText('daemon {\n  fragment_size = 0\n  fragment_size_v6 = 1400\n}\n', '/x/f.conf');
  assert.deepEqual(good.errors.map(String), []);
  assert.equal(good.config!.daemon.fragmentSize, 0);
  assert.equal(good.config!.daemon.fragmentSizeV4, undefined);
  assert.equal(good.config!.daemon.fragmentSizeV6, 1400);
  const bad = loadConfigText('daemon {\n  fragment_size = 100\n  fragment_size_v4 = 70000\n  fragment_size_v6 = big\n}\n', '/x/f.conf');
  assert.equal(bad.config, undefined);
  const e = bad.errors.map(String);
  assert.equal(e.length, 3);
  assert.match(e[0]!, /^\/x\/f\.conf:2:\d+: 'fragment_size' = 100 leaves no room for an encrypted IKE fragment/);
  assert.match(e[1]!, /^\/x\/f\.conf:3:\d+: 'fragment_size_v4' = 70000 is out of range/);
  assert.match(e[2]!, /^\/x\/f\.conf:4:\d+: 'fragment_size_v6' must be a size in bytes/);
  for (const v of ['yes', 'no', 'accept', 'force'] as const) {
    const c = ok(`connections {\n  c {\n    fragmentation = ${v}${PSK_PAIR}\n  }\n}\nsecrets {\n  ike-all {\n    secret = abc\n  }\n}\n`);
    assert.equal(c.connections[0]!.fragmentation, v);
  }
  assert.match(errs(`connections {\n  c {\n    fragmentation = maybe${PSK_PAIR}\n  }\n}\n`).join('\n'), /F:3:\d+: .*fragmentation/);
});

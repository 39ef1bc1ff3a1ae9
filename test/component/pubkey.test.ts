/**
 * Certificate authentication between two engines (in-memory wire, fake clock for the protocol;
 * certificates are valid against the wall clock): RSA (RSASSA-PSS), ECDSA P-256 and Ed25519 on
 * both sides with RFC 7427 signatures, the classic ECDSA method for a peer that does not announce
 * RFC 7427, CERT and CERTREQ payloads, and every refusal: an identity the certificate does not
 * name, a CA we do not trust, CERT payloads of another encoding, too many or too large, the SA
 * going away while the signature is being checked.
 *
 * Certificates are made at test time with strongSwan's `pki` (test/helpers/pki.ts); the configs
 * go through the real loader.
 */
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Wire, settle, type Node } from '../helpers/engine-pair.ts';
import { pkiMissing, TestPki, type KeySpec } from '../helpers/pki.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config, ConnectionConfig } from '../../src/config/types.ts';
import { decodeMessage, decodePayloadChain, encodeMessage } from '../../src/ikev2/codec/message.ts';
import type { Payload } from '../../src/ikev2/codec/types.ts';
import { AuthMethod, ExchangeType, HeaderFlag, NotifyType, PayloadType } from '../../src/ikev2/constants.ts';
import { seal } from '../../src/ikev2/engine/message.ts';
import type { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';
import type { OutPacket } from '../../src/ikev2/engine/engine.ts';

const A = '192.0.2.1';
const B = '192.0.2.2';

let dir = '';
let pki: TestPki;
let ca: { cert: string; key: string };
let rogueCa: { cert: string; key: string };
const ends = new Map<string, { cert: string; key: string }>();
const missing = pkiMissing();

const KINDS: Record<string, KeySpec> = {
  rsa: { type: 'rsa', size: 2048 },
  ecdsa: { type: 'ecdsa', size: 256 },
  ed25519: { type: 'ed25519' },
};

before(() => {
  if (missing) return;
  dir = mkdtempSync(join(tmpdir(), 'vpp-iked-pubkey-'));
  pki = new TestPki(dir);
  ca = pki.ca('ca', { type: 'ecdsa', size: 256 }, 'C=XX, O=vpp-iked test, CN=Test CA');
  rogueCa = pki.ca('rogue', { type: 'ecdsa', size: 256 }, 'C=XX, O=elsewhere, CN=Rogue CA');
  for (const [kind, spec] of Object.entries(KINDS)) {
    for (const side of ['a', 'b']) ends.set(`${side}-${kind}`, pki.endEntity(`${side}-${kind}`, spec, ca, `${side}.lab`));
  }
  ends.set('a-rogue', pki.endEntity('a-rogue', KINDS.ecdsa!, rogueCa, 'a.lab'));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function skipWithoutPki(t: TestContext): boolean {
  if (missing) t.skip(missing);
  return missing !== undefined;
}

interface SideOpts {
  me: 'a' | 'b';
  cert: string;
  key: string;
  /** extra lines in the connection */
  extra?: string;
  remoteId?: string;
  /** extra lines in the remote section */
  remoteExtra?: string;
}

/** One side's config file through the real loader. */
function sideConfig(o: SideOpts): Config {
  const peer = o.me === 'a' ? 'b' : 'a';
  const addr = o.me === 'a' ? A : B;
  const peerAddr = o.me === 'a' ? B : A;
  const text = `connections {
  lab {
    local_addrs = ${addr}
    remote_addrs = ${peerAddr}
    proposals = aes256gcm16-prfsha256-x25519
${o.extra ?? ''}
    local {
      auth = pubkey
      certs = ${o.cert}
      id = ${o.me}.lab
    }
    remote {
      auth = pubkey
      cacerts = ${ca.cert}
      id = ${o.remoteId ?? `${peer}.lab`}
${o.remoteExtra ?? ''}
    }
    children {
      net {
        local_ts = ${o.me === 'a' ? '10.1.0.0/16' : '10.2.0.0/16'}
        remote_ts = ${o.me === 'a' ? '10.2.0.0/16' : '10.1.0.0/16'}
        esp_proposals = aes256gcm16
      }
    }
  }
}
secrets {
  private-${o.me} {
    file = ${o.key}
  }
}
`;
  const file = join(dir, `${o.me}-${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(file, text);
  const r = loadConfig(file);
  assert.deepEqual(r.errors.map(String), []);
  return r.config!;
}

/** Lines logged at debug and above, as objects. */
function memoryLog(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

interface Pair {
  w: Wire;
  a: Node;
  b: Node;
  aLog: Record<string, unknown>[];
  bLog: Record<string, unknown>[];
}

function pair(aCfg: Config, bCfg: Config): Pair {
  const w = new Wire();
  const la = memoryLog();
  const lb = memoryLog();
  const a = w.add(A, aCfg, { log: la.log });
  const b = w.add(B, bCfg, { log: lb.log });
  return { w, a, b, aLog: la.lines, bLog: lb.lines };
}

function only(n: Node): IkeSa {
  const sas = [...n.engine.table.values()];
  assert.equal(sas.length, 1);
  return sas[0]!;
}

/** Let the thread pool (signatures) and the wire settle until the initiation is decided. */
async function drive(p: Pair, done: Promise<unknown>): Promise<void> {
  let finished = false;
  void done.then(
    () => (finished = true),
    () => (finished = true),
  );
  for (let i = 0; i < 200 && !finished; i++) {
    await p.w.run();
    await new Promise((r) => setTimeout(r, 5));
  }
  await p.w.run();
}

/** The payloads of a message `sa`'s peer sent, decrypted with `sa`'s keys. */
function openWith(sa: IkeSa, data: Buffer): Payload[] {
  const m = decodeMessage(data);
  const sk = m.payloads.find((x) => x.type === PayloadType.SK);
  assert.ok(sk && sk.type === PayloadType.SK);
  const plain = sa.cipher!.open(data, sk);
  return decodePayloadChain(plain, sk.innerType, 0, plain.length).payloads;
}

function signedWith(lines: Record<string, unknown>[]): number[] {
  return lines.filter((l) => l.msg === 'AUTH payload signed').map((l) => Number(l.method));
}

for (const kind of Object.keys(KINDS)) {
  test(`pubkey both sides with ${kind} certificates: RFC 7427 signatures (method 14), CERT and CERTREQ exchanged, CHILD_SA installed`, async (t) => {
    if (skipWithoutPki(t)) return;
    const ea = ends.get(`a-${kind}`)!;
    const eb = ends.get(`b-${kind}`)!;
    const p = pair(sideConfig({ me: 'a', ...ea }), sideConfig({ me: 'b', ...eb }));
    const up = p.a.engine.initiate('lab');
    await drive(p, up);
    const sa = await up;
    assert.equal(sa.state, 'ESTABLISHED');
    const sb = only(p.b);
    assert.equal(sb.state, 'ESTABLISHED');
    assert.equal(sb.remoteId, 'a.lab');
    assert.equal(sa.remoteId, 'b.lab');
    assert.match(sb.remoteCert ?? '', /CN=a\.lab/);
    assert.match(sa.remoteCert ?? '', /CN=b\.lab/);
    assert.equal(sa.children[0]?.state, 'INSTALLED');
    assert.deepEqual(signedWith(p.aLog), [AuthMethod.DIGITAL_SIGNATURE]);
    assert.deepEqual(signedWith(p.bLog), [AuthMethod.DIGITAL_SIGNATURE]);
    // IKE_SA_INIT: both sides announce RFC 7427 hashes; the responder asks for certificates of our CA
    const [initReq, initResp] = p.w.log.slice(0, 2).map((x) => decodeMessage(x.data));
    for (const m of [initReq!, initResp!]) {
      assert.ok(m.payloads.some((x) => x.type === PayloadType.NOTIFY && x.notifyType === NotifyType.SIGNATURE_HASH_ALGORITHMS));
    }
    const certreq = initResp!.payloads.find((x) => x.type === PayloadType.CERTREQ);
    assert.ok(certreq && certreq.type === PayloadType.CERTREQ && certreq.encoding === 4 && certreq.data.length === 20);
    // IKE_AUTH request: IDi, CERT (asked for), CERTREQ, IDr, AUTH
    const authReq = openWith(sb, p.w.log[2]!.data);
    assert.deepEqual(
      authReq.filter((x) => x.type !== PayloadType.NOTIFY && x.type !== PayloadType.SA && x.type !== PayloadType.TSi && x.type !== PayloadType.TSr).map((x) => x.type),
      [PayloadType.IDi, PayloadType.CERT, PayloadType.CERTREQ, PayloadType.IDr, PayloadType.AUTH],
    );
    const authResp = openWith(sa, p.w.log[3]!.data);
    assert.ok(authResp.some((x) => x.type === PayloadType.CERT), 'the responder sends its certificate (asked for)');
  });
}

test('a peer that does not announce RFC 7427 gets the classic ECDSA method (9), one that does gets method 14', async (t) => {
  if (skipWithoutPki(t)) return;
  const p = pair(sideConfig({ me: 'a', ...ends.get('a-ecdsa')! }), sideConfig({ me: 'b', ...ends.get('b-ecdsa')!, extra: '    send_cert = always' }));
  // Strip SIGNATURE_HASH_ALGORITHMS from a's IKE_SA_INIT, and make a sign what b receives.
  p.w.filter = (pkt: OutPacket) => {
    const m = decodeMessage(pkt.data);
    if (m.header.exchange !== ExchangeType.IKE_SA_INIT || m.header.flags & HeaderFlag.RESPONSE) return 'deliver';
    const stripped = m.payloads.filter((x) => !(x.type === PayloadType.NOTIFY && x.notifyType === NotifyType.SIGNATURE_HASH_ALGORITHMS));
    const sa = only(p.a);
    const msg = encodeInit(sa, stripped);
    sa.initRequest = msg;
    p.w.queue.push({ p: { ...pkt, data: msg }, deliverAt: p.w.sched.now() });
    return 'drop';
  };
  const up = p.a.engine.initiate('lab');
  await drive(p, up);
  await up;
  assert.deepEqual(signedWith(p.bLog), [AuthMethod.ECDSA_SHA256_P256], 'b signs with the classic method');
  assert.deepEqual(signedWith(p.aLog), [AuthMethod.DIGITAL_SIGNATURE], 'a saw b announce RFC 7427');
  assert.equal(only(p.b).state, 'ESTABLISHED');
});

function encodeInit(sa: IkeSa, payloads: Payload[]): Buffer {
  return encodeMessage({ spiI: sa.spiI, spiR: Buffer.alloc(8), version: 0x20, exchange: ExchangeType.IKE_SA_INIT, flags: HeaderFlag.INITIATOR, messageId: 0 }, payloads);
}

test('send_cert = never: no CERT payload; the peer cannot verify without one → AUTHENTICATION_FAILED', async (t) => {
  if (skipWithoutPki(t)) return;
  const p = pair(sideConfig({ me: 'a', ...ends.get('a-ecdsa')!, extra: '    send_cert = never' }), sideConfig({ me: 'b', ...ends.get('b-ecdsa')! }));
  const up = p.a.engine.initiate('lab');
  await drive(p, up);
  await assert.rejects(up, /AUTHENTICATION_FAILED/);
  assert.ok(p.bLog.some((l) => l.msg === 'authentication failed' && /sent no certificate/.test(String(l.reason))));
  assert.equal(p.b.engine.table.size, 0);
  assert.equal(p.b.engine.stats.authFailed, 1);
});

test('an identity the certificate does not name → AUTHENTICATION_FAILED with the reason logged', async (t) => {
  if (skipWithoutPki(t)) return;
  const good = sideConfig({ me: 'a', ...ends.get('a-ecdsa')! });
  // a claims evil.lab with the certificate of a.lab (the loader refuses such a config; built here by hand)
  const c = good.connections[0]!;
  const liar: ConnectionConfig = { ...c, local: { ...c.local, id: 'evil.lab' } };
  const aCfg: Config = { ...good, connections: [liar] };
  const p = pair(aCfg, sideConfig({ me: 'b', ...ends.get('b-ecdsa')!, remoteId: '%any' }));
  const up = p.a.engine.initiate('lab');
  await drive(p, up);
  await assert.rejects(up, /AUTHENTICATION_FAILED/);
  const line = p.bLog.find((l) => l.msg === 'authentication failed');
  assert.match(String(line?.reason), /identity 'evil\.lab' is neither the subject nor a subjectAltName/);
  assert.equal(p.b.engine.table.size, 0);
});

test('a certificate from a CA we do not trust → AUTHENTICATION_FAILED', async (t) => {
  if (skipWithoutPki(t)) return;
  const p = pair(sideConfig({ me: 'a', ...ends.get('a-rogue')! }), sideConfig({ me: 'b', ...ends.get('b-ecdsa')! }));
  const up = p.a.engine.initiate('lab');
  await drive(p, up);
  await assert.rejects(up, /AUTHENTICATION_FAILED/);
  const line = p.bLog.find((l) => l.msg === 'authentication failed');
  assert.match(String(line?.reason), /is not trusted/);
});

test('the initiator refuses the responder\'s certificate (untrusted CA) and tells it in an INFORMATIONAL AUTHENTICATION_FAILED', async (t) => {
  if (skipWithoutPki(t)) return;
  // b trusts a; a trusts only the rogue CA, so b's certificate fails at a
  const aCfgText = sideConfig({ me: 'a', ...ends.get('a-ecdsa')! });
  const c = aCfgText.connections[0]!;
  const creds = aCfgText.credentials!;
  const rogueTrust = loadConfigFor(rogueCa.cert);
  const aCfg: Config = { ...aCfgText, credentials: { ...creds, remote: new Map([[c.name, rogueTrust]]) } };
  const p = pair(aCfg, sideConfig({ me: 'b', ...ends.get('b-ecdsa')! }));
  const up = p.a.engine.initiate('lab');
  await drive(p, up);
  await assert.rejects(up, /peer authentication failed: certificate .* is not trusted/);
  await p.w.run();
  assert.equal(p.b.engine.table.size, 0, 'b dropped the SA on the INFORMATIONAL AUTHENTICATION_FAILED');
  assert.ok(p.bLog.some((l) => l.msg === 'peer refused our authentication (AUTHENTICATION_FAILED)'));
});

/** The trust of a config whose remote cacerts is `caFile`. */
function loadConfigFor(caFile: string) {
  const file = join(dir, `trust-${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(file, `connections {\n  x {\n    local {\n      auth = psk\n    }\n    remote {\n      auth = pubkey\n      cacerts = ${caFile}\n    }\n  }\n}\nsecrets {\n  ike {\n    secret = x\n  }\n}\n`);
  const r = loadConfig(file);
  assert.deepEqual(r.errors.map(String), []);
  return r.config!.credentials!.remote.get('x')!;
}

/**
 * a's IKE_AUTH request rewritten by `edit` (decrypted with a's keys and sealed again: the AUTH
 * payload does not cover CERT payloads, so only they change).
 */
async function tamperedAuth(t: TestContext, edit: (payloads: Payload[]) => Payload[]): Promise<Pair> {
  const p = pair(sideConfig({ me: 'a', ...ends.get('a-ecdsa')! }), sideConfig({ me: 'b', ...ends.get('b-ecdsa')! }));
  p.w.filter = (pkt) => {
    const m = decodeMessage(pkt.data);
    if (m.header.exchange !== ExchangeType.IKE_AUTH || m.header.flags & HeaderFlag.RESPONSE) return 'deliver';
    const [data] = seal(only(p.a), ExchangeType.IKE_AUTH, m.header.messageId, false, edit(openWith(only(p.b), pkt.data)));
    p.w.queue.push({ p: { ...pkt, data: data! }, deliverAt: p.w.sched.now() });
    return 'drop';
  };
  const up = p.a.engine.initiate('lab');
  await drive(p, up);
  await assert.rejects(up, /AUTHENTICATION_FAILED/, t.name);
  assert.equal(p.b.engine.table.size, 0);
  assert.equal(p.b.engine.stats.authFailed, 1);
  return p;
}

test('a CERT payload of another encoding is ignored with a log line; without an X.509 one → AUTHENTICATION_FAILED', async (t) => {
  if (skipWithoutPki(t)) return;
  const p = await tamperedAuth(t, (pl) => pl.map((x) => (x.type === PayloadType.CERT ? { ...x, encoding: 1 } : x)));
  assert.ok(p.bLog.some((l) => /only X\.509 certificates \(encoding 4\)/.test(String(l.msg)) && l.encoding === 1));
  assert.match(String(p.bLog.find((l) => l.msg === 'authentication failed')?.reason), /no CERT payload of encoding X\.509/);
});

test('50 CERT payloads → AUTHENTICATION_FAILED without parsing them', async (t) => {
  if (skipWithoutPki(t)) return;
  const p = await tamperedAuth(t, (pl) => {
    const cert = pl.find((x) => x.type === PayloadType.CERT)!;
    const i = pl.indexOf(cert);
    return [...pl.slice(0, i), ...Array.from({ length: 50 }, () => cert), ...pl.slice(i + 1)];
  });
  assert.match(String(p.bLog.find((l) => l.msg === 'authentication failed')?.reason), /50 CERT payloads/);
});

test('a CERT payload of 60,000 bytes → AUTHENTICATION_FAILED; a 1 MB datagram is dropped before decoding', async (t) => {
  if (skipWithoutPki(t)) return;
  const heap0 = process.memoryUsage().heapUsed;
  const p = await tamperedAuth(t, (pl) => pl.map((x) => (x.type === PayloadType.CERT ? { ...x, data: Buffer.alloc(60_000, 0x30) } : x)));
  assert.match(String(p.bLog.find((l) => l.msg === 'authentication failed')?.reason), /CERT payload of 60000 bytes/);
  const before = p.b.engine.stats.rxInvalid;
  p.b.engine.receive({ addr: B, port: 4500 }, { addr: A, port: 4500 }, Buffer.alloc(1 << 20, 0x25));
  assert.equal(p.b.engine.stats.rxInvalid, before + 1);
  assert.ok(process.memoryUsage().heapUsed - heap0 < 64 << 20, 'memory stays bounded');
});

test('garbage in the CERT payload (not DER) → AUTHENTICATION_FAILED with the parse error', async (t) => {
  if (skipWithoutPki(t)) return;
  const p = await tamperedAuth(t, (pl) => pl.map((x) => (x.type === PayloadType.CERT ? { ...x, data: Buffer.from('30820400deadbeef', 'hex') } : x)));
  assert.ok(p.bLog.some((l) => l.msg === 'authentication failed' && String(l.reason).length > 0));
});

test('the responder SA destroyed while the signature is being checked: no answer, nothing established, no crash', async (t) => {
  if (skipWithoutPki(t)) return;
  const p = pair(sideConfig({ me: 'a', ...ends.get('a-rsa')! }), sideConfig({ me: 'b', ...ends.get('b-rsa')! }));
  let held: OutPacket | undefined;
  p.w.filter = (pkt) => {
    const m = decodeMessage(pkt.data);
    if (m.header.exchange === ExchangeType.IKE_AUTH && !(m.header.flags & HeaderFlag.RESPONSE)) {
      held = pkt;
      return 'drop';
    }
    return 'deliver';
  };
  const up = p.a.engine.initiate('lab');
  up.catch(() => {});
  for (let i = 0; i < 100 && !held; i++) {
    await p.w.run();
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(held, 'IKE_AUTH request sent');
  const sentBefore = p.w.log.length;
  p.b.engine.receive({ ...held.remote }, { ...held.local }, held.data);
  // verification is under way (off the event loop): take the SA away now
  const sb = only(p.b);
  assert.equal(sb.state, 'CONNECTING');
  p.b.engine.destroy(sb, 'test: gone during verification');
  for (let i = 0; i < 20; i++) {
    await settle();
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(p.w.log.length, sentBefore, 'b sent nothing for the destroyed SA');
  assert.equal(p.b.engine.table.size, 0);
  assert.equal(p.b.engine.stats.ikeEstablished, 0);
});

test('an IKE SA rekey keeps the peer certificate it was authenticated with; our default identity is the certificate subject, sent as its DER Name', async (t) => {
  if (skipWithoutPki(t)) return;
  // a without local.id: its identity is its certificate's subject DN
  const aText = sideConfig({ me: 'a', ...ends.get('a-ed25519')! });
  const c = aText.connections[0]!;
  const aCfg: Config = { ...aText, connections: [{ ...c, local: { ...c.local, id: '%any' } }] };
  const p = pair(aCfg, sideConfig({ me: 'b', ...ends.get('b-ed25519')!, remoteId: 'C=XX, O=vpp-iked test, CN=a.lab' }));
  const up = p.a.engine.initiate('lab');
  await drive(p, up);
  const sa = await up;
  assert.equal(sa.localId, 'C=XX, O=vpp-iked test, CN=a.lab');
  const sb = only(p.b);
  assert.equal(sb.remoteId, 'C=XX, O=vpp-iked test, CN=a.lab');
  const idi = openWith(sb, p.w.log[2]!.data).find((x) => x.type === PayloadType.IDi);
  assert.ok(idi && idi.type === PayloadType.IDi);
  assert.equal(idi.idType, 9, 'ID_DER_ASN1_DN');
  assert.deepEqual(idi.data, p.a.engine.credentials.local.get('lab')!.cert.subjectDer, 'the Name exactly as the certificate holds it');
  assert.ok(p.a.engine.rekeyIke(sa));
  for (let i = 0; i < 50 && [...p.a.engine.table.values()].some((x) => x === sa); i++) {
    await p.w.run();
    await p.w.advance(1000);
  }
  const fresh = only(p.a);
  assert.notEqual(fresh, sa);
  assert.equal(fresh.state, 'ESTABLISHED');
  assert.equal(fresh.remoteCert, 'C=XX, O=vpp-iked test, CN=b.lab');
  assert.equal(only(p.b).remoteCert, 'C=XX, O=vpp-iked test, CN=a.lab');
});

test('an AUTH payload with an unknown signature algorithm, or a PSK method where a signature is due → AUTHENTICATION_FAILED', async (t) => {
  if (skipWithoutPki(t)) return;
  // RFC 7427: 1 byte length, AlgorithmIdentifier, signature; here an OID nobody knows
  const unknownAlg = Buffer.concat([Buffer.from([13]), Buffer.from('300b06092a864886f70d01010f', 'hex').subarray(0, 13), Buffer.alloc(64, 1)]);
  let p = await tamperedAuth(t, (pl) => pl.map((x) => (x.type === PayloadType.AUTH ? { ...x, method: AuthMethod.DIGITAL_SIGNATURE, data: unknownAlg } : x)));
  assert.match(String(p.bLog.find((l) => l.msg === 'authentication failed')?.reason), /does not verify/);
  p = await tamperedAuth(t, (pl) => pl.map((x) => (x.type === PayloadType.AUTH ? { ...x, method: AuthMethod.SHARED_KEY_MIC } : x)));
  assert.match(String(p.bLog.find((l) => l.msg === 'authentication failed')?.reason), /unsupported auth method 2/);
});

test('a certificate revoked by a configured CRL → AUTHENTICATION_FAILED; revocation = strict without a CRL refuses too', async (t) => {
  if (skipWithoutPki(t)) return;
  const crl = pki.crl('revoking-a', ca, [ends.get('a-ecdsa')!.cert]);
  let p = pair(sideConfig({ me: 'a', ...ends.get('a-ecdsa')! }), sideConfig({ me: 'b', ...ends.get('b-ecdsa')!, remoteExtra: `      crls = ${crl}` }));
  let up = p.a.engine.initiate('lab');
  await drive(p, up);
  await assert.rejects(up, /AUTHENTICATION_FAILED/);
  assert.match(String(p.bLog.find((l) => l.msg === 'authentication failed')?.reason), /revoked/);
  // the same with a CRL that revokes someone else: accepted
  const other = pki.crl('revoking-b', ca, [ends.get('b-rsa')!.cert]);
  p = pair(sideConfig({ me: 'a', ...ends.get('a-ecdsa')! }), sideConfig({ me: 'b', ...ends.get('b-ecdsa')!, remoteExtra: `      crls = ${other}\n      revocation = strict` }));
  up = p.a.engine.initiate('lab');
  await drive(p, up);
  assert.equal((await up).state, 'ESTABLISHED');
  // strict and no CRL for the CA
  p = pair(sideConfig({ me: 'a', ...ends.get('a-ecdsa')! }), sideConfig({ me: 'b', ...ends.get('b-ecdsa')!, remoteExtra: '      revocation = strict' }));
  up = p.a.engine.initiate('lab');
  await drive(p, up);
  await assert.rejects(up, /AUTHENTICATION_FAILED/);
});

test('mutated, truncated and replayed messages of a certificate handshake never crash the engine and leave nothing half-done', async (t) => {
  if (skipWithoutPki(t)) return;
  const aCfg = sideConfig({ me: 'a', ...ends.get('a-ecdsa')! });
  const bCfg = sideConfig({ me: 'b', ...ends.get('b-ecdsa')! });
  const rec = pair(aCfg, bCfg);
  const first = rec.a.engine.initiate('lab');
  await drive(rec, first);
  await first;
  const recorded = rec.w.log.slice();
  assert.ok(recorded.length >= 4);
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
  let x = seed || 1;
  const rnd = (n: number): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const runs = Number(process.env.ENGINE_FUZZ_RUNS ?? 40);
  for (let run = 0; run < runs; run++) {
    const p = pair(aCfg, bCfg);
    const up = p.a.engine.initiate('lab');
    up.catch(() => {});
    for (let k = 0; k < 1 + rnd(6); k++) {
      const orig = recorded[rnd(recorded.length)]!;
      let data = Buffer.from(orig.data);
      const op = rnd(4);
      if (op === 0) data[rnd(data.length)]! ^= 1 << rnd(8);
      else if (op === 1) data = data.subarray(0, rnd(data.length));
      else if (op === 2) data = Buffer.concat([data, Buffer.alloc(1 + rnd(64), rnd(256))]);
      const to = orig.remote.addr === A ? p.a : p.b;
      assert.doesNotThrow(() => to.engine.receive({ ...orig.remote }, { ...orig.local }, data), `seed ${seed}`);
      await p.w.run();
    }
    // signatures run on the thread pool: a few rounds of real time, then every timer runs out
    for (let i = 0; i < 8; i++) {
      await p.w.run();
      await new Promise((r) => setTimeout(r, 3));
    }
    await p.w.advance(200_000, 20_000);
    for (const n of [p.a, p.b]) {
      for (const sa of n.engine.table.values()) {
        assert.equal(sa.state, 'ESTABLISHED', `seed ${seed}: leftover SA in state ${sa.state}`);
        for (const c of sa.children) assert.ok(n.dp.installed.has(c.id), `seed ${seed}: child not in dataplane`);
      }
      assert.equal(n.dp.pendingSpis, 0, `seed ${seed}: SPIs released`);
    }
  }
});

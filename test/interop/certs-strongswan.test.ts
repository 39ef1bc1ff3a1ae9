/**
 * Certificate authentication between vpp-iked and a real strongSwan 5.9 (charon with
 * kernel-libipsec, so CHILD_SAs are installed on its side too). Certificates are made at test time
 * with strongSwan's `pki`:
 *
 *   rsa4      RSA-3072, root CA → intermediate CA → end certificates, IPv4: each side sends its
 *             intermediate with its certificate, the other trusts only the root
 *   ecdsa6    ECDSA P-256, IPv6
 *   ed25519   Ed25519, IPv4, identities left to their default (the certificates' subject DNs)
 *   rsa4096   RSA-4096 through an intermediate, IPv6, with IKE fragmentation (RFC 7383) and small
 *             fragment sizes on both sides: IKE_AUTH (two 4096-bit chains) goes in fragments both
 *             ways (the others set fragmentation = no and must not fragment)
 *
 * Each connection comes up once with strongSwan initiating and once with vpp-iked initiating;
 * both sides must show the same SPIs and each other's identity, strongSwan must log the signature
 * scheme it verified, and `vpp-ikectl list-certs` / `list-sas` show the certificates.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLab, LAB_ADDR, requireInterop, waitFor } from './harness.ts';
import type { Charon, Lab } from './harness.ts';
import { startDaemon } from '../helpers/daemon.ts';
import type { DaemonHandle, IkeSaJson } from '../helpers/daemon.ts';
import { pkiMissing, TestPki, type KeySpec } from '../helpers/pki.ts';
import type { CertView } from '../../src/control/views.ts';

type Family = 4 | 6;

interface Case {
  name: string;
  family: Family;
  key: KeySpec;
  /** an intermediate CA between the root and the end certificates */
  intermediate?: boolean;
  /** identities: the SAN (a.lab / b.lab) or the default, the certificate's subject DN */
  dnIds?: boolean;
  /** what strongSwan logs when it verified our AUTH payload */
  swanVerified: RegExp;
  /** IKE fragmentation (RFC 7383) on both sides, small fragment sizes: IKE_AUTH goes in fragments */
  frag?: boolean;
}

const CASES: Case[] = [
  { name: 'rsa4', family: 4, key: { type: 'rsa', size: 3072 }, intermediate: true, swanVerified: /with RSA_EMSA_PSS_SHA2_\d+(_SALT_\d+)? successful/ },
  { name: 'ecdsa6', family: 6, key: { type: 'ecdsa', size: 256 }, swanVerified: /with ECDSA_WITH_SHA256_DER successful/ },
  { name: 'ed25519', family: 4, key: { type: 'ed25519' }, dnIds: true, swanVerified: /with ED25519 successful/ },
  { name: 'rsa4096', family: 6, key: { type: 'rsa', size: 4096 }, intermediate: true, frag: true, swanVerified: /with RSA_EMSA_PSS_SHA2_\d+(_SALT_\d+)? successful/ },
];

/** Fragment sizes (IP datagrams, headers included) of the fragmentation case: ours and charon's. */
const OUR_FRAGMENT_SIZE = 600;
const SWAN_FRAGMENT_SIZE = 700;

const ADDR = {
  4: { a: LAB_ADDR.a.v4, b: LAB_ADDR.b.v4 },
  6: { a: LAB_ADDR.a.v6, b: LAB_ADDR.b.v6 },
} as const;
/**
 * The fragmentation case has addresses of its own: IKE_SA_INIT picks the connection by address,
 * and only that connection's `fragmentation` decides whether we announce fragmentation.
 */
const FRAG_ADDR = { a: '2001:db8::11', b: '2001:db8::12' } as const;
const addrOf = (c: Case): { a: string; b: string } => (c.frag ? FRAG_ADDR : ADDR[c.family]);
const TS = {
  4: { a: '198.51.100.0/25', b: '198.51.100.128/25' },
  6: { a: '2001:db8:a::/64', b: '2001:db8:b::/64' },
} as const;

const dn = (c: Case, side: 'a' | 'b'): string => `C=XX, O=vpp-iked interop, OU=${c.name}, CN=${side}-${c.name}.lab`;
const fqdn = (c: Case, side: 'a' | 'b'): string => `${side}-${c.name}.lab`;

interface Made {
  root: string;
  /** per case and side: cert, key, and the intermediate cert when there is one */
  files: Map<string, { cert: string; key: string; im?: string }>;
}

async function makeCertificates(dir: string): Promise<Made> {
  const pki = new TestPki(dir);
  const files = new Map<string, { cert: string; key: string; im?: string }>();
  // the keys first, in parallel (RSA-4096 takes seconds), then the certificates
  const wanted: [string, KeySpec][] = [['root', { type: 'rsa', size: 3072 }]];
  for (const c of CASES) {
    if (c.intermediate) wanted.push([`${c.name}-im`, c.key]);
    wanted.push([`${c.name}-a`, c.key], [`${c.name}-b`, c.key]);
  }
  const keys = new Map(await Promise.all(wanted.map(async ([name, spec]) => [name, await pki.keyAsync(name, spec)] as const)));
  const root = { key: keys.get('root')!, cert: pki.selfCa('root', keys.get('root')!, 'C=XX, O=vpp-iked interop, CN=Interop Root CA') };
  for (const c of CASES) {
    const imKey = keys.get(`${c.name}-im`);
    const issuer = imKey ? { key: imKey, cert: pki.issue(`${c.name}-im`, imKey, root, `C=XX, O=vpp-iked interop, CN=${c.name} Intermediate CA`, { ca: true }) } : root;
    for (const side of ['a', 'b'] as const) {
      const key = keys.get(`${c.name}-${side}`)!;
      const cert = pki.issue(`${c.name}-${side}`, key, issuer, dn(c, side), { san: [fqdn(c, side)], flags: ['serverAuth'] });
      files.set(`${c.name}-${side}`, imKey ? { cert, key, im: issuer.cert } : { cert, key });
    }
  }
  return { root: root.cert, files };
}

function swanctlConf(m: Made): string {
  const out = ['connections {'];
  for (const c of CASES) {
    out.push(
      `  ${c.name} {`,
      '    version = 2',
      `    local_addrs = ${addrOf(c).a}`,
      `    remote_addrs = ${addrOf(c).b}`,
      '    proposals = aes256gcm16-prfsha384-ecp256',
      `    fragmentation = ${c.frag ? 'yes' : 'no'}`,
      '    local {',
      '      auth = pubkey',
      `      certs = ${c.name}-a.cert.pem`,
      ...(c.dnIds ? [] : [`      id = ${fqdn(c, 'a')}`]),
      '    }',
      '    remote {',
      '      auth = pubkey',
      '      cacerts = root.cert.pem',
      `      id = "${c.dnIds ? dn(c, 'b') : fqdn(c, 'b')}"`,
      '    }',
      '    children {',
      '      net {',
      `        local_ts = ${TS[c.family].a}`,
      `        remote_ts = ${TS[c.family].b}`,
      '        esp_proposals = aes256gcm16',
      '      }',
      '    }',
      '  }',
    );
  }
  out.push('}', '');
  return out.join('\n');
}

/** Our config: certificate files by absolute path, private keys in secrets. */
function ourConf(m: Made): string {
  const out = ['connections {'];
  const secrets = ['secrets {'];
  for (const c of CASES) {
    const f = m.files.get(`${c.name}-b`)!;
    out.push(
      `  ${c.name} {`,
      `    local_addrs = ${addrOf(c).b}`,
      `    remote_addrs = ${addrOf(c).a}`,
      '    proposals = aes256gcm16-prfsha384-ecp256',
      `    fragmentation = ${c.frag ? 'yes' : 'no'}`,
      '    local {',
      '      auth = pubkey',
      `      certs = ${f.cert}${f.im ? `, ${f.im}` : ''}`,
      ...(c.dnIds ? [] : [`      id = ${fqdn(c, 'b')}`]),
      '    }',
      '    remote {',
      '      auth = pubkey',
      `      cacerts = ${m.root}`,
      `      id = "${c.dnIds ? dn(c, 'a') : fqdn(c, 'a')}"`,
      '    }',
      '    children {',
      '      net {',
      `        local_ts = ${TS[c.family].b}`,
      `        remote_ts = ${TS[c.family].a}`,
      '        esp_proposals = aes256gcm16',
      '      }',
      '    }',
      '  }',
    );
    // strongSwan's own key files, as pki wrote them (PKCS#1, SEC1, PKCS#8); the prefixes as swanctl's
    const prefix = c.key.type === 'rsa' ? 'rsa' : c.key.type === 'ecdsa' ? 'ecdsa' : 'private';
    secrets.push(`  ${prefix}-${c.name} {`, `    file = ${f.key}`, '  }');
  }
  out.push('}');
  secrets.push('}', '');
  return [`daemon {\n  fragment_size = ${OUR_FRAGMENT_SIZE}\n}`, ...out, ...secrets].join('\n');
}

/** strongSwan's credential folders for side a. */
function swanFiles(m: Made): Record<string, string> {
  const files: Record<string, string> = { 'x509ca/root.cert.pem': readFileSync(m.root, 'utf8') };
  for (const c of CASES) {
    const f = m.files.get(`${c.name}-a`)!;
    files[`x509/${c.name}-a.cert.pem`] = readFileSync(f.cert, 'utf8');
    files[`private/${c.name}-a.key.pem`] = readFileSync(f.key, 'utf8');
    if (f.im) files[`x509ca/${c.name}-im.cert.pem`] = readFileSync(f.im, 'utf8');
  }
  return files;
}

async function bothUp(swan: Charon, ours: DaemonHandle, c: Case, swanInitiated: boolean): Promise<IkeSaJson> {
  const sas = await swan.listSas(c.name);
  assert.equal(sas.length, 1, `strongSwan IKE_SAs of ${c.name}`);
  const s = sas[0]!;
  const os = await ours.listSas(c.name);
  assert.equal(os.length, 1, `our IKE SAs of ${c.name}`);
  const o = os[0]!;
  assert.equal(s.state, 'ESTABLISHED');
  assert.equal(o.state, 'ESTABLISHED');
  assert.equal(s.initiator, swanInitiated);
  assert.equal(o.spi_i, s.spiI);
  assert.equal(o.spi_r, s.spiR);
  assert.equal(o.remote.addr, addrOf(c).a);
  const aId = c.dnIds ? dn(c, 'a') : fqdn(c, 'a');
  const bId = c.dnIds ? dn(c, 'b') : fqdn(c, 'b');
  assert.equal(o.remote.id, aId, 'our view of the peer identity');
  assert.equal(o.local.id, bId, 'our identity');
  assert.equal(s.localId, aId);
  assert.equal(s.remoteId, bId, "strongSwan's view of our identity");
  assert.equal(o.remote.cert, dn(c, 'a'), 'list-sas shows the subject of the certificate the peer used');
  const sc = s.children.find((x) => x.name === 'net');
  const oc = o.child_sas.find((x) => x.name === 'net');
  assert.equal(sc?.state, 'INSTALLED');
  assert.equal(oc?.state, 'INSTALLED');
  assert.equal(sc.spiIn, oc.spi_out);
  assert.equal(sc.spiOut, oc.spi_in);
  return o;
}

interface FragStats {
  messages_fragmented: number;
  messages_reassembled: number;
  fragments_dropped: Record<string, number>;
}

async function fragStats(ours: DaemonHandle): Promise<FragStats> {
  return ours.json<FragStats>(['stats']);
}

/**
 * The fragmentation case sent IKE_AUTH in fragments both ways (charon split and reassembled, and so
 * did we, dropping none); the others sent none (fragmentation = no on our side).
 */
async function assertFragmented(swan: Charon, ours: DaemonHandle, c: Case, before: FragStats, logFrom: number): Promise<void> {
  const log = swan.log().slice(logFrom);
  const after = await fragStats(ours);
  const split = (log.match(/splitting IKE message \(\d+ bytes\) into \d+ fragments/g) ?? []).length;
  const reassembled = (log.match(/reassembled fragmented IKE message/g) ?? []).length;
  if (c.frag) {
    assert.ok(split >= 1, 'strongSwan sent its IKE_AUTH message in fragments');
    assert.ok(reassembled >= 1, 'strongSwan reassembled ours');
    assert.ok(after.messages_fragmented > before.messages_fragmented, 'we sent ours in fragments');
    assert.ok(after.messages_reassembled > before.messages_reassembled, "we reassembled strongSwan's");
    assert.ok(Object.values(after.fragments_dropped).every((n) => n === 0), `no fragment dropped: ${JSON.stringify(after.fragments_dropped)}`);
  } else {
    assert.equal(split, 0, `no fragments for ${c.name}`);
    assert.equal(after.messages_fragmented, before.messages_fragmented);
  }
}

async function cleanSlate(swan: Charon, ours: DaemonHandle): Promise<void> {
  for (const s of await swan.listSas()) await swan.terminateIke(s.name, { allowFailure: true, timeoutMs: 5000 });
  for (const s of await ours.listSas()) await ours.ctl(['terminate', '--ike-id', String(s.id)]);
  await waitFor('both sides without SAs', async () => (await swan.listSas()).length === 0 && (await ours.listSas()).length === 0, 8000, 100);
}

test('certificates: vpp-iked <-> strongSwan 5.9 (RSA-3072 with an intermediate CA, ECDSA P-256, Ed25519, RSA-4096 fragmented; IPv4 and IPv6; both directions)', { timeout: 120_000 }, async (t: TestContext) => {
  if (!requireInterop(t)) return;
  const noPki = pkiMissing();
  if (noPki) {
    if (process.env.REQUIRE_INTEROP === '1') assert.fail(noPki);
    t.skip(noPki);
    return;
  }
  const lab: Lab = await createLab({ tag: 'certs' });
  t.after(() => lab.destroy());
  const pkiDir = join(lab.dir, 'pki');
  mkdirSync(pkiDir, { recursive: true });
  for (const side of ['a', 'b'] as const) {
    const r = await lab.exec(side, 'ip', ['addr', 'add', `${FRAG_ADDR[side]}/64`, 'dev', LAB_ADDR[side].ifname, 'nodad']);
    assert.equal(r.code, 0, r.stderr);
  }
  const made = await makeCertificates(pkiDir);
  const [swan, ours] = await Promise.all([
    lab.startCharon('a', {
      swanctlConf: swanctlConf(made),
      libipsec: true,
      files: swanFiles(made),
      extraStrongswanConf: `charon {\n  fragment_size = ${SWAN_FRAGMENT_SIZE}\n}\n`,
    }),
    startDaemon({ name: 'ours', parentDir: lab.dir, lab, side: 'b', listen: [LAB_ADDR.b.v4, LAB_ADDR.b.v6, FRAG_ADDR.b], conf: ourConf(made) }),
  ]);

  await t.test('list-certs shows our certificates, the intermediate and the CA with the connections using them', async () => {
    const certs = await ours.json<CertView[]>(['list-certs']);
    const root = certs.find((c) => c.subject === 'C=XX, O=vpp-iked interop, CN=Interop Root CA');
    assert.ok(root, JSON.stringify(certs.map((c) => c.subject)));
    assert.equal(root.ca, true);
    assert.equal(root.key_type, 'RSA 3072');
    assert.deepEqual(root.used_by.map((u) => `${u.connection}:${u.use}`).sort(), CASES.map((c) => `${c.name}:ca`).sort());
    for (const c of CASES) {
      const mine = certs.find((x) => x.subject === dn(c, 'b'));
      assert.ok(mine, dn(c, 'b'));
      assert.equal(mine.has_private_key, true);
      assert.deepEqual(mine.used_by, [{ connection: c.name, use: 'local' }]);
      assert.ok(mine.days_left >= 363 && mine.days_left <= 365, String(mine.days_left));
    }
    assert.equal(certs.find((x) => x.subject === dn(CASES[1]!, 'b'))!.key_type, 'ECDSA P-256');
    assert.equal(certs.find((x) => x.subject === dn(CASES[2]!, 'b'))!.key_type, 'Ed25519');
    const im = certs.find((x) => x.subject.includes('rsa4 Intermediate CA'));
    assert.deepEqual(im?.used_by, [{ connection: 'rsa4', use: 'intermediate' }]);
    const text = await ours.ctl(['list-certs']);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /Interop Root CA/);
  });

  for (const c of CASES) {
    await t.test(`${c.name} (IPv${c.family}): strongSwan initiates`, async () => {
      await cleanSlate(swan, ours);
      const before = await fragStats(ours);
      const logFrom = swan.log().length;
      await swan.initiate('net', { ike: c.name });
      await bothUp(swan, ours, c, true);
      await assertFragmented(swan, ours, c, before, logFrom);
      assert.match(swan.log(), c.swanVerified);
      if (c.intermediate) assert.match(swan.log(), new RegExp(`received issuer cert "C=XX, O=vpp-iked interop, CN=${c.name} Intermediate CA"`), 'we sent our intermediate');
      const text = await ours.ctl(['list-sas', '--ike', c.name]);
      assert.match(text.stdout, /remote certificate 'C=XX, O=vpp-iked interop/);
    });
    await t.test(`${c.name} (IPv${c.family}): vpp-iked initiates`, async () => {
      await cleanSlate(swan, ours);
      const before = await fragStats(ours);
      const logFrom = swan.log().length;
      const r = await ours.json<IkeSaJson>(['initiate', '--ike', c.name, '--child', 'net']);
      assert.equal(r.state, 'ESTABLISHED');
      await bothUp(swan, ours, c, false);
      await assertFragmented(swan, ours, c, before, logFrom);
    });
  }

  await t.test('a peer certificate from a CA we do not trust is refused: strongSwan hears AUTHENTICATION_FAILED, our log says why', async () => {
    await cleanSlate(swan, ours);
    // our side trusts only a CA strongSwan's certificates do not chain to
    const other = new TestPki(join(lab.dir, 'pki'));
    const otherCa = other.ca('other-ca', { type: 'ecdsa', size: 256 }, 'C=XX, O=elsewhere, CN=Other CA');
    ours.rewrite(ourConf(made).replaceAll(`cacerts = ${made.root}`, `cacerts = ${otherCa.cert}`));
    const rl = await ours.json<{ changed: string[] }>(['reload']);
    assert.deepEqual(rl.changed.sort(), CASES.map((x) => x.name).sort(), 'a new CA file changes every connection');
    const c = CASES[1]!;
    const r = await swan.initiate('net', { ike: c.name, allowFailure: true, timeoutMs: 15_000 });
    assert.notEqual(r.code, 0);
    assert.match(swan.log(), /received AUTHENTICATION_FAILED notify error/);
    await waitFor('our log line', () => /authentication failed.*is not trusted/.test(ours.logs().replace(/\n/g, ' ')) || /"reason":"certificate '[^']*' is not trusted/.test(ours.logs()), 5000, 100);
    ours.rewrite(ourConf(made));
    await ours.json(['reload']);
  });
  await cleanSlate(swan, ours);
  await ours.stop();
});

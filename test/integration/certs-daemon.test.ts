/**
 * Two real daemons on loopback authenticating with certificates (made at test time by strongSwan's
 * `pki`): the tunnel comes up, `list-sas` shows the peer's certificate and `list-conns` ours and the
 * CA, a certificate that expires within 30 days is a warning in the log and a metric, and reload
 * re-reads the files: same files → unchanged, a new certificate → the connection is replaced, a
 * broken key file → the reload is refused with FILE:LINE:COL and the running SAs stay.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from '../helpers/daemon.ts';
import type { DaemonHandle, IkeSaJson } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/wait.ts';
import { pkiMissing, TestPki } from '../helpers/pki.ts';
import type { CertView } from '../../src/control/views.ts';

const A = '127.0.0.1';
const B = '127.0.0.2';
const PORT = 36500;
const METRICS = `${A}:36464`;
const missing = pkiMissing();

let dir = '';
let pki: TestPki;
let ca: { cert: string; key: string };
let ea: { cert: string; key: string };
let eb: { cert: string; key: string };
let a: DaemonHandle | undefined;
let b: DaemonHandle | undefined;

function conf(side: 'a' | 'b', keyFile: string): string {
  const me = side === 'a' ? A : B;
  const peer = side === 'a' ? B : A;
  const e = side === 'a' ? ea : eb;
  return `${side === 'a' ? `daemon {\n  metrics = ${METRICS}\n}\n` : ''}connections {
  c {
    local_addrs = ${me}
    remote_addrs = ${peer}
    remote_port = ${PORT}
    proposals = aes256gcm16-prfsha256-ecp256
    local {
      auth = pubkey
      certs = ${e.cert}
      id = ${side}.cert.test
    }
    remote {
      auth = pubkey
      cacerts = ${ca.cert}
      id = ${side === 'a' ? 'b' : 'a'}.cert.test
    }
    children {
      net {
        local_ts = 10.${side === 'a' ? 1 : 2}.0.0/24
        remote_ts = 10.${side === 'a' ? 2 : 1}.0.0/24
        esp_proposals = aes256gcm16
        start_action = ${side === 'a' ? 'start' : 'none'}
      }
    }
  }
}
secrets {
  ecdsa-${side} {
    file = ${keyFile}
  }
}
`;
}

async function scrape(name: string): Promise<number> {
  const text = await (await fetch(`http://${METRICS}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} in\n${text}`);
  return Number(m[1]);
}

async function established(d: DaemonHandle, not?: string): Promise<IkeSaJson> {
  return waitFor(`${d.name}: c established`, async () => {
    const s = (await d.listSas('c')).filter((x) => x.state === 'ESTABLISHED' && x.child_sas.some((y) => y.state === 'INSTALLED') && x.spi_i !== not);
    return s.length === 1 ? s[0] : undefined;
  }, 15_000);
}

before(async () => {
  if (missing) return;
  dir = mkdtempSync(join(tmpdir(), 'viked-it-certs-'));
  pki = new TestPki(dir);
  ca = pki.ca('ca', { type: 'ecdsa', size: 256 }, 'C=XX, O=vpp-iked test, CN=Daemon CA');
  ea = pki.endEntity('a', { type: 'ecdsa', size: 256 }, ca, 'a.cert.test', { lifetime: 10 });
  eb = pki.endEntity('b', { type: 'ecdsa', size: 256 }, ca, 'b.cert.test');
  [a, b] = await Promise.all([
    startDaemon({ name: 'a', parentDir: dir, listen: [A], port: PORT, portNatT: PORT + 1, conf: conf('a', ea.key) }),
    startDaemon({ name: 'b', parentDir: dir, listen: [B], port: PORT, portNatT: PORT + 1, conf: conf('b', eb.key) }),
  ]);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  if (dir && process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
});

test('daemons with certificates: tunnel, expiry warning and metric, reload re-reads the files', { timeout: 60_000 }, async (t) => {
  if (missing) return t.skip(missing);
  const da = a!;
  const db = b!;
  // up by start_action = start; each side shows the other's certificate
  const sa = await established(da);
  const sb = await established(db);
  assert.equal(sa.remote.cert, 'C=XX, O=vpp-iked test, CN=b.cert.test');
  assert.equal(sb.remote.cert, 'C=XX, O=vpp-iked test, CN=a.cert.test');
  assert.equal(sb.remote.id, 'a.cert.test');

  // a's certificate expires in 10 days: a warning at start, a gauge, days left in list-certs
  const warn = da.logs().split('\n').find((l) => l.includes('certificate expires within 30 days'));
  assert.ok(warn, 'expiry warning logged');
  assert.match(warn, /"subject":"C=XX, O=vpp-iked test, CN=a.cert.test"/);
  assert.match(warn, /"days_left":9/);
  assert.equal(await scrape('vpp_iked_certificates'), 2);
  assert.equal(await scrape('vpp_iked_certificates_expiring'), 1);
  const certs = await da.json<CertView[]>(['list-certs']);
  assert.deepEqual(
    certs.map((c) => [c.subject, c.days_left, c.has_private_key, c.used_by]),
    [
      ['C=XX, O=vpp-iked test, CN=a.cert.test', 9, true, [{ connection: 'c', use: 'local' }]],
      ['C=XX, O=vpp-iked test, CN=Daemon CA', 3649, false, [{ connection: 'c', use: 'ca' }]],
    ],
  );

  const conns = await da.json<{ name: string; local: { auth: string; cert?: string }; remote: { auth: string; cacerts?: string[] } }[]>(['list-conns']);
  assert.deepEqual(
    conns.map((c) => [c.name, c.local.auth, c.local.cert, c.remote.auth, c.remote.cacerts]),
    [['c', 'pubkey', 'C=XX, O=vpp-iked test, CN=a.cert.test', 'pubkey', ['C=XX, O=vpp-iked test, CN=Daemon CA']]],
  );

  // the same files again: nothing changes
  let r = await da.json<{ changed: string[]; unchanged: string[] }>(['reload']);
  assert.deepEqual([r.changed, r.unchanged], [[], ['c']]);
  assert.equal((await established(da)).spi_i, sa.spi_i);

  // a renewed certificate in the same file: the connection is replaced, the new one comes up
  pki.issue('a', ea.key, ca, 'C=XX, O=vpp-iked test, CN=a.cert.test', { san: ['a.cert.test'], lifetime: 365 });
  r = await da.json<{ changed: string[]; unchanged: string[] }>(['reload']);
  assert.deepEqual(r.changed, ['c']);
  const sa2 = await established(da, sa.spi_i);
  assert.notEqual(sa2.spi_i, sa.spi_i);
  assert.equal(await scrape('vpp_iked_certificates_expiring'), 0);

  // a broken key file: the reload is refused at the line naming it, the SA stays
  const badKey = join(dir, 'broken.key.pem');
  writeFileSync(badKey, '-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n');
  da.rewrite(conf('a', badKey));
  const refused = await da.ctl(['reload']);
  assert.equal(refused.code, 1);
  const keyLine = conf('a', badKey).split('\n').findIndex((l) => l.includes(badKey)) + 1 + 8; // + the daemon section startDaemon writes first
  assert.match(refused.stderr, new RegExp(`vpp-iked\\.conf:${keyLine}:12: the private key of secret 'ecdsa-a'`));
  assert.ok(!refused.stderr.includes(badKey), 'the key path is not shown');
  assert.equal((await established(da)).spi_i, sa2.spi_i);
  assert.equal(await scrape('vpp_iked_config_last_reload_successful'), 0);
});

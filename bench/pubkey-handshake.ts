/**
 * Certificate handshakes between two engines in one process: IKE_SA_INIT + IKE_AUTH with one
 * CHILD_SA, both sides signing and verifying (and the responder checking the chain, cached after
 * the first), per key type, against PSK handshakes measured in the same run. Certificates are made
 * with strongSwan's `pki` (package strongswan-pki) in a temporary folder.
 *
 *   node bench/pubkey-handshake.ts [--handshakes 200]
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wire, pair } from '../test/helpers/engine-pair.ts';
import { TestPki, type KeySpec } from '../test/helpers/pki.ts';
import { loadConfig } from '../src/config/load.ts';
import type { Config } from '../src/config/types.ts';

const { values } = parseArgs({ options: { handshakes: { type: 'string', default: '200' } } });
const N = Number(values.handshakes);
const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-bench-pubkey-'));
const pki = new TestPki(dir);
const ca = pki.ca('ca', { type: 'ecdsa', size: 256 }, 'C=XX, O=bench, CN=Bench CA');

function sideConfig(me: 'a' | 'b', e: { cert: string; key: string }): Config {
  const file = join(dir, `${me}-${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(
    file,
    `connections {\n  lab {\n    local_addrs = ${me === 'a' ? '192.0.2.1' : '192.0.2.2'}\n    remote_addrs = ${me === 'a' ? '192.0.2.2' : '192.0.2.1'}\n` +
      `    proposals = aes256gcm16-prfsha256-x25519\n    local {\n      auth = pubkey\n      certs = ${e.cert}\n      id = ${me}.lab\n    }\n` +
      `    remote {\n      auth = pubkey\n      cacerts = ${ca.cert}\n      id = ${me === 'a' ? 'b' : 'a'}.lab\n    }\n` +
      `    children {\n      net {\n        esp_proposals = aes256gcm16\n      }\n    }\n  }\n}\nsecrets {\n  private-k {\n    file = ${e.key}\n  }\n}\n`,
  );
  const r = loadConfig(file);
  if (!r.config) throw new Error(r.errors.join('\n'));
  return r.config;
}

async function run(w: Wire, a: { engine: { initiate(n: string): Promise<unknown>; table: { values(): Iterable<unknown> }; destroy(sa: never, r: string): void } }): Promise<void> {
  const p = a.engine.initiate('lab');
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  while (!done) {
    await w.run();
    if (!done) await new Promise((r) => setImmediate(r));
  }
  await p;
}

async function measure(label: string, make: () => { w: Wire; a: Parameters<typeof run>[1] }): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const { w, a } = make();
    await run(w, a);
  }
  const ms = (performance.now() - t0) / N;
  console.log(`${label.padEnd(22)} ${ms.toFixed(2)} ms per handshake (both sides)`);
  return ms;
}

const psk = await measure('PSK', () => pair());
const kinds: [string, KeySpec][] = [
  ['ECDSA P-256', { type: 'ecdsa', size: 256 }],
  ['Ed25519', { type: 'ed25519' }],
  ['RSA-3072 (PSS)', { type: 'rsa', size: 3072 }],
];
for (const [label, spec] of kinds) {
  const tag = label.replace(/\W/g, '');
  const ea = pki.endEntity(`a${tag}`, spec, ca, 'a.lab');
  const eb = pki.endEntity(`b${tag}`, spec, ca, 'b.lab');
  const ca_ = sideConfig('a', ea);
  const cb = sideConfig('b', eb);
  const ms = await measure(label, () => {
    const w = new Wire();
    const a = w.add('192.0.2.1', ca_);
    w.add('192.0.2.2', cb);
    return { w, a };
  });
  console.log(`${''.padEnd(22)} ${(ms / psk).toFixed(1)}x PSK`);
}
rmSync(dir, { recursive: true, force: true });

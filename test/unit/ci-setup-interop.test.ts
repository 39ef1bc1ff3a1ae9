/**
 * .ci/setup-interop.sh decides which strongSwan units to disable after installing packages. It runs
 * here with stub commands (id, dpkg-query, apt-get, systemctl, and modprobe/mkdir/mknod for its TUN
 * check) that keep the "installed packages" in a file and log what they are asked to do; nothing on
 * the machine is installed or changed. Its final checks of charon's files pass or fail depending on
 * the machine; only the decisions before them are asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const SCRIPT = resolve(import.meta.dirname, '../../.ci/setup-interop.sh');
const ALL = [
  'strongswan-charon',
  'strongswan-swanctl',
  'charon-systemd',
  'strongswan-pki',
  'libstrongswan-standard-plugins',
  'libstrongswan-extra-plugins',
  'libcharon-extra-plugins',
  'iproute2',
  'iputils-ping',
  'ethtool',
  'socat',
  'tcpdump',
  'nftables',
];

function stub(dir: string, name: string, body: string): void {
  const p = join(dir, name);
  writeFileSync(p, `#!/usr/bin/env bash\n${body}\n`);
  chmodSync(p, 0o755);
}

/** Runs the script with `before` installed; apt-get install adds its arguments and `pulled` (dependencies). */
function setup(before: string[], pulled: string[] = []): { systemctl: string[]; apt: string[]; installed: string[]; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-ci-'));
  try {
    const bin = join(dir, 'bin');
    spawnSync('mkdir', [bin]);
    const state = join(dir, 'installed');
    const log = join(dir, 'log');
    writeFileSync(state, before.map((p) => `${p}\n`).join(''));
    writeFileSync(log, '');
    stub(bin, 'id', 'echo 0');
    stub(bin, 'dpkg-query', `pkg="\${@: -1}"; if grep -qx -- "$pkg" "${state}"; then printf installed; else exit 1; fi`);
    stub(
      bin,
      'apt-get',
      `echo "apt-get $*" >> "${log}"
install=0
for a in "$@"; do
  if [ "$a" = install ]; then install=1; continue; fi
  if [ $install -eq 1 ] && [ "\${a#-}" = "$a" ]; then echo "$a" >> "${state}"; fi
done
if [ $install -eq 1 ]; then for p in ${pulled.join(' ')}; do echo "$p" >> "${state}"; done; fi
exit 0`,
    );
    stub(bin, 'systemctl', `echo "systemctl $*" >> "${log}"`);
    for (const c of ['modprobe', 'mkdir', 'mknod']) stub(bin, c, `echo "${c} $*" >> "${log}"`);
    const r = spawnSync('bash', [SCRIPT], {
      encoding: 'utf8',
      env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, POLICY_RC_D: join(dir, 'policy-rc.d') },
    });
    assert.ok(r.status === 0 || /setup-interop: missing /.test(r.stderr), r.stderr);
    assert.ok(!existsSync(join(dir, 'policy-rc.d')), 'the temporary policy-rc.d is removed');
    const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    return {
      systemctl: lines.filter((l) => l.startsWith('systemctl ')),
      apt: lines.filter((l) => l.startsWith('apt-get ')),
      installed: readFileSync(state, 'utf8').split('\n').filter(Boolean),
      out: r.stdout,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('setup-interop: on a machine without strongSwan, the units it installs are disabled', (t) => {
  if (!existsSync('/usr/bin/bash') && !existsSync('/bin/bash')) return t.skip('no bash');
  const r = setup(['iproute2'], ['strongswan-starter']);
  assert.equal(r.apt.filter((l) => l.includes(' install ')).length, 1);
  assert.deepEqual(r.systemctl.sort(), ['systemctl --no-reload disable strongswan-starter.service', 'systemctl --no-reload disable strongswan.service']);
});

test("setup-interop: an administrator's strongSwan service is left alone", (t) => {
  if (!existsSync('/usr/bin/bash') && !existsSync('/bin/bash')) return t.skip('no bash');
  // charon-systemd (strongswan.service) was there before: only the unit of the package this run adds is disabled
  const r = setup(['charon-systemd', 'strongswan-charon'], ['strongswan-starter']);
  assert.deepEqual(r.systemctl, ['systemctl --no-reload disable strongswan-starter.service']);
  // strongswan-starter was there, charon-systemd is new
  const s = setup(['strongswan-starter', 'strongswan-charon']);
  assert.deepEqual(s.systemctl, ['systemctl --no-reload disable strongswan.service']);
  // strongswan-starter is neither there nor pulled in: nothing to disable for it
  const n = setup(['charon-systemd']);
  assert.deepEqual(n.systemctl, []);
  // everything installed: no apt-get, no systemctl
  const all = setup([...ALL, 'strongswan-starter']);
  assert.deepEqual([all.apt, all.systemctl], [[], []]);
  assert.match(all.out, /all packages already installed/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, cpSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { generateVppDefs, diffGenerated } from '../../tools/gen-vpp-defs.ts';
import { VPP_MESSAGES } from '../../src/vpp/defs.generated.ts';
import { nameCrc } from '../../src/vpp/schema.ts';

const API_DIR = join(import.meta.dirname, '../../vpp-api');
const GENERATED = new URL('../../src/vpp/defs.generated.ts', import.meta.url);
const TOOL = new URL('../../tools/gen-vpp-defs.ts', import.meta.url).pathname;

test('committed defs are exactly what the shared API files produce', () => {
  assert.equal(generateVppDefs(API_DIR).text, readFileSync(GENERATED, 'utf8'));
});

test('name_crc keys match the README table of the API files', () => {
  // /work/shared/vpp-api/README.md, "Messages an IKE daemon needs".
  assert.equal(nameCrc(VPP_MESSAGES.sockclnt_create), 'sockclnt_create_455fb9c4');
  assert.equal(nameCrc(VPP_MESSAGES.ipsec_sad_entry_add_v2), 'ipsec_sad_entry_add_v2_9611297a');
  assert.equal(nameCrc(VPP_MESSAGES.ipsec_tunnel_protect_update), 'ipsec_tunnel_protect_update_30d5f133');
  assert.equal(nameCrc(VPP_MESSAGES.ip_route_add_del), 'ip_route_add_del_b8ecfe0d');
  assert.equal(nameCrc(VPP_MESSAGES.sw_interface_event), 'sw_interface_event_2d3d95a7');
});

test('--check names the message whose CRC changed and exits 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vppapi-'));
  try {
    cpSync(API_DIR, dir, { recursive: true });
    const p = join(dir, 'ipsec.api.json');
    writeFileSync(p, readFileSync(p, 'utf8').replace('"0x6f50b3bc"', '"0x6f50b3bd"'));
    const fresh = generateVppDefs(dir).text;
    const diffs = diffGenerated(readFileSync(GENERATED, 'utf8'), fresh);
    assert.deepEqual(diffs, ['message ipsec_itf_create: differs (CRC 0x6f50b3bc committed, 0x6f50b3bd in the API files)']);
    const r = spawnSync(process.execPath, [TOOL, dir, '--check'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /ipsec_itf_create/);
    const ok = spawnSync(process.execPath, [TOOL, API_DIR, '--check'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

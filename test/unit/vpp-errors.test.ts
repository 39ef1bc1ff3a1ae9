import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VppErr, vppErrorName, vppErrorText } from '../../src/vpp/errors.ts';
import { SpiAllocator } from '../../src/dataplane/spi.ts';
import { hex8 } from '../../src/common/text.ts';

test('VppErr comes from the one error table: names and codes agree both ways', () => {
  // FDio/vpp src/vnet/error.h (foreach_vnet_error).
  assert.equal(VppErr.NO_SUCH_ENTRY, -6);
  assert.equal(VppErr.NO_SUCH_FIB, -3);
  assert.equal(VppErr.NO_MATCHING_INTERFACE, -54);
  assert.equal(VppErr.ENTRY_ALREADY_EXISTS, -116);
  assert.equal(VppErr.SYSCALL_ERROR_2, -12);
  const entries = Object.entries(VppErr);
  assert.ok(entries.length > 140);
  assert.equal(new Set(entries.map(([, c]) => c)).size, entries.length, 'codes are unique');
  for (const [name, code] of entries) assert.equal(vppErrorName(code), name);
  assert.equal(vppErrorText(VppErr.NO_SUCH_FIB), 'No such FIB / VRF');
  assert.equal(vppErrorName(-9999), 'UNKNOWN(-9999)');
});

test('SpiAllocator: never below 256, never a taken SPI', () => {
  const taken = new Set<number>();
  const a = new SpiAllocator((spi) => taken.has(spi));
  for (let i = 0; i < 2000; i++) {
    const spi = a.next();
    assert.ok(spi >= 256 && spi <= 0xffffffff);
    assert.ok(!taken.has(spi));
    taken.add(spi);
  }
  assert.equal(hex8(0xabc), '00000abc');
  assert.equal(hex8(-1), 'ffffffff');
});

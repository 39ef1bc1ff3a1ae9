/**
 * bench/datagram-floor.ts in the lab's namespaces: the driver in side A completes every handshake
 * (two round trips each) against the bare node:dgram server in side B, both with a window of
 * handshakes at once and paced, and the server's CPU per handshake is measured from /proc.
 *
 * Skipped without root and the lab's tools (the reason is printed); fails instead when
 * REQUIRE_INTEROP=1. A few seconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, requireInterop } from './harness.ts';
import { runDatagramFloor } from '../../bench/datagram-floor.ts';

test('datagram floor: 2,000 handshakes of two round trips each through the lab, at once and paced', { timeout: 90_000 }, async (t) => {
  if (!requireInterop(t)) return;
  const lab = await createLab({ tag: 'dgram-floor' });
  try {
    const burst = await runDatagramFloor(lab, 2000, 32);
    assert.equal(burst.handshakes, 2000);
    assert.ok(burst.wallMs > 0 && burst.wallMs < 60_000, `took ${burst.wallMs} ms`);
    // each handshake is two receives and two sends by the server: some CPU, but not a millisecond
    assert.ok(burst.cpuUs < 1000, `${burst.cpuUs} µs per handshake`);
    // a veth pair with 4 MiB receive buffers loses nothing to 32 handshakes at once (a lost datagram
    // is sent again after 500 ms; a few may be for a slow machine, not hundreds)
    assert.ok(burst.retransmits <= 20, `${burst.retransmits} requests sent again`);
    // paced at 1,000 handshakes per second (ecp256's sizes): 500 of them take about half a second, not less
    const paced = await runDatagramFloor(lab, 500, 32, 1000, 64);
    assert.equal(paced.handshakes, 500);
    assert.ok(paced.wallMs >= 450, `paced run took ${paced.wallMs} ms`);
    assert.ok(paced.retransmits <= 5, `${paced.retransmits} requests sent again`);
    // the CPU figure comes from /proc's clock ticks; over 2,000 + 500 handshakes it is not all zero
    assert.ok(burst.cpuUs + paced.cpuUs > 0, 'the server used some CPU');
    await assert.rejects(runDatagramFloor(lab, 10, 4, Number.NaN), RangeError);
  } finally {
    await lab.destroy();
  }
});

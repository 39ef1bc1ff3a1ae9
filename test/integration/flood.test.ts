/**
 * A forged IKE_SA_INIT flood against a real daemon on loopback (RFC 7296 §2.6): 2,000 requests a
 * second, each a copy of a real request with a fresh SPIi, from 40 source addresses in 127.0.0.0/8,
 * for FLOOD_SECONDS (default 10; `FLOOD_SECONDS=20` is the full measurement). Meanwhile a spoke with a
 * live tunnel keeps its liveness checks and CHILD_SA rekeys answered, and a new spoke that arrives
 * during the flood answers the cookie and is up within 5 s. The hub sends cookies instead of doing
 * key exchanges, and its memory stays bounded. The figures are printed as test diagnostics.
 *
 * Ports 17500/17501 (hub), 18500/18501 and 19500/19501 (spokes): no root needed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startDaemon, type DaemonHandle } from '../helpers/daemon.ts';
import { sleep } from '../helpers/wait.ts';
import { child, config, conn, psk } from '../helpers/engine-pair.ts';
import { Engine, type OutPacket } from '../../src/ikev2/engine/engine.ts';
import { FakeScheduler } from '../../src/common/clock.ts';
import { MemoryDataplane } from '../../src/dataplane/memory.ts';
import { parseProposals } from '../../src/ikev2/crypto/proposals.ts';
import { addNonEspMarker } from '../../src/net/framing.ts';
import { randomBytes } from 'node:crypto';

const FLOOD_SECONDS = Number(process.env.FLOOD_SECONDS ?? 10);
const RATE = 2000;
const SOURCES = 40;
const HUB = { addr: '127.0.0.1', port: 17500, natT: 17501 };
const LIVE = { addr: '127.0.0.2', port: 18500, natT: 18501 };
const LATE = { addr: '127.0.0.3', port: 19500, natT: 19501 };
const PSK = 'flood-test-psk-0123456789abcdef';
const PROPOSAL = 'aes256gcm16-prfsha256-x25519';
/** The spokes retransmit after 1 s (as the lab's strongSwan does): a datagram the loaded machine drops costs a second, not four. */
const SPOKE_DAEMON = '  retransmit_timeout = 1\n';

function hubConf(): string {
  return `
connections {
  spokes {
    local_addrs = ${HUB.addr}
    local_port = ${HUB.port}
    remote_port = ${LIVE.port}
    proposals = ${PROPOSAL}
    local {
      auth = psk
      id = hub.test
    }
    remote {
      auth = psk
      id = %any
    }
    children {
      net {
        local_ts = 10.0.0.0/16
        remote_ts = 10.0.0.0/8
        esp_proposals = aes256gcm16
        rekey_time = 1h
      }
    }
  }
}
secrets {
  ike-all {
    secret = "${PSK}"
  }
}
`;
}

function spokeConf(me: typeof LIVE, id: string, net: string, dpd: string): string {
  return `
connections {
  hub {
    local_addrs = ${me.addr}
    remote_addrs = ${HUB.addr}
    local_port = ${me.port}
    remote_port = ${HUB.port}
    proposals = ${PROPOSAL}
    dpd_delay = ${dpd}
    local {
      auth = psk
      id = ${id}
    }
    remote {
      auth = psk
      id = hub.test
    }
    children {
      net {
        local_ts = ${net}
        remote_ts = 10.0.0.0/16
        esp_proposals = aes256gcm16
        rekey_time = 3s
        life_time = 20s
        rand_time = 1s
      }
    }
  }
}
secrets {
  ike-all {
    secret = "${PSK}"
  }
}
`;
}

/** A real IKE_SA_INIT request for the hub's proposal, as an engine sends it (with the non-ESP marker: custom ports). */
function realInit(): Buffer {
  let first: OutPacket | undefined;
  const e = new Engine({
    scheduler: new FakeScheduler(0),
    random: randomBytes,
    send: (p) => (first ??= p),
    dataplane: new MemoryDataplane(),
    log: pino({ level: 'silent' }),
    port: LIVE.port,
    portNatT: LIVE.natT,
    ikeSaLimit: 10,
  });
  e.setConfig(
    config(
      [conn('c', { localAddrs: [LIVE.addr], remoteAddrs: [HUB.addr], localPort: LIVE.port, remotePort: HUB.port, proposals: parseProposals(PROPOSAL, 'ike'), children: [child('net')] })],
      [psk([], PSK)],
    ),
  );
  e.initiate('c').catch(() => {});
  assert.ok(first);
  return first.data;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

interface Stats {
  half_open: number;
  ike_sas: number;
  cookies_sent: number;
  cookies_verified: number;
  cookies_invalid: number;
  ike_established: number;
  ike_failed: number;
  child_rekeyed: number;
  retransmits_sent: number;
  rx_packets: number;
  transport: Record<string, number>;
}

let dir: string;
let hub: DaemonHandle;
let live: DaemonHandle;
let late: DaemonHandle;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'viked-flood-'));
  [hub, live, late] = await Promise.all([
    startDaemon({ name: 'hub', parentDir: dir, listen: [HUB.addr], port: HUB.port, portNatT: HUB.natT, logLevel: 'info', conf: hubConf() }),
    startDaemon({ name: 'live', parentDir: dir, listen: [LIVE.addr], port: LIVE.port, portNatT: LIVE.natT, logLevel: 'info', daemonExtra: SPOKE_DAEMON, conf: spokeConf(LIVE, 'live.test', '10.1.0.0/24', '1s') }),
    startDaemon({ name: 'late', parentDir: dir, listen: [LATE.addr], port: LATE.port, portNatT: LATE.natT, logLevel: 'info', daemonExtra: SPOKE_DAEMON, conf: spokeConf(LATE, 'late.test', '10.2.0.0/24', '0s') }),
  ]);
});

after(async () => {
  await Promise.all([hub?.kill(), live?.kill(), late?.kill()]);
  if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
});

test(`${RATE} forged IKE_SA_INIT/s for ${FLOOD_SECONDS} s: cookies, a live tunnel keeps working, a new peer gets in within 5 s, memory bounded`, { timeout: 120_000 }, async (t) => {
  const up = await live.ctl(['initiate', '--ike', 'hub']);
  assert.equal(up.code, 0, up.stderr);
  const liveBefore = await live.json<Stats>(['stats']);
  assert.equal(liveBefore.ike_established, 1);
  const rssBefore = rssKb(hub.proc.pid);

  // The flood: one socket per source address, a copy of a real request with a fresh SPIi each time.
  const init = realInit();
  const socks = await Promise.all(
    Array.from({ length: SOURCES }, (_, i) => {
      const s = dgram.createSocket('udp4');
      return new Promise<dgram.Socket>((res, rej) => {
        s.once('error', rej);
        s.bind(0, `127.10.${Math.floor(i / 200)}.${1 + (i % 200)}`, () => res(s));
      });
    }),
  );
  let sent = 0;
  let sendErrors = 0;
  const stopAt = Date.now() + FLOOD_SECONDS * 1000;
  const t0 = Date.now();
  let peakRss = rssBefore;
  let peakHalfOpen = 0;
  const flood = (async () => {
    while (Date.now() < stopAt) {
      const due = Math.floor(((Date.now() - t0) / 1000) * RATE);
      for (; sent < due; sent++) {
        const m = Buffer.from(init);
        randomBytes(8).copy(m, 0);
        socks[sent % SOURCES]!.send(addNonEspMarker(m), HUB.port, HUB.addr, (e) => {
          if (e) sendErrors++;
        });
      }
      await sleep(5);
    }
  })();
  const sampler = (async () => {
    while (Date.now() < stopAt) {
      peakRss = Math.max(peakRss, rssKb(hub.proc.pid));
      try {
        peakHalfOpen = Math.max(peakHalfOpen, (await hub.json<Stats>(['stats'])).half_open);
      } catch {
        // a slow answer under load is not a failure of the flood itself
      }
      await sleep(500);
    }
  })();

  // A new peer arrives in the middle of the flood: it must answer the cookie and be up within 5 s.
  await sleep(Math.min(3000, (FLOOD_SECONDS * 1000) / 3));
  const tLate = Date.now();
  const r = await late.ctl(['initiate', '--ike', 'hub']);
  const lateMs = Date.now() - tLate;
  assert.equal(r.code, 0, `the new peer did not get in: ${r.stderr}`);
  await Promise.all([flood, sampler]);
  for (const s of socks) s.close();

  const hs = await hub.json<Stats>(['stats']);
  const ls = await live.json<Stats>(['stats']);
  const lateStats = await late.json<Stats>(['stats']);
  const rssAfter = rssKb(hub.proc.pid);
  t.diagnostic(
    `flood: ${sent} forged IKE_SA_INIT in ${FLOOD_SECONDS} s (${sendErrors} send errors) from ${SOURCES} addresses; hub: ${hs.rx_packets} IKE messages received, ` +
      `${hs.cookies_sent} cookies sent, ${hs.cookies_verified} verified, half-open peak ${peakHalfOpen} (now ${hs.half_open}), ` +
      `shed ${hs.transport.shed ?? 0}; RSS ${Math.round(rssBefore / 1024)} MB before, peak ${Math.round(peakRss / 1024)} MB, ${Math.round(rssAfter / 1024)} MB after; ` +
      `new peer up in ${lateMs} ms; live tunnel: ${ls.child_rekeyed} CHILD_SA rekeys, ${ls.retransmits_sent} retransmits`,
  );
  // Cookies went out instead of key exchanges; the table did not grow with the flood.
  assert.ok(hs.cookies_sent > sent / 2, `cookies sent ${hs.cookies_sent} for ${sent} forged requests`);
  assert.ok(hs.cookies_verified >= 1, 'the new peer came back with its cookie');
  assert.equal(lateStats.cookies_sent, 0);
  assert.ok(peakHalfOpen <= 40, `half-open peak ${peakHalfOpen}`);
  assert.ok(lateMs < 5000, `new peer took ${lateMs} ms`);
  assert.ok(peakRss - rssBefore < 150 * 1024, `RSS grew by ${Math.round((peakRss - rssBefore) / 1024)} MB`);
  // The live tunnel: still its first IKE SA, CHILD_SA rekeys done, liveness checks answered.
  assert.equal(ls.ike_established, 1, 'never re-established');
  assert.equal(ls.ike_failed ?? 0, 0);
  assert.ok(ls.child_rekeyed >= 2, `live tunnel rekeyed ${ls.child_rekeyed} times`);
  const sas = await live.listSas();
  assert.equal(sas.length, 1);
  assert.equal(sas[0]!.state, 'ESTABLISHED');
  assert.equal(sas[0]!.child_sas.filter((c) => c.state === 'INSTALLED').length, 1);
});

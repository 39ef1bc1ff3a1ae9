/**
 * Volume lifetimes counted on inbound traffic by the real VPP, with strongSwan as the peer:
 * strongSwan (kernel-libipsec, which always encapsulates ESP in UDP) in the peer namespace, the real
 * VPP owning its end of the veth (test/helpers/real-vpp.ts), vpp-iked receiving IKE through VPP's
 * punt socket (`transport = punt`, `dataplane = vpp`, `traffic_poll = 1s`). strongSwan initiates one
 * tunnel, its inner address 198.51.100.1 to VPP's 198.51.100.128/28: VPP answers on 198.51.100.129
 * (loop0) and nothing answers for 198.51.100.140, so what strongSwan sends there is decrypted and
 * dropped by VPP: inbound traffic with no outbound reply. vpp-iked's CHILD_SA (p2p) has
 * `rekey_packets = 100`, `life_packets = 200`, `rand_packets = 0`.
 * - 10 pings: `vpp-ikectl list-sas --json` shows exactly 10 packets in and 10 out, with the bytes VPP
 *   counts for them (inbound the ESP packet: header, IV, the 84-byte IPv4 packet, padding and
 *   trailer, ICV; outbound the same without header and IV), the same as VPP's `show ipsec sa`.
 * - During a steady ping (20 per second), 100 echo requests to 198.51.100.140: inbound alone crosses
 *   rekey_packets (the rekey's log line shows packets_in >= 100, packets_out < 100). vpp-iked rekeys
 *   the CHILD_SA, strongSwan and vpp-iked agree on the new SPIs, VPP holds exactly the new SAs, and
 *   the steady ping loses no reply (the timings and the loss are printed).
 * - The new CHILD_SA counts from zero, at the SAs' own stat indexes (VPP's `show ipsec sa` agrees).
 *   Right after a poll, 250 requests at once to 198.51.100.140: its inbound SA crosses life_packets
 *   before the next poll; vpp-iked deletes the CHILD_SA with a Delete, which strongSwan accepts (it
 *   closes that CHILD_SA and answers with its own Delete; the IKE SA stays on both sides), and VPP
 *   holds none of our SAs.
 *
 * Skipped without root, strongSwan or VPP (the reason is printed); fails instead when
 * REQUIRE_INTEROP=1 or REQUIRE_VPP=1.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, interopAvailable, waitFor, type Charon } from './harness.ts';
import { gatewayDaemonConf, startVppLab, vppAvailable, VPP_LAB_ADDR, type VppLab } from '../helpers/real-vpp.ts';
import { startDaemon, type ChildSaJson, type DaemonHandle, type IkeSaJson } from '../helpers/daemon.ts';
import { controlRequest } from '../../src/control/server.ts';

const PSK = 'volume-vpp-strongswan-psk-0123456789';
const CONN = 'vol';
const REKEY_PACKETS = 100;
const LIFE_PACKETS = 200;
/** Echo requests sent at once (ping's preload) to cross LIFE_PACKETS between two polls. */
const LIFE_BURST = 250;
/** Inner addresses: the peer's (its lo), VPP's (loop0), and one in VPP's traffic selector nobody answers for. */
const PEER_IN = VPP_LAB_ADDR.peer.inner4;
const VPP_IN = VPP_LAB_ADDR.vpp.inner4;
const VPP_TS = '198.51.100.128/28';
const SILENT = '198.51.100.140';

/** An echo request from ping's defaults: 56 data bytes, ICMP header 8, IPv4 header 20. */
const INNER = 84;
/** AES-GCM-256 (esp_proposals = aes256gcm16): 8-byte IV, 16-byte ICV; ESP pads to 4 bytes with a 2-byte trailer. */
const ESP_TAIL = (Math.ceil((INNER + 2) / 4) * 4 - INNER) + 16;
/** VPP's bytes per packet: outbound the ESP payload it builds; inbound the whole ESP packet (+ header 8, IV 8). */
const OUT_BYTES = INNER + ESP_TAIL;
const IN_BYTES = 8 + 8 + INNER + ESP_TAIL;

function connections(side: 'peer' | 'vpp'): string {
  const swan = side === 'peer';
  return `connections {
  ${CONN} {
${swan ? '    version = 2\n    mobike = no\n' : ''}    local_addrs = ${swan ? VPP_LAB_ADDR.peer.v4 : VPP_LAB_ADDR.vpp.v4}
    remote_addrs = ${swan ? VPP_LAB_ADDR.vpp.v4 : VPP_LAB_ADDR.peer.v4}
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = psk
      id = ${side}.vol.lab
    }
    remote {
      auth = psk
      id = ${swan ? 'vpp' : 'peer'}.vol.lab
    }
    children {
      ${CONN} {
        local_ts = ${swan ? `${PEER_IN}/32` : VPP_TS}
        remote_ts = ${swan ? VPP_TS : `${PEER_IN}/32`}
        esp_proposals = aes256gcm16
${swan ? '' : `        vpp_mode = p2p
        rekey_packets = ${REKEY_PACKETS}
        life_packets = ${LIFE_PACKETS}
        rand_packets = 0
`}      }
    }
  }
}
secrets {
  ike-vol {
    secret = "${PSK}"
  }
}
`;
}

/** strongSwan and VPP: true when the lab can run; otherwise skipped with the reason, or failing when required. */
function requireLab(t: TestContext): boolean {
  const swan = interopAvailable();
  const vpp = vppAvailable();
  if (swan.available && vpp.ok) return true;
  const why = [swan.available ? '' : `strongSwan: ${swan.reason}`, vpp.ok ? '' : `VPP: ${vpp.reason}`].filter(Boolean).join('; ');
  if (process.env.REQUIRE_INTEROP === '1' || process.env.REQUIRE_VPP === '1') {
    throw new Error(`the volume lifetime interop test is required (REQUIRE_INTEROP=1 or REQUIRE_VPP=1) but cannot run: ${why}`);
  }
  t.skip(`VPP and strongSwan lab not available: ${why}`);
  return false;
}

interface PingResult {
  sent: number;
  received: number;
  /** wall-clock times (ms) of the replies */
  replyTimes: number[];
  output: string;
}

/**
 * ping from the peer's inner address, in the peer namespace. With a deadline (-w) ping goes on
 * sending until it has `-c` replies, so requests to SILENT are sent without one: exactly `-c` of them.
 */
async function ping(vpp: VppLab, dst: string, args: readonly string[], deadlineS?: number): Promise<PingResult> {
  const r = await vpp.inPeer('ping', ['-4', '-D', '-n', '-W', '1', ...(deadlineS === undefined ? [] : ['-w', String(deadlineS)]), '-I', PEER_IN, ...args, dst],
    { timeoutMs: ((deadlineS ?? 5) + 10) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  assert.ok(m, `ping printed no summary (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  const replyTimes = [...r.stdout.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from /gm)].map((x) => Math.round(Number(x[1]) * 1000));
  return { sent: Number(m[1]), received: Number(m[2]), replyTimes, output: r.stdout };
}

/** The one installed CHILD_SA of the established IKE SA, on vpp-iked. */
function installed(sas: IkeSaJson[]): ChildSaJson | undefined {
  const c = sas.filter((s) => s.state === 'ESTABLISHED').flatMap((s) => s.child_sas.filter((x) => x.state === 'INSTALLED'));
  return c.length === 1 ? c[0] : undefined;
}

/** Both sides list one CHILD_SA with the same SPIs (strongSwan's inbound is our outbound). */
async function agreed(iked: DaemonHandle, swan: Charon): Promise<ChildSaJson | false> {
  const [ours, theirs] = await Promise.all([iked.listSas(CONN), swan.listSas(CONN)]);
  const c = installed(ours);
  const sc = theirs.filter((s) => s.state === 'ESTABLISHED').flatMap((s) => s.children.filter((x) => x.state === 'INSTALLED'));
  return c !== undefined && sc.length === 1 && sc[0]!.spiIn === c.spi_out && sc[0]!.spiOut === c.spi_in && c;
}

interface VppDump {
  connected: boolean;
  sas: { ours: boolean; spi: string; direction: 'in' | 'out' }[];
}

/** Our SAs in VPP, as `spi/direction`, sorted. */
async function vppSas(iked: DaemonHandle): Promise<string[]> {
  const d = await iked.json<VppDump>(['vpp-sas']);
  assert.equal(d.connected, true);
  return d.sas.filter((s) => s.ours).map((s) => `${s.spi}/${s.direction}`).sort();
}

/** VPP's own counters of an SA (`show ipsec sa`), by SPI (hex as list-sas prints it). */
async function vppCliCounts(vpp: VppLab, spi: string): Promise<{ packets: number; bytes: number }> {
  const text = await vpp.ctl('show', 'ipsec', 'sa');
  const spiDec = Number.parseInt(spi, 16);
  const ids = [...text.matchAll(/^\[(\d+)\]\s+sa\s+\d+\s+\(0x[0-9a-f]+\):?\s+spi\s+(\d+)/gim)];
  const hit = ids.find((m) => Number(m[2]) === spiDec);
  assert.ok(hit, `VPP lists no SA with SPI ${spi} (${spiDec}):\n${text}`);
  const detail = await vpp.ctl('show', 'ipsec', 'sa', hit[1]!);
  const m = /tx\/rx:\[packets:(\d+) bytes:(\d+)\]/.exec(detail);
  assert.ok(m, `no counters in VPP's show ipsec sa ${hit[1]}:\n${detail}`);
  return { packets: Number(m[1]), bytes: Number(m[2]) };
}

/** The daemon's traffic polls so far (control socket: no process start-up, so the moment is known to a few ms). */
async function polls(iked: DaemonHandle): Promise<number> {
  const s = (await controlRequest(iked.socket, 'stats')) as { traffic: { polls: number } };
  return s.traffic.polls;
}

/** The daemon's JSON log lines with this message. */
function logLines(iked: DaemonHandle, msg: string): Record<string, unknown>[] {
  return iked.logs().split('\n').filter((l) => l.includes(msg)).map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('volume lifetimes on inbound traffic: strongSwan -> real VPP, vpp-iked rekeys at rekey_packets and deletes at life_packets', { timeout: 120_000 }, async (t) => {
  if (!requireLab(t)) return;
  const vpp = await startVppLab(t);
  const lab = await createLab({ tag: 'volvpp', namespaces: { a: vpp.peerNs, b: vpp.vppNs } });
  t.after(() => lab.destroy());
  const iked = await startDaemon({
    name: 'volvpp',
    parentDir: vpp.dir,
    listen: [VPP_LAB_ADDR.vpp.v4],
    logLevel: 'info',
    conf: [
      gatewayDaemonConf(vpp, { daemon: ['traffic_poll = 1s'] }),
      connections('vpp'),
    ].join('\n'),
  });
  t.after(() => iked.stop());
  const swan = await lab.startCharon('a', { swanctlConf: connections('peer'), libipsec: true });
  await swan.initiate(CONN, { ike: CONN });
  const first = await waitFor('the CHILD_SA up on both sides', () => agreed(iked, swan), 10_000, 100);
  assert.deepEqual([first.packets_in, first.packets_out, first.bytes_in, first.bytes_out], [0, 0, 0, 0], 'a new CHILD_SA has counted nothing');

  await t.test('pings counted exactly: packets and bytes in and out, as VPP counts them', async (st) => {
    const p = await ping(vpp, VPP_IN, ['-c', '10', '-i', '0.05'], 5);
    assert.equal(p.received, 10, `10 replies\n${p.output}`);
    const c = await waitFor('list-sas to show the 10 pings', async () => {
      const x = installed(await iked.listSas(CONN));
      return x && x.packets_in === 10 && x.packets_out === 10 && x;
    }, 5000, 100);
    assert.equal(c.id, first.id, 'the same CHILD_SA (20 packets are below rekey_packets)');
    assert.equal(c.bytes_in, 10 * IN_BYTES, `inbound bytes: 10 ESP packets of ${IN_BYTES}`);
    assert.equal(c.bytes_out, 10 * OUT_BYTES, `outbound bytes: 10 ESP payloads of ${OUT_BYTES}`);
    const [cin, cout] = await Promise.all([vppCliCounts(vpp, c.spi_in), vppCliCounts(vpp, c.spi_out)]);
    assert.deepEqual(cin, { packets: 10, bytes: c.bytes_in }, 'VPP shows the same inbound counters');
    assert.deepEqual(cout, { packets: 10, bytes: c.bytes_out }, 'VPP shows the same outbound counters');
    const sw = (await swan.listSas(CONN))[0]!.children[0]!;
    st.diagnostic(`10 pings: in ${c.packets_in} packets / ${c.bytes_in} bytes, out ${c.packets_out} / ${c.bytes_out} (strongSwan: in ${sw.packetsIn} / ${sw.bytesIn}, out ${sw.packetsOut} / ${sw.bytesOut})`);
  });

  let second: ChildSaJson | undefined;
  await t.test('inbound traffic alone crosses rekey_packets: vpp-iked rekeys, both sides and VPP agree, the ping goes on', async (st) => {
    const steady = ping(vpp, VPP_IN, ['-c', '60', '-i', '0.05'], 6);
    steady.catch(() => {}); // awaited below
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const burst = await ping(vpp, SILENT, ['-c', String(REKEY_PACKETS), '-i', '0.005']);
    assert.deepEqual([burst.sent, burst.received], [REKEY_PACKETS, 0], 'requests sent; nothing answers for the silent address');
    second = await waitFor('the CHILD_SA rekeyed on both sides', async () => {
      const c = await agreed(iked, swan);
      return c && c.spi_in !== first.spi_in && c.spi_out !== first.spi_out && c;
    }, 10_000, 100);
    const agreedAt = Date.now();
    const [line] = logLines(iked, 'CHILD SA reached its rekey bytes/packets, rekeying');
    assert.ok(line, `vpp-iked logged the rekey\n${iked.logs().split('\n').slice(-20).join('\n')}`);
    const rekeyedAt = Date.parse(String(line.time));
    assert.equal(line.child_id, first.id);
    assert.ok(Number(line.packets_in) >= REKEY_PACKETS && Number(line.packets_out) < REKEY_PACKETS,
      `inbound alone crossed rekey_packets: in ${String(line.packets_in)}, out ${String(line.packets_out)}`);
    const want = [`${second.spi_in}/in`, `${second.spi_out}/out`].sort();
    let held: string[] = [];
    await waitFor(`VPP to hold exactly the new SAs (${want.join(', ')})`, async () => {
      held = await vppSas(iked);
      return held.join() === want.join();
    }, 10_000, 100).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}: VPP holds ${held.join(', ')}`);
    });
    const p = await steady;
    const after = p.replyTimes.filter((x) => x > rekeyedAt).length;
    assert.ok(after > 0, `the steady ping has replies after the rekey\n${p.output.split('\n').slice(-5).join('\n')}`);
    st.diagnostic(`rekey at in ${String(line.packets_in)} / out ${String(line.packets_out)} packets, decided ${rekeyedAt - t0} ms after the ${REKEY_PACKETS} requests began ` +
      `(new SPIs seen on both sides by ${agreedAt - t0} ms); ` +
      `steady ping ${p.received}/${p.sent} (${p.sent - p.received} lost), ${after} replies after the rekey`);
    // make-before-break, as for the rekeys in vpp-gateway.test.ts
    assert.equal(p.received, p.sent, `steady ping through the rekey: ${p.received} of ${p.sent} replies\n${p.output.split('\n').slice(-4).join('\n')}`);
  });

  await t.test('inbound traffic crosses life_packets: vpp-iked deletes the CHILD_SA, strongSwan accepts the Delete', async (st) => {
    assert.ok(second, 'the rekeyed CHILD_SA');
    const cur = installed(await iked.listSas(CONN))!;
    assert.equal(cur.id, second.id);
    assert.ok(cur.packets_in !== null && cur.packets_out !== null && cur.packets_in < REKEY_PACKETS && cur.packets_out < REKEY_PACKETS, `the new CHILD_SA counted from zero: ${cur.packets_in} in, ${cur.packets_out} out`);
    // the SAs the rekey added are read at their own stat indexes: the same counts VPP shows for them
    const [cin, cout] = await Promise.all([vppCliCounts(vpp, cur.spi_in), vppCliCounts(vpp, cur.spi_out)]);
    assert.deepEqual(cin, { packets: cur.packets_in, bytes: cur.bytes_in }, 'VPP shows the same inbound counters for the new CHILD_SA');
    assert.deepEqual(cout, { packets: cur.packets_out, bytes: cur.bytes_out }, 'VPP shows the same outbound counters for the new CHILD_SA');
    const swanLogFrom = swan.log().length;
    // Right after a poll: the whole burst is counted by the next one, so life_packets is crossed
    // in one step (a read in between could find only the rekey limit crossed).
    const n0 = await polls(iked);
    await waitFor('a traffic poll', async () => (await polls(iked)) > n0, 5000, 10);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    const burst = await ping(vpp, SILENT, ['-c', String(LIFE_BURST), '-l', String(LIFE_BURST)]);
    assert.equal(burst.sent, LIFE_BURST);
    const gone = await waitFor('vpp-iked to delete the CHILD_SA, and strongSwan to drop it', async () => {
      const [ours, theirs] = await Promise.all([iked.listSas(CONN), swan.listSas(CONN)]);
      const o = ours.filter((s) => s.state === 'ESTABLISHED');
      const s = theirs.filter((x) => x.state === 'ESTABLISHED');
      return o.length === 1 && s.length === 1 && o[0]!.child_sas.length === 0 && s[0]!.children.length === 0 && { o: o[0]!, s: s[0]! };
    }, 10_000, 100);
    const took = Date.now() - t0;
    assert.equal(`${gone.s.spiI}_${gone.s.spiR}`, `${gone.o.spi_i}_${gone.o.spi_r}`, 'the IKE SA stays, the same on both sides');
    const [line] = logLines(iked, 'CHILD SA reached its life bytes/packets');
    assert.ok(line, 'vpp-iked logged the expiry');
    assert.equal(line.child_id, second.id);
    assert.ok(Number(line.packets_in) >= LIFE_PACKETS && Number(line.packets_out) < REKEY_PACKETS, `inbound crossed life_packets: in ${String(line.packets_in)}, out ${String(line.packets_out)}`);
    assert.equal(logLines(iked, 'CHILD SA reached its rekey bytes/packets, rekeying').length, 1, 'the second CHILD_SA was not rekeyed first');
    const swanLog = swan.log().slice(swanLogFrom);
    // The Delete names our inbound SPI (RFC 7296 3.11); strongSwan answers with its own.
    assert.match(swanLog, new RegExp(`received DELETE for ESP CHILD_SA with SPI ${second.spi_in}`), 'strongSwan got our Delete');
    assert.match(swanLog, new RegExp(`closing CHILD_SA ${CONN}\\{\\d+\\} with SPIs ${second.spi_out}_i .* ${second.spi_in}_o`), 'strongSwan closed that CHILD_SA');
    assert.match(swanLog, new RegExp(`sending DELETE for ESP CHILD_SA with SPI ${second.spi_out}`), 'strongSwan answered with its Delete');
    assert.deepEqual(await vppSas(iked), [], 'VPP holds none of our SAs');
    const deleted = logLines(iked, 'CHILD SA deleted').find((l) => l.child_id === second!.id);
    assert.equal(deleted?.reason, 'deleted', 'vpp-iked removed the CHILD_SA when strongSwan answered its Delete');
    st.diagnostic(`life_packets reached at in ${String(line.packets_in)} / out ${String(line.packets_out)}, decided ${Date.parse(String(line.time)) - t0} ms after the ${LIFE_BURST} requests began, ` +
      `deleted (Delete answered) ${Date.parse(String(deleted!.time)) - t0} ms after (gone from both listings by ${took} ms)`);
  });
});

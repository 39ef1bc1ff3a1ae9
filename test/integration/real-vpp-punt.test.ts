/**
 * IKE through a real VPP's punt socket (test/helpers/real-vpp.ts: VPP in a network namespace
 * owning one end of a veth pair, a peer in another namespace).
 *
 * Our VppClient connects to VPP's API socket; punt_reason_dump lists the IPsec exception reasons;
 * punt_socket_register registers our unix datagram socket for UDP/500 (L4, IPv4 and IPv6) and for
 * the exceptions ipsec4-spi-o-udp-0 / ipsec6-spi-o-udp-0 (IKE on UDP/4500 with the non-ESP marker),
 * and VPP answers with the path of its own punt socket. A datagram the peer sends to VPP's address
 * arrives on our socket and src/net/punt.ts parses it; the answer we write to VPP's punt socket (a
 * routed IP packet built by src/net/punt.ts) reaches the peer from VPP's address and port. ESP on
 * 4500 (a non-zero SPI) is not punted. Deregistration empties VPP's registration table.
 *
 * Skipped without root or VPP (the reason is printed); fails instead when REQUIRE_VPP=1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { VppClient } from '../../src/vpp/client.ts';
import { AddressFamily, IpProto, PuntType } from '../../src/vpp/defs.generated.ts';
import type { Punt } from '../../src/vpp/defs.generated.ts';
import { UnixDgramSocket } from '../../src/net/unix-dgram.ts';
import { buildPuntFrame, parsePuntFrame, PUNT_HEADER_VERSION, type PuntPacket } from '../../src/net/punt.ts';
import { addNonEspMarker, classifyDatagram } from '../../src/net/framing.ts';
import { requireVpp, startVppLab, VPP_LAB_ADDR } from '../helpers/real-vpp.ts';

const NODE = process.execPath;
const U32_MAX = 0xffffffff;

/**
 * The peer: sends one UDP datagram from its port to VPP's address and port, then prints the answer
 * (or that none came) as JSON. argv: family dst dport sport payloadHex waitMs
 */
const PEER = `
const dgram = require('node:dgram');
const [fam, dst, dport, sport, hex, wait] = process.argv.slice(1);
const s = dgram.createSocket(fam === '6' ? 'udp6' : 'udp4');
s.bind(Number(sport), () => {
  const t = setTimeout(() => { console.log(JSON.stringify({ reply: null })); s.close(); }, Number(wait));
  s.once('message', (m, r) => {
    clearTimeout(t);
    console.log(JSON.stringify({ reply: m.toString('hex'), from: r.address, port: r.port }));
    s.close();
  });
  s.send(Buffer.from(hex, 'hex'), Number(dport), dst);
});
`;

interface PeerResult {
  reply: string | null;
  from?: string;
  port?: number;
}

/** Datagrams arriving on our punt socket, one at a time. */
function inbox(sock: UnixDgramSocket) {
  const queue: { data: Buffer; from: string | undefined }[] = [];
  let wake: (() => void) | undefined;
  sock.on('message', (data, from) => {
    queue.push({ data, from });
    wake?.();
  });
  return {
    pending: () => queue.length,
    async next(ms: number): Promise<{ data: Buffer; from: string | undefined } | undefined> {
      const deadline = Date.now() + ms;
      while (queue.length === 0 && Date.now() < deadline) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, deadline - Date.now());
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
      return queue.shift();
    },
  };
}

interface Exchange {
  family: 4 | 6;
  dstPort: number;
  srcPort: number;
  payload: Buffer;
}

test('IKE through the real VPP punt socket: register, receive, parse, answer, deregister', { timeout: 120_000 }, async (t) => {
  if (!requireVpp(t)) return;
  const lab = await startVppLab(t);
  const client = new VppClient({ socket: lab.apiSocket, reconnect: false, healthCheckMs: 0, requestTimeoutMs: 5000 });
  t.after(() => client.close());
  const info = await client.connect();
  assert.match(info.version ?? '', /^26\.10/, 'the VPP these definitions were generated from');

  const [hostIf] = await client.dump('sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: true, name_filter: lab.hostIf });
  assert.ok(hostIf, `VPP has ${lab.hostIf}`);
  const rxIndex = hostIf.sw_if_index;

  const reasons = await client.dump('punt_reason_dump', { reason: { id: 0, name: '' } });
  const reasonId = (name: string): number => {
    const r = reasons.find((x) => x.reason.name === name);
    assert.ok(r, `punt_reason_dump lists ${name} (got ${reasons.map((x) => x.reason.name).join(', ')})`);
    return r.reason.id;
  };
  const esp4 = reasonId('ipsec4-spi-o-udp-0');
  const esp6 = reasonId('ipsec6-spi-o-udp-0');

  const ourPath = join(lab.dir, 'iked-punt.sock');
  const ours = new UnixDgramSocket();
  t.after(() => ours.close());
  ours.bind(ourPath);
  const rx = inbox(ours);

  const registrations: Punt[] = [
    { type: PuntType.PUNT_API_TYPE_L4, punt: { l4: { af: AddressFamily.ADDRESS_IP4, protocol: IpProto.IP_API_PROTO_UDP, port: 500 } } },
    { type: PuntType.PUNT_API_TYPE_L4, punt: { l4: { af: AddressFamily.ADDRESS_IP6, protocol: IpProto.IP_API_PROTO_UDP, port: 500 } } },
    { type: PuntType.PUNT_API_TYPE_EXCEPTION, punt: { exception: { id: esp4 } } },
    { type: PuntType.PUNT_API_TYPE_EXCEPTION, punt: { exception: { id: esp6 } } },
  ];
  let vppPunt = '';
  for (const punt of registrations) {
    const r = await client.request('punt_socket_register', { header_version: PUNT_HEADER_VERSION, punt, pathname: ourPath });
    assert.equal(r.pathname, lab.puntSocket, "the reply names VPP's own punt socket");
    vppPunt = r.pathname;
  }
  const l4 = await client.dump('punt_socket_dump', { type: PuntType.PUNT_API_TYPE_L4 });
  assert.deepEqual(
    l4.map((d) => [d.punt.punt.l4?.af, d.punt.punt.l4?.port, d.pathname]).sort(),
    [[AddressFamily.ADDRESS_IP4, 500, ourPath], [AddressFamily.ADDRESS_IP6, 500, ourPath]],
  );
  const exc = await client.dump('punt_socket_dump', { type: PuntType.PUNT_API_TYPE_EXCEPTION });
  assert.deepEqual(exc.map((d) => d.punt.punt.exception?.id).sort(), [esp4, esp6].sort());

  /** The peer sends; we receive and parse the punted packet, answer through VPP; the peer gets the answer. */
  const roundTrip = async (x: Exchange, answer: (p: PuntPacket) => Buffer): Promise<PuntPacket> => {
    const peerAddr = x.family === 4 ? VPP_LAB_ADDR.peer.v4 : VPP_LAB_ADDR.peer.v6;
    const vppAddr = x.family === 4 ? VPP_LAB_ADDR.vpp.v4 : VPP_LAB_ADDR.vpp.v6;
    const peer = lab.inPeer(NODE, ['-e', PEER, String(x.family), vppAddr, String(x.dstPort), String(x.srcPort), x.payload.toString('hex'), '5000']);
    const got = await rx.next(5000);
    assert.ok(got, `the datagram to ${vppAddr}:${x.dstPort} was punted to our socket\n${lab.logTail(10)}`);
    assert.equal(got.from, vppPunt, "it comes from VPP's punt socket");
    const parsed = parsePuntFrame(got.data);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
    const p = parsed.packet;
    assert.deepEqual(
      { swIfIndex: p.swIfIndex, family: p.family, src: p.src, dst: p.dst, srcPort: p.srcPort, dstPort: p.dstPort },
      { swIfIndex: rxIndex, family: x.family, src: peerAddr, dst: vppAddr, srcPort: x.srcPort, dstPort: x.dstPort },
    );
    assert.ok(p.payload.equals(x.payload), 'the UDP payload is unchanged');
    const reply = buildPuntFrame({ swIfIndex: p.swIfIndex, src: p.dst, dst: p.src, srcPort: p.dstPort, dstPort: p.srcPort, payload: answer(p) });
    assert.ok(reply.ok, reply.ok ? '' : reply.reason);
    await ours.send(reply.frame, vppPunt);
    const out = await peer;
    assert.equal(out.code, 0, out.stderr);
    const res = JSON.parse(out.stdout.trim()) as PeerResult;
    assert.ok(res.reply !== null, `the peer got the answer\n${lab.logTail(10)}`);
    assert.equal(res.from, vppAddr, "the answer comes from VPP's address");
    assert.equal(res.port, x.dstPort, 'and from the port the request went to');
    assert.equal(res.reply, answer(p).toString('hex'));
    return p;
  };

  // An IKE_SA_INIT-sized message (header only matters here: 28 bytes and more).
  const ike = (tag: string, len = 200): Buffer => Buffer.concat([Buffer.from(tag.padEnd(28, '.')), Buffer.alloc(len - 28, 0x5a)]);

  await t.test('IPv4 UDP/500 (L4 punt)', async () => {
    await roundTrip({ family: 4, dstPort: 500, srcPort: 500, payload: ike('v4 port 500') }, (p) => Buffer.concat([Buffer.from('answer:'), p.payload]));
  });

  await t.test('IPv4 UDP/4500 with the non-ESP marker (exception punt); the answer carries the marker', async () => {
    const msg = ike('v4 port 4500');
    const p = await roundTrip({ family: 4, dstPort: 4500, srcPort: 4500, payload: addNonEspMarker(msg) }, (q) => {
      const d = classifyDatagram(q.payload, true);
      assert.equal(d.kind, 'ike');
      return addNonEspMarker(Buffer.concat([Buffer.from('answer:'), d.kind === 'ike' ? d.ike : Buffer.alloc(0)]));
    });
    const d = classifyDatagram(p.payload, true);
    assert.ok(d.kind === 'ike' && d.ike.equals(msg), 'the marker is still there and the IKE message follows');
  });

  await t.test('ESP on UDP/4500 (non-zero SPI) is not punted', async () => {
    const esp = Buffer.concat([Buffer.from([0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1]), Buffer.alloc(60, 0xee)]);
    const out = await lab.inPeer(NODE, ['-e', PEER, '4', VPP_LAB_ADDR.vpp.v4, '4500', '4501', esp.toString('hex'), '500']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(await rx.next(300), undefined, 'nothing reached our punt socket');
  });

  await t.test('IPv4: a 2000-byte answer is fragmented by VPP on the 1500-byte link and reassembled by the peer', async () => {
    const big = Buffer.alloc(1990, 0x42);
    await roundTrip({ family: 4, dstPort: 500, srcPort: 501, payload: ike('v4 big answer') }, () => big);
  });

  await t.test('IPv6 UDP/500 (L4 punt) and UDP/4500 (exception punt)', async () => {
    await roundTrip({ family: 6, dstPort: 500, srcPort: 500, payload: ike('v6 port 500') }, (p) => Buffer.concat([Buffer.from('answer6:'), p.payload]));
    await roundTrip({ family: 6, dstPort: 4500, srcPort: 4500, payload: addNonEspMarker(ike('v6 port 4500')) }, (p) => p.payload);
  });

  await t.test('deregistration empties the registration table', async () => {
    for (const punt of registrations) await client.request('punt_socket_deregister', { punt });
    assert.deepEqual(await client.dump('punt_socket_dump', { type: PuntType.PUNT_API_TYPE_L4 }), []);
    assert.deepEqual(await client.dump('punt_socket_dump', { type: PuntType.PUNT_API_TYPE_EXCEPTION }), []);
    assert.equal(rx.pending(), 0, 'no stray datagrams arrived');
  });

  await t.test('VPP does not busy-poll while idle (the CI machine has 2 cores)', async (st) => {
    const before = lab.cpuSeconds();
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 2000));
    const share = (lab.cpuSeconds() - before) / ((Date.now() - t0) / 1000);
    st.diagnostic(`VPP idle CPU: ${(share * 100).toFixed(1)} % of one core`);
    assert.ok(share < 0.5, `VPP used ${(share * 100).toFixed(0)} % of a core while idle`);
  });
});

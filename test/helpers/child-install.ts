/**
 * CHILD_SA install records for dataplane tests: an IPv4 tunnel 192.0.2.1 ↔ 198.51.100.7 (port 500)
 * with AES-GCM-16/256 (the SaParams of builders.ts), carrying 10.0.0.0/24 ↔ 10.1.0.0/24, in p2p mode.
 */
import type { ChildInstall } from '../../src/dataplane/types.ts';
import { saParams } from './builders.ts';

/** A CHILD_SA of IKE SA 1 (connection `c`, child `net`); `extra` overrides any field. */
export function childInstall(id: number, spiIn: number, spiOut: number, extra: Partial<ChildInstall> = {}): ChildInstall {
  return {
    childId: id,
    ikeSaId: 1,
    connection: 'c',
    child: 'net',
    inbound: saParams(spiIn, true),
    outbound: saParams(spiOut, false),
    localTs: [{ family: 4, start: '10.0.0.0', end: '10.0.0.255', protocol: 0, startPort: 0, endPort: 65535 }],
    remoteTs: [{ family: 4, start: '10.1.0.0', end: '10.1.0.255', protocol: 0, startPort: 0, endPort: 65535 }],
    vppMode: 'p2p',
    vppTable: 0,
    vppRoutes: true,
    ...extra,
  };
}

/**
 * What a CHILD_SA must look like for VPP 26.10 to run it: the features the VPP back end offers and
 * the checks made before anything is programmed. The memory dataplane uses the same two functions,
 * so it accepts exactly what the VPP back end accepts.
 */

import type { ChildInstall, DataplaneFeatures, SaEndpoint, SaParams, TsRange, VppMode } from './types.ts';
import { checkEspKeys, vppSupportedEncr, vppSupportedInteg } from '../vpp/ike-algorithms.ts';
import { hex8 } from '../common/text.ts';
import { ipFamily, ipv4Number, parseIp } from '../common/addr.ts';

const MODES: ReadonlySet<VppMode> = new Set<VppMode>(['p2p', 'p2mp', 'policy']);
const U32_MAX = 0xffffffff;

/** The features VPP 26.10 runs (ESP transforms of ike-algorithms.ts, ESN, the three modes). */
export function vppDataplaneFeatures(): DataplaneFeatures {
  return {
    encr: new Set(vppSupportedEncr()),
    integ: new Set(vppSupportedInteg()),
    esn: true,
    modes: new Set<VppMode>(MODES),
  };
}

/** What the checks need to know about the dataplane's state. */
export interface InstallCheckContext {
  /** Whether a CHILD_SA with this id is installed. */
  isInstalled(childId: number): boolean;
  /** The installed CHILD_SA whose inbound SA uses this SPI, if any. */
  spiOwner(spi: number): number | undefined;
  /** policy mode: the interface used when the CHILD_SA names none (VppDataplaneOptions.policyInterface). */
  policyInterface: string | undefined;
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= U32_MAX;
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 65535;
}

function familyOf(addr: string): 4 | 6 | undefined {
  return ipFamily(addr) || undefined;
}

function checkSa(sa: SaParams, what: string): string | undefined {
  if (!Number.isInteger(sa.spi) || sa.spi < 256 || sa.spi > U32_MAX) return `invalid ${what} SPI ${sa.spi}`;
  const bad = checkEspKeys(sa.alg, sa.encKey.length, sa.integKey.length);
  if (bad) return bad;
  if (!isU32(sa.replayWindow)) return `invalid replay window ${sa.replayWindow}`;
  if (sa.mode !== 'tunnel' && sa.mode !== 'transport') return `invalid SA mode ${String(sa.mode)}`;
  for (const ep of [sa.src, sa.dst]) {
    if (familyOf(ep.addr) === undefined) return `${what} SA endpoint ${JSON.stringify(ep.addr)} is not an IP address`;
    if (!isPort(ep.port)) return `invalid ${what} SA port ${ep.port}`;
  }
  return undefined;
}

function checkTs(ts: TsRange): string | undefined {
  if (ts.family !== 4 && ts.family !== 6) return `traffic selector family ${String(ts.family)} is neither 4 nor 6`;
  if (ts.family === 4) {
    // the common case, checked without parse results
    const a = ipv4Number(ts.start);
    const b = ipv4Number(ts.end);
    if (a < 0 || b < 0) return `traffic selector ${ts.start}-${ts.end} is not a range of IPv4 addresses`;
    if (a > b) return `traffic selector ${ts.start}-${ts.end} starts after its end`;
    return checkTsRest(ts);
  }
  const a = parseIp(ts.start);
  const b = parseIp(ts.end);
  if (!a || !b || a.family !== ts.family || b.family !== ts.family) {
    return `traffic selector ${ts.start}-${ts.end} is not a range of IPv${ts.family} addresses`;
  }
  if (Buffer.compare(a.bytes, b.bytes) > 0) return `traffic selector ${ts.start}-${ts.end} starts after its end`;
  return checkTsRest(ts);
}

/** The ports and protocol of a traffic selector. */
function checkTsRest(ts: TsRange): string | undefined {
  if (!isPort(ts.startPort) || !isPort(ts.endPort) || ts.startPort > ts.endPort) {
    return `traffic selector ports ${ts.startPort}-${ts.endPort} are not a port range`;
  }
  if (!Number.isInteger(ts.protocol) || ts.protocol < 0 || ts.protocol > 255) return `invalid traffic selector protocol ${ts.protocol}`;
  return undefined;
}

/** Checks the new endpoints of update(): addresses of one family, valid ports. */
export function validateEndpoints(local: SaEndpoint, remote: SaEndpoint): string | undefined {
  for (const ep of [local, remote]) {
    if (familyOf(ep.addr) === undefined) return `endpoint ${JSON.stringify(ep.addr)} is not an IP address`;
    if (!isPort(ep.port)) return `invalid port ${ep.port}`;
  }
  if (familyOf(local.addr) !== familyOf(remote.addr)) return 'endpoints are in different address families';
  return undefined;
}

/**
 * Checks a CHILD_SA before it is installed. Returns why it cannot be, or undefined. The inbound
 * SPI may belong to the CHILD_SA it replaces (make-before-break keeps the same SPIs only when the
 * engine chose so; any other owner is a conflict).
 */
export function validateChildInstall(c: ChildInstall, ctx: InstallCheckContext): string | undefined {
  if (ctx.isInstalled(c.childId)) return `child ${c.childId} is already installed`;
  if (c.replaces !== undefined && !ctx.isInstalled(c.replaces)) return `child ${c.replaces} to replace is not installed`;
  if (!MODES.has(c.vppMode)) return `unknown vpp_mode ${String(c.vppMode)}`;
  if (!isU32(c.vppTable)) return `invalid vpp_table ${c.vppTable}`;
  if (!c.inbound.inbound || c.outbound.inbound) return 'inbound/outbound SAs swapped';
  const bad = checkSa(c.inbound, 'inbound') ?? checkSa(c.outbound, 'outbound');
  if (bad) return bad;
  const fam = familyOf(c.outbound.dst.addr);
  for (const a of [c.inbound.src.addr, c.inbound.dst.addr, c.outbound.src.addr]) {
    if (familyOf(a) !== fam) return 'tunnel endpoints are in different address families';
  }
  for (const list of [c.localTs, c.remoteTs]) {
    for (const ts of list) {
      const why = checkTs(ts);
      if (why) return why;
    }
  }
  const owner = ctx.spiOwner(c.inbound.spi);
  if (owner !== undefined && owner !== c.replaces) return `inbound SPI ${hex8(c.inbound.spi)} is used by child ${owner}`;
  if (c.vppMode === 'p2mp') {
    if (!c.vppInterface) return 'p2mp needs vpp_interface (the shared ipsec interface)';
    const m = /^ipsec(0|[1-9]\d{0,4})$/.exec(c.vppInterface);
    // VPP's ipsec interfaces are ipsec0..ipsec16383 (ipsec_itf_instance_alloc).
    if (!m || Number(m[1]) >= 16 * 1024) return `p2mp interface must be named ipsecN (N 0..16383), not ${c.vppInterface}`;
    if (c.vppRoutes && c.remoteTs.some((t) => t.family !== fam)) {
      return 'p2mp routes need the remote traffic selectors in the family of the peer address';
    }
  }
  if (c.vppMode === 'policy' && !(c.vppInterface ?? ctx.policyInterface)) {
    return 'policy mode needs vpp_interface (the interface the SPD is bound to)';
  }
  return undefined;
}

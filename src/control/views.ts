/**
 * JSON views of IKE and CHILD SAs for `vpp-ikectl list-sas --json` and events (snake_case keys, SPIs
 * as 8 lower-case hex digits, strongSwan's state names), and the human-readable tables.
 */
import type { IkeSa, ChildSa } from '../ikev2/sa/ike-sa.ts';
import { formatEspProposal, formatIkeSuite } from '../ikev2/crypto/proposals.ts';
import { selToString } from '../ikev2/sa/ts.ts';
import { endpointText, hex8 } from '../common/text.ts';
import type { CertEntry } from '../config/credentials.ts';
import type { ChildCounters } from '../dataplane/types.ts';

/** Converts engine clock times (ms) to wall-clock ISO strings. */
export type WallTime = (t: number) => string | null;

/**
 * One CHILD_SA. `counts`: its traffic as the dataplane counted it (bytes and packets of the inbound
 * and the outbound SA); without them those fields are null.
 */
export function childView(c: ChildSa, wall: WallTime, counts?: ChildCounters) {
  return {
    id: c.id,
    name: c.name,
    state: c.state,
    mode: c.mode.toUpperCase(),
    spi_in: hex8(c.spiIn),
    spi_out: hex8(c.spiOut),
    proposal: c.proposal ? formatEspProposal(c.proposal) : null,
    local_ts: c.localTs.map(selToString),
    remote_ts: c.remoteTs.map(selToString),
    encap: c.encap,
    installed_at: wall(c.installedAt),
    rekey_at: wall(c.rekeyAt),
    bytes_in: counts?.bytesIn ?? null,
    packets_in: counts?.packetsIn ?? null,
    bytes_out: counts?.bytesOut ?? null,
    packets_out: counts?.packetsOut ?? null,
    vpp: {
      sa_in: c.vpp.saIn ?? null,
      sa_out: c.vpp.saOut ?? null,
      interface: c.vpp.interface ?? null,
    },
  };
}

/** The peer's end of an IKE SA; `cert` (the subject of the certificate it authenticated with) only when it used one. */
interface RemoteView {
  addr: string;
  port: number;
  id: string | null;
  cert?: string;
}

function remoteView(sa: IkeSa): RemoteView {
  const v: RemoteView = { addr: sa.remote.addr, port: sa.remote.port, id: sa.remoteId || null };
  if (sa.remoteCert !== undefined) v.cert = sa.remoteCert;
  return v;
}

export function ikeView(sa: IkeSa, wall: WallTime, counts?: ReadonlyMap<number, ChildCounters>) {
  return {
    id: sa.id,
    name: sa.conn?.name ?? null,
    state: sa.state,
    initiator: sa.initiator,
    spi_i: sa.spiI.toString('hex'),
    spi_r: sa.spiR.toString('hex'),
    local: { addr: sa.local.addr, port: sa.local.port, id: sa.localId || null },
    remote: remoteView(sa),
    nat_local: sa.natHere,
    nat_remote: sa.natThere,
    encap: sa.natHere || sa.natThere || sa.encapForced,
    proposal: sa.suite ? formatIkeSuite(sa.suite) : null,
    established_at: wall(sa.establishedAt),
    rekey_at: wall(sa.rekeyAt),
    reauth_at: wall(sa.reauthAt),
    child_sas: sa.children.map((c) => childView(c, wall, counts?.get(c.id))),
  };
}

export type IkeView = ReturnType<typeof ikeView>;

/** `list-certs`: one loaded certificate, how the configuration uses it and how long it is valid. */
export function certView(e: CertEntry, now: Date) {
  const c = e.cert;
  return {
    subject: c.subject,
    issuer: c.issuer,
    serial: c.serial,
    not_before: c.notBefore.toISOString(),
    not_after: c.notAfter.toISOString(),
    days_left: Math.floor((c.notAfter.getTime() - now.getTime()) / 86_400_000),
    key_type: keyType(c.kind, c.bits),
    ca: c.isCa,
    has_private_key: e.hasKey,
    alt_names: c.altNames.filter((a) => a.type === 'dns' || a.type === 'email' || a.type === 'ip').map((a) => a.value),
    file: e.file,
    fingerprint_sha256: c.fingerprint,
    used_by: e.uses.map((u) => ({ connection: u.connection, use: u.use })),
  };
}

export type CertView = ReturnType<typeof certView>;

/** RSA 3072, ECDSA P-256, Ed25519, ... */
function keyType(kind: string, bits: number): string {
  if (kind === 'rsa') return `RSA ${bits}`;
  if (kind.startsWith('ecdsa-')) return `ECDSA P-${kind.slice(6)}`;
  return kind === 'ed25519' ? 'Ed25519' : kind === 'ed448' ? 'Ed448' : kind;
}


/** strongSwan-like text block for one IKE SA. */
export function formatIkeText(v: IkeView): string {
  const lines: string[] = [];
  lines.push(
    `${v.name ?? '?'}: #${v.id}, ${v.state}, IKEv2, ${v.spi_i}_i${v.initiator ? '*' : ''} ${v.spi_r}_r${v.initiator ? '' : '*'}`,
  );
  lines.push(`  local  '${v.local.id ?? ''}' @ ${endpointText(v.local.addr, v.local.port)}${v.nat_local ? ' [NAT]' : ''}`);
  lines.push(`  remote '${v.remote.id ?? ''}' @ ${endpointText(v.remote.addr, v.remote.port)}${v.nat_remote ? ' [NAT]' : ''}`);
  if (v.remote.cert) lines.push(`  remote certificate '${v.remote.cert}'`);
  if (v.proposal) lines.push(`  ${v.proposal}`);
  if (v.established_at) lines.push(`  established ${v.established_at}`);
  if (v.reauth_at) lines.push(`  reauthentication at ${v.reauth_at}`);
  for (const c of v.child_sas) {
    lines.push(`  ${c.name}: #${c.id}, ${c.state}, ${c.mode}${c.encap ? '-in-UDP' : ''}, ESP SPIs: ${c.spi_in}_i ${c.spi_out}_o`);
    if (c.proposal) lines.push(`    ${c.proposal}`);
    lines.push(`    local  ${c.local_ts.join(' ')}`);
    lines.push(`    remote ${c.remote_ts.join(' ')}`);
    if (c.bytes_in !== null) lines.push(`    in  ${c.bytes_in} bytes, ${c.packets_in} packets; out ${c.bytes_out} bytes, ${c.packets_out} packets`);
    if (c.vpp.sa_in !== null || c.vpp.interface !== null) {
      lines.push(`    vpp: sa_in ${c.vpp.sa_in ?? '-'} sa_out ${c.vpp.sa_out ?? '-'} interface ${c.vpp.interface ?? '-'}`);
    }
  }
  return lines.join('\n');
}

/** A plain table with aligned columns. */
export function table(headers: string[], rows: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]): string => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  return [fmt(headers), ...rows.map(fmt)].join('\n');
}

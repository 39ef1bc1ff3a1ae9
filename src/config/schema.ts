/**
 * The configuration keys: for every section, each key with its value type, its default, what users
 * read about it in conf/REFERENCE.md, and the values that are refused. This table drives the loader
 * (which keys are known, how values are read, what they default to) and the reference
 * (tools/gen-reference.ts), so the two cannot disagree. Rules between keys of a section (life_time
 * longer than rekey_time, p2mp needs an ipsec interface, ...) are checked in load.ts after the
 * table pass.
 *
 * A new key is one row here (and its field in types.ts); a new kind of value is one type in values.ts.
 */
import { parseProposals } from '../ikev2/crypto/proposals.ts';
import type { VppMode } from '../dataplane/types.ts';
import type { RevocationPolicy } from '../pki/api.ts';
import { IKE_NATT_PORT } from '../ikev2/constants.ts';
import type { ConfKey } from './parse.ts';
import { show } from './parse.ts';
import {
  addressList,
  autoOrUint,
  bool,
  decimal,
  deepFreeze,
  duration,
  durationIn,
  volume,
  file,
  fileList,
  hostPort,
  identity,
  interfaceName,
  ipList,
  MAX_U32,
  oneOf,
  only,
  path,
  port,
  proposalList,
  psk,
  textOf,
  tsList,
  uint,
} from './values.ts';
import type { ValueType } from './values.ts';

// ---- the table's shape ---------------------------------------------------------------------------

/**
 * How a key gets its value when it is not set: `default` from the row; `derived` computed by the
 * section's checks in load.ts from other keys (the row's default, if any, is where they start);
 * `optional` left unset; `check` read and checked only, not kept in the config.
 */
export type Mode = 'default' | 'derived' | 'optional' | 'check';

/** Values of a section read so far, by config field name (for refusals that depend on other keys). */
export type SectionValues = Readonly<Record<string, unknown>>;

export interface Refusal<T> {
  /** What the reference says about it. */
  readonly doc: string;
  /** Keywords (any case) refused before the value is read; the key then has its default. */
  readonly words?: readonly string[];
  /** A value refused after all keys of the section are read (it stays as read, so later checks see it). */
  when?(v: T, section: SectionValues): boolean;
  message(k: ConfKey, section: SectionValues): string;
}

export interface Row<T, M extends Mode = Mode> {
  readonly mode: M;
  readonly type: ValueType<T>;
  readonly default?: T;
  /** The default as the reference shows it when the value does not say it; `{default}` stands for the value. */
  readonly defaultDoc?: string;
  /** The type as the reference shows it, when the value type's own name does not say enough. */
  readonly typeDoc?: string;
  /** What the key means, for users. */
  readonly doc: string;
  readonly refuse?: readonly Refusal<T>[];
  /** daemon/vpp keys: a reload applies a change at once (otherwise it needs a restart). */
  readonly live?: boolean;
  /** The row stands for every key that starts with its name. */
  readonly prefix?: boolean;
}

/** What a row says besides its type and default (the type alone decides the row's value type). */
interface Spec<T> {
  doc: string;
  defaultDoc?: string;
  typeDoc?: string;
  refuse?: readonly Refusal<NoInfer<T>>[];
  live?: boolean;
  prefix?: boolean;
}

/** A key with a default. */
function setting<T>(type: ValueType<T>, def: NoInfer<T>, spec: Spec<T>): Row<T, 'default'> & { readonly default: T } {
  return { mode: 'default', type, default: def, ...spec };
}
/** A key that is unset unless written. */
function optional<T>(type: ValueType<T>, spec: Spec<T>): Row<T, 'optional'> {
  return { mode: 'optional', type, ...spec };
}
/** A key whose default the section's checks compute (from `default` when given). */
function derived<T>(type: ValueType<T>, spec: Spec<T> & { default: NoInfer<T> }): Row<T, 'derived'> & { readonly default: T };
function derived<T>(type: ValueType<T>, spec: Spec<T>): Row<T, 'derived'>;
function derived<T>(type: ValueType<T>, spec: Spec<T> & { default?: T }): Row<T, 'derived'> {
  return { mode: 'derived', ...spec, type };
}
/** A key that is only checked. */
function checked<T>(type: ValueType<T>, spec: Spec<T> & { defaultDoc: string }): Row<T, 'check'> {
  return { mode: 'check', type, ...spec };
}

export type Table = Readonly<Record<string, Row<unknown>>>;

/** A key table compiled for the loader: rows in order with their config field names. */
export interface Section<T extends Table = Table> {
  readonly keys: T;
  /** Subsections allowed here. */
  readonly sections: readonly string[];
  readonly rows: readonly { readonly key: string; readonly field: string; readonly row: Row<unknown> }[];
  /** Key names in order (suggestions for misspelt keys). */
  readonly names: readonly string[];
  readonly known: ReadonlySet<string>;
  readonly hasPrefix: boolean;
}

type Camel<S extends string> = S extends `${infer A}_${infer B}` ? `${A}${Capitalize<Camel<B>>}` : S;
type ValueOf<R> = R extends { readonly type: ValueType<infer T> } ? T : never;
type KeysIn<T extends Table, M extends Mode> = { [K in keyof T & string]: T[K] extends Row<unknown, M> ? K : never }[keyof T & string];

/** What the table pass gives for a section: config field → value (derived ones still undefined). */
export type Fields<T extends Table> = { [K in KeysIn<T, 'default'> as Camel<K>]: ValueOf<T[K]> } & {
  [K in KeysIn<T, 'derived'> as Camel<K>]: ValueOf<T[K]> | undefined;
} & { [K in KeysIn<T, 'optional'> as Camel<K>]?: ValueOf<T[K]> };

/** The static defaults of a section, by config field. */
export type Defaults<T extends Table> = { readonly [K in KeysIn<T, 'default'> as Camel<K>]: ValueOf<T[K]> };

/** local_addrs → localAddrs: a key's field name in types.ts. */
export function fieldName(key: string): string {
  return key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

function section<T extends Table>(keys: T, sections: readonly string[] = []): Section<T> {
  const rows = Object.entries(keys).map(([key, row]) => {
    if (Array.isArray(row.default)) Object.freeze(row.default); // shared by every config that uses it
    return { key, field: fieldName(key), row };
  });
  return {
    keys,
    sections,
    rows,
    names: rows.map((r) => r.key),
    known: new Set(rows.map((r) => r.key)),
    hasPrefix: rows.some((r) => r.row.prefix),
  };
}

function defaultsOf<T extends Table>(s: Section<T>): Defaults<T> {
  const out: Record<string, unknown> = {};
  for (const r of s.rows) if (r.row.mode === 'default') out[r.field] = r.row.default;
  return Object.freeze(out) as Defaults<T>;
}

// ---- values shared by several keys ---------------------------------------------------------------

/** Largest replay_window accepted (packets). */
export const MAX_REPLAY_WINDOW = 65536;
/** VPP has ipsec interface instances 0..16383 (ipsec0 .. ipsec16383). */
export const MAX_IPSEC_INSTANCE = 16383;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
// keyword → value maps, aliases as strongSwan's vici parse_action and friends
const START_ACTIONS = { none: 'none', start: 'start' } as const;
const CLOSE_ACTIONS = { none: 'none', clear: 'none', start: 'start', restart: 'start' } as const;
const DPD_ACTIONS = { clear: 'clear', none: 'clear', restart: 'restart', start: 'restart' } as const;

/** `trap` (alias `route`) in start_action, close_action, dpd_action: trap policies are not implemented yet. */
function trapRefused(supported: string): Refusal<string> {
  return {
    doc: '`trap` (alias `route`) is not supported yet and is an error',
    words: ['trap', 'route'],
    message: (k) => `${k.name} = ${k.value.toLowerCase()} is not supported yet (trap policies are not implemented); use ${supported}`,
  };
}

const auth = oneOf<'psk' | 'pubkey'>({ psk: 'psk', pubkey: 'pubkey' }, (k) => `auth method '${show(k.value)}' is not supported; use psk or pubkey`);

// ---- the tables ----------------------------------------------------------------------------------

/** IKE fragment sizes: 0 (the default for the address family) or room for an encrypted fragment. */
const fragmentBytes = uint(0, 65535, 'a size in bytes', 'bytes 0..65535');
const FRAGMENT_SIZE_REFUSALS = [
  {
    doc: '`1`..`255` are an error (no room for an encrypted fragment)',
    when: (v: number) => v > 0 && v < 256,
    message: (k: { name: string; value: string }) => `'${k.name}' = ${k.value} leaves no room for an encrypted IKE fragment; use 0 or 256..65535`,
  },
];

export const DAEMON = section({
  listen: setting(ipList, ['0.0.0.0', '::'], {
    doc: 'addresses IKE is served on. `transport = udp`: the host addresses the IKE sockets bind to (`0.0.0.0` / `::`: every address of the host). `transport = punt`: VPP interface addresses; IKE punted to any other address is dropped and counted (`0.0.0.0` / `::`: every VPP address of that family)',
  }),
  transport: setting(oneOf({ udp: 'udp', punt: 'punt' }), 'udp', {
    doc: "how IKE datagrams reach the daemon. `udp`: the host's UDP sockets (the host kernel owns the addresses, or linux-cp gives it VPP's). `punt`: through VPP's punt socket, for gateways where VPP owns the NIC; needs `dataplane = vpp`, `port_nat_t = 4500` and `punt { socket ... }` in VPP's startup.conf (see the README, \"Running on a VPP gateway\")",
  }),
  port: setting(port, 500, { doc: 'IKE port' }),
  port_nat_t: setting(port, IKE_NATT_PORT, { doc: 'IKE port after NAT detection (must differ from `port`)' }),
  control_socket: setting(path, '/run/vpp-iked/control.sock', { doc: 'Unix socket of `vpp-ikectl`' }),
  log_level: setting(oneOf<string>(Object.fromEntries(LOG_LEVELS.map((l) => [l, l]))), 'info', { doc: 'log verbosity', live: true }),
  ike_sa_limit: setting(uint(1, 10_000_000), 60000, { doc: 'capacity of the IKE SA table' }),
  metrics: optional(hostPort, {
    defaultDoc: 'not set (off)',
    doc: 'Prometheus text endpoint: `GET http://ADDRESS:PORT/metrics` (the metric names are listed in the README, section Metrics). Changing it takes effect on reload.',
    live: true,
  }),
  dataplane: setting(oneOf({ vpp: 'vpp', memory: 'memory' }), 'vpp', { doc: 'where CHILD_SAs go; `memory` only records them (tests, dry runs)' }),
  stop_timeout: setting(durationIn(1, 3600), 10, {
    doc:
      'how long a graceful stop (SIGTERM, SIGINT, `systemctl stop`) may take. The daemon waits this long at most for the DELETE messages to leave (half of it at most for exchanges of ours in flight, whose IKE SAs send their DELETE once they complete) and the dataplane removals to finish, then closes and exits 0 anyway (what was left is logged; the next start removes stale SAs from VPP). Keep `TimeoutStopSec=` of the systemd unit above it.',
    live: true,
  }),
  stop_action: setting(oneOf({ delete: 'delete', keep: 'keep' }), 'delete', {
    doc:
      "what a graceful stop does with the SAs. `delete`: every peer is sent an IKE DELETE and the CHILD_SAs are removed from the dataplane. `keep`: peers are not told and VPP's SAs stay installed, so traffic keeps flowing until the daemon starts again (peers notice nothing unless that outlasts their DPD). The next start does not take over SAs of an earlier run: it removes them from VPP (see the `vpp` section) and negotiates `start_action = start` connections again.",
    live: true,
  }),
  recv_buffer_size: setting(uint(0, 1 << 30, 'a size in bytes', 'bytes 0..1073741824'), 4 * 1024 * 1024, {
    doc: "receive buffer (SO_RCVBUF) of every IKE socket (`transport = udp`), so that bursts (thousands of peers coming back at once) wait in the socket instead of being dropped by the kernel; `0` keeps the kernel's default. Linux caps it at the sysctl `net.core.rmem_max`: when it grants less than asked the daemon logs a warning naming that sysctl (raise it, e.g. `sysctl -w net.core.rmem_max=8388608`). Drops show as `RcvbufErrors` in `/proc/net/snmp`.",
  }),
  workers: setting(autoOrUint(0, 64), 'auto', {
    doc: "worker threads that compute the key exchange and key derivation of the IKE_SA_INIT requests the daemon answers, so that a burst of new peers uses more than one core (parsing and SA state stay on the main thread). `auto`: one per core beyond the first (none on a single core); `0`: all on the main thread. The threads start when load appears (16 IKE_SA_INIT requests within one second); until then, and while they load, requests are computed on the main thread. `vpp-ikectl stats` shows them under `workers` (`running`: started).",
  }),
  retransmit_timeout: setting(decimal(0.1, 300, 'seconds'), 4, {
    doc: "first retransmission timeout of our requests (strongSwan's `charon.retransmit_timeout`). Retransmission n waits `retransmit_timeout × retransmit_base^n`.",
  }),
  retransmit_base: setting(decimal(1, 10), 1.8, { doc: 'backoff base of the retransmission schedule.' }),
  fragment_size: setting(fragmentBytes, 1280, {
    doc: "largest IP datagram (IP and UDP headers included) of an IKE message, as strongSwan's `charon.fragment_size`: with `fragmentation = yes` and a peer that announced support (or `force`), an encrypted message (IKE_AUTH and later) that would be larger is sent as IKE fragments (RFC 7383) of at most this size. `0`: 576 bytes for IPv4, 1280 for IPv6. With `transport = punt` at most 2048 (what VPP takes from its punt socket) is used",
    refuse: FRAGMENT_SIZE_REFUSALS,
  }),
  fragment_size_v4: optional(fragmentBytes, {
    defaultDoc: '`fragment_size`',
    doc: "`fragment_size` for IPv4 peers only (strongSwan 6's `charon.fragment_size_v4`); `0`: `fragment_size`",
    refuse: FRAGMENT_SIZE_REFUSALS,
  }),
  fragment_size_v6: optional(fragmentBytes, {
    defaultDoc: '`fragment_size`',
    doc: "`fragment_size` for IPv6 peers only (strongSwan 6's `charon.fragment_size_v6`); `0`: `fragment_size`",
    refuse: FRAGMENT_SIZE_REFUSALS,
  }),
  retransmit_tries: setting(uint(0, 50), 5, {
    doc: 'retransmissions before the peer is declared dead (then `dpd_action` / `keyingtries` apply). With the defaults a dead peer is detected about 165 s after the unanswered request.',
  }),
  cookie_threshold: setting(uint(0, 10_000_000), 30, {
    doc: "half-open IKE SAs (peers' IKE_SA_INITs answered, IKE_AUTH not yet done) from which on a new IKE_SA_INIT request is answered with a COOKIE notification only (RFC 7296 §2.6): the peer must send it again with the cookie before the daemon does a key exchange or keeps any state for it. Cookies stay required until the count was below the threshold for 10 s. `0`: never. As strongSwan's `charon.cookie_threshold`",
  }),
  block_threshold: setting(uint(0, 10_000_000), 5, {
    doc: "half-open IKE SAs from one peer address from which on further IKE_SA_INIT requests from that address are dropped. `0`: no limit. As strongSwan's `charon.block_threshold`; raise it when many peers share one address (behind one NAT)",
  }),
  init_limit_half_open: setting(uint(0, 10_000_000), 0, {
    defaultDoc: '`0` (no limit)',
    doc: "half-open IKE SAs from which on every new IKE_SA_INIT request is dropped (checked after cookies, so only requests with a valid cookie count against it). As strongSwan's `charon.init_limit_half_open`",
  }),
  start_limit_half_open: setting(uint(0, 10_000_000), 1000, {
    defaultDoc: '`1000`',
    doc: "IKE SAs the daemon starts itself (connections with `start_action = start`, at start-up and after a reload) that may wait for their peers' answers at once; the other connections start as those come up, fail, or reach their first retransmission (so peers that do not answer hold up the rest for `retransmit_timeout` at most). Bringing up thousands of tunnels at once otherwise overflows the daemon's own socket and the peers' with the answers, and the retransmissions that follow make it worse. `0`: all at once. `vpp-ikectl stats` shows the queue under `starts`",
  }),
  keep_alive: setting(durationIn(0, 3600), 20, {
    doc: "interval of NAT-T keepalives (RFC 3948): an IKE SA behind a NAT sends its peer a one-byte keepalive on the NAT-T port when it sent nothing else for half this interval, so the NAT keeps the mapping. `0`: none. As strongSwan's `charon.keep_alive`. ESP traffic in VPP does not count as sent (the daemon does not see it)",
  }),
  traffic_poll: setting(durationIn(1, 3600), 10, {
    doc: "how often the SA counters of CHILD_SAs with volume lifetimes (`rekey_bytes`, `life_bytes`, `rekey_packets`, `life_packets`) are read from the dataplane (VPP's stats segment): one batched read for all of them. A limit is acted on at the first read that finds it crossed, so traffic can exceed it by up to this interval's worth. CHILD_SAs without volume lifetimes are never read",
  }),
});

export const VPP = section({
  socket: setting(path, '/run/vpp/api.sock', { doc: 'VPP binary-API socket' }),
  punt_socket: setting(path, '/run/vpp-iked/punt.sock', {
    doc: "`transport = punt`: our own unix datagram socket, the one VPP sends punted IKE packets to (VPP's own punt socket path comes from VPP at registration)",
  }),
  punt_reader: setting(oneOf({ thread: 'thread', event_loop: 'event_loop' }), 'thread', {
    doc: "`transport = punt`: where the punt socket is read. `thread`: a thread of its own (about 15 MB of memory, at nice -5 where permitted: root, CAP_SYS_NICE or the unit's `LimitNICE=-5`) reads it as datagrams arrive and hands them to the daemon in batches, so that none is lost while the event loop is busy: VPP gives its punt socket 64 KiB of send buffer, about a hundred IKE datagrams in flight, and drops what does not fit (`show errors`: `ip4-udp-punt-socket ... Socket TX error`). `event_loop`: the event loop reads it between its other work (no extra thread; bursts of new peers can lose datagrams, which the peers then retransmit)",
  }),
  unnumbered_interface: optional(interfaceName, {
    doc: 'interface whose address the ipsec interfaces of `p2p` and `p2mp` CHILD_SAs borrow (unnumbered), e.g. `loop0`; not set: they get no address',
  }),
  policy_interface: optional(interfaceName, {
    doc: '`policy` mode: the interface the SPD is bound to when a CHILD_SA sets no `vpp_interface`; a `policy` CHILD_SA needs one of the two (whatever the dataplane)',
  }),
});

export const CONNECTION = section(
  {
    local_addrs: setting(addressList, [], {
      defaultDoc: '`%any`',
      doc: 'local addresses this connection uses; the first single address is the source when initiating',
    }),
    remote_addrs: setting(addressList, [], {
      defaultDoc: '`%any`',
      doc: 'peer addresses; a single address is needed to initiate (`start_action = start`)',
    }),
    local_port: derived(port, { defaultDoc: '`daemon.port`', doc: 'local IKE port' }),
    remote_port: setting(port, 500, { doc: 'peer IKE port' }),
    proposals: setting(proposalList('ike'), deepFreeze(parseProposals('default', 'ike')), {
      doc:
        'IKE proposals, in preference order; `ke1_mlkem768` .. `ke7_<method>` add additional key exchanges (RFC 9370, over IKE_INTERMEDIATE), `mlkem768` alone is ML-KEM as the only key exchange',
    }),
    encap: setting(bool, false, { doc: 'force UDP encapsulation of ESP (pretend a NAT is present)' }),
    dpd_delay: setting(duration, 0, {
      defaultDoc: '`0` (off)',
      doc: 'interval of liveness checks when no IKE message arrives from the peer (ESP traffic in VPP does not count: the daemon does not see it)',
    }),
    dpd_timeout: setting(duration, 0, { doc: 'as strongSwan: IKEv2 uses the retransmission timeout instead' }),
    // IKE lifetimes as strongSwan's vici config_sn(), computed in load.ts
    rekey_time: derived(duration, {
      default: 4 * 3600,
      defaultDoc: '{default} (`0` when only `reauth_time` is set)',
      doc: 'IKE SA rekeying interval (new keys, same authentication); `0` = never. As in strongSwan, setting only `reauth_time` turns rekeying off: set both to have both',
    }),
    reauth_time: derived(duration, {
      defaultDoc: '`0` (off)',
      doc: "IKE SA reauthentication interval (less a random part of `rand_time`); `0` = never. Reauthentication makes a new IKE SA with the same connection from scratch (IKE_SA_INIT and IKE_AUTH, checking the credentials as they are configured now), recreates every CHILD_SA of the old IKE SA on it, and deletes the old IKE SA once they are installed (strongSwan's `make_before_break`): the tunnels keep an outbound SA throughout. A failed attempt keeps the old IKE SA and is retried after 10-30 s until the hard lifetime (`over_time`). The time survives IKE SA rekeys",
    }),
    over_time: derived(duration, {
      defaultDoc: '10% of the longer of `rekey_time` and `reauth_time`',
      doc: 'hard lifetime after the rekey or reauthentication time (the earlier of the two), computed as strongSwan does: an IKE SA neither rekeyed nor reauthenticated by then is deleted',
    }),
    rand_time: derived(duration, {
      defaultDoc: '`over_time`, at most half of `rekey_time` (of the shorter of `rekey_time` and `reauth_time` when both are set)',
      doc: 'random reduction of the rekey and reauthentication times, drawn uniformly to the millisecond; must be shorter than each of them',
    }),
    fragmentation: setting(oneOf({ yes: 'yes', no: 'no', accept: 'accept', force: 'force' }), 'yes', {
      doc: "IKE fragmentation (RFC 7383), strongSwan's meanings. `yes`: announce support in IKE_SA_INIT and, if the peer announced it too, send encrypted messages larger than `daemon.fragment_size` as fragments. `accept`: announce support and reassemble the peer's fragments, but send every message whole. `force`: as `yes`, and fragment even if the peer did not announce support. `no`: do not announce support; the peer's fragments are then dropped (strongSwan would still accept them). IKE_SA_INIT is never fragmented",
    }),
    unique: setting(oneOf({ no: 'no', never: 'never', keep: 'keep', replace: 'replace' }), 'no', {
      doc: 'what to do with an older IKE SA of the same peer identity',
    }),
    send_cert: setting(oneOf({ always: 'always', never: 'never', ifasked: 'ifasked' }), 'ifasked', {
      doc: 'when to send our certificate (and the intermediate CA certificates in `local.certs`) in CERT payloads with `local.auth = pubkey`: `ifasked` when the peer sent a certificate request (CERTREQ), `always`, or `never` (the peer must have our certificate already)',
    }),
    send_certreq: setting(bool, true, {
      doc: 'with `remote.auth = pubkey`: send certificate requests (CERTREQ) naming the CAs of `remote.cacerts` (SHA-1 hashes of their public keys), in the IKE_SA_INIT response as responder and in IKE_AUTH as initiator',
    }),
    mobike: setting(bool, true, {
      doc: 'MOBIKE (RFC 4555): announced in IKE_AUTH; when the peer supports it too, IKE moves to the NAT-T port right after IKE_SA_INIT and the peer may move the IKE SA and its CHILD_SAs to new addresses (UPDATE_SA_ADDRESSES, checked with a return routability check before the CHILD_SAs follow). vpp-iked itself does not change its addresses',
    }),
    keyingtries: setting(uint(0, MAX_U32, 'a number', 'number'), 1, { doc: 'attempts to establish before giving up; `0` = forever' }),
    version: checked(
      only('2', (k) => `only IKEv2 is supported: 'version' must be 2, not '${show(k.value)}'`),
      { defaultDoc: '`2`', doc: 'IKE version; only IKEv2 is supported' },
    ),
  },
  ['local', 'remote', 'children'],
);

export const LOCAL = section({
  auth: setting(auth, 'pubkey', {
    defaultDoc: "`pubkey` (strongSwan's default)",
    doc: '`psk`: a pre-shared key from `secrets { ike-... }`; `pubkey`: an RFC 7427 signature (or the classic RSA/ECDSA methods for peers that do not announce RFC 7427) with the private key of our certificate (`certs`), which a `secrets { private-... }` entry holds',
  }),
  id: setting(identity({ noWildcards: 'local id' }), '%any', {
    defaultDoc: '`%any`: with `auth = pubkey` the subject DN of our certificate, otherwise the IP address we use',
    doc: 'our IKE identity; with `auth = pubkey` it must be the subject DN or a subjectAltName of our certificate',
  }),
  certs: setting(fileList('certificate'), [], {
    defaultDoc: 'none',
    doc: 'our certificate and, after it or in the same PEM file, intermediate CA certificates to send with it; PEM or DER, relative to the file the key is in. Needed with `auth = pubkey`: our certificate is the one whose public key matches a private key of the `secrets` section (RSA of at least 2048 bits, ECDSA P-256/384/521, Ed25519, Ed448)',
  }),
});

export const REMOTE = section({
  auth: setting(auth, 'pubkey', {
    defaultDoc: "`pubkey` (strongSwan's default)",
    doc: "how the peer must authenticate: `psk`, or `pubkey` (a signature with the key of a certificate that chains to one of `cacerts`, and that names the peer's identity as subject DN or subjectAltName)",
  }),
  id: setting(identity(), '%any', { doc: 'the identities accepted from the peer (patterns such as `*.example.net`, `C=CH, O=Lab, CN=*` or `10.0.0.0/8` allowed; FQDN and e-mail identities compare case-insensitively). When several connections accept a peer, as with strongSwan the one whose `remote.id` matches best answers (exactly, then by a pattern, then `%any`), then the one whose `local.id` matches the identity the peer asks for (IDr), then one with `remote_addrs` over one without, then the first in the file' }),
  cacerts: setting(fileList('CA certificate'), [], {
    defaultDoc: 'none',
    doc: "CA certificates (trust anchors) the peer's certificate must chain to, PEM or DER; needed with `auth = pubkey`. The peer's intermediate CA certificates come in its CERT payloads",
  }),
  crls: setting(fileList('CRL'), [], {
    defaultDoc: 'none',
    doc: "certificate revocation lists (PEM or DER) of the CAs in the peer's chain (swanctl reads every file of `/etc/swanctl/x509crl`; here each connection names its own): a certificate they list as revoked is refused. What happens without a valid CRL is `revocation`",
  }),
  revocation: setting(oneOf<RevocationPolicy>({ strict: 'strict', ifuri: 'ifuri', relaxed: 'relaxed' }), 'relaxed', {
    doc: "as swanctl.conf: `relaxed` refuses only a certificate a CRL lists as revoked; `ifuri` also one whose CA has a CRL in `crls` that is out of date or badly signed; `strict` also one whose CA has no valid CRL in `crls`",
  }),
});

export const CHILD = section({
  local_ts: setting(tsList, ['dynamic'], { doc: 'our side of the traffic' }),
  remote_ts: setting(tsList, ['dynamic'], { doc: "the peer's side of the traffic" }),
  esp_proposals: setting(proposalList('esp'), deepFreeze(parseProposals('default', 'esp')), {
    doc: 'ESP proposals; with a key exchange method (e.g. `-x25519`) rekeys use PFS, with `-ke1_mlkem768` also an additional key exchange (IKE_FOLLOWUP_KE)',
  }),
  mode: setting(
    oneOf({ tunnel: 'tunnel', transport: 'transport' }, (k) => `'mode' must be tunnel or transport, not '${show(k.value)}'`),
    'tunnel',
    {
      doc: 'IPsec mode.',
      refuse: [
        {
          doc: '`transport` needs `vpp_mode = policy`: VPP refuses transport-mode SAs on ipsec interfaces, so with `p2p` (the default) or `p2mp` it is an error',
          when: (mode, ch) => mode === 'transport' && ch.vppMode !== 'policy',
          message: (_, ch) =>
            `mode = transport is not supported with vpp_mode = ${String(ch.vppMode)}: VPP refuses transport-mode SAs on ipsec interfaces; use vpp_mode = policy or mode = tunnel`,
        },
        {
          doc: "strongSwan's `beet`, `pass`, `drop`, `transport_proxy` and `iptfs` are not supported",
          words: ['beet', 'pass', 'drop', 'transport_proxy', 'iptfs'],
          message: (k) => `mode '${show(k.value)}' is not supported (tunnel or transport)`,
        },
      ],
    },
  ),
  start_action: setting(oneOf(START_ACTIONS), 'none', {
    doc: 'after loading: wait for the peer, or initiate now (and after a reload that adds or changes the connection).',
    refuse: [{ ...trapRefused('start or none'), doc: '`trap` (alias `route`, initiate on traffic) is not supported yet and is an error' }],
  }),
  close_action: setting(oneOf(CLOSE_ACTIONS), 'none', {
    doc: 'when the peer closes the CHILD_SA: nothing, or initiate it again.',
    refuse: [trapRefused('none or start')],
  }),
  dpd_action: setting(oneOf(DPD_ACTIONS), 'clear', {
    doc: 'when the peer is found dead: remove its SAs, or initiate again.',
    refuse: [trapRefused('clear or restart')],
  }),
  // CHILD_SA lifetimes as strongSwan's vici check_lifetimes(), computed in load.ts
  rekey_time: derived(duration, {
    default: 3600,
    defaultDoc: '{default} (or `life_time` / 1.1 when only that is set)',
    doc: 'CHILD_SA rekeying interval; `0` = never',
  }),
  life_time: derived(duration, { defaultDoc: '1.1 × `rekey_time`', doc: 'hard lifetime; must exceed `rekey_time`' }),
  rand_time: derived(duration, {
    defaultDoc: '`life_time` − `rekey_time`',
    doc: 'random reduction of the rekey time, drawn uniformly to the millisecond; must be shorter than `rekey_time`',
  }),
  // volume lifetimes, computed in load.ts as strongSwan's check_lifetimes()
  rekey_bytes: derived(volume('bytes'), {
    defaultDoc: '0 (or `life_bytes` / 1.1 when only that is set)',
    doc: 'bytes through the CHILD_SA (its inbound or its outbound SA, as the dataplane counts them) before it is rekeyed; `0` = no limit. Read from VPP\'s SA counters every `daemon.traffic_poll` (see README, "Lifetimes")',
  }),
  life_bytes: derived(volume('bytes'), {
    defaultDoc: '1.1 × `rekey_bytes`',
    doc: 'bytes after which the CHILD_SA is deleted (with a Delete to the peer) if no rekey replaced it; must exceed `rekey_bytes`',
  }),
  rand_bytes: derived(volume('bytes'), {
    defaultDoc: '`life_bytes` − `rekey_bytes`',
    doc: 'random reduction of `rekey_bytes` (per CHILD_SA); must be smaller than `rekey_bytes`',
  }),
  rekey_packets: derived(volume('packets'), {
    defaultDoc: '0 (or `life_packets` / 1.1 when only that is set)',
    doc: 'packets through the CHILD_SA (its inbound or its outbound SA) before it is rekeyed; `0` = no limit',
  }),
  life_packets: derived(volume('packets'), {
    defaultDoc: '1.1 × `rekey_packets`',
    doc: 'packets after which the CHILD_SA is deleted if no rekey replaced it; must exceed `rekey_packets`',
  }),
  rand_packets: derived(volume('packets'), {
    defaultDoc: '`life_packets` − `rekey_packets`',
    doc: 'random reduction of `rekey_packets` (per CHILD_SA); must be smaller than `rekey_packets`',
  }),
  replay_window: setting(uint(0, MAX_REPLAY_WINDOW), 32, {
    doc: `anti-replay window in packets; \`0\` disables replay protection. Larger values are refused (vpp-iked's cap; VPP keeps the window per SA, and ${MAX_REPLAY_WINDOW} packets is far more than reordering on a path needs)`,
  }),
  vpp_mode: setting(oneOf<VppMode>({ p2p: 'p2p', p2mp: 'p2mp', policy: 'policy' }), 'p2p', {
    doc: 'how the CHILD_SA is programmed into VPP: an ipsec interface of its own (`ipsec1000` and up), a shared multipoint ipsec interface, or SPD policies (see the `vpp` section for limits). `p2mp`: VPP protects one CHILD_SA per peer address on the shared interface, so a second CHILD_SA with the same peer takes over the first one\'s traffic (right for a peer that reconnects, wrong for two children of one peer: give those `p2p` or `policy`). `policy` installs no routes: VPP\'s own configuration routes the remote networks out of the SPD\'s interface',
  }),
  vpp_interface: optional(interfaceName, {
    doc: `\`p2mp\`: the shared multipoint interface (required), \`ipsecN\` with N from 0 to ${MAX_IPSEC_INSTANCE} (VPP's limit; keep N below 1000, the \`p2p\` range), created when VPP has none; \`policy\`: the interface the SPD is bound to (default \`vpp.policy_interface\`); \`p2p\`: not used`,
  }),
  vpp_table: setting(uint(0, MAX_U32), 0, { doc: 'FIB table (VRF) for routes and policies' }),
  vpp_routes: setting(bool, true, { doc: 'install routes to `remote_ts` through the tunnel' }),
});

/** secrets.ike-NAME: a pre-shared key. The loader reads `secret` itself (its messages never quote it). */
export const IKE_SECRET = section({
  secret: optional(psk, { typeDoc: 'string (required)', defaultDoc: '', doc: 'the key: `0x` + hex, `0s` + base64, otherwise the text itself' }),
  id: optional(identity({ quiet: true }), {
    prefix: true,
    defaultDoc: 'none',
    doc: 'identities the key belongs to (patterns such as `*.example.net` or `10.0.0.0/8` allowed; FQDN and e-mail identities compare case-insensitively): it is used for a connection whose local or remote id matches one of them. Without any id the key applies to every connection. When several keys apply, the peer\'s identity counts more than ours and an exact id more than a pattern (the peer exactly, the peer by a pattern, ours exactly, ours by a pattern, no ids); on a tie the first in the file.',
  }),
});

/** secrets.private-NAME (and rsa-, ecdsa-, pkcs8-): a private key file. */
export const PRIVATE_SECRET = section({
  file: optional(file('private key file', true), {
    typeDoc: 'file path (required)',
    defaultDoc: '',
    doc: 'the key file, relative to the file it is written in: PEM or DER, PKCS#1 (RSA), SEC1 (ECDSA) or PKCS#8 (any type; encrypted with `secret`)',
  }),
  secret: optional(textOf('string'), { doc: 'passphrase of an encrypted key file' }),
});

/** The kinds of sections in secrets, by how their names start. */
export const SECRET_SECTIONS = [
  { prefix: 'ike', keys: IKE_SECRET, doc: 'a pre-shared key; the section name starts with `ike`' },
  {
    prefix: 'private',
    keys: PRIVATE_SECRET,
    doc: "a private key for `local.auth = pubkey`: the key of the connection's certificate whose public key it matches; the section name starts with `private`, `rsa`, `ecdsa` or `pkcs8` (swanctl's names; all read the same way). Every key must belong to a certificate in some `local.certs`",
  },
] as const;

/** Name prefixes of private key sections (swanctl's; all read as PRIVATE_SECRET). */
export const PRIVATE_KEY_SECRETS = ['private', 'rsa', 'ecdsa', 'pkcs8'] as const;

/** Secret sections of strongSwan that vpp-iked does not support. */
export const UNSUPPORTED_SECRETS = ['eap', 'xauth', 'ntlm', 'ppk', 'pkcs12', 'token'] as const;

/** The top level: sections only. */
export const TOP = section({}, ['daemon', 'vpp', 'connections', 'secrets']);

/** Defaults of the daemon and vpp sections, by config field. */
export const DEFAULTS = { daemon: defaultsOf(DAEMON), vpp: defaultsOf(VPP) } as const;

/** daemon/vpp settings a reload applies without a restart, as `section.field` (e.g. `daemon.logLevel`). */
export const LIVE_SETTINGS: ReadonlySet<string> = new Set([
  ...DAEMON.rows.filter((r) => r.row.live).map((r) => `daemon.${r.field}`),
  ...VPP.rows.filter((r) => r.row.live).map((r) => `vpp.${r.field}`),
]);

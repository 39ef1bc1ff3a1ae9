/**
 * The Prometheus endpoint (`daemon.metrics = ADDRESS:PORT`): GET /metrics answers with the text
 * exposition format (version 0.0.4). Every value is read from counters and gauges the daemon keeps
 * current, so a scrape costs the same with 50 or 50,000 SAs: no table is walked.
 */
import http from 'node:http';
import type { EngineStats } from '../ikev2/engine/engine.ts';
import type { SaGauges } from '../ikev2/sa/ike-sa.ts';
import { DATAPLANE_OPS, LATENCY_BUCKETS, type InstrumentedDataplane } from './instrumented-dataplane.ts';
import { snakeCase as snake } from '../common/text.ts';

export interface MetricsLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** What the exposition is built from. */
export interface MetricsSource {
  engine: {
    readonly stats: Readonly<EngineStats>;
    /** Received IKE fragments dropped, by reason. */
    readonly fragmentDrops?: Readonly<Record<string, number>>;
    /** Decrypted bytes of incomplete fragment sets held. */
    readonly reassemblyBytes?: number;
    readonly gauges: Readonly<SaGauges>;
    readonly table: { readonly halfOpenCount: number; readonly limit: number };
    /** Worker threads for IKE_SA_INIT's crypto (daemon.workers). */
    readonly workers?: { readonly threads: number; readonly jobs: number; readonly pending: number; readonly worker_restarts: number };
  };
  dataplane: InstrumentedDataplane;
  transport?: { readonly stats: Readonly<Record<string, number>> };
  /** Present when the dataplane is VPP. */
  vpp?: { readonly connected: boolean; readonly disconnects: number };
  daemon: {
    readonly version: string;
    /** Unix time (seconds) the process started. */
    readonly startTime: number;
    readonly connections: number;
    readonly reloadsOk: number;
    readonly reloadsRefused: number;
    readonly lastReloadOk: boolean;
    /** Certificates the configuration loaded, and those expiring within 30 days (or expired). */
    readonly certificates?: number;
    readonly certificatesExpiring?: number;
  };
}

/** Name, help text and (for counters of one family) the `reason` label of each engine statistic. */
const ENGINE_COUNTERS: Readonly<Record<keyof EngineStats, readonly [string, string, string?]>> = {
  rxPackets: ['vpp_iked_ike_packets_received_total', 'IKE messages received'],
  txPackets: ['vpp_iked_ike_packets_sent_total', 'IKE messages sent (retransmissions included)'],
  rxInvalid: ['vpp_iked_ike_packets_invalid_total', 'IKE messages dropped as malformed or not valid in the current state'],
  rxBadIcv: ['vpp_iked_ike_packets_bad_icv_total', 'IKE messages whose integrity check failed'],
  rxUnknownSpi: ['vpp_iked_ike_packets_unknown_spi_total', 'IKE messages for an IKE SA we do not have'],
  rxUnmatchedResponse: ['vpp_iked_ike_responses_unmatched_total', 'IKE responses that matched no outstanding request'],
  rxDroppedBusy: ['vpp_iked_ike_packets_dropped_busy_total', 'IKE messages dropped because the IKE SA had too much queued work'],
  retransmitsSent: ['vpp_iked_retransmits_sent_total', 'IKE requests sent again after no response'],
  retransmitsAnswered: ['vpp_iked_retransmits_answered_total', 'retransmitted requests answered from the response cache'],
  initRefusedFull: ['vpp_iked_ike_sa_init_refused_total', 'new IKE SAs refused because the IKE SA table was full'],
  cookiesSent: ['vpp_iked_cookies_sent_total', 'IKE_SA_INIT requests answered with a COOKIE notification (RFC 7296 2.6)'],
  cookiesVerified: ['vpp_iked_cookies_verified_total', 'IKE_SA_INIT requests that returned a valid cookie'],
  cookiesInvalid: ['vpp_iked_cookies_invalid_total', 'IKE_SA_INIT requests with a cookie we did not make or from an expired secret'],
  initDroppedBlocked: ['vpp_iked_ike_sa_init_dropped_total', 'IKE_SA_INIT requests dropped by a half-open limit', 'block_threshold'],
  initDroppedHalfOpen: ['vpp_iked_ike_sa_init_dropped_total', 'IKE_SA_INIT requests dropped by a half-open limit', 'init_limit_half_open'],
  keepalivesSent: ['vpp_iked_nat_keepalives_sent_total', 'NAT-T keepalives sent (RFC 3948)'],
  peerMoved: ['vpp_iked_ike_sas_moved_total', 'IKE SAs moved to a new peer address or port (NAT mapping change, MOBIKE)'],
  mobikeUpdates: ['vpp_iked_mobike_updates_total', 'MOBIKE UPDATE_SA_ADDRESSES requests processed'],
  mobikeCheckFailed: ['vpp_iked_mobike_checks_failed_total', 'MOBIKE return routability checks that failed'],
  evicted: ['vpp_iked_ike_sas_evicted_total', 'half-open or unresponsive IKE SAs evicted to make room'],
  ikeEstablished: ['vpp_iked_ike_sas_established_total', 'IKE SAs established'],
  ikeFailed: ['vpp_iked_ike_sas_failed_total', 'IKE SAs that failed to establish'],
  ikeDeleted: ['vpp_iked_ike_sas_deleted_total', 'established IKE SAs deleted'],
  ikeRekeyed: ['vpp_iked_ike_sas_rekeyed_total', 'IKE SAs rekeyed'],
  childEstablished: ['vpp_iked_child_sas_established_total', 'CHILD SAs installed'],
  childFailed: ['vpp_iked_child_sas_failed_total', 'CHILD SAs that failed to establish'],
  childDeleted: ['vpp_iked_child_sas_deleted_total', 'CHILD SAs deleted'],
  childRekeyed: ['vpp_iked_child_sas_rekeyed_total', 'CHILD SAs rekeyed'],
  childRekeyCollisions: ['vpp_iked_child_sa_rekey_collisions_total', 'CHILD SA rekeys started by both peers at once (RFC 7296 2.8.1)'],
  ikeRekeyCollisions: ['vpp_iked_ike_sa_rekey_collisions_total', 'IKE SA rekeys started by both peers at once (RFC 7296 2.8.2)'],
  authFailed: ['vpp_iked_auth_failures_total', 'IKE_AUTH exchanges that failed authentication'],
  noProposal: ['vpp_iked_no_proposal_chosen_total', 'negotiations without a common proposal'],
  invalidKe: ['vpp_iked_invalid_ke_total', 'INVALID_KE_PAYLOAD sent or received'],
  tsUnacceptable: ['vpp_iked_ts_unacceptable_total', 'CHILD SAs refused for their traffic selectors'],
  dataplaneErrors: ['vpp_iked_engine_dataplane_errors_total', 'dataplane operations the engine saw fail'],
  fragmentsSent: ['vpp_iked_ike_fragments_sent_total', 'IKE fragments (RFC 7383) sent, retransmissions included'],
  fragmentsReceived: ['vpp_iked_ike_fragments_received_total', 'IKE fragments (RFC 7383) received'],
  messagesFragmented: ['vpp_iked_ike_messages_fragmented_total', 'IKE messages of ours sent as fragments'],
  messagesReassembled: ['vpp_iked_ike_messages_reassembled_total', 'IKE messages reassembled from received fragments'],
};

const TRANSPORT_COUNTERS: Readonly<Record<string, readonly [string, string, string?]>> = {
  keepalives: ['vpp_iked_nat_keepalives_received_total', 'NAT-T keepalives received'],
  esp: ['vpp_iked_udp_dropped_total', 'UDP datagrams dropped by the IKE sockets', 'esp'],
  invalid: ['vpp_iked_udp_dropped_total', 'UDP datagrams dropped by the IKE sockets', 'invalid'],
  oversized: ['vpp_iked_udp_dropped_total', 'UDP datagrams dropped by the IKE sockets', 'oversized'],
  sendErrors: ['vpp_iked_udp_send_errors_total', 'IKE messages that could not be sent'],
  notOurs: ['vpp_iked_udp_dropped_total', 'UDP datagrams dropped by the IKE sockets', 'not_ours'],
  shed: ['vpp_iked_udp_dropped_total', 'UDP datagrams dropped by the IKE sockets', 'queue_full'],
  notFromVpp: ['vpp_iked_udp_dropped_total', 'UDP datagrams dropped by the IKE sockets', 'not_from_vpp'],
  duplicates: ['vpp_iked_udp_dropped_total', 'UDP datagrams dropped by the IKE sockets', 'duplicate_init'],
  readerDropped: ['vpp_iked_udp_dropped_total', 'UDP datagrams dropped by the IKE sockets', 'reader_full'],
  noInterface: ['vpp_iked_punt_no_interface_total', 'IKE messages not sent: VPP has no interface with our address yet (punt transport)'],
  tooBig: ['vpp_iked_punt_too_big_total', 'IKE messages not sent: larger than the 2048 bytes of IP VPP takes from its punt socket'],
  sendBlocked: ['vpp_iked_punt_send_blocked_total', "datagrams to VPP that found its punt socket's queue full and waited for room"],
  sendQueueFull: ['vpp_iked_punt_send_dropped_total', "datagrams to VPP dropped while its punt socket's queue was full", 'queue_full'],
  sendTimeouts: ['vpp_iked_punt_send_dropped_total', "datagrams to VPP dropped while its punt socket's queue was full", 'timeout'],
  registrations: ['vpp_iked_punt_registrations_total', 'registrations with VPP punt (start and every VPP reconnect)'],
};


/** A label value as the exposition format quotes it. */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Writer that emits HELP/TYPE once per family. */
class Exposition {
  private readonly out: string[] = [];
  private readonly seen = new Set<string>();

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void {
    if (this.seen.has(name)) return;
    this.seen.add(name);
    this.out.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, value: number, labels?: Record<string, string>): void {
    let l = '';
    if (labels) {
      const parts: string[] = [];
      for (const [k, v] of Object.entries(labels)) parts.push(`${k}="${escapeLabel(v)}"`);
      l = `{${parts.join(',')}}`;
    }
    this.out.push(`${name}${l} ${formatValue(value)}`);
  }

  one(name: string, type: 'counter' | 'gauge', help: string, value: number, labels?: Record<string, string>): void {
    this.family(name, type, help);
    this.sample(name, value, labels);
  }

  text(): string {
    return this.out.join('\n') + '\n';
  }
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The whole exposition. Costs O(number of metrics), independent of the number of SAs. */
export function renderMetrics(src: MetricsSource): string {
  const x = new Exposition();
  const d = src.daemon;
  x.one('vpp_iked_build_info', 'gauge', 'version of vpp-iked and Node.js (value is always 1)', 1, { version: d.version, node: process.version });
  x.one('process_start_time_seconds', 'gauge', 'start time of the process since the Unix epoch in seconds', d.startTime);
  x.one('process_resident_memory_bytes', 'gauge', 'resident memory size in bytes', process.memoryUsage.rss());
  const cpu = process.cpuUsage();
  x.one('process_cpu_seconds_total', 'counter', 'user and system CPU time spent in seconds', (cpu.user + cpu.system) / 1e6);

  const w = src.engine.workers;
  if (w) {
    x.one('vpp_iked_crypto_workers', 'gauge', 'worker threads computing the key exchange of IKE_SA_INIT requests (daemon.workers)', w.threads);
    x.one('vpp_iked_crypto_jobs_total', 'counter', 'IKE_SA_INIT key exchanges handed to the worker threads', w.jobs);
    x.one('vpp_iked_crypto_jobs_pending', 'gauge', 'IKE_SA_INIT key exchanges waiting for a worker thread', w.pending);
    x.one('vpp_iked_crypto_worker_restarts_total', 'counter', 'worker threads replaced after they exited', w.worker_restarts);
  }

  // SA gauges (kept current by the engine on every state change)
  const g = src.engine.gauges;
  x.family('vpp_iked_ike_sas', 'gauge', 'IKE SAs by state (strongSwan state names)');
  for (const [state, n] of Object.entries(g.ikeByState)) x.sample('vpp_iked_ike_sas', n, { state });
  x.one('vpp_iked_ike_sas_half_open', 'gauge', 'IKE SAs not yet authenticated', src.engine.table.halfOpenCount);
  x.one('vpp_iked_ike_sa_limit', 'gauge', 'capacity of the IKE SA table (daemon.ike_sa_limit)', src.engine.table.limit);
  x.one('vpp_iked_child_sas', 'gauge', 'CHILD SAs installed', g.childSas);

  // engine counters: every statistic, named from the table above or from its key
  const stats = src.engine.stats as unknown as Record<string, number>;
  for (const [k, v] of Object.entries(stats)) {
    const known = (ENGINE_COUNTERS as Record<string, readonly [string, string, string?] | undefined>)[k];
    const [name, help, reason] = known ?? [`vpp_iked_${snake(k)}_total`, `engine statistic ${k}`];
    x.family(name, 'counter', help);
    x.sample(name, v, reason !== undefined ? { reason } : undefined);
  }
  const drops = src.engine.fragmentDrops;
  if (drops) {
    const name = 'vpp_iked_ike_fragments_dropped_total';
    x.family(name, 'counter', 'received IKE fragments (RFC 7383) dropped, by reason');
    for (const [reason, v] of Object.entries(drops)) x.sample(name, v, { reason });
  }
  if (src.engine.reassemblyBytes !== undefined) {
    x.one('vpp_iked_ike_reassembly_bytes', 'gauge', 'decrypted bytes of incomplete IKE fragment sets held', src.engine.reassemblyBytes);
  }

  if (src.transport) {
    for (const [k, v] of Object.entries(src.transport.stats)) {
      const known = TRANSPORT_COUNTERS[k];
      if (known) {
        x.family(known[0], 'counter', known[1]);
        x.sample(known[0], v, known[2] !== undefined ? { reason: known[2] } : undefined);
      } else x.one(`vpp_iked_udp_${snake(k)}_total`, 'counter', `UDP transport statistic ${k}`, v);
    }
  }

  // dataplane: calls, errors and latency per operation
  const dp = src.dataplane;
  x.one('vpp_iked_dataplane_info', 'gauge', 'the dataplane in use (value is always 1)', 1, { dataplane: dp.name });
  x.one('vpp_iked_dataplane_in_flight', 'gauge', 'dataplane operations running', dp.inFlight);
  x.family('vpp_iked_dataplane_calls_total', 'counter', 'dataplane operations by operation');
  for (const op of DATAPLANE_OPS) x.sample('vpp_iked_dataplane_calls_total', dp.ops[op].calls, { op });
  x.family('vpp_iked_dataplane_errors_total', 'counter', 'dataplane operations that failed, by operation');
  for (const op of DATAPLANE_OPS) x.sample('vpp_iked_dataplane_errors_total', dp.ops[op].errors, { op });
  const h = 'vpp_iked_dataplane_call_duration_seconds';
  x.family(h, 'histogram', 'time a dataplane operation took, by operation');
  for (const op of DATAPLANE_OPS) {
    const s = dp.ops[op];
    let cum = 0;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      cum += s.buckets[i]!;
      x.sample(`${h}_bucket`, cum, { op, le: String(LATENCY_BUCKETS[i]) });
    }
    cum += s.buckets[LATENCY_BUCKETS.length]!;
    x.sample(`${h}_bucket`, cum, { op, le: '+Inf' });
    x.sample(`${h}_sum`, s.sum, { op });
    x.sample(`${h}_count`, cum, { op });
  }

  if (src.vpp) {
    x.one('vpp_iked_vpp_connected', 'gauge', '1 while connected to the VPP binary API, else 0', src.vpp.connected ? 1 : 0);
    x.one('vpp_iked_vpp_disconnects_total', 'counter', 'times the VPP API connection was lost', src.vpp.disconnects);
  }

  x.one('vpp_iked_config_connections', 'gauge', 'connections in the running configuration', d.connections);
  x.family('vpp_iked_config_reloads_total', 'counter', 'configuration reloads by result');
  x.sample('vpp_iked_config_reloads_total', d.reloadsOk, { result: 'ok' });
  x.sample('vpp_iked_config_reloads_total', d.reloadsRefused, { result: 'refused' });
  x.one('vpp_iked_config_last_reload_successful', 'gauge', '0 when the last reload was refused (the previous configuration runs), else 1', d.lastReloadOk ? 1 : 0);
  if (d.certificates !== undefined) {
    x.one('vpp_iked_certificates', 'gauge', 'certificates loaded from the configuration (local certs, cacerts)', d.certificates);
    x.one('vpp_iked_certificates_expiring', 'gauge', 'loaded certificates that expire within 30 days or have expired', d.certificatesExpiring ?? 0);
  }
  return x.text();
}

/** "127.0.0.1:9464" or "[::1]:9464" → host and port (as daemon.metrics accepts them). */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:([0-9]{1,5})$/.exec(s) ?? /^([^:]+):([0-9]{1,5})$/.exec(s);
  if (!m || Number(m[2]) > 65535) throw new Error(`'${s}' is not ADDRESS:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** node:http server for GET /metrics. */
export class MetricsServer {
  readonly address: string;
  private readonly render: () => string;
  private readonly log: MetricsLog;
  private server: http.Server | undefined;
  scrapes = 0;

  constructor(address: string, render: () => string, log: MetricsLog) {
    this.address = address;
    this.render = render;
    this.log = log;
  }

  /** Binds the address; rejects with a message naming it when that fails. */
  async start(): Promise<void> {
    const { host, port } = parseHostPort(this.address);
    const server = http.createServer((req, res) => this.handle(req, res));
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    server.keepAliveTimeout = 5_000;
    server.maxHeadersCount = 50;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(new Error(`cannot serve metrics on ${this.address}: ${e.message}`));
      server.once('error', onError);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', onError);
        server.on('error', (e) => this.log.warn({ err: e.message }, 'metrics server error'));
        resolve();
      });
    });
    this.server = server;
    this.log.info({ metrics: `http://${this.address}/metrics` }, 'serving metrics');
  }

  /** The bound port (differs from the configured one only when that was 0). */
  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    let body: string;
    try {
      body = this.render();
    } catch (e) {
      this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'rendering metrics failed');
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('internal error\n');
      return;
    }
    this.scrapes++;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

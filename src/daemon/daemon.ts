/**
 * The daemon shell: composes config, logs, scheduler, dataplane, engine, IKE transport and the
 * control socket; handles reload and graceful stop. No protocol logic lives here.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { autoWorkers } from '../ikev2/crypto/pool.ts';
import type { Logger } from 'pino';
import type { Config } from '../config/types.ts';
import { loadConfig } from '../config/load.ts';
import { RealScheduler } from '../common/clock.ts';
import { Engine, type EngineEvent } from '../ikev2/engine/engine.ts';
import { UdpTransport } from '../net/udp.ts';
import type { IkeTransport } from '../net/transport.ts';
import type { VppClient } from '../vpp/client.ts';
import type { VppDataplane } from '../dataplane/vpp/index.ts';
import type { Dataplane } from '../dataplane/types.ts';
import { MemoryDataplane } from '../dataplane/memory.ts';
import { listSasHandler } from '../control/commands.ts';
import { ControlServer, type Handler, type Reply } from '../control/server.ts';
import { certView, ikeView, statsView, type WallTime } from '../control/views.ts';
import { snakeKeys } from '../common/text.ts';
import { EXPIRY_WARNING_DAYS, expiringCerts, NO_CREDENTIALS } from '../config/credentials.ts';
import { createLogs, isLevel, SUBSYSTEMS, type Logs, type Subsystem } from '../log/logger.ts';
import type { IkeSa } from '../ikev2/sa/ike-sa.ts';
import { SdNotify } from './sd-notify.ts';
import { InstrumentedDataplane, connectionOf } from './instrumented-dataplane.ts';
import { MetricsServer, renderMetrics } from './metrics.ts';
import { diffConnections, settingChanges, type ReloadReport } from './reload.ts';
import { BurstCompactor, limitHeapGrowth } from './heap.ts';

/**
 * The crypto worker threads start when this many IKE_SA_INIT requests come within one second: a
 * daemon with a few peers never pays for them (about 25 MB each), a burst of new peers gets them.
 */
const WORKERS_START_AT = 16;
/** ...and stop again after this long without one, giving their memory back once the burst is over. */
const WORKERS_STOP_AFTER_MS = 5000;

export interface DaemonOptions {
  configPath: string;
  config: Config;
  logLevel?: string;
  /**
   * V8's committed heap (process.memoryUsage().heapTotal) before `config` was loaded: when loading
   * it grew the heap by much, the heap is compacted once at start (heap.ts).
   */
  heapBeforeConfig?: number;
  /** systemd notification (default: from NOTIFY_SOCKET in the environment; a no-op without it). */
  notify?: SdNotify;
}

export type { ReloadReport } from './reload.ts';

/** This file runs from src/daemon/ or, compiled, from dist/src/daemon/. */
const COMPILED = import.meta.url.endsWith('.js');

const VERSION = ((): string => {
  try {
    const pkg = new URL(COMPILED ? '../../../package.json' : '../../package.json', import.meta.url);
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();

/** How long a reload waits for a changed connection's old IKE SAs to be deleted before starting it again. */
const REPLACE_WAIT_MS = 15_000;

export class Daemon {
  readonly logs: Logs;
  private readonly log: Logger;
  private config: Config;
  private readonly configPath: string;
  readonly sched = new RealScheduler();
  dataplane!: Dataplane;
  engine!: Engine;
  transport!: IkeTransport;
  /** The VPP API connection, when the dataplane is VPP (shared by the punt transport). */
  private vppClient: VppClient | undefined;
  private vppBackEnd: VppDataplane | undefined;
  control!: ControlServer;
  private readonly monitors = new Set<Reply>();
  private housekeeping: NodeJS.Timeout | undefined;
  private readonly compactor = new BurstCompactor();
  private readonly heapBeforeConfig: number | undefined;
  private stopping: Promise<void> | undefined;
  readonly notify: SdNotify;
  /** The dataplane as the engine sees it: counted, timed, and able to keep SAs on stop. */
  instrumented: InstrumentedDataplane | undefined;
  metrics: MetricsServer | undefined;
  private readonly startTime = Date.now() / 1000;
  private readonly counters = { reloadsOk: 0, reloadsRefused: 0, lastReloadOk: true, vppDisconnects: 0 };
  /** Reloads run one after the other. */
  private reloadChain: Promise<unknown> = Promise.resolve();
  /** Timers of reloads waiting for replaced IKE SAs to go. */
  private readonly replaceWaits = new Set<NodeJS.Timeout>();

  constructor(opts: DaemonOptions) {
    this.configPath = opts.configPath;
    this.config = opts.config;
    this.logs = createLogs(opts.logLevel ?? opts.config.daemon.logLevel);
    this.log = this.logs.get('daemon');
    this.notify = opts.notify ?? new SdNotify({ log: this.log });
    this.heapBeforeConfig = opts.heapBeforeConfig;
  }

  /** The configuration in effect (replaced by a successful reload). */
  get runningConfig(): Config {
    return this.config;
  }

  private wall: WallTime = (t) => (t ? new Date(Date.now() - (this.sched.now() - t)).toISOString() : null);

  async start(): Promise<void> {
    const cfg = this.config;
    // a burst of new peers leaves less garbage in the old generation (heap.ts)
    limitHeapGrowth();
    this.notify.status(cfg.daemon.dataplane === 'vpp' ? `connecting to VPP at ${cfg.vpp.socket}` : 'starting');
    const backEnd = await this.createDataplane(cfg);
    this.instrumented = new InstrumentedDataplane(backEnd);
    this.dataplane = this.instrumented;
    const vpp = connectionOf(backEnd);
    vpp?.on('disconnected', () => {
      this.counters.vppDisconnects++;
      if (!this.stopping) this.notify.status(`VPP connection lost; reconnecting to ${cfg.vpp.socket}`);
    });
    vpp?.on('connected', () => {
      if (!this.stopping) this.notify.status(this.statusLine());
    });
    this.transport = await this.createTransport(cfg);
    this.engine = new Engine({
      scheduler: this.sched,
      random: randomBytes,
      send: (p) => this.transport.send(p),
      dataplane: this.dataplane,
      log: this.logs.get('ike'),
      port: cfg.daemon.port,
      portNatT: cfg.daemon.portNatT,
      ikeSaLimit: cfg.daemon.ikeSaLimit,
      retransmitTimeout: cfg.daemon.retransmitTimeout,
      retransmitBase: cfg.daemon.retransmitBase,
      retransmitTries: cfg.daemon.retransmitTries,
      cookieThreshold: cfg.daemon.cookieThreshold,
      blockThreshold: cfg.daemon.blockThreshold,
      initLimitHalfOpen: cfg.daemon.initLimitHalfOpen,
      startLimitHalfOpen: cfg.daemon.startLimitHalfOpen,
      keepAlive: cfg.daemon.keepAlive,
      trafficPoll: cfg.daemon.trafficPoll,
      fragmentSize: cfg.daemon.fragmentSize,
      fragmentSizeV4: cfg.daemon.fragmentSizeV4,
      fragmentSizeV6: cfg.daemon.fragmentSizeV6,
      maxDatagram: this.transport.maxDatagram,
      onEvent: (e) => this.onEvent(e),
      localAddressFor: (r) => this.transport.localAddressFor(r),
      workers: cfg.daemon.workers === 'auto' ? autoWorkers(availableParallelism()) : cfg.daemon.workers,
      workersStartAt: WORKERS_START_AT,
      workersStopAfterMs: WORKERS_STOP_AFTER_MS,
    });
    this.engine.setConfig(cfg);
    this.warnExpiring(cfg);
    if (this.heapBeforeConfig !== undefined) this.compactAfterLoad(this.heapBeforeConfig);
    await this.transport.start();
    this.control = new ControlServer(cfg.daemon.controlSocket, this.handlers(), this.logs.get('control'));
    await this.control.start();
    if (cfg.daemon.metrics) {
      const m = new MetricsServer(cfg.daemon.metrics, () => renderMetrics(this.metricsSource()), this.log);
      await m.start();
      this.metrics = m;
    }
    this.housekeeping = setInterval(() => this.housekeep(), 10_000);
    this.housekeeping.unref();
    this.log.info(
      { config: this.configPath, connections: cfg.connections.length, dataplane: this.dataplane.name, workers: this.engine.workers.threads, control: cfg.daemon.controlSocket, version: VERSION, code: COMPILED ? 'compiled' : 'typescript' },
      'vpp-iked started',
    );
    // UDP sockets are bound and the dataplane is connected: ready.
    this.notify.ready(this.statusLine());
    this.notify.startWatchdog();
    this.engine.startConnections();
  }

  /** One line for systemd's STATUS= (shown by systemctl status). */
  private statusLine(): string {
    const g = this.engine?.gauges;
    const sas = g ? g.ikeByState.ESTABLISHED + g.ikeByState.REKEYING : 0;
    return `${this.config.connections.length} connections, ${sas} IKE SAs established; dataplane ${this.dataplane?.name ?? this.config.daemon.dataplane}`;
  }

  /** vpp_connected / vpp_disconnects for `stats` when the dataplane talks to VPP. */
  private vppConnectionStats(): Record<string, unknown> {
    const vpp = this.instrumented ? connectionOf(this.instrumented.inner) : undefined;
    return vpp ? { vpp_connected: vpp.connected, vpp_disconnects: this.counters.vppDisconnects } : {};
  }

  private metricsSource(): Parameters<typeof renderMetrics>[0] {
    const backEnd = this.instrumented!.inner;
    const vpp = connectionOf(backEnd);
    const counters = this.counters;
    return {
      engine: this.engine,
      dataplane: this.instrumented!,
      transport: this.transport,
      ...(vpp ? { vpp: { connected: vpp.connected, disconnects: counters.vppDisconnects } } : {}),
      daemon: {
        version: VERSION,
        startTime: this.startTime,
        connections: this.config.connections.length,
        reloadsOk: counters.reloadsOk,
        reloadsRefused: counters.reloadsRefused,
        lastReloadOk: counters.lastReloadOk,
        certificates: this.config.credentials?.certs.length ?? 0,
        certificatesExpiring: expiringCerts(this.config.credentials ?? NO_CREDENTIALS, new Date()).length,
      },
    };
  }

  /** UDP sockets, or VPP's punt socket (loaded only then, with the VPP client it needs). */
  private async createTransport(cfg: Config): Promise<IkeTransport> {
    const common = {
      listen: cfg.daemon.listen,
      port: cfg.daemon.port,
      portNatT: cfg.daemon.portNatT,
      log: this.logs.get('net'),
      onPacket: (l: { addr: string; port: number }, r: { addr: string; port: number }, d: Buffer) => this.engine.receive(l, r, d),
    };
    if (cfg.daemon.transport === 'udp') return new UdpTransport({ ...common, recvBufferSize: cfg.daemon.recvBufferSize });
    if (!this.vppClient || !this.vppBackEnd) throw new Error('transport = punt needs dataplane = vpp');
    const { PuntTransport } = await import('../net/punt-transport.ts');
    const punt = new PuntTransport({ ...common, client: this.vppClient, socketPath: cfg.vpp.puntSocket, receiveThread: cfg.vpp.puntReader === 'thread', registerOnReconnect: false });
    // After a VPP restart: punt registrations first, then the SAs (IKE on 4500 must reach us again).
    this.vppBackEnd.setBeforeResync(() => punt.registerOrRetry());
    return punt;
  }

  private async createDataplane(cfg: Config): Promise<Dataplane> {
    // nothing in the daemon reads the memory dataplane's event log: keep only the latest events
    if (cfg.daemon.dataplane === 'memory') return new MemoryDataplane({ policyInterface: cfg.vpp.policyInterface, maxEvents: 1000 });
    const { VppDataplane } = await import('../dataplane/vpp/index.ts');
    const dp = new VppDataplane({
      socket: cfg.vpp.socket,
      log: this.logs.get('vpp'),
      ...(cfg.vpp.unnumberedInterface !== undefined ? { unnumberedInterface: cfg.vpp.unnumberedInterface } : {}),
      ...(cfg.vpp.policyInterface !== undefined ? { policyInterface: cfg.vpp.policyInterface } : {}),
    });
    this.vppClient = dp.client;
    this.vppBackEnd = dp;
    await dp.start();
    return dp;
  }

  private onEvent(e: EngineEvent): void {
    if (this.monitors.size === 0) return;
    const base = { type: e.type, ike_id: e.sa.id, name: e.sa.conn?.name ?? null, time: new Date().toISOString() };
    const ev =
      e.type === 'ike-up' || e.type === 'ike-down'
        ? { ...base, remote: e.sa.remote.addr, ...(e.type === 'ike-down' ? { reason: e.reason } : {}) }
        : e.type === 'ike-rekeyed'
          ? { ...base, remote: e.sa.remote.addr, old_ike_id: e.old.id }
          : e.type === 'child-rekeyed'
            ? { ...base, child_id: e.child.id, old_child_id: e.old.id, child: e.child.name }
            : { ...base, child_id: e.child.id, child: e.child.name, ...(e.type === 'child-down' ? { reason: e.reason } : {}) };
    for (const m of this.monitors) m.event(ev);
  }

  /**
   * Re-reads the config file (SIGHUP, `vpp-ikectl reload`). A file with errors is refused: the running
   * config stays and the FILE:LINE:COL errors are logged and thrown. Otherwise connections whose
   * effective config (PSKs included) is the same keep their SAs untouched; removed ones are deleted
   * (peers told, dataplane cleaned); changed ones are deleted and, with start_action = start, brought
   * up again once the old IKE SAs are gone; added ones with start_action = start come up.
   */
  reload(): Promise<ReloadReport> {
    const run = this.reloadChain.then(() => this.reloadNow());
    this.reloadChain = run.catch(() => {});
    return run;
  }

  private async reloadNow(): Promise<ReloadReport> {
    if (this.stopping) throw new Error('stopping; reload ignored');
    this.notify.reloading('reloading configuration');
    const heapBefore = process.memoryUsage().heapTotal;
    const { config, errors } = loadConfig(this.configPath);
    if (!config) {
      const msg = errors.map((e) => e.toString()).join('\n');
      this.counters.reloadsRefused++;
      this.counters.lastReloadOk = false;
      this.log.error({ errors: errors.length, config: this.configPath }, `reload refused, keeping the running config:\n${msg}`);
      this.notify.ready(`reload refused (${errors.length} error(s) in ${this.configPath}); running the previous config. ${this.statusLine()}`);
      throw new Error(`config has errors, keeping the running one:\n${msg}`);
    }
    const old = this.config;
    const oldIndex = this.engine.config;
    // One pass over the table: the IKE SAs of each connection.
    const byName = new Map<string, IkeSa[]>();
    for (const sa of this.engine.table.values()) {
      const name = sa.conn?.name;
      if (!name || sa.dead) continue;
      const l = byName.get(name);
      if (l) l.push(sa);
      else byName.set(name, [sa]);
    }
    this.config = config;
    this.engine.setConfig(config);
    this.warnExpiring(config);
    const newIndex = this.engine.config;
    const diff = diffConnections(
      old,
      config,
      (l, r) => oldIndex.psk(l, r),
      (l, r) => newIndex.psk(l, r),
      (name) => (byName.get(name) ?? []).filter((sa) => sa.localId !== '' && sa.remoteId !== ''),
    );
    const settings = settingChanges(old, config);
    const report: ReloadReport = { ...diff, restart_required: settings.restart, warnings: [] };

    const fresh = new Map(config.connections.map((c) => [c.name, c]));
    for (const name of diff.unchanged) {
      // Same settings: the SAs stay as they are and refer to the new (equal) config objects.
      const conn = fresh.get(name)!;
      for (const sa of byName.get(name) ?? []) {
        sa.conn = conn;
        for (const child of sa.children) {
          const cfg = conn.children.find((x) => x.name === child.name);
          if (cfg) Object.assign(child, { cfg });
        }
      }
    }
    for (const name of diff.removed) {
      this.engine.forgetConnection(name);
      for (const sa of byName.get(name) ?? []) this.engine.deleteIke(sa);
    }
    const replacing: IkeSa[] = [];
    for (const name of diff.changed) {
      this.engine.forgetConnection(name);
      for (const sa of byName.get(name) ?? []) {
        this.engine.deleteIke(sa);
        replacing.push(sa);
      }
    }
    this.engine.startConnections(new Set(diff.added));
    this.restartWhenGone(replacing, diff.changed);

    for (const key of settings.live) {
      if (key === 'daemon.logLevel') this.logs.setLevel(config.daemon.logLevel);
      if (key === 'daemon.metrics') {
        const w = await this.replaceMetrics(config.daemon.metrics);
        if (w) report.warnings.push(w);
      }
    }
    this.counters.reloadsOk++;
    this.counters.lastReloadOk = true;
    this.compactAfterLoad(heapBefore);
    this.log.info(
      { ...report, added: report.added.length, removed: report.removed.length, changed: report.changed.length, unchanged: report.unchanged.length, names: { added: report.added, removed: report.removed, changed: report.changed } },
      'config reloaded',
    );
    if (report.restart_required.length > 0) {
      this.log.warn({ settings: report.restart_required }, 'these settings changed but take effect only after a restart');
    }
    this.notify.ready(this.statusLine());
    return report;
  }

  private localCertView(name: string, auth: string): { cert?: string | null } {
    if (auth !== 'pubkey') return {};
    return { cert: this.config.credentials?.local.get(name)?.cert.subject ?? null };
  }

  private remoteCertView(name: string, auth: string): { cacerts?: string[] } {
    if (auth !== 'pubkey') return {};
    return { cacerts: (this.config.credentials?.remote.get(name)?.cas ?? []).map((c) => c.subject) };
  }

  /** One warning per loaded certificate that expires within 30 days (or has expired). */
  private warnExpiring(cfg: Config): void {
    for (const { entry, days } of expiringCerts(cfg.credentials ?? NO_CREDENTIALS, new Date())) {
      this.log.warn(
        { subject: entry.cert.subject, file: entry.file, not_after: entry.cert.notAfter.toISOString(), days_left: days, connections: entry.uses.map((u) => u.connection) },
        days < 0 ? 'certificate has expired' : `certificate expires within ${EXPIRY_WARNING_DAYS} days`,
      );
    }
  }

  /** Starts the changed connections again once their old IKE SAs are gone (or after REPLACE_WAIT_MS). */
  private restartWhenGone(old: IkeSa[], names: string[]): void {
    if (names.length === 0) return;
    const until = Date.now() + REPLACE_WAIT_MS;
    const check = (): void => {
      if (this.stopping) return;
      if (old.some((sa) => !sa.dead) && Date.now() < until) {
        const t = setTimeout(() => {
          this.replaceWaits.delete(t);
          check();
        }, 50);
        this.replaceWaits.add(t);
        return;
      }
      // A replacement may already be on its way (a retry the engine scheduled, or the peer): skip those.
      const busy = new Set<string>();
      for (const sa of this.engine.table.values()) if (!sa.dead && sa.conn && !old.includes(sa)) busy.add(sa.conn.name);
      this.engine.startConnections(new Set(names.filter((n) => !busy.has(n))));
    };
    check();
  }

  /** Moves the metrics endpoint to a new address (or turns it off); returns a warning when that fails. */
  private async replaceMetrics(addr: string | undefined): Promise<string | undefined> {
    await this.metrics?.close();
    this.metrics = undefined;
    if (!addr) return undefined;
    const m = new MetricsServer(addr, () => renderMetrics(this.metricsSource()), this.log);
    try {
      await m.start();
      this.metrics = m;
      return undefined;
    } catch (e) {
      const msg = (e as Error).message;
      this.log.error({ err: msg }, 'metrics endpoint not moved');
      return msg;
    }
  }

  private handlers(): Map<string, Handler> {
    const h = new Map<string, Handler>();
    const wall = this.wall;
    h.set('list-sas', listSasHandler(() => this.engine.table, wall, (ids) => this.dataplane.counters(ids)));
    h.set('list-certs', async () => {
      const now = new Date();
      return (this.config.credentials?.certs ?? []).map((e) => certView(e, now));
    });
    h.set('list-conns', async () =>
      this.config.connections.map((c) => ({
        name: c.name,
        local_addrs: c.localAddrs,
        remote_addrs: c.remoteAddrs,
        local_port: c.localPort,
        remote_port: c.remotePort,
        // with certificates: our certificate's subject, the subjects of the CAs the peer's must chain to
        local: { auth: c.local.auth, id: c.local.id || null, ...this.localCertView(c.name, c.local.auth) },
        remote: { auth: c.remote.auth, id: c.remote.id || null, ...this.remoteCertView(c.name, c.remote.auth) },
        children: c.children.map((ch) => ({
          name: ch.name,
          local_ts: ch.localTs,
          remote_ts: ch.remoteTs,
          mode: ch.mode,
          start_action: ch.startAction,
          vpp_mode: ch.vppMode,
        })),
      })),
    );
    h.set('initiate', async (args) => {
      const ike = str(args.ike, 'ike');
      const child = typeof args.child === 'string' ? args.child : undefined;
      const sa = await this.engine.initiate(ike, child);
      if (sa.authChildError && (!child || sa.authChild?.name === child)) {
        throw new Error(`IKE SA #${sa.id} is up, but CHILD_SA '${sa.authChild?.name}' failed: ${sa.authChildError}`);
      }
      // A requested child on an existing IKE SA: answer once the engine has installed it or given up.
      if (child) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`CHILD_SA '${child}' not established within 30 s`)), 30_000);
        });
        try {
          await Promise.race([this.engine.waitForChild(sa, child), timeout]);
        } finally {
          clearTimeout(timer);
        }
      }
      return ikeView(sa, wall);
    });
    h.set('terminate', async (args) => {
      if (args.child_id !== undefined) {
        const id = Number(args.child_id);
        if (!this.engine.deleteChild(id)) throw new Error(`no CHILD_SA with id ${id}`);
        return { terminated: { child_id: id } };
      }
      let sas = [...this.engine.table.values()].filter((s) => !s.dead);
      if (args.ike_id !== undefined) sas = sas.filter((s) => s.id === Number(args.ike_id));
      else if (typeof args.ike === 'string') {
        sas = sas.filter((s) => s.conn?.name === args.ike);
        // a connection still waiting in the start queue is taken out of it: it does not start
        if (this.engine.forgetConnection(args.ike) && sas.length === 0) return { terminated: { ike_ids: [], start_cancelled: true } };
      } else throw new Error('terminate needs --ike, --ike-id or --child-id');
      if (sas.length === 0) throw new Error('no matching IKE SA');
      for (const sa of sas) this.engine.deleteIke(sa);
      return { terminated: { ike_ids: sas.map((s) => s.id) } };
    });
    h.set('rekey', async (args) => {
      if (args.child_id !== undefined) {
        const e = this.engine.findChild(Number(args.child_id));
        if (!e) throw new Error(`no CHILD_SA with id ${String(args.child_id)}`);
        this.engine.rekeyChild(e.sa, e.child);
        return { rekeying: { child_id: e.child.id } };
      }
      if (args.ike_id !== undefined) {
        const sa = this.engine.table.get(Number(args.ike_id));
        if (!sa || sa.dead) throw new Error(`no IKE SA with id ${String(args.ike_id)}`);
        if (!this.engine.rekeyIke(sa)) throw new Error(`IKE SA ${sa.id} is ${sa.state}, not ESTABLISHED`);
        return { rekeying: { ike_id: sa.id } };
      }
      throw new Error('rekey needs --ike-id or --child-id');
    });
    h.set('stats', async () =>
      statsView({
        ikeSas: this.engine.table.size,
        halfOpen: this.engine.table.halfOpenCount,
        ikeSaLimit: this.engine.table.limit,
        engine: this.engine.stats,
        fragmentDrops: this.engine.fragmentDrops,
        reassemblyBytes: this.engine.reassemblyBytes,
        transport: this.transport.stats,
        dataplane: this.dataplane.name,
        ops: this.instrumented?.ops ?? {},
        more: {
          ...this.vppConnectionStats(),
          reloads: { ok: this.counters.reloadsOk, refused: this.counters.reloadsRefused },
          log_lines_dropped: this.logs.dropped(),
          workers: this.engine.workers,
          starts: this.engine.starts,
          traffic: snakeKeys(this.engine.traffic),
          memory: { ...memoryView(), compactions: this.compactor.compactions },
        },
      }),
    );
    h.set('vpp-sas', async () => this.dataplane.dump());
    h.set('reload', async () => this.reload());
    h.set('log-level', async (args) => {
      const level = str(args.level, 'level');
      if (!isLevel(level)) throw new Error(`unknown log level '${level}'`);
      const sub = typeof args.subsystem === 'string' ? args.subsystem : undefined;
      if (sub && !(SUBSYSTEMS as readonly string[]).includes(sub)) throw new Error(`unknown subsystem '${sub}' (one of ${SUBSYSTEMS.join(', ')})`);
      this.logs.setLevel(level, sub as Subsystem | undefined);
      return this.logs.levels();
    });
    h.set('monitor', (_args, reply) => {
      this.monitors.add(reply);
      return new Promise((resolve) => reply.onClose(() => {
        this.monitors.delete(reply);
        resolve(null);
      }));
    });
    return h;
  }

  /**
   * Graceful stop within daemon.stop_timeout. With stop_action = delete every peer is sent a DELETE
   * (after the exchange of ours in flight, if any, for at most half the time) and the CHILD_SAs are
   * removed from the dataplane; with keep, peers are not told and the dataplane
   * keeps its SAs (the next start reconciles them). The daemon waits for the DELETEs to leave and the
   * removals to finish, but not past the deadline: what is left then is logged and abandoned.
   * Resolves once everything is closed; calling it again returns the same promise.
   */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  /** A configuration was loaded and indexed: give back what parsing it left behind (heap.ts). */
  private compactAfterLoad(heapBefore: number): void {
    const c = this.compactor.afterLoad(heapBefore);
    if (c) this.log.info({ heap_mb: mb(c.heap), rss_mb: mb(c.rss), ms: Math.round(c.ms) }, 'heap compacted after loading the configuration');
  }

  /** Every 10 s: the timer heap's stale entries go; after a burst of new IKE SAs, the JavaScript heap is compacted (heap.ts). */
  private housekeep(): void {
    this.engine.compactTimers();
    const c = this.compactor.tick(this.engine.stats.ikeEstablished);
    if (c) {
      this.log.info({ new_ike_sas: c.newSas, heap_mb: mb(c.heap), rss_mb: mb(c.rss), ms: Math.round(c.ms) }, 'heap compacted after a burst of new IKE SAs');
    }
  }

  private async stopNow(): Promise<void> {
    const t0 = Date.now();
    const { stopTimeout, stopAction } = this.config.daemon;
    const keep = stopAction === 'keep';
    // Leave a little of the budget for closing sockets and the dataplane connection.
    const budget = stopTimeout * 1000;
    const deadline = t0 + budget - Math.min(1000, budget / 5);
    const ikeSas = this.engine?.table.size ?? 0;
    const childSas = this.engine?.gauges.childSas ?? 0;
    this.log.info({ stop_action: stopAction, stop_timeout: stopTimeout, ike_sas: ikeSas, child_sas: childSas }, 'stopping');
    this.notify.stopping(keep ? 'stopping; SAs stay installed in the dataplane' : 'stopping; deleting SAs');
    if (this.housekeeping) clearInterval(this.housekeeping);
    for (const t of this.replaceWaits) clearTimeout(t);
    this.replaceWaits.clear();
    await this.control?.close();
    if (keep) this.instrumented?.keepInstalled();
    else this.transport?.stopping?.(deadline - Date.now());
    const drained = this.engine?.shutdown(!keep);
    // IKE SAs with an exchange of ours in flight send their Delete once it completes (the peer
    // expects that message ID first), for at most half of stop_timeout.
    if (drained && !(await within(drained, Math.min(deadline, t0 + budget / 2) - Date.now()))) this.engine.abandonShutdown();
    await this.engine?.close();
    let complete = true;
    if (this.transport) complete = await this.transport.flush(deadline - Date.now());
    if (this.instrumented && this.instrumented.inFlight > 0) {
      const left = deadline - Date.now();
      complete = (await within(this.instrumented.idle(), left)) && complete;
    }
    if (!complete) {
      this.log.warn(
        { pending_dataplane_operations: this.instrumented?.inFlight ?? 0, stop_timeout: stopTimeout },
        'stop deadline reached: not everything was sent or removed; the next start removes stale SAs from the dataplane',
      );
    }
    await this.metrics?.close();
    // Punt registrations are removed from VPP here: bounded too, VPP may not answer.
    if (this.transport) await within(this.transport.close(), Math.max(200, t0 + budget - Date.now()));
    const closeLeft = Math.max(200, t0 + budget - Date.now());
    const closing = (this.dataplane?.close() ?? Promise.resolve()).catch((e: unknown) => {
      this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'closing the dataplane failed');
    });
    const closed = await within(closing, closeLeft);
    if (!closed) this.log.warn('the dataplane did not close in time');
    this.sched.stop();
    this.notify.stopWatchdog();
    this.log.info(
      {
        stop_action: stopAction,
        ike_sas: ikeSas,
        child_sas: childSas,
        dataplane_removes: this.instrumented?.ops.remove.calls ?? 0,
        kept_in_dataplane: this.instrumented?.keptRemoves ?? 0,
        complete,
        elapsed_ms: Date.now() - t0,
      },
      'stopped',
    );
    await this.notify.flush(1000);
  }
}

/** True when `p` settles within `ms`, false when the time runs out first (the timer is cleared either way). */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), Math.max(0, ms));
    p.then(
      () => {
        clearTimeout(t);
        resolve(true);
      },
      () => {
        clearTimeout(t);
        resolve(true);
      },
    );
  });
}

function str(v: unknown, name: string): string {
  if (typeof v !== 'string' || !v) throw new Error(`missing --${name}`);
  return v;
}

/** The process's memory in bytes (`stats`): resident set, the JavaScript heap, memory outside it. */
function memoryView(): Record<string, number> {
  const m = process.memoryUsage();
  return { rss: m.rss, heap_used: m.heapUsed, heap_total: m.heapTotal, external: m.external, array_buffers: m.arrayBuffers };
}

/** Bytes as MB with one decimal, for log lines. */
function mb(n: number): number {
  return Math.round(n / 104857.6) / 10;
}

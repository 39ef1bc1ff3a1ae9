/**
 * The daemon shell: composes config, logs, scheduler, dataplane, engine, UDP transport and the
 * control socket; handles reload and graceful stop. No protocol logic lives here.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config, ConnectionConfig } from '../config/types.ts';
import { loadConfig } from '../config/load.ts';
import { RealScheduler } from '../common/clock.ts';
import { Engine, type EngineEvent } from '../ikev2/engine.ts';
import { UdpTransport } from '../net/udp.ts';
import type { Dataplane } from '../dataplane/types.ts';
import { MemoryDataplane } from '../dataplane/memory.ts';
import { ControlServer, type Handler, type Reply } from '../control/server.ts';
import { ikeView, type WallTime } from '../control/views.ts';
import { createLogs, isLevel, SUBSYSTEMS, type Logs, type Subsystem } from '../log/logger.ts';

export interface DaemonOptions {
  configPath: string;
  config: Config;
  logLevel?: string;
}

export interface ReloadReport {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

export class Daemon {
  readonly logs: Logs;
  private readonly log: Logger;
  private config: Config;
  private readonly configPath: string;
  readonly sched = new RealScheduler();
  dataplane!: Dataplane;
  engine!: Engine;
  transport!: UdpTransport;
  control!: ControlServer;
  private readonly monitors = new Set<Reply>();
  private housekeeping: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(opts: DaemonOptions) {
    this.configPath = opts.configPath;
    this.config = opts.config;
    this.logs = createLogs(opts.logLevel ?? opts.config.daemon.logLevel);
    this.log = this.logs.get('daemon');
  }

  private wall: WallTime = (t) => (t ? new Date(Date.now() - (this.sched.now() - t)).toISOString() : null);

  async start(): Promise<void> {
    const cfg = this.config;
    this.dataplane = await this.createDataplane(cfg);
    this.transport = new UdpTransport({
      listen: cfg.daemon.listen,
      port: cfg.daemon.port,
      portNatT: cfg.daemon.portNatT,
      log: this.logs.get('net'),
      onPacket: (l, r, d) => this.engine.receive(l, r, d),
    });
    this.engine = new Engine({
      scheduler: this.sched,
      random: randomBytes,
      send: (p) => this.transport.send(p),
      dataplane: this.dataplane,
      log: this.logs.get('ike'),
      port: cfg.daemon.port,
      portNatT: cfg.daemon.portNatT,
      ikeSaLimit: cfg.daemon.ikeSaLimit,
      onEvent: (e) => this.onEvent(e),
      localAddressFor: (r) => this.transport.localAddressFor(r),
    });
    this.engine.setConfig(cfg);
    await this.transport.start();
    this.control = new ControlServer(cfg.daemon.controlSocket, this.handlers(), this.logs.get('control'));
    await this.control.start();
    this.housekeeping = setInterval(() => this.engine.compactTimers(), 10_000);
    this.housekeeping.unref();
    this.log.info(
      { config: this.configPath, connections: cfg.connections.length, dataplane: this.dataplane.name, control: cfg.daemon.controlSocket },
      'vpp-iked started',
    );
    this.engine.startConnections();
  }

  private async createDataplane(cfg: Config): Promise<Dataplane> {
    if (cfg.daemon.dataplane === 'memory') return new MemoryDataplane();
    const { VppDataplane } = await import('../dataplane/vpp.ts');
    const dp = new VppDataplane({
      socket: cfg.vpp.socket,
      log: this.logs.get('vpp'),
      ...(cfg.vpp.unnumberedInterface !== undefined ? { unnumberedInterface: cfg.vpp.unnumberedInterface } : {}),
      ...(cfg.vpp.policyInterface !== undefined ? { policyInterface: cfg.vpp.policyInterface } : {}),
    });
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

  /** Re-read the config file; on errors keep the running config and report them. */
  reload(): ReloadReport {
    const { config, errors } = loadConfig(this.configPath);
    if (!config) {
      const msg = errors.map((e) => e.toString()).join('\n');
      this.log.error({ errors: errors.length }, `reload refused, keeping the running config:\n${msg}`);
      throw new Error(`config has errors, keeping the running one:\n${msg}`);
    }
    const old = new Map(this.config.connections.map((c) => [c.name, c]));
    const report: ReloadReport = { added: [], removed: [], changed: [], unchanged: [] };
    for (const c of config.connections) {
      const o = old.get(c.name);
      if (!o) report.added.push(c.name);
      else if (connKey(o) === connKey(c)) report.unchanged.push(c.name);
      else report.changed.push(c.name);
    }
    for (const name of old.keys()) if (!config.connections.some((c) => c.name === name)) report.removed.push(name);
    const fresh = new Map(config.connections.map((c) => [c.name, c]));
    this.config = config;
    this.engine.setConfig(config);
    for (const sa of [...this.engine.table.values()]) {
      const name = sa.conn?.name;
      if (!name) continue;
      if (report.removed.includes(name) || report.changed.includes(name)) {
        this.engine.forgetConnection(name);
        this.engine.deleteIke(sa);
      } else if (report.unchanged.includes(name)) {
        sa.conn = fresh.get(name);
        if (sa.conn) {
          for (const child of sa.children) {
            const cfg = sa.conn.children.find((x) => x.name === child.name);
            if (cfg) Object.assign(child, { cfg });
          }
        }
      }
    }
    this.engine.startConnections();
    this.log.info(report, 'config reloaded');
    return report;
  }

  private handlers(): Map<string, Handler> {
    const h = new Map<string, Handler>();
    const wall = this.wall;
    h.set('list-sas', async (args, reply) => {
      const name = typeof args.ike === 'string' ? args.ike : undefined;
      let n = 0;
      for (const sa of this.engine.table.values()) {
        if (name && sa.conn?.name !== name) continue;
        if (sa.dead) continue;
        await reply.item(ikeView(sa, wall));
        n++;
      }
      return { count: n };
    });
    h.set('list-conns', async () =>
      this.config.connections.map((c) => ({
        name: c.name,
        local_addrs: c.localAddrs,
        remote_addrs: c.remoteAddrs,
        local_port: c.localPort,
        remote_port: c.remotePort,
        local: { auth: c.local.auth, id: c.local.id || null },
        remote: { auth: c.remote.auth, id: c.remote.id || null },
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
      // Give a requested child a moment to come up on an existing IKE SA.
      if (child) {
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          const c = sa.children.find((x) => x.name === child && x.state === 'INSTALLED');
          if (c) return ikeView(sa, wall);
          if (sa.dead) throw new Error(`IKE SA ${sa.id} went down`);
          if (!sa.active && !sa.busy && sa.queue.length === 0 && Date.now() > deadline - 29_000) {
            const failed = !sa.children.some((x) => x.name === child);
            if (failed) throw new Error(`CHILD_SA '${child}' could not be established`);
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`CHILD_SA '${child}' not established within 30 s`);
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
        this.engine.forgetConnection(args.ike);
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
    h.set('stats', async () => ({
      ike_sas: this.engine.table.size,
      half_open: this.engine.table.halfOpenCount,
      ike_sa_limit: this.engine.table.limit,
      ...snake(this.engine.stats),
      transport: snake(this.transport.stats),
      dataplane: this.dataplane.name,
    }));
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

  /** Graceful stop: tell peers, clean the dataplane, close sockets. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info('stopping');
    if (this.housekeeping) clearInterval(this.housekeeping);
    this.engine?.shutdown(true);
    // Let the DELETE notifications leave and the dataplane removals finish.
    await new Promise((r) => setTimeout(r, 100));
    await this.control?.close();
    await this.transport?.close();
    await this.dataplane?.close();
    this.sched.stop();
    this.log.info('stopped');
  }
}

function str(v: unknown, name: string): string {
  if (typeof v !== 'string' || !v) throw new Error(`missing --${name}`);
  return v;
}

function snake(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`), v]));
}

/** Effective config of a connection, for reload diffs (source positions excluded). */
function connKey(c: ConnectionConfig): string {
  return JSON.stringify(c, (k, v: unknown) => (k === 'loc' ? undefined : Buffer.isBuffer(v) ? v.toString('hex') : v));
}

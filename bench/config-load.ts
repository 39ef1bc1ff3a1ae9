/**
 * Config loading at scale: writes a config with N connections (default 10,000, each with its own
 * PSK secret and one CHILD_SA) split over include files in a temporary directory, and measures
 * loadConfig() against a baseline from the same run: reading and JSON.parse-ing an equivalent JSON
 * document. Prints both and the ratio. Run: node bench/config-load.ts [connections]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config/load.ts';

export interface ConfigBenchResult {
  connections: number;
  files: number;
  bytes: number;
  /** Best of the runs, milliseconds (wall clock). */
  loadMs: number;
  /** Process CPU time (all threads, including GC helpers) of that best run. */
  loadCpuMs: number;
  baselineMs: number;
  /** loadMs / baselineMs */
  ratio: number;
}

interface GenConn {
  name: string;
  remote: string;
  remoteId: string;
  remoteTs: string;
  psk: string;
}

function conns(n: number): GenConn[] {
  const out: GenConn[] = [];
  for (let i = 0; i < n; i++) {
    const b = (i >> 8) & 0xff;
    const c = i & 0xff;
    out.push({
      name: `peer${String(i).padStart(5, '0')}`,
      remote: `10.${100 + (i >> 16)}.${b}.${c}`,
      remoteId: `peer${i}.example.net`,
      remoteTs: `172.${16 + (i >> 16)}.${b}.${c}/32`,
      psk: `0x${(i * 2654435761).toString(16).padStart(16, '0').slice(0, 16)}${'ab'.repeat(12)}`,
    });
  }
  return out;
}

function connText(c: GenConn): string {
  return `  ${c.name} {
    local_addrs = 192.0.2.1
    remote_addrs = ${c.remote}
    proposals = aes256gcm16-prfsha256-x25519
    dpd_delay = 30s
    local {
      auth = psk
      id = gw.example.net
    }
    remote {
      auth = psk
      id = ${c.remoteId}
    }
    children {
      net {
        local_ts = 10.0.0.0/16
        remote_ts = ${c.remoteTs}
        esp_proposals = aes256gcm16-x25519
        start_action = start
        rekey_time = 1h
      }
    }
  }
`;
}

function secretText(c: GenConn): string {
  return `  ike-${c.name} {
    id = ${c.remoteId}
    secret = ${c.psk}
  }
`;
}

/** The same content as a JSON document, for the baseline. */
function jsonDoc(list: GenConn[]): string {
  const connections: Record<string, unknown> = {};
  const secrets: Record<string, unknown> = {};
  for (const c of list) {
    connections[c.name] = {
      local_addrs: ['192.0.2.1'],
      remote_addrs: [c.remote],
      proposals: ['aes256gcm16-prfsha256-x25519'],
      dpd_delay: '30s',
      local: { auth: 'psk', id: 'gw.example.net' },
      remote: { auth: 'psk', id: c.remoteId },
      children: {
        net: {
          local_ts: ['10.0.0.0/16'],
          remote_ts: [c.remoteTs],
          esp_proposals: ['aes256gcm16-x25519'],
          start_action: 'start',
          rekey_time: '1h',
        },
      },
    };
    secrets[`ike-${c.name}`] = { id: c.remoteId, secret: c.psk };
  }
  return JSON.stringify({ daemon: { listen: ['0.0.0.0'], port: 500 }, connections, secrets }, null, 2);
}

/** Writes the config tree into `dir`; returns the main file, the JSON file, the number of files and total bytes. */
export function writeBenchConfig(dir: string, n: number, perFile = 1000): { main: string; json: string; files: number; bytes: number } {
  const list = conns(n);
  mkdirSync(join(dir, 'conns'), { recursive: true });
  mkdirSync(join(dir, 'secrets'), { recursive: true });
  let files = 1;
  let bytes = 0;
  for (let f = 0; f * perFile < n; f++) {
    const part = list.slice(f * perFile, (f + 1) * perFile);
    const name = `part${String(f).padStart(3, '0')}.conf`;
    const ct = `# connections ${f * perFile}..${f * perFile + part.length - 1}\n${part.map(connText).join('')}`;
    const st = part.map(secretText).join('');
    writeFileSync(join(dir, 'conns', name), ct);
    writeFileSync(join(dir, 'secrets', name), st);
    files += 2;
    bytes += ct.length + st.length;
  }
  const mainText = `daemon {
  listen = 0.0.0.0
  port = 500
}
connections {
  include conns/*.conf
}
secrets {
  include secrets/*.conf
}
`;
  const main = join(dir, 'vpp-iked.conf');
  writeFileSync(main, mainText);
  bytes += mainText.length;
  const json = join(dir, 'equivalent.json');
  writeFileSync(json, jsonDoc(list));
  return { main, json, files, bytes };
}

export function runConfigBench(opts: { connections?: number; runs?: number; print?: boolean } = {}): ConfigBenchResult {
  const n = opts.connections ?? 10_000;
  const runs = opts.runs ?? 5;
  const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-confbench-'));
  try {
    const w = writeBenchConfig(dir, n);
    let loadMs = Infinity;
    let loadCpuMs = 0;
    let baselineMs = Infinity;
    // one warm-up round each, then the best of `runs` (the machine may be shared: the best run is the least disturbed)
    for (let r = -1; r < runs; r++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const res = loadConfig(w.main);
      const t1 = performance.now();
      const cpu = process.cpuUsage(c0);
      if (res.errors.length > 0 || res.config?.connections.length !== n) {
        throw new Error(`bench config did not load: ${res.errors.slice(0, 3).join('; ')}`);
      }
      const t2 = performance.now();
      const doc = JSON.parse(readFileSync(w.json, 'utf8')) as { connections: Record<string, unknown> };
      const t3 = performance.now();
      if (Object.keys(doc.connections).length !== n) throw new Error('baseline document is wrong');
      if (r >= 0) {
        if (t1 - t0 < loadMs) {
          loadMs = t1 - t0;
          loadCpuMs = (cpu.user + cpu.system) / 1000;
        }
        baselineMs = Math.min(baselineMs, t3 - t2);
      }
    }
    const result: ConfigBenchResult = { connections: n, files: w.files, bytes: w.bytes, loadMs, loadCpuMs, baselineMs, ratio: loadMs / baselineMs };
    if (opts.print !== false) {
      console.log(
        `config-load: ${n} connections in ${w.files} files (${(w.bytes / 1024 / 1024).toFixed(1)} MiB): ` +
          `loadConfig ${loadMs.toFixed(1)} ms (cpu ${loadCpuMs.toFixed(0)} ms), baseline read+JSON.parse of the same content ${baselineMs.toFixed(1)} ms, ` +
          `ratio ${result.ratio.toFixed(1)}x`,
      );
    }
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const n = process.argv[2] ? Number(process.argv[2]) : undefined;
  runConfigBench(n ? { connections: n } : {});
}

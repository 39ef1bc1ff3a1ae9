/**
 * Rekey collisions (RFC 7296 §2.8.1, §2.8.2, §2.25) between two engines over the in-memory wire with a
 * fake clock, each case also with lost and retransmitted messages during the collision. After every
 * delivered message both dataplanes (memory back end) must have an outbound SA for the tunnel; at the
 * end both peers agree on the surviving SPIs and neither dataplane holds an orphan SA.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { child, live, lossy, messageKind, pair, type Loss, type Node, type Wire } from '../helpers/engine-pair.ts';
import { ExchangeType, PayloadType } from '../../src/ikev2/constants.ts';
import { openMessage } from '../helpers/rewrite.ts';
import type { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';

const A = '192.0.2.1';

/** Long lifetimes: only the rekeys a test starts happen. */
const quiet = {
  a: { rekeyTime: 0, children: [child('net', { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], rekeyTime: 0, lifeTime: 0, randTime: 0 })] },
  b: { rekeyTime: 0, children: [child('net', { localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'], rekeyTime: 0, lifeTime: 0, randTime: 0 })] },
};

/** Both sides up with one CHILD_SA; every later step is checked for an outbound SA on both sides. */
async function up() {
  const env = pair(quiet);
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const gaps: string[] = [];
  let checking = true;
  env.w.afterDelivery = () => {
    if (!checking) return;
    for (const [name, n] of [['a', env.a], ['b', env.b]] as const) {
      const tunnels = n.dp.tunnels();
      if (tunnels.length !== 1 || !n.dp.outboundOf(tunnels[0]!)) gaps.push(`${name} at ${env.w.sched.now()}: tunnels ${JSON.stringify(tunnels)}`);
    }
  };
  return { ...env, gaps, stopChecking: () => (checking = false) };
}

/** One IKE SA each with one CHILD_SA, matching SPIs, dataplanes holding exactly that CHILD_SA and sending on it. */
function agree(env: { a: Node; b: Node }, gaps: string[], o: { established?: boolean } = {}): void {
  assert.deepEqual(gaps, [], 'an outbound SA at every step');
  const pick = (n: Node): IkeSa[] => live(n).filter((s) => !o.established || s.state === 'ESTABLISHED');
  const [sa] = pick(env.a);
  const [sb] = pick(env.b);
  assert.equal(pick(env.a).length, 1, 'one IKE SA on a');
  assert.equal(pick(env.b).length, 1, 'one IKE SA on b');
  assert.ok(sa!.spiI.equals(sb!.spiI) && sa!.spiR.equals(sb!.spiR), 'same IKE SPIs');
  assert.equal(sa!.state, 'ESTABLISHED');
  assert.equal(sb!.state, 'ESTABLISHED');
  assert.equal(sa!.children.length, 1, `one CHILD_SA on a: ${sa!.children.map((c) => c.state)}`);
  assert.equal(sb!.children.length, 1, `one CHILD_SA on b: ${sb!.children.map((c) => c.state)}`);
  const ca = sa!.children[0]!;
  const cb = sb!.children[0]!;
  assert.equal(ca.state, 'INSTALLED');
  assert.equal(cb.state, 'INSTALLED');
  assert.equal(ca.spiIn, cb.spiOut, 'a receives on what b sends on');
  assert.equal(ca.spiOut, cb.spiIn, 'b receives on what a sends on');
  for (const [n, c] of [[env.a, ca], [env.b, cb]] as const) {
    assert.deepEqual([...n.dp.installed.keys()], [c.id], 'the dataplane holds exactly the current CHILD_SA');
    const t = n.dp.tunnels();
    assert.equal(t.length, 1);
    assert.equal(n.dp.outboundOf(t[0]!)?.outbound.spi, c.spiOut, 'and sends on it');
    assert.equal(n.dp.pendingSpis, 0, 'no SPI left allocated');
  }
}

/** How many distinct Delete requests (either direction, retransmissions counted once) name one of `spis`. */
function deletesNaming(w: Wire, sa: IkeSa, sb: IkeSa, spis: number[]): number {
  const seen = new Set<string>();
  for (const p of w.log) {
    const k = messageKind(p);
    if (k.exchange !== INFO || k.response) continue;
    const m = openMessage(k.from === 'a' ? sb : sa, p.data);
    const named = m.payloads.some((x) => x.type === PayloadType.DELETE && x.spis.some((b) => spis.includes(b.readUInt32BE(0))));
    if (named) seen.add(`${k.from}/${m.mid}`);
  }
  return seen.size;
}

/** Let retransmissions, the grace period for old SAs and retried rekeys run out. */
async function finish(w: Wire): Promise<void> {
  await w.run();
  await w.advance(200_000, 250);
}

const CC = ExchangeType.CREATE_CHILD_SA;
const INFO = ExchangeType.INFORMATIONAL;

const childCases: [string, Loss[]][] = [
  ['no loss', []],
  ["a's rekey request lost once", [{ from: 'a', exchange: CC, response: false, nth: 1 }]],
  ["b's rekey response lost once", [{ from: 'b', exchange: CC, response: true, nth: 1 }]],
  ["both rekey requests lost once", [{ from: 'a', exchange: CC, response: false, nth: 1 }, { from: 'b', exchange: CC, response: false, nth: 1 }]],
  ["a's rekey response lost once, b's request duplicated", [{ from: 'a', exchange: CC, response: true, nth: 1 }, { from: 'b', exchange: CC, response: false, nth: 1, what: 'dup' }]],
  ['the first delete and its response lost', [{ from: 'a', exchange: INFO, response: false, nth: 1 }, { from: 'b', exchange: INFO, response: false, nth: 1 }, { from: 'a', exchange: INFO, response: true, nth: 1 }, { from: 'b', exchange: INFO, response: true, nth: 1 }]],
];

for (const [name, losses] of childCases) {
  test(`simultaneous CHILD_SA rekeys (${name}): both complete, the redundant SA goes, the old SA is deleted once`, async () => {
    const env = await up();
    const sa = live(env.a)[0]!;
    const sb = live(env.b)[0]!;
    const old = sa.children[0]!;
    lossy(env.w, losses);
    env.a.engine.rekeyChild(sa, old);
    env.b.engine.rekeyChild(sb, sb.children[0]!);
    // Settled by retransmissions alone: no rekey refused and retried later (a retry waits >= 15 s).
    await env.w.run();
    await env.w.advance(14_000, 250);
    agree(env, env.gaps);
    assert.notEqual(live(env.a)[0]!.children[0]!.id, old.id, 'rekeyed without a retry');
    await finish(env.w);
    agree(env, env.gaps);
    assert.notEqual(sa.children[0]!.id, old.id, 'rekeyed');
    const oldSpis = [old.spiIn, old.spiOut];
    assert.equal(deletesNaming(env.w, sa, sb, oldSpis), 1, 'the old CHILD_SA was deleted by one side only');
    if (losses.length === 0) {
      // Both rekeys completed: one side deleted the redundant CHILD_SA its exchange made.
      const all = [...env.a.dp.events, ...env.b.dp.events].filter((e) => e.op === 'install').length;
      assert.equal(all, 2 + 4, 'two CHILD_SAs installed on each side by the two rekeys');
      // Each side received the other's rekey while its own was in flight, and counted the collision.
      assert.deepEqual([env.a.engine.stats.childRekeyCollisions, env.b.engine.stats.childRekeyCollisions], [1, 1]);
      assert.deepEqual([env.a.engine.stats.ikeRekeyCollisions, env.b.engine.stats.ikeRekeyCollisions], [0, 0]);
    }
  });
}

const ikeCases: [string, Loss[]][] = [
  ['no loss', []],
  ["a's rekey request lost once", [{ from: 'a', exchange: CC, response: false, nth: 1 }]],
  ["b's rekey response lost once", [{ from: 'b', exchange: CC, response: true, nth: 1 }]],
  ["a's rekey response lost once, b's request duplicated", [{ from: 'a', exchange: CC, response: true, nth: 1 }, { from: 'b', exchange: CC, response: false, nth: 1, what: 'dup' }]],
  ['the first deletes lost', [{ from: 'a', exchange: INFO, response: false, nth: 1 }, { from: 'b', exchange: INFO, response: false, nth: 1 }]],
];

for (const [name, losses] of ikeCases) {
  test(`simultaneous IKE SA rekeys (${name}): one new IKE SA survives on both sides with the CHILD_SA`, async () => {
    const env = await up();
    const sa = live(env.a)[0]!;
    const sb = live(env.b)[0]!;
    const child0 = sa.children[0]!;
    lossy(env.w, losses);
    assert.ok(env.a.engine.rekeyIke(sa));
    assert.ok(env.b.engine.rekeyIke(sb));
    await env.w.run();
    // Settled by retransmissions alone: a refused IKE SA rekey is retried after 10 s at the earliest.
    await env.w.advance(9_000, 250);
    // A redundant IKE SA whose creator never saw its response (the old SA was deleted first) waits
    // for the grace period of old SAs; the CHILD_SA is on one established IKE SA already.
    agree(env, env.gaps, { established: true });
    const next = live(env.a).find((s) => s.state === 'ESTABLISHED')!;
    assert.notEqual(next, sa, 'rekeyed without a retry');
    assert.equal(next.children[0], child0, 'the CHILD_SA moved to the surviving IKE SA');
    await finish(env.w);
    agree(env, env.gaps);
    assert.equal(live(env.a)[0]!.children[0], child0);
    if (losses.length === 0) {
      assert.deepEqual([env.a.engine.stats.ikeRekeyCollisions, env.b.engine.stats.ikeRekeyCollisions], [1, 1], 'the collision counted on both sides');
      assert.deepEqual([env.a.engine.stats.childRekeyCollisions, env.b.engine.stats.childRekeyCollisions], [0, 0]);
    }
  });
}

const mixedCases: [string, Loss[]][] = [
  ['no loss', []],
  ['the refusals lost once', [{ from: 'a', exchange: CC, response: true, nth: 1 }, { from: 'b', exchange: CC, response: true, nth: 1 }]],
  ["a's CHILD_SA rekey request duplicated", [{ from: 'a', exchange: CC, response: false, nth: 1, what: 'dup' }]],
];

for (const [name, losses] of mixedCases) {
  test(`CHILD_SA rekey vs IKE SA rekey (${name}): each refuses the other with TEMPORARY_FAILURE, both are retried and complete`, async () => {
    const env = await up();
    const sa = live(env.a)[0]!;
    const sb = live(env.b)[0]!;
    const child0 = sa.children[0]!;
    lossy(env.w, losses);
    env.a.engine.rekeyChild(sa, child0);
    assert.ok(env.b.engine.rekeyIke(sb));
    await finish(env.w);
    agree(env, env.gaps);
    assert.notEqual(live(env.a)[0], sa, 'the IKE SA was rekeyed');
    assert.notEqual(live(env.a)[0]!.children[0]!.id, child0.id, 'the CHILD_SA was rekeyed');
  });
}

for (const [name, losses] of [
  ['no loss', []],
  ['the rekey request lost once', [{ from: 'a', exchange: CC, response: false, nth: 1 }]],
  ["the delete's response lost once", [{ from: 'a', exchange: INFO, response: true, nth: 1 }]],
] as [string, Loss[]][]) {
  test(`CHILD_SA rekey vs delete of the same CHILD_SA (${name}): the delete wins, nothing is left over`, async () => {
    const env = await up();
    env.stopChecking(); // the CHILD_SA is deleted on purpose
    const sa = live(env.a)[0]!;
    const sb = live(env.b)[0]!;
    lossy(env.w, losses);
    env.a.engine.rekeyChild(sa, sa.children[0]!);
    assert.ok(env.b.engine.deleteChild(sb.children[0]!.id));
    await finish(env.w);
    for (const n of [env.a, env.b]) {
      assert.equal(live(n).length, 1, 'the IKE SA stays');
      assert.deepEqual(live(n)[0]!.children, [], 'no CHILD_SA');
      assert.equal(n.dp.installed.size, 0, 'no orphan in the dataplane');
      assert.equal(n.dp.pendingSpis, 0);
    }
  });
}

for (const [name, losses] of [
  ['no loss', []],
  ['the rekey request lost once', [{ from: 'a', exchange: CC, response: false, nth: 1 }]],
] as [string, Loss[]][]) {
  test(`IKE SA rekey vs IKE SA delete (${name}): the delete wins, nothing is left over`, async () => {
    const env = await up();
    env.stopChecking();
    const sa = live(env.a)[0]!;
    const sb = live(env.b)[0]!;
    lossy(env.w, losses);
    assert.ok(env.a.engine.rekeyIke(sa));
    env.b.engine.deleteIke(sb);
    await finish(env.w);
    for (const n of [env.a, env.b]) {
      assert.equal(live(n).length, 0, 'no IKE SA');
      assert.equal(n.dp.installed.size, 0, 'no orphan in the dataplane');
      assert.equal(n.dp.pendingSpis, 0);
    }
  });
}

test('a peer that refuses every rekey with TEMPORARY_FAILURE: retries with jitter, then a new CHILD_SA before the hard lifetime; the tunnel never goes without an SA', async () => {
  const env = pair({
    a: { rekeyTime: 0, children: [child('net', { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], rekeyTime: 60, lifeTime: 180, randTime: 0 })] },
    b: quiet.b,
  });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const sa = live(env.a)[0]!;
  const sb = live(env.b)[0]!;
  const old = sa.children[0]!;
  // b thinks it is deleting its side and never finishes: it answers every rekey of it with TEMPORARY_FAILURE.
  sb.children[0]!.state = 'DELETING';
  const gaps: string[] = [];
  const rekeyTimes: number[] = [];
  env.w.afterDelivery = () => {
    for (const [name, n] of [['a', env.a], ['b', env.b]] as const) {
      if (!n.dp.tunnels().some((t) => n.dp.outboundOf(t))) gaps.push(`${name} at ${env.w.sched.now()}`);
    }
  };
  const filter = env.w.filter;
  env.w.filter = (p) => {
    if (messageKind(p).from === 'a' && messageKind(p).exchange === CC && !messageKind(p).response) rekeyTimes.push(env.w.sched.now());
    return filter(p);
  };
  const t0 = env.w.sched.now();
  await env.w.advance(175_000, 500);
  assert.deepEqual(gaps, []);
  assert.ok(rekeyTimes.length >= 3, `several attempts: ${rekeyTimes.map((t) => (t - t0) / 1000)}`);
  const gapsS = rekeyTimes.slice(1).map((t, i) => t - rekeyTimes[i]!);
  assert.ok(new Set(gapsS).size > 1, 'retries spread by jitter');
  assert.equal(sa.children.length, 1);
  assert.notEqual(sa.children[0]!.id, old.id, 'replaced before the hard lifetime (180 s)');
  assert.equal(sb.children.length, 1);
  assert.equal(sa.children[0]!.spiIn, sb.children[0]!.spiOut);
  assert.equal(sa.children[0]!.spiOut, sb.children[0]!.spiIn);
  assert.deepEqual([...env.a.dp.installed.keys()], [sa.children[0]!.id]);
  assert.deepEqual([...env.b.dp.installed.keys()], [sb.children[0]!.id]);
});

test('a rekey answered with CHILD_SA_NOT_FOUND (the peer lost the CHILD_SA): a new CHILD_SA takes over at once', async () => {
  const env = await up();
  env.stopChecking(); // b has no SA for the tunnel until the new CHILD_SA comes
  const sa = live(env.a)[0]!;
  const sb = live(env.b)[0]!;
  const old = sa.children[0]!;
  const lost = sb.children.pop()!;
  await env.b.dp.remove(lost.id);
  env.a.engine.rekeyChild(sa, old);
  await env.w.run();
  assert.equal(sa.children.length, 1);
  assert.notEqual(sa.children[0]!.id, old.id);
  assert.equal(sb.children.length, 1);
  assert.equal(sa.children[0]!.spiIn, sb.children[0]!.spiOut);
  assert.deepEqual([...env.a.dp.installed.keys()], [sa.children[0]!.id], 'the old CHILD_SA is gone from a');
  assert.equal(env.b.dp.installed.size, 1);
  assert.equal(env.a.engine.stats.retransmitsSent, 0);
});

/** Small deterministic PRNG (mulberry32) for the randomised runs. */
function prng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let x = Math.imul(t ^ (t >>> 15), 1 | t);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

test('randomised collisions: CHILD_SA and IKE SA rekeys started by both sides at random times over a lossy wire always converge', async () => {
  const runs = Number(process.env.COLLISION_RUNS ?? 24);
  const base = Number(process.env.COLLISION_SEED ?? 1);
  const loss = Number(process.env.COLLISION_LOSS ?? 0.15);
  for (let run = 0; run < runs; run++) {
    const seed = base + run;
    const rnd = prng(seed);
    const env = await up();
    // A one-way delay of 0, 250 or 500 ms (exchanges overlap longer), loss and duplication for the
    // next 60 s of messages, then a clean wire so everything settles.
    env.w.delayMs = Math.floor(rnd() * 3) * 250;
    let lossy = true;
    env.w.filter = () => {
      if (!lossy) return 'deliver';
      const r = rnd();
      return r < loss ? 'drop' : r < loss + 0.05 ? 'dup' : 'deliver';
    };
    const ops: [number, () => void][] = [];
    for (const side of ['a', 'b'] as const) {
      const n = side === 'a' ? env.a : env.b;
      for (let k = 0; k < 1 + Math.floor(rnd() * 3); k++) {
        const at = Math.floor(rnd() * 8) * 250;
        const ike = rnd() < 0.3;
        ops.push([at, () => {
          const sa = live(n).find((s) => s.state === 'ESTABLISHED');
          if (!sa) return;
          if (ike) n.engine.rekeyIke(sa);
          else if (sa.children[0]) n.engine.rekeyChild(sa, sa.children[0]);
        }]);
      }
    }
    ops.sort((x, y) => x[0] - y[0]);
    let now = 0;
    for (const [at, op] of ops) {
      if (at > now) await env.w.advance(at - now, 250);
      now = Math.max(now, at);
      op();
    }
    await env.w.run();
    await env.w.advance(60_000, 250);
    lossy = false;
    await finish(env.w);
    try {
      agree(env, env.gaps);
    } catch (e) {
      throw new Error(`seed ${seed} (COLLISION_SEED=${seed} COLLISION_RUNS=1 reproduces it): ${(e as Error).message}`, { cause: e });
    }
  }
});

for (const restarted of [true, false]) {
  test(`a CHILD_SA rekey refused for the moment (TEMPORARY_FAILURE) ${restarted ? 'after the dataplane replayed it (sequence numbers started over): retried within 3 s' : 'as usual: retried after 15 s or more'}`, async () => {
    const env = await up();
    const sa = live(env.a)[0]!;
    const sb = live(env.b)[0]!;
    const old = sa.children[0]!;
    const theirs = sb.children[0]!;
    // b answers the first rekey with TEMPORARY_FAILURE (as while it rekeys the IKE SA), then takes them.
    theirs.state = 'DELETING';
    const requests: number[] = [];
    let refused = 0;
    env.w.filter = (p) => {
      const k = messageKind(p);
      if (k.from === 'a' && k.exchange === CC && !k.response) requests.push(env.w.sched.now());
      if (k.from === 'b' && k.exchange === CC && k.response && refused++ === 0) theirs.state = 'INSTALLED';
      return 'deliver';
    };
    if (restarted) assert.deepEqual(env.a.dp.simulateRestart(), [old.id]);
    else env.a.engine.rekeyChild(sa, old);
    await env.w.run();
    assert.equal(refused, 1, 'the first rekey was refused');
    assert.equal(sa.children[0]!.id, old.id, 'the CHILD_SA is not replaced yet');
    await env.w.advance(3000, 250);
    if (restarted) {
      assert.equal(requests.length, 2, 'tried again');
      assert.ok(requests[1]! - requests[0]! <= 3000, `within 3 s (${requests[1]! - requests[0]!} ms)`);
      agree(env, env.gaps);
      assert.notEqual(live(env.a)[0]!.children[0]!.id, old.id, 'replaced');
    } else {
      assert.equal(requests.length, 1, 'not tried again within 3 s');
      await env.w.advance(45_000, 1000);
      assert.equal(requests.length, 2);
      assert.ok(requests[1]! - requests[0]! >= 15_000, `after 15 s or more (${requests[1]! - requests[0]!} ms)`);
      agree(env, env.gaps);
    }
  });
}

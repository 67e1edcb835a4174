//! A deterministic DHT simulation: N [`Node`]s on one thread, virtual time, a network with
//! per-packet latency and loss. All nodes join through a few seeds, some announce info
//! hashes, then a tenth of the others vanish (still in everyone's routing tables) and random
//! live nodes look those hashes up; every lookup must find every announcer.
//!
//! Everything follows from one seed (`DHT_SIM_SEED`, printed in every failure), so a failing
//! run replays exactly. The default test runs 400 nodes; the 3,000-node run is
//! `cargo test --release -p ccbt-engine --test dht_sim -- --ignored --nocapture`
//! (or set `DHT_SIM_NODES`; `DHT_SIM_DEAD_PER_MILLE` sets the churn, default 100).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use ccbt_engine::dht::{Config, Event, LookupId, LookupKind, LookupStats, Node, NodeId};
use ccbt_engine::InfoHash;

/// SplitMix64, the simulation's own generator (the engine's is private to it).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn id(&mut self) -> NodeId {
        let mut b = [0u8; 20];
        for c in b.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
        NodeId(b)
    }
}

struct SimConfig {
    nodes: usize,
    seeds: usize,
    info_hashes: usize,
    announcers_per_hash: usize,
    lookups: usize,
    latency_ms_min: u64,
    latency_ms_max: u64,
    /// Packets lost, in parts per thousand.
    loss_per_mille: u64,
    /// Nodes (never a seed) that go silent for good after the join, in parts per thousand:
    /// everyone else's tables still hold them, so lookups must route around them.
    dead_per_mille: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    Deliver {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
    },
}

struct Sim {
    rng: Rng,
    seed: u64,
    cfg: SimConfig,
    now: Duration,
    nodes: Vec<Node>,
    addrs: Vec<SocketAddrV4>,
    index: HashMap<SocketAddrV4, usize>,
    queue: BinaryHeap<Reverse<(Duration, u64, What)>>,
    seq: u64,
    timer_at: Vec<Option<Duration>>,
    dead: Vec<bool>,
    /// Per (node, lookup): peers found, and the stats once done.
    found: HashMap<(usize, LookupId), HashSet<SocketAddrV4>>,
    done: HashMap<(usize, LookupId), (LookupKind, LookupStats)>,
    packets: u64,
    lost: u64,
}

impl Sim {
    fn new(seed: u64, cfg: SimConfig) -> Sim {
        let mut rng = Rng(seed);
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..cfg.nodes {
            // Public addresses, so BEP 42 applies and is enforced.
            let ip = Ipv4Addr::from(0x0101_0000 + i as u32 * 7 + 3);
            let addr = SocketAddrV4::new(ip, 6881 + (i % 1000) as u16);
            let id = NodeId::bep42(ip, &rng.id());
            let config = Config {
                seed: rng.next(),
                enforce_node_id: true,
                ..Config::default()
            };
            nodes.push(Node::new(id, config, Duration::ZERO));
            addrs.push(addr);
        }
        let index = addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        let n = cfg.nodes;
        Sim {
            rng,
            seed,
            cfg,
            now: Duration::ZERO,
            nodes,
            addrs,
            index,
            queue: BinaryHeap::new(),
            seq: 0,
            timer_at: vec![None; n],
            dead: vec![false; n],
            found: HashMap::new(),
            done: HashMap::new(),
            packets: 0,
            lost: 0,
        }
    }

    fn push(&mut self, at: Duration, what: What) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, what)));
    }

    /// Drains node `i`'s datagrams into the network, its events into the books, and
    /// reschedules its timer.
    fn after(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            self.packets += 1;
            let SocketAddr::V4(dest) = t.dest else {
                panic!("seed {}: IPv6 transmit", self.seed)
            };
            let Some(&to) = self.index.get(&dest) else {
                continue;
            };
            if self.rng.below(1000) < self.cfg.loss_per_mille {
                self.lost += 1;
                continue;
            }
            let span = self.cfg.latency_ms_max - self.cfg.latency_ms_min + 1;
            let latency = Duration::from_millis(self.cfg.latency_ms_min + self.rng.below(span));
            let at = self.now + latency;
            self.push(
                at,
                What::Deliver {
                    to,
                    from: i,
                    bytes: t.bytes,
                },
            );
        }
        while let Some(e) = self.nodes[i].poll_event() {
            match e {
                Event::Peers { lookup, peers, .. } => {
                    self.found.entry((i, lookup)).or_default().extend(peers);
                }
                Event::LookupDone {
                    lookup,
                    kind,
                    stats,
                    ..
                } => {
                    self.done.insert((i, lookup), (kind, stats));
                }
                Event::IdChanged { .. } => panic!("seed {}: node {i} changed id", self.seed),
            }
        }
        // A deadline already past fires now (a node created long before it first runs).
        let at = self.nodes[i].poll_timeout().map(|t| t.max(self.now));
        if at != self.timer_at[i] {
            self.timer_at[i] = at;
            if let Some(at) = at {
                self.push(at, What::Timer { node: i });
            }
        }
    }

    /// Runs the network until virtual time `until`.
    /// A random node that is still alive.
    fn live_node(&mut self) -> usize {
        loop {
            let n = self.rng.below(self.cfg.nodes as u64) as usize;
            if !self.dead[n] {
                return n;
            }
        }
    }

    fn run_until(&mut self, until: Duration) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Reverse((at, _, what)) = self.queue.pop().expect("peeked");
            self.now = at;
            match what {
                What::Deliver { to, from, bytes } => {
                    if self.dead[to] {
                        continue;
                    }
                    let from = SocketAddr::V4(self.addrs[from]);
                    self.nodes[to].handle_packet(at, from, &bytes);
                    self.after(to);
                }
                What::Timer { node } => {
                    if self.timer_at[node] != Some(at) || self.dead[node] {
                        continue; // superseded
                    }
                    self.timer_at[node] = None;
                    self.nodes[node].handle_timeout(at);
                    self.after(node);
                }
            }
        }
        self.now = until;
    }
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    sorted[(sorted.len() - 1) * p / 100]
}

/// What one run measured; equal seeds must give equal summaries.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    lookup_ms_sorted: Vec<u64>,
    queries_sorted: Vec<u64>,
    packets: u64,
    lost: u64,
}

fn seed_from_env() -> u64 {
    std::env::var("DHT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x05EE_DD47)
}

fn run(nodes: usize, seed: u64) -> Summary {
    // Shown with the output of a failing test, whatever panicked.
    eprintln!("dht_sim: seed {seed} (set DHT_SIM_SEED={seed} to replay)");
    let cfg = SimConfig {
        nodes,
        seeds: 4,
        info_hashes: 60,
        announcers_per_hash: 3,
        lookups: 200,
        latency_ms_min: 10,
        latency_ms_max: 150,
        loss_per_mille: 10,
        dead_per_mille: std::env::var("DHT_SIM_DEAD_PER_MILLE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(100),
    };
    let (seeds, lookups) = (cfg.seeds, cfg.lookups);
    let (hashes_n, per_hash) = (cfg.info_hashes, cfg.announcers_per_hash);
    let dead_per_mille = cfg.dead_per_mille;
    let mut sim = Sim::new(seed, cfg);
    let ms = Duration::from_millis;

    // Join: the seeds through each other, then everyone through the seeds, 5 ms apart.
    let seed_addrs: Vec<SocketAddr> = (0..seeds).map(|i| SocketAddr::V4(sim.addrs[i])).collect();
    for i in 0..nodes {
        let at = ms(5 * i as u64);
        sim.run_until(at);
        let others: Vec<SocketAddr> = seed_addrs
            .iter()
            .copied()
            .filter(|a| *a != SocketAddr::V4(sim.addrs[i]))
            .collect();
        sim.nodes[i]
            .bootstrap(at, &others)
            .unwrap_or_else(|e| panic!("seed {seed}: bootstrap of node {i}: {e}"));
        sim.after(i);
    }
    let joined = sim.now + Duration::from_secs(30);
    sim.run_until(joined);
    let bootstrap_lookups = sim.done.len();
    assert!(
        bootstrap_lookups >= nodes,
        "seed {seed}: {bootstrap_lookups} of {nodes} bootstraps finished"
    );

    // Announce: each hash from `per_hash` distinct random nodes, implied port.
    let mut announcers: BTreeMap<usize, (InfoHash, Vec<SocketAddrV4>)> = BTreeMap::new();
    for h in 0..hashes_n {
        let hash: InfoHash = sim.rng.id().into();
        let mut who = Vec::new();
        while who.len() < per_hash {
            let n = sim.live_node();
            if !who.contains(&n) {
                who.push(n);
            }
        }
        for &n in &who {
            let now = sim.now;
            sim.nodes[n]
                .announce(now, hash, None)
                .unwrap_or_else(|e| panic!("seed {seed}: announce from {n}: {e}"));
            sim.after(n);
            sim.run_until(now + ms(20));
        }
        announcers.insert(h, (hash, who.iter().map(|&n| sim.addrs[n]).collect()));
    }
    let announced = sim.now + Duration::from_secs(30);
    sim.run_until(announced);

    // Churn: some nodes (not the seeds, not the announcers) vanish without a word, some of
    // them holding announced peers.
    let announcing: HashSet<SocketAddrV4> = announcers
        .values()
        .flat_map(|(_, a)| a.iter().copied())
        .collect();
    for i in seeds..nodes {
        if !announcing.contains(&sim.addrs[i]) && sim.rng.below(1000) < dead_per_mille {
            sim.dead[i] = true;
        }
    }
    let dead = sim.dead.iter().filter(|d| **d).count();

    // Look up: random live nodes, random announced hashes, 100 ms apart.
    let mut asked = Vec::new();
    for _ in 0..lookups {
        let n = sim.live_node();
        let h = sim.rng.below(hashes_n as u64) as usize;
        let now = sim.now;
        let lid = sim.nodes[n]
            .get_peers(now, announcers[&h].0)
            .unwrap_or_else(|e| panic!("seed {seed}: get_peers from {n}: {e}"));
        sim.after(n);
        asked.push((n, lid, h));
        sim.run_until(now + ms(100));
    }
    let end = sim.now + Duration::from_secs(60);
    sim.run_until(end);

    let mut durations = Vec::new();
    let mut queries = Vec::new();
    let mut missing = Vec::new();
    for (n, lid, h) in &asked {
        let stats = sim
            .done
            .get(&(*n, *lid))
            .unwrap_or_else(|| panic!("seed {seed}: lookup {lid:?} from node {n} never finished"));
        let (kind, stats) = stats;
        assert_eq!(*kind, LookupKind::GetPeers, "seed {seed}");
        durations.push(stats.duration.as_millis() as u64);
        queries.push(u64::from(stats.queries));
        let found = sim.found.get(&(*n, *lid)).cloned().unwrap_or_default();
        let want = &announcers[h].1;
        let absent = want.iter().filter(|a| !found.contains(a)).count();
        if absent > 0 {
            missing.push((*n, *h, absent));
        }
    }
    for node in &sim.nodes {
        node.check_invariants();
    }
    let timeouts: u64 = sim.nodes.iter().map(|n| n.stats().timeouts).sum();
    durations.sort_unstable();
    queries.sort_unstable();
    let mean_q = queries.iter().sum::<u64>() as f64 / queries.len() as f64;
    let table_sizes: Vec<usize> = (0..nodes)
        .filter(|&i| !sim.dead[i])
        .map(|i| sim.nodes[i].table().len())
        .collect();
    let mean_table = table_sizes.iter().sum::<usize>() as f64 / table_sizes.len() as f64;
    println!(
        "dht_sim seed={seed} nodes={nodes} dead={dead} lookups={lookups} found_all={}/{lookups} \
         lookup_ms p50={} p90={} max={} queries/lookup p50={} p90={} mean={mean_q:.1} \
         table_mean={mean_table:.1} packets={} lost={} timeouts={timeouts}",
        lookups - missing.len(),
        percentile(&durations, 50),
        percentile(&durations, 90),
        durations.last().unwrap(),
        percentile(&queries, 50),
        percentile(&queries, 90),
        sim.packets,
        sim.lost,
    );
    assert!(
        missing.is_empty(),
        "seed {seed}: {} lookups missed announcers (node, hash, missing): {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    Summary {
        lookup_ms_sorted: durations,
        queries_sorted: queries,
        packets: sim.packets,
        lost: sim.lost,
    }
}

#[test]
fn four_hundred_nodes_find_every_announcer() {
    let nodes = std::env::var("DHT_SIM_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    run(nodes, seed_from_env());
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let seed = seed_from_env();
    assert_eq!(run(100, seed), run(100, seed), "seed {seed}");
}

#[test]
#[ignore = "3,000 nodes: run in release with --ignored"]
fn three_thousand_nodes_find_every_announcer() {
    run(3_000, seed_from_env());
}

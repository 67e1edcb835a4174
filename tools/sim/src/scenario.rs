//! What a run simulates: who is in the swarm, the torrent, the network and the disks.
//! A scenario is built from a seed, so one number names a whole run.

use std::time::Duration;

use ccbt_engine::session::SessionConfig;

/// How a node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Has every piece and serves them faithfully.
    Seeder,
    /// Starts with nothing; must finish with the right bytes.
    Leecher,
    /// A leecher on a thin uplink.
    Slow,
    /// An engine node that claims every piece and corrupts some of the blocks it serves.
    Liar,
    /// A leecher whose disk sometimes returns corrupt bytes when it serves a block: honest,
    /// but a source of bad data it does not know about.
    BadDisk,
    /// A peer that is not an engine: it follows a script.
    Script(Script),
}

impl Role {
    /// Must finish the download with correct data.
    pub fn must_complete(self) -> bool {
        matches!(self, Role::Leecher | Role::Slow | Role::BadDisk)
    }

    /// Never serves bad data, so must never be banned by an honest node.
    pub fn is_honest(self) -> bool {
        matches!(self, Role::Seeder | Role::Leecher | Role::Slow)
    }

    /// Runs an engine torrent (every role but the scripted ones).
    pub fn is_engine(self) -> bool {
        !matches!(self, Role::Script(_))
    }
}

/// Scripted hostile peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Script {
    /// Claims every piece, unchokes, and never answers a request.
    LyingBitfield,
    /// Asks for blocks and never reads a byte sent to it.
    NeverReads,
    /// Floods requests, choked or not.
    RequestSpam,
    /// Floods HAVE, HAVE ALL and HAVE NONE.
    HaveSpam,
}

pub const SCRIPTS: [Script; 4] = [
    Script::LyingBitfield,
    Script::NeverReads,
    Script::RequestSpam,
    Script::HaveSpam,
];

#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Uplink of a node, bytes per second; every connection of the node shares it.
    pub uplink: u64,
    /// Uplink of a `Slow` node.
    pub slow_uplink: u64,
    /// One-way delay of a connection, drawn uniformly from this range.
    pub delay: (Duration, Duration),
    /// Chance that a segment is lost and must be sent again after a timeout.
    pub loss: f64,
    /// Mean lifetime of a connection before the network cuts it; `None` never cuts.
    pub mean_life: Option<Duration>,
    /// Bytes one end may have written and the other not yet read (the socket buffers).
    pub send_buffer: u64,
    /// A writer that gets no byte out for this long is dropped (the shards'
    /// `WRITE_STALL_TIMEOUT`).
    pub write_stall: Duration,
}

#[derive(Debug, Clone)]
pub struct DiskConfig {
    /// From a piece's last block to its hash result.
    pub hash_latency: Duration,
    /// Chance that writing a verified piece fails with ENOSPC, which pauses the torrent.
    pub enospc: f64,
    /// How long a paused torrent waits before it resumes.
    pub pause: Duration,
    /// Chance that reading a block to serve fails with EIO, which drops that peer.
    pub eio: f64,
    /// Chance that a `BadDisk` node's read returns corrupt bytes.
    pub bad_read: f64,
    /// Share of a liar's blocks that it corrupts.
    pub liar_corrupts: f64,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub roles: Vec<Role>,
    pub piece_len: u32,
    pub content_len: u64,
    pub net: NetConfig,
    pub disk: DiskConfig,
    /// Every torrent's limits and timings. A node dials while its torrent has room for
    /// peers (`max_peers`), as the shards do; seeds wait to be dialled.
    pub session: SessionConfig,
    /// Addresses a node learns at start (a tracker's answer); PEX adds more.
    pub candidates: usize,
    /// Simulated time after which the run fails.
    pub limit: Duration,
    /// Check every torrent's invariants after each event that touched it.
    pub check_every_event: bool,
}

impl Scenario {
    /// A small swarm of random make-up: 4 to 24 engine nodes, some hostile, on a random
    /// network and disk.
    pub fn random(seed: u64) -> Scenario {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut roles = Vec::new();
        roles.extend(std::iter::repeat_n(Role::Seeder, rng.usize(1..=3)));
        roles.extend(std::iter::repeat_n(Role::Leecher, rng.usize(2..=14)));
        roles.extend(std::iter::repeat_n(Role::Slow, rng.usize(0..=3)));
        roles.extend(std::iter::repeat_n(Role::Liar, rng.usize(0..=3)));
        roles.extend(std::iter::repeat_n(Role::BadDisk, rng.usize(0..=1)));
        for _ in 0..rng.usize(0..=3) {
            roles.push(Role::Script(SCRIPTS[rng.usize(..SCRIPTS.len())]));
        }
        rng.shuffle(&mut roles);
        let piece_len = [16 * 1024, 32 * 1024, 64 * 1024][rng.usize(..3)];
        let pieces = rng.u64(4..=48);
        let content_len = pieces * u64::from(piece_len) - rng.u64(0..u64::from(piece_len));
        let ms = Duration::from_millis;
        Scenario {
            seed,
            roles,
            piece_len,
            content_len,
            net: NetConfig {
                uplink: rng.u64(256..=4096) * 1024,
                slow_uplink: rng.u64(16..=128) * 1024,
                delay: (ms(rng.u64(1..=20)), ms(rng.u64(20..=150))),
                loss: [0.0, 0.01, 0.05, 0.1][rng.usize(..4)],
                mean_life: rng.bool().then(|| Duration::from_secs(rng.u64(20..=300))),
                send_buffer: 256 * 1024,
                write_stall: Duration::from_secs(20),
            },
            disk: DiskConfig {
                hash_latency: ms(rng.u64(0..=20)),
                enospc: [0.0, 0.0, 0.02][rng.usize(..3)],
                pause: Duration::from_secs(rng.u64(1..=30)),
                eio: [0.0, 0.0, 0.002][rng.usize(..3)],
                bad_read: 0.05,
                liar_corrupts: [0.1, 0.5, 1.0][rng.usize(..3)],
            },
            session: SessionConfig {
                max_peers: [4, 8, 16, 80][rng.usize(..4)],
                ..SessionConfig::default()
            },
            candidates: 50,
            limit: Duration::from_secs(1800),
            check_every_event: true,
        }
    }

    /// The large swarm: `peers` nodes of which `liars` are liars, 1 MiB in
    /// 16 KiB pieces, `loss` of segments lost.
    pub fn large(seed: u64, peers: usize, liars: usize, loss: f64) -> Scenario {
        let seeders = (peers / 100).max(2);
        let mut roles = Vec::with_capacity(peers);
        roles.extend(std::iter::repeat_n(Role::Seeder, seeders));
        roles.extend(std::iter::repeat_n(Role::Liar, liars));
        roles.extend(std::iter::repeat_n(
            Role::Leecher,
            peers.saturating_sub(seeders + liars),
        ));
        let mut rng = fastrand::Rng::with_seed(seed);
        rng.shuffle(&mut roles);
        let ms = Duration::from_millis;
        Scenario {
            seed,
            roles,
            piece_len: 16 * 1024,
            content_len: 1024 * 1024,
            net: NetConfig {
                uplink: 1024 * 1024,
                slow_uplink: 64 * 1024,
                delay: (ms(5), ms(100)),
                loss,
                mean_life: Some(Duration::from_secs(120)),
                send_buffer: 256 * 1024,
                write_stall: Duration::from_secs(20),
            },
            disk: DiskConfig {
                hash_latency: ms(2),
                enospc: 0.0,
                pause: Duration::from_secs(5),
                eio: 0.0,
                bad_read: 0.05,
                liar_corrupts: 0.5,
            },
            session: SessionConfig {
                max_peers: 30,
                ..SessionConfig::default()
            },
            candidates: 50,
            limit: Duration::from_secs(1800),
            check_every_event: true,
        }
    }
}

//! What one scrape reports: the series, from the shards' counters and the catalog's
//! snapshot as read at the scrape's start.

use std::sync::Arc;

use ccbt_shards::swarm::{
    AnnounceFailure, HistogramSnapshot, RefusedConnection, ShardStatsSnapshot, TorrentState,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::families::{counters, gauges, histograms, label_text, sum_histograms, Fmt, Labels};
use crate::daemon::catalog::Snapshot;

/// Fault kinds the faulted-torrents series always carries (0 when none), so alert rules
/// have a series to watch.
const FAULT_KINDS: [&str; 5] = ["disk-full", "permission", "not-found", "io", "bad-data"];
/// States the torrents series always carries.
const STATES: [&str; 7] = [
    "queued",
    "checking",
    "downloading",
    "seeding",
    "paused",
    "failed",
    "stopped",
];

/// Everything one scrape reports, read once at its start.
#[derive(Debug)]
pub struct Collected {
    pub shards: Vec<ShardStatsSnapshot>,
    pub catalog: Arc<Snapshot>,
    pub uptime_s: f64,
    pub event_streams: u64,
    pub per_torrent: bool,
}

fn shard_label(s: &ShardStatsSnapshot) -> Labels {
    vec![("shard", s.shard.to_string())]
}

impl Collected {
    fn per_shard(&self, pick: impl Fn(&ShardStatsSnapshot) -> u64) -> Vec<(Labels, u64)> {
        self.shards
            .iter()
            .map(|s| (shard_label(s), pick(s)))
            .collect()
    }

    fn total(&self, pick: impl Fn(&ShardStatsSnapshot) -> u64) -> [(Labels, u64); 1] {
        [(Vec::new(), self.shards.iter().map(pick).sum())]
    }

    /// A counter per shard and its total, under `ccbt_shard_NAME` and `ccbt_NAME`.
    fn counter_pair(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        pick: impl Fn(&ShardStatsSnapshot) -> u64 + Copy,
    ) -> Fmt {
        counters(
            enc,
            &format!("ccbt_shard_{name}"),
            &format!("{help}, per shard"),
            self.per_shard(pick),
        )?;
        counters(enc, &format!("ccbt_{name}"), help, self.total(pick))
    }

    fn gauge_pair(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        pick: impl Fn(&ShardStatsSnapshot) -> u64 + Copy,
    ) -> Fmt {
        gauges(
            enc,
            &format!("ccbt_shard_{name}"),
            &format!("{help}, per shard"),
            self.per_shard(pick),
        )?;
        gauges(enc, &format!("ccbt_{name}"), help, self.total(pick))
    }

    fn histogram_pair(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        pick: impl Fn(&ShardStatsSnapshot) -> &HistogramSnapshot + Copy,
    ) -> Fmt {
        histograms(
            enc,
            &format!("ccbt_shard_{name}"),
            &format!("{help}, per shard"),
            self.shards
                .iter()
                .map(|s| (shard_label(s), pick(s).clone())),
        )?;
        histograms(
            enc,
            &format!("ccbt_{name}"),
            help,
            [(Vec::new(), sum_histograms(self.shards.iter().map(pick)))],
        )
    }

    /// Memory peers hold beyond the cache, and the peers dropped for not reading: each
    /// gauge is back at zero once the peers are gone.
    fn peer_memory(&self, enc: &mut DescriptorEncoder) -> Fmt {
        self.gauge_pair(
            enc,
            "send_batch_pinned_bytes",
            "Bytes peers' send batches hold: the pieces they point into and their headers",
            |s| s.send_batch_bytes,
        )?;
        self.gauge_pair(
            enc,
            "piece_buffers_in_progress_bytes",
            "Buffers of pieces being downloaded, not yet complete",
            |s| s.pieces_in_progress_bytes,
        )?;
        self.gauge_pair(
            enc,
            "peer_outbox_bytes",
            "Encoded messages waiting for peers' writers (as of each torrent's last publish)",
            |s| s.outbox_bytes,
        )?;
        self.counter_pair(
            enc,
            "peer_write_stalls",
            "Peers dropped because their socket took no byte for the write deadline",
            |s| s.write_stalls,
        )?;
        self.counter_pair(
            enc,
            "handshake_evictions",
            "Incoming connections closed before their handshake so a newcomer could have their slot of a full shard",
            |s| s.handshake_evictions,
        )?;
        self.counter_pair(
            enc,
            "accept_errors",
            "Incoming connections accept(2) failed on (out of descriptors, most often)",
            |s| s.accept_errors,
        )?;
        self.counter_pair(
            enc,
            "dht_peers",
            "Peer addresses the DHT found for the shard's torrents",
            |s| s.dht_peers,
        )?;
        self.counter_pair(
            enc,
            "lsd_peers",
            "Peers on the local network that announced the shard's torrents (BEP 14)",
            |s| s.lsd_peers,
        )?;
        self.counter_pair(
            enc,
            "replica_accepts",
            "Incoming connections a hot torrent's replica served on this shard instead of handing them to the torrent's own shard",
            |s| s.replica_accepts,
        )
    }

    fn shards(&self, enc: &mut DescriptorEncoder) -> Fmt {
        self.counter_pair(
            enc,
            "uploaded_bytes",
            "Piece payload sent to peers this session",
            |s| s.uploaded_bytes,
        )?;
        self.counter_pair(
            enc,
            "downloaded_bytes",
            "Piece payload received from peers this session",
            |s| s.downloaded_bytes,
        )?;
        gauges(
            enc,
            "ccbt_shard_peers",
            "Peer connections established now, per shard",
            self.per_shard(|s| s.peers),
        )?;
        gauges(
            enc,
            "ccbt_peers",
            "Peer connections established now",
            self.total(|s| s.peers),
        )?;
        self.counter_pair(
            enc,
            "hash_failures",
            "Downloaded pieces that failed their SHA-1 check",
            |s| s.hash_failures,
        )?;
        self.counter_pair(
            enc,
            "disk_errors",
            "Piece reads and writes that failed (the torrent stops with a fault)",
            |s| s.disk_errors,
        )?;
        self.histogram_pair(
            enc,
            "disk_read_seconds",
            "Time to read a piece from disk for seeding",
            |s| &s.disk_read,
        )?;
        self.histogram_pair(
            enc,
            "disk_write_seconds",
            "Time to write a verified piece to disk",
            |s| &s.disk_write,
        )?;
        self.histogram_pair(
            enc,
            "service_seconds",
            "Time from a block request's arrival to its block's last byte handed to the socket",
            |s| &s.service_buckets,
        )?;
        self.histogram_pair(
            enc,
            "announce_seconds",
            "Time from an announce's request to the tracker's answer (answered ones)",
            |s| &s.announce,
        )?;
        let failures = |s: &ShardStatsSnapshot, kind: AnnounceFailure| {
            s.announce_failures
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(0, |(_, n)| *n)
        };
        counters(
            enc,
            "ccbt_shard_announce_failures",
            "Announces that got no answer, by kind, per shard",
            self.shards.iter().flat_map(|s| {
                AnnounceFailure::ALL.iter().map(move |&k| {
                    (
                        vec![
                            ("shard", s.shard.to_string()),
                            ("kind", k.name().to_string()),
                        ],
                        failures(s, k),
                    )
                })
            }),
        )?;
        counters(
            enc,
            "ccbt_announce_failures",
            "Announces that got no answer, by kind",
            AnnounceFailure::ALL.iter().map(|&k| {
                (
                    vec![("kind", k.name().to_string())],
                    self.shards.iter().map(|s| failures(s, k)).sum::<u64>(),
                )
            }),
        )?;
        self.counter_pair(
            enc,
            "cache_hits",
            "Lookups of a piece to serve (one per block sent) the read cache answered",
            |s| s.cache_hits,
        )?;
        self.counter_pair(
            enc,
            "cache_misses",
            "Pieces read from disk to serve them (read-ahead included)",
            |s| s.cache_misses,
        )?;
        self.peer_memory(enc)?;
        let refused = |s: &ShardStatsSnapshot, why: RefusedConnection| {
            s.refused
                .iter()
                .find(|(k, _)| *k == why)
                .map_or(0, |(_, n)| *n)
        };
        counters(
            enc,
            "ccbt_shard_connections_refused",
            "Peer connections refused before their handshake, by reason, per shard",
            self.shards.iter().flat_map(|s| {
                RefusedConnection::ALL.iter().map(move |&k| {
                    (
                        vec![
                            ("shard", s.shard.to_string()),
                            ("reason", k.name().to_string()),
                        ],
                        refused(s, k),
                    )
                })
            }),
        )?;
        counters(
            enc,
            "ccbt_connections_refused",
            "Peer connections refused before their handshake, by reason",
            RefusedConnection::ALL.iter().map(|&k| {
                (
                    vec![("reason", k.name().to_string())],
                    self.shards.iter().map(|s| refused(s, k)).sum::<u64>(),
                )
            }),
        )?;
        gauges(
            enc,
            "ccbt_shard_inbox_depth",
            "Commands and handed-off connections waiting in the shard's inbox",
            self.per_shard(|s| s.inbox_depth),
        )?;
        gauges(
            enc,
            "ccbt_shard_inbox_capacity",
            "The inbox's bound: past it commands are refused as busy",
            self.per_shard(|s| s.inbox_capacity),
        )?;
        counters(
            enc,
            "ccbt_shard_inbox_taken",
            "Commands and handed-off connections the shard has taken from its inbox",
            self.per_shard(|s| s.inbox_taken),
        )?;
        counters(
            enc,
            "ccbt_shard_inbox_full",
            "Commands refused because the shard's inbox was full",
            self.per_shard(|s| s.inbox_full),
        )?;
        gauges(
            enc,
            "ccbt_shards",
            "Shards (one per core) the engine runs",
            [(Vec::new(), self.shards.len() as u64)],
        )
    }

    fn torrents(&self, enc: &mut DescriptorEncoder) -> Fmt {
        let rows = &self.catalog.rows;
        let state_of = |r: &crate::daemon::catalog::Row| match r.live.state {
            // As the daemon's listings name it: held by the queue until a slot frees.
            TorrentState::Paused if r.fixed.queued => "queued",
            other => other.name(),
        };
        // One pass over the rows for both tallies (100,000 torrents: one walk, not 13).
        let mut by_state = [0u64; STATES.len()];
        let mut by_fault = [0u64; FAULT_KINDS.len()];
        for r in rows {
            let state = state_of(r);
            if let Some(i) = STATES.iter().position(|&s| s == state) {
                by_state[i] += 1;
            }
            if let Some(fault) = &r.live.error {
                let kind = crate::daemon::core::fault_kind(fault);
                if let Some(i) = FAULT_KINDS.iter().position(|&k| k == kind) {
                    by_fault[i] += 1;
                }
            }
        }
        gauges(
            enc,
            "ccbt_torrents",
            "Torrents by state, as listings name them (queued: waiting for a queue slot), as of \
             the catalog's last refresh (at most a second old)",
            STATES
                .iter()
                .zip(by_state)
                .map(|(&state, n)| (vec![("state", state.to_string())], n)),
        )?;
        gauges(
            enc,
            "ccbt_torrents_faulted",
            "Torrents stopped by a fault, by kind (disk-full: free space, then resume)",
            FAULT_KINDS
                .iter()
                .zip(by_fault)
                .map(|(&kind, n)| (vec![("kind", kind.to_string())], n)),
        )?;
        gauges(
            enc,
            "ccbt_upload_bytes_per_second",
            "Piece payload upload rate over every torrent",
            [(
                Vec::new(),
                rows.iter().map(|r| r.live.upload_rate).sum::<u64>(),
            )],
        )?;
        gauges(
            enc,
            "ccbt_download_bytes_per_second",
            "Piece payload download rate over every torrent",
            [(
                Vec::new(),
                rows.iter().map(|r| r.live.download_rate).sum::<u64>(),
            )],
        )?;
        if self.per_torrent {
            self.each_torrent(enc)?;
        }
        Ok(())
    }

    fn each_torrent(&self, enc: &mut DescriptorEncoder) -> Fmt {
        let rows = &self.catalog.rows;
        let hash = |r: &crate::daemon::catalog::Row| vec![("info_hash", r.info_hash.to_hex())];
        gauges(
            enc,
            "ccbt_torrent_info",
            "A torrent's name (value 1)",
            rows.iter().map(|r| {
                (
                    vec![
                        ("info_hash", r.info_hash.to_hex()),
                        ("name", label_text(&r.fixed.meta.info.name.display())),
                    ],
                    1u64,
                )
            }),
        )?;
        counters(
            enc,
            "ccbt_torrent_uploaded_bytes",
            "A torrent's payload uploaded, over every run",
            rows.iter().map(|r| (hash(r), r.live.uploaded)),
        )?;
        counters(
            enc,
            "ccbt_torrent_downloaded_bytes",
            "A torrent's payload downloaded, over every run",
            rows.iter().map(|r| (hash(r), r.live.downloaded)),
        )?;
        gauges(
            enc,
            "ccbt_torrent_peers",
            "A torrent's peer connections now",
            rows.iter().map(|r| (hash(r), r.live.peers)),
        )?;
        gauges(
            enc,
            "ccbt_torrent_size_bytes",
            "A torrent's total size",
            rows.iter().map(|r| (hash(r), r.total_size())),
        )?;
        gauges(
            enc,
            "ccbt_torrent_verified_bytes",
            "Bytes of a torrent's pieces that are verified",
            rows.iter().map(|r| (hash(r), r.have_bytes())),
        )
    }
}

impl Collector for Collected {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        gauges(
            &mut enc,
            "ccbt_build_info",
            "The running ccbt-uring's version (value 1)",
            [(
                vec![("version", env!("CARGO_PKG_VERSION").to_string())],
                1u64,
            )],
        )?;
        gauges(
            &mut enc,
            "ccbt_uptime_seconds",
            "Seconds since the daemon started",
            [(Vec::new(), self.uptime_s)],
        )?;
        gauges(
            &mut enc,
            "ccbt_event_streams",
            "Clients reading /events now",
            [(Vec::new(), self.event_streams)],
        )?;
        self.shards(&mut enc)?;
        self.torrents(&mut enc)
    }
}

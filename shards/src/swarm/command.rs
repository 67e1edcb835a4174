//! The vocabulary a front end speaks to the shards: one [`Command`] per request, each with
//! a one-shot reply the shard fills once the request has taken effect.
//!
//! Replies are `futures` one-shots: an async front end awaits them, a plain thread blocks
//! on [`Pending::wait`]. A shard never blocks on a reply: sending one cannot wait.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ccbt_engine::blocklist::Blocklist;
use ccbt_engine::picker::Priority;
use ccbt_engine::InfoHash;
use futures_channel::oneshot;
use thiserror::Error;

use super::handoff::Handoff;
use super::status::{TorrentFault, TorrentStatus};
use super::throttle::RateLimits;
use super::TorrentSpec;

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    #[error("no torrent {0} here")]
    UnknownTorrent(InfoHash),
    #[error("torrent {0} is already here")]
    Duplicate(InfoHash),
    #[error("shard {0} has too many commands waiting; try again")]
    Busy(u16),
    #[error("the shard that owns this torrent has stopped")]
    ShardGone,
    #[error("{what}: the torrent has {files} files")]
    BadFileIndex { what: &'static str, files: usize },
    #[error("torrent {0} is still fetching its metadata")]
    FetchingMetadata(InfoHash),
    #[error(transparent)]
    Fault(#[from] TorrentFault),
}

/// What can be asked of one torrent.
#[derive(Debug, Clone)]
pub enum TorrentOp {
    /// Stop it (announcing `stopped`), forget it, and delete its files if asked.
    Remove {
        delete_data: bool,
    },
    /// Stop it, keeping what it has; answered once it has stopped.
    Pause,
    /// Start it again (a failed torrent too, once its fault is mended).
    Resume,
    /// Hash its data again, then go on as before.
    Recheck,
    /// Announce to its tracker now.
    Reannounce,
    /// Per file, in torrent order.
    SetPriorities(Vec<Priority>),
    SetSequential(bool),
    /// Replaces its tracker tiers (BEP 12); a running torrent announces to them at once.
    SetTrackers(Vec<Vec<String>>),
    /// Move its files under another save directory, then go on as before.
    MoveStorage(PathBuf),
    /// Its files at new paths: `metainfo` is the same torrent with them, and each stored
    /// file that moves is in `moves` as (old path, new path). It stops, renames what
    /// exists, and goes on as before.
    Rename {
        metainfo: Arc<ccbt_engine::metainfo::Metainfo>,
        moves: Vec<(
            ccbt_engine::metainfo::TorrentPath,
            ccbt_engine::metainfo::TorrentPath,
        )>,
    },
    /// Its data is under another save directory already (nothing is moved): look there,
    /// checking every piece, then go on as before.
    SetLocation(PathBuf),
    /// Its own limits on piece payload, 0 = unlimited (kept while paused). Running
    /// transfers follow within 100 ms.
    SetLimits {
        upload_bytes_per_s: u64,
        download_bytes_per_s: u64,
    },
}

/// Where a torrent is, as its shard sees it right now.
#[derive(Debug, Clone)]
pub struct TorrentSnapshot {
    pub info_hash: InfoHash,
    pub save_dir: PathBuf,
    pub status: Arc<TorrentStatus>,
}

pub(crate) type ReplyTo<T> = oneshot::Sender<T>;

pub(crate) fn reply_channel<T>() -> (ReplyTo<T>, oneshot::Receiver<T>) {
    oneshot::channel()
}

/// What a shard's inbox carries.
pub(crate) enum Command {
    Add {
        spec: TorrentSpec,
        status: Arc<TorrentStatus>,
        reply: ReplyTo<Result<(), CommandError>>,
    },
    /// A torrent from a magnet link: its metadata is fetched first (see `magnet`).
    AddMagnet {
        spec: super::MagnetSpec,
        status: Arc<TorrentStatus>,
        reply: ReplyTo<Result<(), CommandError>>,
    },
    Torrent {
        info_hash: InfoHash,
        op: TorrentOp,
        reply: ReplyTo<Result<(), CommandError>>,
    },
    /// A torrent's connected peers now.
    Peers {
        info_hash: InfoHash,
        reply: ReplyTo<Result<Vec<super::status::PeerInfo>, CommandError>>,
    },
    /// Which pieces a torrent has now (`None`: not known yet, before its first check).
    Pieces {
        info_hash: InfoHash,
        reply: ReplyTo<Result<Option<ccbt_engine::Bitfield>, CommandError>>,
    },
    Snapshot {
        reply: ReplyTo<Vec<TorrentSnapshot>>,
    },
    /// Stop every torrent (announcing `stopped`) and end the shard.
    Stop { reply: ReplyTo<()> },
    /// This shard's share of new global limits; the reply says they apply.
    SetGlobalLimits {
        limits: RateLimits,
        reply: ReplyTo<()>,
    },
    /// New peer and connection limits for this shard and its torrents.
    SetPeerLimits {
        limits: super::PeerLimits,
        reply: ReplyTo<()>,
    },
    /// A new blocklist for this shard's accepts and dials.
    SetBlocklist {
        list: Arc<Blocklist>,
        reply: ReplyTo<()>,
    },
    /// A connection another shard accepted for one of ours.
    Handoff(Handoff),
    /// For shard 0, which runs the DHT node (see `dht`).
    Dht(super::dht::DhtRequest),
    /// Serve a hot, complete torrent of another shard's from this one too (see `replica`).
    Replicate(Box<super::replica::ReplicaSpec>),
    /// Its owner ended the replication: drop this shard's replica of it now.
    Unreplicate { info_hash: InfoHash },
    /// Peers the DHT found for one of this shard's torrents.
    DhtPeers {
        info_hash: InfoHash,
        peers: Vec<std::net::SocketAddr>,
    },
    /// For shard 0, which runs LSD: announce this torrent on the local network (see `lsd`).
    Lsd(InfoHash),
    /// A peer on the local network announced one of this shard's torrents.
    LsdPeer {
        info_hash: InfoHash,
        peer: std::net::SocketAddr,
    },
}

/// A reply on its way: await it, or [`Pending::wait`] for it on a plain thread.
#[must_use = "a command's reply says whether it worked"]
pub struct Pending<T>(Pin<Box<dyn Future<Output = Result<T, CommandError>> + Send>>);

impl<T: Send + 'static> Pending<T> {
    /// A reply the shard sends as a `Result` of its own.
    pub(crate) fn flat(rx: oneshot::Receiver<Result<T, CommandError>>) -> Self {
        Pending(Box::pin(async move {
            rx.await.map_err(|_| CommandError::ShardGone)?
        }))
    }

    /// A reply that cannot fail on the shard.
    pub(crate) fn plain(rx: oneshot::Receiver<T>) -> Self {
        Pending(Box::pin(async move {
            rx.await.map_err(|_| CommandError::ShardGone)
        }))
    }

    /// Every one of several shards' replies.
    pub(crate) fn all(replies: Vec<oneshot::Receiver<T>>) -> Pending<()> {
        Pending(Box::pin(async move {
            for rx in replies {
                rx.await.map_err(|_| CommandError::ShardGone)?;
            }
            Ok(())
        }))
    }

    /// An answer known without asking a shard.
    pub fn ready(value: T) -> Self {
        Pending(Box::pin(async move { Ok(value) }))
    }

    /// A command that never reached its shard.
    pub(crate) fn refused(error: CommandError) -> Self {
        Pending(Box::pin(async move { Err(error) }))
    }

    pub(crate) fn map<U: Send + 'static>(
        self,
        f: impl FnOnce(T) -> U + Send + 'static,
    ) -> Pending<U> {
        Pending(Box::pin(async move { self.0.await.map(f) }))
    }

    /// Blocks this (non-shard) thread until the shard answers.
    pub fn wait(self) -> Result<T, CommandError> {
        futures_lite::future::block_on(self)
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, CommandError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

//! `ccbt-shards`: the thread-per-core runtime under ccbt-uring.
//!
//! What it does: checks that the kernel lets us use io_uring, starts one pinned glommio
//! executor per core (a *shard*), and runs work on them — today, spreading piece hashing for
//! `create` and `verify` across every shard, reading files through read-only `memmap2`
//! mappings and hashing in place.
//!
//! What it does not do (yet): own torrents, peers or sockets. Those arrive with the daemon;
//! the placement, pinning and start-up checks here are what they will stand on.
//! Protocol logic lives in `ccbt-engine`, never here.

pub mod beneath;
pub mod hashing;
pub mod mapped;
pub mod pool;
pub mod recheck;
pub mod runtime;
pub mod swarm;

pub use hashing::{HashJob, HashProgress, PieceOutcome};
pub use mapped::{FileProblem, MappedFiles, Reading, SpanData};
pub use pool::{ShardConfig, ShardError, ShardId, Shards};
pub use recheck::{PieceState, RecheckReport};
pub use runtime::RuntimeError;

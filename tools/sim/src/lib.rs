//! A deterministic swarm simulator for the engine.
//!
//! Many engine torrents (`ccbt_engine::session::Torrent`) run in one thread on virtual time
//! and exchange real encoded peer-wire messages over a simulated network (uplink rate,
//! delay, socket buffers, loss, cuts) and simulated disks (hash latency, ENOSPC, EIO,
//! corrupt reads). Among them run liars, a disk that returns bad bytes, and scripted peers
//! that lie about their pieces, never read, or flood requests and HAVEs. After every event,
//! each torrent it touched checks its invariants; at the end the run checks that every
//! honest leecher has the right bytes, no honest node is banned, and every liar caught in
//! two pieces is banned. A run depends only on its seed: a failure prints the seed, and
//! the same seed replays it exactly (in the spirit of libtorrent's `simulation/` and
//! TigerBeetle's VOPR).

mod disk;
pub mod events;
pub mod network;
pub mod report;
pub mod scenario;
mod script;
mod world;

pub use report::Report;
pub use scenario::{Role, Scenario, Script};
pub use world::World;

/// Runs `scenario`; a panic inside (an invariant, an engine assertion) becomes an error
/// naming the seed, like a failed property.
pub fn run(scenario: Scenario) -> Result<Report, String> {
    let seed = scenario.seed;
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| World::new(scenario).run()));
    match outcome {
        Ok(result) => result.map_err(|e| format!("seed {seed}: {e}")),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Err(format!("seed {seed}: panicked: {message}"))
        }
    }
}

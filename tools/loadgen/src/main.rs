//! `ccbt-loadgen`: makes the load that ccbt-uring is measured under: data sets, synthetic
//! torrents, and simulated seeders and leechers that run one shard per core so the load
//! generator is never the bottleneck it measures.

fn main() -> anyhow::Result<()> {
    ccbt_loadgen::cli::main()
}

//! Single-core SHA-1 throughput of the engine's hasher on an in-memory buffer:
//! `cargo run --release -p ccbt-engine --example sha1_speed`.
use ccbt_engine::hash::Sha1;

fn main() {
    let buf = vec![0x5au8; 1 << 20];
    let rounds = 2048;
    let t = std::time::Instant::now();
    let mut acc = 0u8;
    for _ in 0..rounds {
        acc ^= Sha1::digest(&buf).0[0];
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{:.2} GB/s per core ({acc})",
        rounds as f64 * buf.len() as f64 / s / 1e9
    );
}

//! Probe: single-core SHA-1 over a page-cached file through mmap, with software prefetch at
//! several distances. `cargo run --release -p ccbt-shards --example prefetch_probe FILE`.
use ccbt_engine::hash::Sha1;

fn hash(data: &[u8], step: usize, ahead: usize) -> u8 {
    let mut h = Sha1::new();
    let mut at = 0;
    while at < data.len() {
        let end = (at + step).min(data.len());
        if ahead > 0 {
            let from = (at + ahead).min(data.len());
            let to = (end + ahead).min(data.len());
            for line in (from..to).step_by(64) {
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().add(line).cast());
                }
            }
        }
        h.update(&data[at..end]);
        at = end;
    }
    h.finish().0[0]
}

fn main() {
    let path = std::env::args().nth(1).expect("FILE");
    let file = std::fs::File::open(path).unwrap();
    let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
    let _ = map.advise(memmap2::Advice::PopulateRead);
    let data = &map[..1 << 30];
    for (step, ahead) in [
        (1024, 8192),
        (512, 4096),
        (1024, 4096),
        (512, 8192),
        (2048, 8192),
        (1024, 16384),
        (256, 4096),
        (1024, 8192),
    ] {
        let t = std::time::Instant::now();
        let x = hash(data, step, ahead);
        let s = t.elapsed().as_secs_f64();
        println!(
            "step {step:6} ahead {ahead:6}: {:.2} GB/s ({x})",
            data.len() as f64 / s / 1e9
        );
    }
}

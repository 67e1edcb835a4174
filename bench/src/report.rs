//! Medians, ratios and the Markdown table that goes into BENCHMARKS.md.

use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

/// Throughput samples per contender, in MB/s (10^6 bytes), kept in first-seen order.
pub struct Results {
    bytes: u64,
    rows: Vec<(String, Histogram<u64>)>,
}

impl Results {
    pub fn new(bytes: u64) -> Self {
        Self {
            bytes,
            rows: Vec::new(),
        }
    }

    /// Adds one sample in GB/s.
    pub fn record(&mut self, who: &str, gb_per_s: f64) {
        eprintln!("  {who}: {gb_per_s:.2} GB/s");
        let mb_per_s = (gb_per_s * 1000.0).round().max(1.0) as u64;
        let hist = match self.rows.iter_mut().find(|(w, _)| w == who) {
            Some((_, h)) => h,
            None => {
                self.rows
                    .push((who.to_string(), Histogram::new(3).expect("valid sigfig")));
                &mut self.rows.last_mut().unwrap().1
            }
        };
        hist.record(mb_per_s).expect("in range");
    }

    fn median(&self, who: &str) -> Option<f64> {
        let (_, h) = self.rows.iter().find(|(w, _)| w == who)?;
        Some(h.value_at_quantile(0.5) as f64 / 1000.0)
    }

    /// A table of medians with min/max, and each contender's ratio to `ours`, plus ours as a
    /// share of `ceiling`.
    pub fn markdown(&self, ours: &str, ceiling: &str) -> String {
        let our = self.median(ours).unwrap_or(f64::NAN);
        let mut out = format!(
            "Data: {:.2} GiB in one file, 1 MiB pieces, in the page cache. {} rounds, interleaved.\n\n\
             | contender | median GB/s | min | max | ccbt-uring verify / this |\n|---|---:|---:|---:|---:|\n",
            self.bytes as f64 / (1u64 << 30) as f64,
            self.rows.first().map_or(0, |(_, h)| h.len()),
        );
        for (who, h) in &self.rows {
            let median = h.value_at_quantile(0.5) as f64 / 1000.0;
            out += &format!(
                "| {who} | {median:.2} | {:.2} | {:.2} | {:.2}x |\n",
                h.min() as f64 / 1000.0,
                h.max() as f64 / 1000.0,
                our / median
            );
        }
        if let Some(c) = self.median(ceiling) {
            out += &format!(
                "\nccbt-uring verify reaches **{:.0}%** of {ceiling} (medians).\n",
                100.0 * our / c
            );
        }
        out
    }
}

/// Replaces the text between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`
/// in `path` (appending the markers if they are missing).
pub fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let (start, end) = (
        format!("<!-- bench:{name}:start -->"),
        format!("<!-- bench:{name}:end -->"),
    );
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{start}\n{body}{end}");
    let new = match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &text[..a], &text[b + end.len()..]),
        _ => format!("{text}\n{section}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ratios_and_sections() {
        let mut r = Results::new(1 << 30);
        for (a, b) in [(4.0, 3.0), (4.2, 3.6), (3.8, 3.5)] {
            r.record("ceiling", a);
            r.record("ours", b);
        }
        let table = r.markdown("ours", "ceiling");
        assert!(
            table.contains("| ours | 3.50 | 3.00 | 3.60 | 1.00x |"),
            "{table}"
        );
        assert!(table.contains("**88%**"), "{table}");

        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("B.md");
        std::fs::write(
            &md,
            "# T\n<!-- bench:x:start -->\nold\n<!-- bench:x:end -->\ntail\n",
        )
        .unwrap();
        write_section(&md, "x", "new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&md).unwrap(),
            "# T\n<!-- bench:x:start -->\nnew\n<!-- bench:x:end -->\ntail\n"
        );
    }
}

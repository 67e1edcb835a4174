//! Medians per seeder and leecher count, ratios to the fastest other seeder, and the two
//! Markdown sections: S2 (seeding to many leechers) and S5 (core scaling).

use super::load::Measured;
use super::seeders::Seeder;

const GIB: f64 = (1u64 << 30) as f64;

/// One valid load window.
#[derive(Clone, Debug)]
pub struct Sample {
    pub measured: Measured,
    /// CPU seconds of the seeder's process group over the window.
    pub seeder_cpu_s: f64,
    /// The seeder's VmHWM over the window (reset as it opened), in KiB.
    pub peak_rss_kib: u64,
    /// For ccbt-uring: the busiest shard thread's share of the CPU all shard threads used
    /// over the window (1/N is an even spread over N shards, 1.0 one shard doing it all).
    pub busiest_shard: Option<f64>,
}

impl Sample {
    fn cpu_s_per_gib(&self) -> f64 {
        self.seeder_cpu_s / (self.measured.bytes as f64 / GIB)
    }

    /// Decimal MB served per CPU second of the seeder: the figure that carries over to a
    /// machine with more cores, where the load generator would not share them.
    fn mb_per_cpu_s(&self) -> f64 {
        self.measured.bytes as f64 / 1e6 / self.seeder_cpu_s
    }
}

/// The windows of one seeder at one leecher count.
struct Row {
    seeder: Seeder,
    leechers: u32,
    valid: Vec<Sample>,
    /// Why each invalid window was invalid.
    invalid: Vec<String>,
}

/// Medians of a row's valid windows.
#[derive(Clone, Copy, Debug)]
struct Medians {
    mb_per_s: f64,
    mb_per_cpu_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_s_per_gib: f64,
    rss_mib: f64,
    connections: f64,
    drops: f64,
    loadgen_cpu_s: f64,
    /// NaN when no window measured it.
    busiest_shard: f64,
}

impl Row {
    /// `valid/all` windows.
    fn valid_cell(&self) -> String {
        format!(
            "{}/{}",
            self.valid.len(),
            self.valid.len() + self.invalid.len()
        )
    }

    fn medians(&self) -> Option<Medians> {
        if self.valid.is_empty() {
            return None;
        }
        let m = |f: &dyn Fn(&Sample) -> f64| median(self.valid.iter().map(f).collect());
        Some(Medians {
            mb_per_s: m(&|s| s.measured.mb_per_s),
            mb_per_cpu_s: m(&|s| s.mb_per_cpu_s()),
            p50_ms: m(&|s| s.measured.p50_ms),
            p99_ms: m(&|s| s.measured.p99_ms),
            cpu_s_per_gib: m(&|s| s.cpu_s_per_gib()),
            rss_mib: m(&|s| s.peak_rss_kib as f64 / 1024.0),
            connections: m(&|s| s.measured.connections as f64),
            drops: m(&|s| s.measured.drops as f64),
            loadgen_cpu_s: m(&|s| s.measured.loadgen_cpu_s),
            busiest_shard: median(self.valid.iter().filter_map(|s| s.busiest_shard).collect()),
        })
    }
}

/// The median (the mean of the middle two for an even count); NaN for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The loopback ceiling, as far as it could be measured.
pub enum Loopback {
    MbPerS(f64),
    Missing,
    Failed(String),
}

/// Everything one run measured.
pub struct Results {
    data_bytes: u64,
    /// Length of each load window.
    seconds: u64,
    /// Requests each leecher keeps outstanding.
    pipeline: u32,
    rounds: usize,
    cores: usize,
    rows: Vec<Row>,
    skipped: Vec<String>,
    loopback: Loopback,
}

impl Results {
    pub fn new(data_bytes: u64, seconds: u64, pipeline: u32, rounds: usize, cores: usize) -> Self {
        Results {
            data_bytes,
            seconds,
            pipeline,
            rounds,
            cores,
            rows: Vec::new(),
            skipped: Vec::new(),
            loopback: Loopback::Missing,
        }
    }

    pub fn set_loopback(&mut self, loopback: Loopback) {
        self.loopback = loopback;
    }

    /// Notes a seeder that cannot run here, and why.
    pub fn skip(&mut self, why: String) {
        eprintln!("  skipped: {why}");
        self.skipped.push(why);
    }

    pub fn record(&mut self, seeder: Seeder, leechers: u32, sample: Sample) {
        let m = &sample.measured;
        eprintln!(
            "  {} x{leechers}: {:.0} MB/s, p50 {:.1} ms, p99 {:.1} ms, {:.2} CPU s/GiB, \
             {:.0} MiB peak, {} connections ({} dropped), loadgen {:.1} CPU s",
            seeder.name(),
            m.mb_per_s,
            m.p50_ms,
            m.p99_ms,
            sample.cpu_s_per_gib(),
            sample.peak_rss_kib as f64 / 1024.0,
            m.connections,
            m.drops,
            m.loadgen_cpu_s,
        );
        self.row(seeder, leechers).valid.push(sample);
    }

    /// Notes a window that does not count: loadgen errors, or a seeder that failed.
    pub fn record_invalid(&mut self, seeder: Seeder, leechers: u32, why: String) {
        eprintln!("  {} x{leechers}: INVALID: {why}", seeder.name());
        self.row(seeder, leechers).invalid.push(why);
    }

    fn row(&mut self, seeder: Seeder, leechers: u32) -> &mut Row {
        let at = self
            .rows
            .iter()
            .position(|r| r.seeder == seeder && r.leechers == leechers)
            .unwrap_or_else(|| {
                self.rows.push(Row {
                    seeder,
                    leechers,
                    valid: Vec::new(),
                    invalid: Vec::new(),
                });
                self.rows.len() - 1
            });
        &mut self.rows[at]
    }

    fn medians(&self, seeder: Seeder, leechers: u32) -> Option<Medians> {
        self.rows
            .iter()
            .find(|r| r.seeder == seeder && r.leechers == leechers)?
            .medians()
    }

    /// The fastest seeder that is not ccbt-uring at `leechers`, by median MB/s.
    fn fastest_other(&self, leechers: u32) -> Option<(Seeder, f64)> {
        self.rows
            .iter()
            .filter(|r| r.leechers == leechers && !r.seeder.is_ours())
            .filter_map(|r| Some((r.seeder, r.medians()?.mb_per_s)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn leecher_counts(&self) -> Vec<u32> {
        let mut counts: Vec<u32> = self.rows.iter().map(|r| r.leechers).collect();
        counts.sort_unstable();
        counts.dedup();
        counts
    }

    /// S2: every seeder at every leecher count with the deep pipeline, then the
    /// shallow-pipeline latency rows of `latency` (a separate set of windows), the issue
    /// 13 targets, and how each seeder was set up.
    pub fn seed_markdown(&self, latency: &Results) -> String {
        let mut out = format!(
            "Data: {:.2} GiB in one file, 1 MiB pieces, in the page cache. Load: \
             `ccbt-loadgen leech` on 127.0.0.1, {} s windows, {} requests of 16 KiB \
             outstanding per leecher, every piece SHA-1 checked. Rounds: {}, seeders \
             interleaved, a fresh seeder for every window; medians of the valid windows (a \
             window with any load-generator error is invalid). CPU: the seeder's process \
             group over the window alone (/proc utime+stime), per GiB it served; **MB per \
             CPU s** is the same the other way up (10^6 bytes served per CPU second of the \
             seeder), the figure that carries over to a machine with more cores; peak RSS: \
             its VmHWM over the window (reset as it opens, so start-up checks do not count). {} cores, shared by seeder and load generator.\n\n\
             | seeder | leechers | valid | MB/s | MB per CPU s | / fastest other | p50 ms | \
             p99 ms | CPU s/GiB | peak RSS MiB | connections (drops) | loadgen CPU s |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            self.data_bytes as f64 / GIB,
            self.seconds,
            self.pipeline,
            self.rounds,
            self.cores,
        );
        let mut notes = self.invalid_notes();
        for leechers in self.leecher_counts() {
            let fastest = self.fastest_other(leechers);
            for row in self.rows.iter().filter(|r| r.leechers == leechers) {
                let name = row.seeder.name();
                let valid = row.valid_cell();
                let Some(m) = row.medians() else {
                    out += &format!(
                        "| {name} | {leechers} | {valid} | – | – | – | – | – | – | – | – | – |\n"
                    );
                    continue;
                };
                let ratio = fastest.map_or("–".to_string(), |(_, f)| {
                    format!("{:.2}x", m.mb_per_s / f)
                });
                out += &format!(
                    "| {name} | {leechers} | {valid} | {:.0} | {:.0} | {ratio} | {:.1} | {:.1} | \
                     {:.2} | {:.0} | {:.0} ({:.0}) | {:.1} |\n",
                    m.mb_per_s,
                    m.mb_per_cpu_s,
                    m.p50_ms,
                    m.p99_ms,
                    m.cpu_s_per_gib,
                    m.rss_mib,
                    m.connections,
                    m.drops,
                    m.loadgen_cpu_s,
                );
            }
        }
        out += "\n";
        if !latency.rows.is_empty() {
            out += &latency.latency_markdown();
            notes += &latency.invalid_notes();
        }
        out += &self.targets(latency);
        out += &self.loopback_line();
        out += &format!(
            "\nThe load generator's CPU is shown so a saturated load generator is visible: it \
             has at most {} CPU s per window ({} cores × {} s). Latency is request sent to \
             block received; with {} requests outstanding per leecher it is mostly queueing \
             (Little's law: leechers served × {} × 16 KiB / rate), which is why the latency \
             target is judged on the shallow-pipeline windows instead.\n\nHow each seeder was set up:\n",
            self.cores as u64 * self.seconds,
            self.cores,
            self.seconds,
            self.pipeline,
            self.pipeline,
        );
        let mut configured: Vec<Seeder> = Vec::new();
        for row in self.rows.iter().chain(&latency.rows) {
            if !configured.contains(&row.seeder) && row.seeder != Seeder::CcbtOneShard {
                configured.push(row.seeder);
                out += &format!("- {}: {}\n", row.seeder.name(), row.seeder.configuration());
            }
        }
        out += "- Transmission 3.00: left out. It accepts one connection per IP address and \
                every load-generator leecher comes from 127.0.0.1, so it would serve one \
                leecher of 50 or 500: no comparable figure.\n";
        for why in &self.skipped {
            out += &format!("- skipped: {why}\n");
        }
        if !notes.is_empty() {
            out += &format!("\nInvalid windows:\n{notes}");
        }
        out
    }

    /// One line per row with invalid windows: how many, and the first reason.
    fn invalid_notes(&self) -> String {
        let mut notes = String::new();
        for row in &self.rows {
            if let Some(why) = row.invalid.first() {
                notes += &format!(
                    "- {} at {} leechers, pipeline {}: {} invalid window(s): {why}\n",
                    row.seeder.name(),
                    row.leechers,
                    self.pipeline,
                    row.invalid.len()
                );
            }
        }
        notes
    }

    /// The latency windows: every seeder with a shallow pipeline, so that a request waits
    /// behind few others of its peer and the figure is close to a service time. Little's
    /// law gives the mean latency that the number of requests in flight alone implies
    /// (requests outstanding × 16 KiB / rate): a p99 far above it is the seeder's own
    /// delay, one close to it is the queue the load makes.
    fn latency_markdown(&self) -> String {
        let mut out = format!(
            "**Service latency**: separate windows, {} requests outstanding per leecher \
             (the rows above keep the throughput-oriented depth), otherwise the same load, \
             rounds and medians. *Queue floor* is Little's law: leechers served × {} × 16 \
             KiB / rate, the mean latency the requests in flight alone make.\n\n\
             | seeder | leechers | pipeline | valid | MB/s | p50 ms | p99 ms | queue floor ms | \
             connections (drops) |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            self.pipeline, self.pipeline,
        );
        for row in &self.rows {
            let (name, leechers, valid) = (row.seeder.name(), row.leechers, row.valid_cell());
            let Some(m) = row.medians() else {
                out += &format!(
                    "| {name} | {leechers} | {} | {valid} | – | – | – | – | – |\n",
                    self.pipeline
                );
                continue;
            };
            out += &format!(
                "| {name} | {leechers} | {} | {valid} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} ({:.0}) |\n",
                self.pipeline,
                m.mb_per_s,
                m.p50_ms,
                m.p99_ms,
                self.queue_floor_ms(&m),
                m.connections,
                m.drops,
            );
        }
        out + "\n"
    }

    /// Little's law for a closed-loop load: every connected leecher keeps `pipeline`
    /// blocks of 16 KiB requested, so the mean wait is what is in flight over the rate.
    fn queue_floor_ms(&self, m: &Medians) -> f64 {
        let in_flight = m.connections.min(self.max_leechers()) * f64::from(self.pipeline) * 16384.0;
        1e3 * in_flight / (m.mb_per_s * 1e6)
    }

    fn max_leechers(&self) -> f64 {
        self.leecher_counts().last().map_or(0.0, |&l| f64::from(l))
    }

    /// The issue 13 targets for S2, at the largest leecher count: throughput against the
    /// fastest other seeder, CPU per GiB against libtorrent's, RSS with the default cache
    /// (all from the deep-pipeline rows), and p99 from `latency`'s shallow-pipeline rows.
    fn targets(&self, latency: &Results) -> String {
        let Some(&leechers) = self.leecher_counts().last() else {
            return String::new();
        };
        let Some(ours) = self.medians(Seeder::CcbtAllShards, leechers) else {
            return format!(
                "No valid ccbt-uring window at {leechers} leechers: no target can be judged.\n"
            );
        };
        let met = |ok: bool| if ok { "met" } else { "**not met**" };
        let mut out = format!("Targets (issue 13) at {leechers} leechers:\n");
        match self.fastest_other(leechers) {
            Some((other, rate)) => {
                let ratio = ours.mb_per_s / rate;
                out += &format!(
                    "- throughput: ccbt-uring serves **{:.0} MB/s** ({:.0} MB per CPU s), \
                     **{ratio:.2}x** the fastest other seeder ({}, {rate:.0} MB/s); target ≥ \
                     {TARGET_VS_FASTEST}x: {}.\n",
                    ours.mb_per_s,
                    ours.mb_per_cpu_s,
                    other.name(),
                    met(ratio >= TARGET_VS_FASTEST)
                );
            }
            None => out += "- throughput: no other seeder has a valid window: not judged.\n",
        }
        match self.medians(Seeder::Libtorrent, leechers) {
            Some(lt) => {
                let ratio = ours.cpu_s_per_gib / lt.cpu_s_per_gib;
                out += &format!(
                    "- CPU: **{:.2} s/GiB**, **{ratio:.2}x** libtorrent's ({:.2}); target ≤ \
                     {TARGET_CPU_VS_LT}x: {}.\n",
                    ours.cpu_s_per_gib,
                    lt.cpu_s_per_gib,
                    met(ratio <= TARGET_CPU_VS_LT)
                );
            }
            None => out += "- CPU: no valid libtorrent window: not judged.\n",
        }
        out += &format!(
            "- memory: peak RSS **{:.0} MiB** with the default cache; target ≤ \
             {TARGET_RSS_MIB} MiB: {}.\n",
            ours.rss_mib,
            met(ours.rss_mib <= TARGET_RSS_MIB)
        );
        let shallow = latency
            .leecher_counts()
            .last()
            .and_then(|&l| Some((l, latency.medians(Seeder::CcbtAllShards, l)?)));
        out += &match shallow {
            Some((l, m)) => format!(
                "- latency: p99 **{:.1} ms** at {l} leechers with a pipeline of {}; target < \
                 {TARGET_P99_MS} ms at 500 leechers with a pipeline of 4: {}.\n",
                m.p99_ms,
                latency.pipeline,
                if l < 500 || latency.pipeline > 4 {
                    "not judged (a different load)"
                } else {
                    met(m.p99_ms < TARGET_P99_MS)
                }
            ),
            None => {
                "- latency: no valid shallow-pipeline ccbt-uring window: not judged.\n".to_string()
            }
        };
        out
    }

    fn loopback_line(&self) -> String {
        match &self.loopback {
            Loopback::MbPerS(rate) => {
                let best = self
                    .rows
                    .iter()
                    .filter_map(|r| r.medians())
                    .map(|m| m.mb_per_s)
                    .max_by(f64::total_cmp)
                    .unwrap_or(0.0);
                format!(
                    "\nMachine limit: iperf3 moves **{rate:.0} MB/s** through loopback in one TCP \
                     stream (5 s, same run); the fastest seeder above reaches {:.0}% of it.\n",
                    100.0 * best / rate
                )
            }
            Loopback::Missing => {
                "\nMachine limit: iperf3 is not installed (`apt-get install iperf3`), so no \
                 loopback figure.\n"
                    .to_string()
            }
            Loopback::Failed(why) => format!("\nMachine limit: iperf3 failed: {why}\n"),
        }
    }

    /// S5: ccbt-uring with one shard against all shards under the same load, as a table
    /// with the ratio and a verdict against `target` at the largest leecher count.
    pub fn scaling_markdown(&self, target: f64) -> String {
        let cores = self.cores;
        let mut out = format!(
            "`ccbt-uring seed` with `--shards 1` and with one shard per core ({cores} here), \
             same windows and rounds (medians).\n\n\
             *Busiest shard* is the busiest shard thread's share of the CPU all {cores} \
             shard threads used over the window (/proc/PID/task): {:.0}% is an even spread, \
             100% one shard doing all the work.\n\n\
             | leechers | 1 shard MB/s | MB per CPU s | p99 ms | {cores} shards MB/s | MB per CPU s | p99 ms | busiest shard | all / one |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            100.0 / cores as f64,
        );
        let mut last = None;
        for leechers in self.leecher_counts() {
            let one = self.medians(Seeder::CcbtOneShard, leechers);
            let all = self.medians(Seeder::CcbtAllShards, leechers);
            let cell = |m: Option<Medians>, f: fn(&Medians) -> f64, digits: usize| {
                m.map_or("–".to_string(), |m| format!("{:.*}", digits, f(&m)))
            };
            let ratio = match (one, all) {
                (Some(o), Some(a)) => {
                    last = Some((leechers, a.mb_per_s / o.mb_per_s));
                    format!("{:.2}x", a.mb_per_s / o.mb_per_s)
                }
                _ => "–".to_string(),
            };
            let busiest = all
                .map(|m| m.busiest_shard)
                .filter(|b| !b.is_nan())
                .map_or("–".to_string(), |b| format!("{:.0}%", 100.0 * b));
            out += &format!(
                "| {leechers} | {} | {} | {} | {} | {} | {} | {busiest} | {ratio} |\n",
                cell(one, |m| m.mb_per_s, 0),
                cell(one, |m| m.mb_per_cpu_s, 0),
                cell(one, |m| m.p99_ms, 1),
                cell(all, |m| m.mb_per_s, 0),
                cell(all, |m| m.mb_per_cpu_s, 0),
                cell(all, |m| m.p99_ms, 1),
            );
        }
        out +=
            &match last {
                Some((leechers, ratio)) => format!(
                "\nAt {leechers} leechers all {cores} shards serve **{ratio:.2}x** what one shard \
                 does; target ≥ {target}x on 2 cores: {}.\n",
                if ratio >= target { "met" } else { "**not met**" }
            ),
                None => "\nNo leecher count has valid windows for both: no ratio.\n".to_string(),
            };
        let notes = self.invalid_notes();
        if !notes.is_empty() {
            out += &format!("\nInvalid windows:\n{notes}");
        }
        out
    }
}

/// The issue 13 targets (goals judged in the tables, not timed tests).
const TARGET_VS_FASTEST: f64 = 1.5;
const TARGET_CPU_VS_LT: f64 = 0.35;
const TARGET_P99_MS: f64 = 20.0;
const TARGET_RSS_MIB: f64 = 150.0;
/// S5 over eight torrents (issue 3's target) and for one hot torrent (issue 13's).
pub const TARGET_SPREAD_SCALING: f64 = 1.8;
pub const TARGET_HOT_SCALING: f64 = 1.6;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(mb_per_s: f64, p99_ms: f64, cpu_s: f64) -> Sample {
        Sample {
            measured: Measured {
                bytes: (mb_per_s * 1e6 * 10.0) as u64,
                mb_per_s,
                p50_ms: p99_ms / 2.0,
                p99_ms,
                connections: 50,
                drops: 0,
                errors: 0,
                first_error: None,
                loadgen_cpu_s: 4.0,
            },
            seeder_cpu_s: cpu_s,
            peak_rss_kib: 20 * 1024,
            busiest_shard: Some(0.55),
        }
    }

    #[test]
    fn medians_of_odd_even_and_none() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn tables_ratios_and_targets() {
        let mut r = Results::new(1 << 30, 10, 64, 3, 2);
        for (ours, one, lt) in [
            (1000.0, 500.0, 400.0),
            (1100.0, 600.0, 500.0),
            (900.0, 550.0, 450.0),
        ] {
            // 10 s at `rate` MB/s; CPU chosen so that libtorrent's is 4x ours per GiB.
            r.record(
                Seeder::CcbtAllShards,
                500,
                sample(ours, 15.0, 1.0 * ours / 1000.0),
            );
            r.record(Seeder::CcbtOneShard, 500, sample(one, 30.0, 1.0));
            r.record(Seeder::Libtorrent, 500, sample(lt, 80.0, 4.0 * lt / 1000.0));
        }
        r.record_invalid(
            Seeder::Aria2,
            500,
            "3 errors: piece 1 failed its hash".into(),
        );
        r.set_loopback(Loopback::MbPerS(4000.0));
        let mut latency = Results::new(1 << 30, 10, 4, 3, 2);
        // 500 leechers × 4 × 16 KiB in flight at 1638.4 MB/s: a 20 ms queue floor.
        latency.record(Seeder::CcbtAllShards, 500, {
            let mut s = sample(1638.4, 12.5, 1.0);
            s.measured.connections = 500;
            s
        });
        latency.record(Seeder::Libtorrent, 500, sample(300.0, 90.0, 2.0));
        let s2 = r.seed_markdown(&latency);
        // 10 GB served for 1 CPU s: 10,000 MB per CPU s.
        assert!(
            s2.contains(
                "| ccbt-uring, all shards | 500 | 3/3 | 1000 | 10000 | 2.22x | 7.5 | 15.0 |"
            ),
            "{s2}"
        );
        assert!(s2.contains("| aria2c 1.36 | 500 | 0/1 | – |"), "{s2}");
        assert!(
            s2.contains("**2.22x** the fastest other seeder (python3-libtorrent 2.0"),
            "{s2}"
        );
        assert!(s2.contains("target ≥ 1.5x: met"), "{s2}");
        assert!(s2.contains("**0.25x** libtorrent's"), "{s2}");
        assert!(s2.contains("target ≤ 0.35x: met"), "{s2}");
        assert!(s2.contains("peak RSS **20 MiB**"), "{s2}");
        assert!(s2.contains("target ≤ 150 MiB: met"), "{s2}");
        assert!(
            s2.contains(
                "| ccbt-uring, all shards | 500 | 4 | 1/1 | 1638 | 6.2 | 12.5 | 20.0 | 500 (0) |"
            ),
            "{s2}"
        );
        assert!(
            s2.contains("| python3-libtorrent 2.0 | 500 | 4 | 1/1 | 300 | 45.0 | 90.0 |"),
            "{s2}"
        );
        assert!(
            s2.contains("p99 **12.5 ms** at 500 leechers with a pipeline of 4; target < 20 ms at 500 leechers with a pipeline of 4: met"),
            "{s2}"
        );
        assert!(s2.contains("**4000 MB/s**"), "{s2}");
        assert!(s2.contains("reaches 25% of it"), "{s2}");
        assert!(
            s2.contains("aria2c 1.36 at 500 leechers, pipeline 64: 1 invalid window(s): 3 errors"),
            "{s2}"
        );
        assert!(s2.contains("Transmission 3.00: left out"), "{s2}");
        let s5 = r.scaling_markdown(TARGET_SPREAD_SCALING);
        assert!(
            s5.contains("| 500 | 550 | 5500 | 30.0 | 1000 | 10000 | 15.0 | 55% | 1.82x |"),
            "{s5}"
        );
        assert!(s5.contains("target ≥ 1.8x on 2 cores: met"), "{s5}");
        let hot = r.scaling_markdown(TARGET_HOT_SCALING);
        assert!(hot.contains("target ≥ 1.6x on 2 cores: met"), "{hot}");
    }

    #[test]
    fn misses_are_called_misses() {
        let mut r = Results::new(1 << 30, 10, 64, 1, 2);
        let mut fat = sample(700.0, 900.0, 7.0);
        fat.peak_rss_kib = 500 * 1024;
        r.record(Seeder::CcbtAllShards, 500, fat);
        r.record(Seeder::CcbtOneShard, 500, sample(600.0, 900.0, 7.0));
        r.record(Seeder::Rqbit, 500, sample(770.0, 900.0, 14.0));
        r.record(Seeder::Libtorrent, 500, sample(600.0, 500.0, 9.0));
        // The latency windows were taken at 50 leechers only: too few to judge.
        let mut latency = Results::new(1 << 30, 10, 4, 1, 2);
        latency.record(Seeder::CcbtAllShards, 50, sample(700.0, 5.0, 1.0));
        let s2 = r.seed_markdown(&latency);
        assert!(
            s2.contains("**0.91x** the fastest other seeder (rqbit"),
            "{s2}"
        );
        assert!(s2.contains("target ≥ 1.5x: **not met**"), "{s2}");
        assert!(s2.contains("target ≤ 0.35x: **not met**"), "{s2}");
        assert!(s2.contains("target ≤ 150 MiB: **not met**"), "{s2}");
        assert!(s2.contains("at 50 leechers with a pipeline of 4"), "{s2}");
        assert!(
            s2.contains("pipeline of 4: not judged (a different load)"),
            "{s2}"
        );
        let s5 = r.scaling_markdown(TARGET_HOT_SCALING);
        assert!(s5.contains("**1.17x**"), "{s5}");
        assert!(s5.contains("target ≥ 1.6x on 2 cores: **not met**"), "{s5}");
    }

    #[test]
    fn says_when_targets_cannot_be_judged() {
        let mut r = Results::new(1 << 28, 5, 64, 1, 2);
        r.record_invalid(Seeder::CcbtAllShards, 50, "seeder exited".into());
        r.skip("aria2c not found".into());
        let s2 = r.seed_markdown(&Results::new(1 << 28, 5, 4, 1, 2));
        assert!(
            s2.contains("No valid ccbt-uring window at 50 leechers"),
            "{s2}"
        );
        assert!(s2.contains("iperf3 is not installed"), "{s2}");
        assert!(s2.contains("- skipped: aria2c not found"), "{s2}");
        assert!(r.scaling_markdown(TARGET_HOT_SCALING).contains("no ratio"));
        assert!(
            !s2.contains("Service latency"),
            "no latency windows, no table:\n{s2}"
        );
    }
}

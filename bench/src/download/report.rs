//! Medians per downloader and of the seeders' capacity, and the Markdown table for
//! BENCHMARKS.md.

use hdrhistogram::Histogram;

use super::seeders::Source;

/// One finished, verified download.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub max_rss_kib: u64,
}

/// The finished downloads of one contender, kept as integers (kB/s, ms/GiB, KiB) in
/// histograms, and why the others did not finish.
struct Series {
    mb_per_s: Histogram<u64>,
    cpu_ms_per_gib: Histogram<u64>,
    rss_kib: Histogram<u64>,
    unfinished: Vec<String>,
}

impl Series {
    fn new() -> Self {
        let hist = || Histogram::new(3).expect("valid sigfig");
        Series {
            mb_per_s: hist(),
            cpu_ms_per_gib: hist(),
            rss_kib: hist(),
            unfinished: Vec::new(),
        }
    }

    fn finished(&self) -> u64 {
        self.mb_per_s.len()
    }

    fn attempts(&self) -> u64 {
        self.finished() + self.unfinished.len() as u64
    }
}

/// Issue 13's S1 targets (goals judged in the table, not timed tests).
const TARGET_VS_FASTEST: f64 = 1.5;
const TARGET_CPU_S_PER_GIB: f64 = 1.0;

fn median(h: &Histogram<u64>) -> f64 {
    h.value_at_quantile(0.5) as f64
}

/// Everything one run measured.
pub struct Results {
    bytes: u64,
    seeders: usize,
    source: Source,
    downloads: Vec<(String, bool, Series)>,
    /// Load-generator runs: (what, MB/s samples in kB/s).
    sinks: Vec<(String, Histogram<u64>)>,
    /// Contenders that cannot run here, and what to install.
    skipped: Vec<String>,
}

impl Results {
    pub fn new(bytes: u64, seeders: usize, source: Source) -> Self {
        Results {
            bytes,
            seeders,
            source,
            downloads: Vec::new(),
            sinks: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Notes a contender that is not installed here: `why` says what to install.
    pub fn skip(&mut self, who: &str, why: &str) {
        eprintln!("{who}: skipped: {why}");
        self.skipped.push(format!("{who}: skipped: {why}."));
    }

    /// Adds one download by `who` (`ours`: a ccbt-uring contender, left out of the
    /// baseline).
    pub fn record(&mut self, who: &str, ours: bool, sample: Sample) {
        let mb_per_s = self.bytes as f64 / sample.seconds / 1e6;
        let gib = self.bytes as f64 / (1u64 << 30) as f64;
        eprintln!(
            "  {who}: {:.1} s, {mb_per_s:.0} MB/s, {:.2} CPU s/GiB, {} MiB peak RSS",
            sample.seconds,
            sample.cpu_seconds / gib,
            sample.max_rss_kib / 1024
        );
        let series = self.series(who, ours);
        let record = |h: &mut Histogram<u64>, v: f64| {
            h.record(v.round().max(1.0) as u64).expect("in range");
        };
        record(&mut series.mb_per_s, mb_per_s * 1000.0);
        record(
            &mut series.cpu_ms_per_gib,
            sample.cpu_seconds / gib * 1000.0,
        );
        record(&mut series.rss_kib, sample.max_rss_kib as f64);
    }

    /// Notes a download by `who` that did not finish, and why.
    pub fn record_unfinished(&mut self, who: &str, ours: bool, why: &str) {
        eprintln!("  {who}: did not finish: {why}");
        self.series(who, ours).unfinished.push(why.to_string());
    }

    fn series(&mut self, who: &str, ours: bool) -> &mut Series {
        let index = match self.downloads.iter().position(|(w, ..)| w == who) {
            Some(i) => i,
            None => {
                self.downloads.push((who.to_string(), ours, Series::new()));
                self.downloads.len() - 1
            }
        };
        &mut self.downloads[index].2
    }

    /// Adds one measurement of the seeders by the load generator.
    pub fn record_sink(&mut self, what: &str, mb_per_s: f64) {
        eprintln!("  {what}: {mb_per_s:.0} MB/s");
        let index = match self.sinks.iter().position(|(w, _)| w == what) {
            Some(i) => i,
            None => {
                self.sinks
                    .push((what.to_string(), Histogram::new(3).expect("valid sigfig")));
                self.sinks.len() - 1
            }
        };
        self.sinks[index]
            .1
            .record((mb_per_s * 1000.0).round().max(1.0) as u64)
            .expect("in range");
    }

    /// The fastest median download rate of the contenders that are not ours, in MB/s.
    fn baseline(&self) -> Option<(&str, f64)> {
        self.downloads
            .iter()
            .filter(|(_, ours, s)| !ours && s.finished() > 0)
            .map(|(w, _, s)| (w.as_str(), median(&s.mb_per_s) / 1000.0))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn markdown(&self) -> String {
        let rounds = self.downloads.first().map_or(0, |(.., s)| s.attempts());
        let seeders = match self.source {
            Source::Synthetic => "synthetic `ccbt-loadgen seed` seeders (content made on the \
                                  fly, no disk) on 127.0.0.1"
                .to_string(),
            Source::Ccbt => "`ccbt-uring seed --shards 1` seeders on 127.0.0.1, data in the \
                             page cache"
                .to_string(),
            Source::Libtorrent => "python3-libtorrent 2.0 seeders (`lt_client.py seed`, its \
                                   `high_performance_seed()` preset) on 127.0.0.1, sharing \
                                   the data dir, data in the page cache"
                .to_string(),
        };
        let mut out = format!(
            "Data: {:.2} GiB in one file, 1 MiB pieces; {} {seeders}. {rounds} rounds, \
             interleaved; medians of the finished downloads. Each downloader is bound to \
             127.0.0.1 and finds the seeders through opentracker; ccbt-uring runs with \
             `--no-pin`, since the seeders share its cores.\n\n",
            self.bytes as f64 / (1u64 << 30) as f64,
            self.seeders,
        );
        let baseline = self.baseline();
        let vs = baseline.map_or("fastest other client".to_string(), |(w, _)| w.to_string());
        out += &format!(
            "| downloader | finished | MB/s | min | max | / {vs} | CPU s/GiB | peak RSS MiB |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n"
        );
        let mut notes = String::new();
        for (who, _, s) in &self.downloads {
            let finished = format!("{}/{}", s.finished(), s.attempts());
            if let Some(why) = s.unfinished.last() {
                notes += &format!(
                    "\n{who} did not finish {} of {} downloads: {why}.\n",
                    s.unfinished.len(),
                    s.attempts()
                );
            }
            if s.finished() == 0 {
                out += &format!("| {who} | {finished} | – | – | – | – | – | – |\n");
                continue;
            }
            let mb = median(&s.mb_per_s) / 1000.0;
            let ratio = baseline.map_or(f64::NAN, |(_, b)| mb / b);
            out += &format!(
                "| {who} | {finished} | {mb:.0} | {:.0} | {:.0} | {ratio:.2}x | {:.2} | {:.0} |\n",
                s.mb_per_s.min() as f64 / 1000.0,
                s.mb_per_s.max() as f64 / 1000.0,
                median(&s.cpu_ms_per_gib) / 1000.0,
                median(&s.rss_kib) / 1024.0,
            );
        }
        for (what, h) in &self.sinks {
            out += &format!(
                "| *{what}* | {} | {:.0} | {:.0} | {:.0} | | | |\n",
                h.len(),
                median(h) / 1000.0,
                h.min() as f64 / 1000.0,
                h.max() as f64 / 1000.0,
            );
        }
        out += &self.note();
        out += &self.targets();
        out += &notes;
        for line in &self.skipped {
            out += &format!("\n{line}\n");
        }
        out
    }

    /// Issue 13's S1 targets for our downloader (the first ours with a finished download):
    /// ≥ 1.5x the fastest other downloader, and CPU per GiB ≤ 1.0.
    fn targets(&self) -> String {
        let Some((who, _, ours)) = self
            .downloads
            .iter()
            .find(|(_, ours, s)| *ours && s.finished() > 0)
        else {
            return "\nNo ccbt-uring download finished: no target can be judged.\n".to_string();
        };
        let met = |ok: bool| if ok { "met" } else { "**not met**" };
        let rate = median(&ours.mb_per_s) / 1000.0;
        let cpu = median(&ours.cpu_ms_per_gib) / 1000.0;
        let speed = match self.baseline() {
            Some((other, base)) => format!(
                "**{:.2}x** the fastest other downloader ({other}); target ≥ {TARGET_VS_FASTEST}x: {}",
                rate / base,
                met(rate / base >= TARGET_VS_FASTEST)
            ),
            None => "no other downloader finished, so no ratio".to_string(),
        };
        format!(
            "\nTargets (issue 13), from {}: {who} is {speed}; CPU **{cpu:.2} s/GiB**, target ≤ \
             {TARGET_CPU_S_PER_GIB}: {}.\n",
            self.seeders_short(),
            met(cpu <= TARGET_CPU_S_PER_GIB)
        )
    }

    fn seeders_short(&self) -> &'static str {
        match self.source {
            Source::Synthetic => "synthetic seeders",
            Source::Ccbt => "ccbt-uring seeders",
            Source::Libtorrent => "libtorrent seeders",
        }
    }

    /// Whether the seeders kept up with the fastest downloader.
    fn note(&self) -> String {
        let fastest = self
            .downloads
            .iter()
            .filter(|(.., s)| s.finished() > 0)
            .map(|(w, _, s)| (w.as_str(), median(&s.mb_per_s) / 1000.0))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let capacity = self
            .sinks
            .iter()
            .map(|(_, h)| median(h) / 1000.0)
            .max_by(f64::total_cmp);
        match (fastest, capacity) {
            (Some((who, rate)), Some(cap)) if cap < rate * 1.2 => format!(
                "\nThe seeders serve at most **{cap:.0} MB/s** into a sink, not clearly more \
                 than {who} takes ({rate:.0} MB/s): that downloader is probably limited by \
                 the seeders (and the two shared cores), not by itself.\n"
            ),
            (Some((who, rate)), Some(cap)) => format!(
                "\nThe seeders serve up to **{cap:.0} MB/s** into a sink, {:.1}x what the \
                 fastest downloader ({who}) takes: they are not what limits the downloaders.\n",
                cap / rate
            ),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ratios_and_the_seeder_note() {
        let gib = 1u64 << 30;
        let mut r = Results::new(gib, 2, Source::Ccbt);
        for seconds in [1.0, 2.0, 4.0] {
            let sample = |s: f64| Sample {
                seconds: s,
                cpu_seconds: 1.5,
                max_rss_kib: 10 * 1024,
            };
            r.record("ours", true, sample(seconds));
            r.record("theirs", false, sample(seconds * 2.0));
            r.record_sink("sink", 4000.0);
        }
        let table = r.markdown();
        // 1 GiB in 2 s is 537 MB/s; theirs' median is half of that.
        assert!(
            table.contains("| ours | 3/3 | 537 | 268 | 1074 | 2.00x | 1.50 | 10 |"),
            "{table}"
        );
        // Histograms keep three significant digits: 268.4 MB/s comes back as 269.
        assert!(table.contains("| theirs | 3/3 | 269 |"), "{table}");
        assert!(table.contains("/ theirs |"), "{table}");
        assert!(table.contains("| *sink* | 3 | 4002 |"), "{table}");
        assert!(table.contains("not what limits"), "{table}");
        assert!(
            table.contains("from ccbt-uring seeders: ours is **2.00x** the fastest other downloader (theirs); target ≥ 1.5x: met; CPU **1.50 s/GiB**, target ≤ 1: **not met**."),
            "{table}"
        );

        let mut slow = Results::new(gib, 2, Source::Ccbt);
        slow.record(
            "theirs",
            false,
            Sample {
                seconds: 1.0,
                cpu_seconds: 1.0,
                max_rss_kib: 1,
            },
        );
        slow.record_sink("sink", 1000.0);
        slow.record_unfinished("stuck", false, "stalled");
        slow.skip("rqbit", "not found (`cargo install rqbit`)");
        let table = slow.markdown();
        assert!(
            table.contains("rqbit: skipped: not found (`cargo install rqbit`)."),
            "{table}"
        );
        assert!(table.contains("probably limited"), "{table}");
        assert!(table.contains("No ccbt-uring download finished"), "{table}");
        assert!(table.contains("| stuck | 0/1 | – |"), "{table}");
        assert!(
            table.contains("stuck did not finish 1 of 1 downloads: stalled."),
            "{table}"
        );
    }
}

//! What `many` reads from a seeder and how it shows the results.

/// The line `ccbt-uring seed` and `lt_many.py` print once every torrent seeds:
/// `seeding N torrents on port P, loaded in S s (...)`. Returns N and S.
pub fn parse_loaded(log: &str) -> Option<(u64, f64)> {
    log.lines().find_map(|line| {
        let rest = line.strip_prefix("seeding ")?;
        let (count, rest) = rest.split_once(" torrents on port ")?;
        let (_, rest) = rest.split_once(", loaded in ")?;
        let (secs, _) = rest.split_once(" s")?;
        Some((count.parse().ok()?, secs.parse().ok()?))
    })
}

/// `VmRSS` in KiB from a `/proc/PID/status` text.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// KiB each torrent adds: the RSS with `n` torrents less the RSS with one, over `n - 1`.
pub fn kib_per_torrent(rss_many_kib: u64, rss_one_kib: u64, n: u64) -> f64 {
    rss_many_kib.saturating_sub(rss_one_kib) as f64 / n.saturating_sub(1).max(1) as f64
}

/// One contender's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub torrents: u64,
    pub load_seconds: f64,
    pub rss_many_kib: u64,
    pub rss_one_kib: u64,
    /// What a short leech of a few torrents got: `None` if not tried.
    pub served: Option<String>,
}

impl Row {
    pub fn kib_per_torrent(&self) -> f64 {
        kib_per_torrent(self.rss_many_kib, self.rss_one_kib, self.torrents)
    }
}

/// Targets from issue 4, scenario S4.
pub const TARGET_KIB_PER_TORRENT: f64 = 8.0;
pub const TARGET_LOAD_SECONDS_10K: f64 = 2.0;

/// The table and a line against the targets (the first row is ccbt-uring).
pub fn markdown(rows: &[Row], skipped: &[String]) -> String {
    let mut out = String::from(
        "| seeder | torrents | loaded and seeding in | RSS, N torrents | RSS, 1 torrent | RSS per torrent | seeds (short leech of 3) |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {:.2} s | {:.1} MiB | {:.1} MiB | {:.2} KiB | {} |\n",
            r.name,
            r.torrents,
            r.load_seconds,
            r.rss_many_kib as f64 / 1024.0,
            r.rss_one_kib as f64 / 1024.0,
            r.kib_per_torrent(),
            r.served.as_deref().unwrap_or("not tried"),
        );
    }
    for s in skipped {
        out += &format!("\n{s}\n");
    }
    if let Some(ours) = rows.first() {
        // Load time scales with the count: compare at the target's 10,000.
        let load_10k = ours.load_seconds * 10_000.0 / ours.torrents.max(1) as f64;
        out += &format!(
            "\nTarget (S4): <= {TARGET_KIB_PER_TORRENT} KiB per idle torrent: {:.2} KiB ({}); \
             10,000 torrents loaded in < {TARGET_LOAD_SECONDS_10K} s: {:.2} s{} ({}).\n",
            ours.kib_per_torrent(),
            met(ours.kib_per_torrent() <= TARGET_KIB_PER_TORRENT),
            load_10k,
            if ours.torrents == 10_000 {
                ""
            } else {
                " scaled from this run's count"
            },
            met(load_10k < TARGET_LOAD_SECONDS_10K),
        );
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_loaded_line() {
        let log =
            "skipping x: bad\nseeding 9999 torrents on port 2000, loaded in 0.731 s (1 skipped)\n";
        assert_eq!(parse_loaded(log), Some((9999, 0.731)));
        assert_eq!(parse_loaded("seeding: 5 torrents, 0 peers"), None);
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t   81764 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(status), Some(81764));
        assert_eq!(parse_vm_rss("Name: x"), None);
    }

    #[test]
    fn per_torrent_is_the_growth_over_one() {
        assert_eq!(kib_per_torrent(10_000 + 9_999 * 4, 10_000, 10_000), 4.0);
        assert_eq!(kib_per_torrent(5, 10, 1), 0.0);
    }

    #[test]
    fn table_states_the_targets() {
        let row = Row {
            name: "ccbt-uring".into(),
            torrents: 1000,
            load_seconds: 0.1,
            rss_many_kib: 10_240 + 999 * 5,
            rss_one_kib: 10_240,
            served: Some("yes".into()),
        };
        let md = markdown(&[row], &["libtorrent skipped".into()]);
        assert!(
            md.contains("| ccbt-uring | 1000 | 0.10 s | 14.9 MiB | 10.0 MiB | 5.00 KiB | yes |")
        );
        assert!(md.contains("5.00 KiB (met)"));
        assert!(md.contains("1.00 s scaled from this run's count (met)"));
        assert!(md.contains("libtorrent skipped"));
    }
}

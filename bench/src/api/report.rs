//! How `api` (S7) shows its figures: per daemon and request, median and tail latency, how
//! many torrents the answers held and their size, and the upload rate the daemon kept up
//! meanwhile; then the brief's goals against what was measured.

use std::time::Duration;

/// The S7 goals: every full listing at N torrents faster than the others' at N/10, and an
/// increment under this.
pub const TARGET_INCREMENT_MS: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Transmission `torrent-get`, every torrent, Sonarr's fields.
    TorrentGet,
    /// qBittorrent `torrents/info`, every torrent.
    TorrentsInfo,
    /// qBittorrent `sync/maindata?rid=` after one change.
    Increment,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::TorrentGet => "Transmission `torrent-get`, *arr fields, all torrents",
            Kind::TorrentsInfo => "qBittorrent `torrents/info`, all torrents",
            Kind::Increment => "qBittorrent `sync/maindata` increment, 1 change",
        }
    }
}

/// Latencies of one request kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    /// The 99th percentile; with under 100 samples, the slowest.
    pub p99_ms: f64,
    /// Torrents in the last answer, and its size.
    pub torrents: usize,
    pub bytes: usize,
}

impl Latency {
    pub fn of(took: &[Duration], torrents: usize, bytes: usize) -> Latency {
        let mut ms: Vec<f64> = took.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if ms.is_empty() {
                f64::NAN
            } else {
                ms[((ms.len() - 1) as f64 * q).round() as usize]
            }
        };
        Latency {
            samples: ms.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            torrents,
            bytes,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub daemon: String,
    /// Torrents it held.
    pub torrents: usize,
    pub kind: Kind,
    pub latency: Latency,
    /// The leechers' download rate from it over the measurement, MB/s.
    pub upload_mb_s: f64,
}

pub fn markdown(rows: &[Row], notes: &[String]) -> String {
    let mut out = String::from(
        "| daemon | torrents | request | p50 | p99 (max below 100 samples) | samples | torrents in answer | answer size | seeding meanwhile |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let l = &r.latency;
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} MB/s |\n",
            r.daemon,
            r.torrents,
            r.kind.name(),
            ms(l.p50_ms),
            ms(l.p99_ms),
            l.samples,
            l.torrents,
            size(l.bytes),
            r.upload_mb_s
        );
    }
    out += "\n";
    out += &goals(rows);
    for n in notes {
        out += &format!("\n- {n}");
    }
    out
}

/// Each full listing of ours against the others', and the increment against its target.
fn goals(rows: &[Row]) -> String {
    let ours = |k: Kind| {
        rows.iter()
            .find(|r| r.daemon == "ccbt-uring" && r.kind == k)
    };
    let mut out = String::new();
    for kind in [Kind::TorrentGet, Kind::TorrentsInfo] {
        let Some(o) = ours(kind) else { continue };
        for t in rows
            .iter()
            .filter(|r| r.daemon != "ccbt-uring" && r.kind == kind)
        {
            let ratio = t.latency.p50_ms / o.latency.p50_ms;
            out += &format!(
                "- {}: ccbt-uring at {} torrents {} (p50) vs {} at {} torrents {}: {:.1}x faster with {:.1}x the torrents ({}).\n",
                kind.name(),
                o.torrents,
                ms(o.latency.p50_ms),
                t.daemon,
                t.torrents,
                ms(t.latency.p50_ms),
                ratio,
                o.torrents as f64 / t.torrents.max(1) as f64,
                if ratio > 1.0 { "goal met" } else { "goal NOT met" }
            );
        }
    }
    if let Some(o) = ours(Kind::Increment) {
        out += &format!(
            "- Increment: p50 {}, p99 {} (goal under {TARGET_INCREMENT_MS} ms: {}).\n",
            ms(o.latency.p50_ms),
            ms(o.latency.p99_ms),
            if o.latency.p99_ms < TARGET_INCREMENT_MS {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    out
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v >= 1000.0 {
        format!("{:.2} s", v / 1e3)
    } else {
        format!("{v:.1} ms")
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_few_samples() {
        let took: Vec<Duration> = [5, 1, 3, 2, 4].map(Duration::from_millis).to_vec();
        let l = Latency::of(&took, 10, 2048);
        assert_eq!((l.samples, l.p50_ms, l.p99_ms), (5, 3.0, 5.0));
    }

    #[test]
    fn the_goal_lines_compare_like_with_like() {
        let row = |daemon: &str, torrents, kind, p50| Row {
            daemon: daemon.into(),
            torrents,
            kind,
            latency: Latency {
                samples: 3,
                p50_ms: p50,
                p99_ms: p50,
                torrents,
                bytes: 1,
            },
            upload_mb_s: 100.0,
        };
        let rows = [
            row("ccbt-uring", 100_000, Kind::TorrentGet, 900.0),
            row("transmission-daemon 3.00", 10_000, Kind::TorrentGet, 6000.0),
            row("ccbt-uring", 100_000, Kind::Increment, 2.0),
        ];
        let text = goals(&rows);
        assert!(
            text.contains("6.7x faster with 10.0x the torrents (goal met)"),
            "{text}"
        );
        assert!(text.contains("goal under 10 ms: met"), "{text}");
    }
}

//! How `daemon` (S6) shows its figures: the daemon's steps against the targets, the
//! announce pattern the tracker saw, and the other daemons side by side.

use super::announces::Pattern;
use crate::many::report::kib_per_torrent;

/// Targets from the S6 brief.
pub const TARGET_LIST_SECONDS: f64 = 1.0;
pub const TARGET_SEEDING_SECONDS: f64 = 5.0;
pub const TARGET_KIB_PER_TORRENT: f64 = 2.0;
pub const TARGET_STOP_SECONDS: f64 = 10.0;

/// ccbt-uring daemon's figures.
#[derive(Debug, Clone)]
pub struct Ours {
    pub torrents: u64,
    pub add_connections: usize,
    pub add_seconds: f64,
    /// From the first start until every added torrent seeds.
    pub first_seeding_seconds: f64,
    pub first_stop_seconds: f64,
    /// Restart: until the control socket answers `list`.
    pub list_seconds: f64,
    /// Restart: the daemon's own `ready in S s`.
    pub ready_line_seconds: Option<f64>,
    pub restart_seeding_seconds: f64,
    pub rss_many_kib: u64,
    pub rss_one_kib: u64,
    pub restart_stop_seconds: f64,
    pub first_announces: Pattern,
    pub restart_announces: Pattern,
}

impl Ours {
    pub fn kib_per_torrent(&self) -> f64 {
        kib_per_torrent(self.rss_many_kib, self.rss_one_kib, self.torrents)
    }
}

/// Another daemon's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherRow {
    pub name: String,
    pub how: String,
    pub torrents: u64,
    /// How many seed at `ready_seconds`: all of them, unless the wait ran out.
    pub seeding: u64,
    pub ready_seconds: f64,
    pub rss_many_kib: u64,
    pub rss_one_kib: u64,
}

impl OtherRow {
    fn ready(&self) -> String {
        if self.seeding >= self.torrents {
            format!("{:.2} s", self.ready_seconds)
        } else {
            format!(
                "not all: {} of {} seed after {:.0} s (the limit)",
                self.seeding, self.torrents, self.ready_seconds
            )
        }
    }
}

pub fn markdown(ours: Option<&Ours>, others: &[OtherRow], notes: &[String]) -> String {
    let mut out = String::new();
    if let Some(o) = ours {
        out += &steps(o);
        out += "\n";
        out += &announces(o);
        out += "\n";
    }
    out += "| daemon | torrents | how they were added | start to all seeding | RSS, N torrents | RSS, 1 torrent | RSS per torrent |\n\
            |---|---:|---|---:|---:|---:|---:|\n";
    if let Some(o) = ours {
        let rss = format!(
            "{:.1} MiB | {:.1} MiB | {:.2} KiB",
            mib(o.rss_many_kib),
            mib(o.rss_one_kib),
            o.kib_per_torrent()
        );
        out += &format!(
            "| ccbt-uring daemon, first start | {} | control socket, {} connections pipelined; checks the data | {:.2} s | – | – | – |\n",
            o.torrents, o.add_connections, o.first_seeding_seconds
        );
        out += &format!(
            "| ccbt-uring daemon, restart | {} | from its state, resume data trusted | {:.2} s | {rss} |\n",
            o.torrents, o.restart_seeding_seconds
        );
    }
    for r in others {
        out += &format!(
            "| {} | {} | {} | {} | {:.1} MiB | {:.1} MiB | {:.2} KiB |\n",
            r.name,
            r.torrents,
            r.how,
            r.ready(),
            mib(r.rss_many_kib),
            mib(r.rss_one_kib),
            kib_per_torrent(r.rss_many_kib, r.rss_one_kib, r.torrents)
        );
    }
    for n in notes {
        out += &format!("\n{n}\n");
    }
    out
}

fn steps(o: &Ours) -> String {
    let n = o.torrents;
    let mut out =
        String::from("| ccbt-uring daemon, step | figure | target | |\n|---|---:|---:|---|\n");
    out += &format!(
        "| add {n} torrents to an empty daemon (control socket, {} connections, every request in flight) | {:.2} s ({:.0} adds/s) | | |\n",
        o.add_connections,
        o.add_seconds,
        n as f64 / o.add_seconds.max(1e-9)
    );
    out += &format!(
        "| first start until all {n} seed (adds and their checks included) | {:.2} s | | |\n",
        o.first_seeding_seconds
    );
    out += &format!(
        "| clean shutdown after the first run (SIGTERM to exit) | {:.2} s | < {TARGET_STOP_SECONDS} s | {} |\n",
        o.first_stop_seconds,
        met(o.first_stop_seconds < TARGET_STOP_SECONDS)
    );
    out += &format!(
        "| restart: start until the control socket answers `list` | {:.3} s | < {TARGET_LIST_SECONDS} s | {} |\n",
        o.list_seconds,
        met(o.list_seconds < TARGET_LIST_SECONDS)
    );
    if let Some(s) = o.ready_line_seconds {
        out += &format!("| restart: the daemon's own `ready in` | {s:.3} s | | |\n");
    }
    out += &format!(
        "| restart: start until all {n} seed (resume data) | {:.2} s | < {TARGET_SEEDING_SECONDS} s | {} |\n",
        o.restart_seeding_seconds,
        met(o.restart_seeding_seconds < TARGET_SEEDING_SECONDS)
    );
    out += &format!(
        "| RSS per idle torrent ({:.1} MiB with {n}, {:.1} MiB with 1) | {:.2} KiB | <= {TARGET_KIB_PER_TORRENT} KiB | {} |\n",
        mib(o.rss_many_kib),
        mib(o.rss_one_kib),
        o.kib_per_torrent(),
        met(o.kib_per_torrent() <= TARGET_KIB_PER_TORRENT)
    );
    out += &format!(
        "| clean shutdown after the restart (SIGTERM to exit) | {:.2} s | < {TARGET_STOP_SECONDS} s | {} |\n",
        o.restart_stop_seconds,
        met(o.restart_stop_seconds < TARGET_STOP_SECONDS)
    );
    out
}

fn announces(o: &Ours) -> String {
    let mut out = String::from(
        "| announces seen by opentracker | seconds | announces | mean /s | peak /s | 1-s bins > 2x mean |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for (what, p) in [
        (
            "first run: start, adds, seeding, shutdown",
            &o.first_announces,
        ),
        (
            "restart: start, seeding, idle, shutdown",
            &o.restart_announces,
        ),
    ] {
        out += &format!(
            "| {what} | {} | {} | {:.0} | {} | {} |\n",
            p.bins.len(),
            p.total(),
            p.mean(),
            p.peak(),
            p.bins_over_twice_mean()
        );
    }
    let p = &o.restart_announces;
    let share = p.peak() as f64 / p.total().max(1) as f64;
    out += &format!(
        "\nOn restart the busiest second held {:.0}% of all announces{}.\n",
        share * 100.0,
        if p.bins_over_twice_mean() > 0 {
            ": announces came in bursts (at start and at stop), not spread out"
        } else {
            ""
        }
    );
    out
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
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
    fn states_every_target_and_every_contender() {
        let ours = Ours {
            torrents: 1000,
            add_connections: 4,
            add_seconds: 0.5,
            first_seeding_seconds: 1.0,
            first_stop_seconds: 0.2,
            list_seconds: 0.05,
            ready_line_seconds: Some(0.3),
            restart_seeding_seconds: 0.4,
            rss_many_kib: 10_240 + 999 * 3,
            rss_one_kib: 10_240,
            restart_stop_seconds: 0.3,
            first_announces: Pattern {
                bins: vec![1000, 0, 0, 1000],
            },
            restart_announces: Pattern {
                bins: vec![1000, 0, 0, 0],
            },
        };
        let other = OtherRow {
            name: "qbittorrent-nox 4.5".into(),
            how: "WebAPI".into(),
            torrents: 100,
            seeding: 100,
            ready_seconds: 2.0,
            rss_many_kib: 2000 + 99 * 10,
            rss_one_kib: 2000,
        };
        let slow = OtherRow {
            name: "transmission-daemon 3.00".into(),
            seeding: 40,
            ready_seconds: 20.2,
            ..other.clone()
        };
        let md = markdown(
            Some(&ours),
            &[other, slow],
            &["transmission skipped".into()],
        );
        assert!(
            md.contains("| not all: 40 of 100 seed after 20 s (the limit) |"),
            "{md}"
        );
        assert!(md.contains("| 3.00 KiB | <= 2 KiB | not met |"), "{md}");
        assert!(md.contains("| 0.050 s | < 1 s | met |"), "{md}");
        assert!(
            md.contains("| restart: start, seeding, idle, shutdown | 4 | 1000 | 250 | 1000 | 1 |"),
            "{md}"
        );
        assert!(md.contains("bursts"), "{md}");
        assert!(
            md.contains("| qbittorrent-nox 4.5 | 100 | WebAPI | 2.00 s |"),
            "{md}"
        );
        assert!(md.contains("| 10.00 KiB |"), "{md}");
        assert!(md.contains("transmission skipped"), "{md}");
    }
}

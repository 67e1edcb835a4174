//! Medians, shares of the machine's limit, and the Markdown for one phase (warm or cold) of
//! the recheck scenario.

use anyhow::Result;

/// The GB/s samples of one phase, one row per contender in first-seen order, with the rows
/// that measure the machine's limit for this phase (the ceiling is the best of them: a
/// limit that one setting of a tool misses is not a limit) and the share of it ccbt-uring
/// aims for.
pub struct Phase {
    ceilings: Vec<String>,
    ours: String,
    target: f64,
    rows: Vec<(String, Vec<f64>)>,
    notes: Vec<String>,
}

impl Phase {
    pub fn new(ceilings: &[&str], ours: &str, target: f64) -> Self {
        Self {
            ceilings: ceilings.iter().map(|c| c.to_string()).collect(),
            ours: ours.to_string(),
            target,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds one run's result; a failed run becomes a note under the table.
    pub fn record(&mut self, who: &str, run: Result<f64>) {
        match run {
            Ok(gb_per_s) => {
                eprintln!("  {who}: {gb_per_s:.2} GB/s");
                match self.rows.iter_mut().find(|(w, _)| w == who) {
                    Some((_, samples)) => samples.push(gb_per_s),
                    None => self.rows.push((who.to_string(), vec![gb_per_s])),
                }
            }
            Err(e) => {
                eprintln!("  {who}: failed: {e:#}");
                self.note(format!("{who}: a run failed: {e:#}"));
            }
        }
    }

    /// A line under the table (a contender or limit that could not be measured).
    pub fn note(&mut self, line: String) {
        if !self.notes.contains(&line) {
            self.notes.push(line);
        }
    }

    fn median(&self, who: &str) -> Option<f64> {
        let (_, samples) = self.rows.iter().find(|(w, _)| w == who)?;
        Some(median(samples))
    }

    /// The measured limit with the highest median, and that median.
    fn ceiling(&self) -> Option<(&str, f64)> {
        self.ceilings
            .iter()
            .filter_map(|c| Some((c.as_str(), self.median(c)?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The table of medians (with min and max, each as a share of the ceiling and as a
    /// ratio to ours), then the notes.
    pub fn table(&self) -> String {
        let ours = self.median(&self.ours);
        let ceiling = self.ceiling().map(|(_, c)| c);
        let mut out = format!(
            "| contender | median GB/s | min | max | share of the ceiling | {} / this |\n\
             |---|---:|---:|---:|---:|---:|\n",
            self.ours
        );
        for (who, samples) in &self.rows {
            let m = median(samples);
            let (min, max) = samples
                .iter()
                .fold((f64::INFINITY, 0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
            out += &format!(
                "| {who} | {m:.2} | {min:.2} | {max:.2} | {} | {} |\n",
                ceiling.map_or("-".into(), |c| format!("{:.0}%", 100.0 * m / c)),
                ours.map_or("-".into(), |o| format!("{:.2}x", o / m)),
            );
        }
        out += &match self.ceiling() {
            Some((name, _)) if self.ceilings.len() > 1 => format!(
                "\nThe ceiling is **{name}**, the best of: {}.\n",
                self.ceilings.join("; ")
            ),
            Some((name, _)) => format!("\nThe ceiling is **{name}**.\n"),
            None => String::new(),
        };
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                out += &format!("- {note}\n");
            }
        }
        out
    }

    /// One line: ours as a share of the ceiling, against the target.
    pub fn statement(&self) -> String {
        match (self.median(&self.ours), self.ceiling()) {
            (Some(ours), Some((name, ceiling))) => {
                let share = ours / ceiling;
                format!(
                    "{} reaches **{:.0}%** of {} (target >= {:.0}%: {}).",
                    self.ours,
                    100.0 * share,
                    name,
                    100.0 * self.target,
                    if share >= self.target {
                        "met"
                    } else {
                        "not met"
                    }
                )
            }
            (None, _) => format!("{} was not measured.", self.ours),
            (_, None) => format!(
                "{} was not measured, so there is no share of it to state.",
                self.ceilings.join(" nor ")
            ),
        }
    }
}

/// The middle sample (the mean of the two middle ones for an even count).
fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }

    #[test]
    fn tables_shares_and_targets() {
        let mut p = Phase::new(&["ceiling", "lower"], "ours", 0.85);
        p.record("lower", Ok(1.0));
        for (c, o) in [(4.0, 3.0), (4.2, 3.6), (3.8, 3.5)] {
            p.record("ceiling", Ok(c));
            p.record("ours", Ok(o));
        }
        p.record("theirs", Ok(1.75));
        p.record("theirs", Err(anyhow::anyhow!("boom")));
        let table = p.table();
        assert!(
            table.contains("| ours | 3.50 | 3.00 | 3.60 | 88% | 1.00x |"),
            "{table}"
        );
        assert!(
            table.contains("| theirs | 1.75 | 1.75 | 1.75 | 44% | 2.00x |"),
            "{table}"
        );
        assert!(table.contains("- theirs: a run failed: boom"), "{table}");
        assert!(
            table.contains("| lower | 1.00 | 1.00 | 1.00 | 25% | 3.50x |"),
            "{table}"
        );
        assert!(
            table.contains("The ceiling is **ceiling**, the best of: ceiling; lower."),
            "{table}"
        );
        assert_eq!(
            p.statement(),
            "ours reaches **88%** of ceiling (target >= 85%: met)."
        );

        let mut short = Phase::new(&["ceiling"], "ours", 0.9);
        short.record("ours", Ok(1.0));
        short.record("ceiling", Ok(2.0));
        assert!(short.statement().contains("**50%**"));
        assert!(short.statement().contains("not met"));
        let mut blind = Phase::new(&["ceiling"], "ours", 0.9);
        blind.record("ours", Ok(1.0));
        assert!(blind.statement().contains("ceiling was not measured"));
    }
}

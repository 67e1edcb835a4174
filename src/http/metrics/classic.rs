//! The classic Prometheus text format (0.0.4), for clients that do not ask for
//! OpenMetrics: `promtool check metrics`, curl, older scrapers.
//!
//! `prometheus-client` writes OpenMetrics only. The two differ, for what we write, in
//! three places: a counter's HELP and TYPE name its family (`x`) where the classic format
//! names the sample (`x_total`); OpenMetrics has `# UNIT` lines; and it ends with
//! `# EOF`. Everything else (HELP text, labels, histograms, gauges) reads the same.

/// Whether the client's `Accept` header asks for OpenMetrics (Prometheus's scraper does).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut params = part.split(';');
            let media = params.next().unwrap_or("").trim();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            media.eq_ignore_ascii_case("application/openmetrics-text") && q > 0.0
        })
    })
}

/// The same exposition in the classic text format.
pub fn from_openmetrics(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    // A HELP line waits for its TYPE line: a counter's needs `_total` too.
    let mut help: Option<(&str, &str)> = None;
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = help.take() {
                push_help(&mut out, name, "", text);
            }
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let suffix = if kind == "counter" { "_total" } else { "" };
            if let Some((help_name, text)) = help.take() {
                push_help(&mut out, help_name, suffix, text);
            }
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(suffix);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            continue;
        }
        if let Some((name, text)) = help.take() {
            push_help(&mut out, name, "", text);
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn push_help(out: &mut String, name: &str, suffix: &str, text: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push_str(suffix);
    out.push(' ');
    out.push_str(text);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_samples_and_openmetrics_lines_go() {
        let open = "# HELP a_bytes Bytes sent\n# TYPE a_bytes counter\n\
                    a_bytes_total{shard=\"0\"} 5\n# HELP g Now\n# TYPE g gauge\n# UNIT g x\n\
                    g 1\n# EOF\n";
        assert_eq!(
            from_openmetrics(open),
            "# HELP a_bytes_total Bytes sent\n# TYPE a_bytes_total counter\n\
             a_bytes_total{shard=\"0\"} 5\n# HELP g Now\n# TYPE g gauge\ng 1\n"
        );
    }

    #[test]
    fn prometheus_accept_headers_pick_openmetrics() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/\
                          openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;\
                          q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(!wants_openmetrics(None));
    }
}

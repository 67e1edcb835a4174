//! Writing metric families with `prometheus-client`'s encoder: counters, gauges and
//! histograms from plain values read at scrape time, and label values made safe. A
//! series without labels is written on the metric itself, so no empty `{}` appears.

use ccbt_shards::swarm::HistogramSnapshot;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Torrent names in labels are cut to this many characters.
const NAME_CHARS_MAX: usize = 200;

pub type Fmt = Result<(), std::fmt::Error>;

/// A series' labels; empty for a metric with one series.
pub type Labels = Vec<(&'static str, String)>;

/// A metric family of counters, one per label set.
pub fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, u64)>,
) -> Fmt {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        if labels.is_empty() {
            metric.encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        } else {
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
    }
    Ok(())
}

/// A metric family of gauges, one per label set.
pub fn gauges<V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> Fmt {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        if labels.is_empty() {
            metric.encode_gauge(&value)?;
        } else {
            metric.encode_family(&labels)?.encode_gauge(&value)?;
        }
    }
    Ok(())
}

pub fn histograms(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, HistogramSnapshot)>,
) -> Fmt {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        // The encoder writes the +Inf bucket itself, from the count.
        let bounded: Vec<(f64, u64)> = h
            .buckets
            .iter()
            .copied()
            .filter(|(le, _)| le.is_finite())
            .collect();
        if labels.is_empty() {
            metric.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &bounded, None)?;
        } else {
            metric
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &bounded, None)?;
        }
    }
    Ok(())
}

/// Histograms of every shard added up (they share their bounds).
pub fn sum_histograms<'a>(all: impl Iterator<Item = &'a HistogramSnapshot>) -> HistogramSnapshot {
    let mut total: Option<HistogramSnapshot> = None;
    for h in all {
        match &mut total {
            None => total = Some(h.clone()),
            Some(t) => {
                for (sum, (_, n)) in t.buckets.iter_mut().zip(&h.buckets) {
                    sum.1 += n;
                }
                t.count += h.count;
                t.sum_seconds += h.sum_seconds;
            }
        }
    }
    total.unwrap_or_else(|| {
        ccbt_shards::swarm::ShardStats::default()
            .disk_read
            .snapshot()
    })
}

/// A label value as the exposition format wants it: backslash, quote and newline
/// escaped (the encoder writes values as given), and cut to a bounded length.
pub fn label_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(NAME_CHARS_MAX) + 8);
    for c in text.chars().take(NAME_CHARS_MAX) {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_bounded() {
        assert_eq!(label_text("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label_text(&"x".repeat(500)).len(), NAME_CHARS_MAX);
    }

    #[test]
    fn shard_histograms_add_up_bucket_by_bucket() {
        let a = ccbt_shards::swarm::ShardStats::default();
        let b = ccbt_shards::swarm::ShardStats::default();
        a.disk_read.observe(std::time::Duration::from_millis(1));
        b.disk_read.observe(std::time::Duration::from_millis(1));
        b.disk_read.observe(std::time::Duration::from_secs(1));
        let total = sum_histograms([a.disk_read.snapshot(), b.disk_read.snapshot()].iter());
        assert_eq!(total.count, 3);
        assert_eq!(total.buckets.last().unwrap().1, 3);
        let at_1ms = total.buckets.iter().find(|(le, _)| *le == 0.001).unwrap();
        assert_eq!(at_1ms.1, 2);
    }
}

//! The announce pattern as the tracker sees it: a thread reads opentracker's announce
//! count every [`SAMPLE`] and the counts are cut into 1-second bins.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::tracker::Tracker;

const SAMPLE: Duration = Duration::from_millis(100);

/// Samples the tracker on `port` until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, u64)>>,
}

impl Sampler {
    pub fn start(port: u16) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            loop {
                // Read after the flag, so the last sample comes after the caller's stop.
                let stopping = flag.load(Ordering::Acquire);
                if let Ok(count) = Tracker::announces_on(port) {
                    samples.push((started.elapsed(), count));
                }
                if stopping {
                    return samples;
                }
                std::thread::sleep(SAMPLE);
            }
        });
        Sampler { stop, thread }
    }

    /// Stops sampling; the pattern seen.
    pub fn finish(self) -> Pattern {
        self.stop.store(true, Ordering::Release);
        Pattern::from_samples(&self.thread.join().unwrap_or_default())
    }
}

/// Announces in each second of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub bins: Vec<u64>,
}

impl Pattern {
    /// Bins by the last sample at or before each whole second (the first sample is 0 s);
    /// the last bin is the part-second up to the last sample.
    pub fn from_samples(samples: &[(Duration, u64)]) -> Pattern {
        let Some(&(_, first)) = samples.first() else {
            return Pattern { bins: Vec::new() };
        };
        let seconds = samples
            .last()
            .map_or(0, |(t, _)| t.as_secs_f64().ceil() as u64);
        let at = |s: u64| {
            samples
                .iter()
                .take_while(|(t, _)| t.as_secs_f64() <= s as f64 + 1e-9)
                .last()
                .map_or(first, |&(_, c)| c)
        };
        let bins = (0..seconds)
            .map(|s| at(s + 1).saturating_sub(at(s)))
            .collect();
        Pattern { bins }
    }

    pub fn total(&self) -> u64 {
        self.bins.iter().sum()
    }

    pub fn peak(&self) -> u64 {
        self.bins.iter().copied().max().unwrap_or(0)
    }

    /// Mean announces per second over the window.
    pub fn mean(&self) -> f64 {
        self.total() as f64 / self.bins.len().max(1) as f64
    }

    /// 1-second bins above twice the mean.
    pub fn bins_over_twice_mean(&self) -> usize {
        let limit = 2.0 * self.mean();
        self.bins.iter().filter(|&&b| b as f64 > limit).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bins_by_the_second() {
        let samples = [
            (ms(0), 10),
            (ms(500), 10),
            (ms(1000), 110),
            (ms(1900), 120),
            (ms(2100), 130),
            (ms(3000), 130),
            (ms(3400), 150),
        ];
        let p = Pattern::from_samples(&samples);
        assert_eq!(p.bins, vec![100, 10, 10, 20]);
        assert_eq!(p.total(), 140);
        assert_eq!(p.peak(), 100);
        assert_eq!(p.bins_over_twice_mean(), 1);
        assert_eq!(Pattern::from_samples(&[]).total(), 0);
    }
}

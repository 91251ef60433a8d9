//! The shared clock, latency histograms and small statistics helpers.
//!
//! Publisher and subscribers live in this one process, so "publish time"
//! is nanoseconds since one `Instant` taken at start: no clock skew at all.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since the bench started: the timestamp put in every event.
pub fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

/// Highest latency recorded, in microseconds (a minute).
const MAX_US: u64 = 60_000_000;
const SHARDS: usize = 16;

/// One latency histogram, sharded so that thousands of subscriber tasks on
/// two threads rarely wait for each other. Values are microseconds.
pub struct Latency {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

impl Latency {
    /// Records a batch of latencies in nanoseconds, under one lock.
    pub fn record_ns(&self, shard: usize, values_ns: &[u64]) {
        if values_ns.is_empty() {
            return;
        }
        let mut h = self.shards[shard % SHARDS].lock().expect("not poisoned");
        for &v in values_ns {
            h.saturating_record((v / 1000).clamp(1, MAX_US));
        }
    }

    pub fn summary(&self) -> Percentiles {
        let mut all = new_histogram();
        for s in &self.shards {
            all.add(&*s.lock().expect("not poisoned"))
                .expect("same bounds");
        }
        Percentiles::of(&all)
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        Percentiles {
            samples: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// From a list of durations in microseconds (e.g. one replay time per client).
    pub fn of_values_us(values: &[u64]) -> Percentiles {
        let mut h = new_histogram();
        for &v in values {
            h.saturating_record(v.clamp(1, MAX_US));
        }
        Percentiles::of(&h)
    }
}

/// The median of some figures (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Rounds to a few significant decimals for the report.
pub fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn latency_percentiles_in_ms() {
        let l = Latency::default();
        let ns: Vec<u64> = (1..=1000).map(|i| i * 1_000_000).collect();
        l.record_ns(3, &ns);
        let p = l.summary();
        assert_eq!(p.samples, 1000);
        assert!((p.p50_ms - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99_ms - 990.0).abs() < 2.0, "{p:?}");
    }
}

//! Latency samples and percentiles.

use std::time::Duration;

#[derive(Default)]
pub struct Stats {
    samples: Vec<Duration>,
}

impl Stats {
    pub fn add(&mut self, d: Duration) {
        self.samples.push(d);
    }

    pub fn merge(&mut self, other: Stats) {
        self.samples.extend(other.samples);
    }

    /// The samples in the order they were added (until a percentile sorts them).
    pub fn in_order(&self) -> &[Duration] {
        &self.samples
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// The `p`th percentile in milliseconds (NaN without samples).
    pub fn ms(&mut self, p: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        self.samples.sort_unstable();
        let idx = ((p / 100.0) * (self.samples.len() - 1) as f64).round() as usize;
        self.samples[idx].as_secs_f64() * 1000.0
    }
}

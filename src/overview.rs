//! The last hour of this node's own metrics, sampled every [`EVERY`], for the admin
//! dashboard's overview (`GET /v1/admin/overview`): counters become rates per second between
//! samples, gauges are read as they are. In memory only, bounded ([`KEPT`] samples): a node
//! that restarts starts a fresh hour, as its Prometheus counters do.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::Metrics;

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(10);
/// Samples kept: one hour.
pub const KEPT: usize = 360;

/// One point of the overview.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Unix seconds.
    pub at: u64,
    pub connections: i64,
    pub sessions: i64,
    pub watches: i64,
    pub commits_per_second: f64,
    pub deliveries_per_second: f64,
    /// Error frames sent per second since the previous sample, by code (codes with none left out).
    pub errors_per_second: BTreeMap<String, f64>,
    /// Document cache hits among lookups since the previous sample, 0–1 (`null`: none).
    pub cache_hit_rate: Option<f64>,
    /// The store's size on disk (the redb file, or the PostgreSQL tables), if it answered.
    pub disk_bytes: Option<u64>,
}

/// Counter totals at the previous sample.
#[derive(Default)]
struct Totals {
    at: Option<Instant>,
    commits: u64,
    deliveries: u64,
    hits: u64,
    misses: u64,
    errors: BTreeMap<String, u64>,
}

/// The samples of the last hour.
#[derive(Default)]
pub struct History {
    inner: Mutex<(VecDeque<Sample>, Totals)>,
}

impl History {
    /// Takes a sample now from `metrics` (and `watches`, the hub's count, and `disk_bytes`,
    /// the store's).
    pub fn sample(&self, metrics: &Metrics, watches: usize, disk_bytes: Option<u64>) {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (samples, last) = &mut *guard;
        let now = Instant::now();
        let secs = last
            .at
            .map_or(0.0, |at| now.duration_since(at).as_secs_f64());
        let rate = |new: u64, old: u64| match secs {
            s if s > 0.0 => ((new.saturating_sub(old)) as f64 / s * 10.0).round() / 10.0,
            _ => 0.0,
        };
        let errors = metrics.error_totals();
        let (commits, deliveries) = (metrics.commits.get(), metrics.deliveries.get());
        let (hits, misses) = (metrics.cache_hits.get(), metrics.cache_misses.get());
        let lookups = (hits + misses).saturating_sub(last.hits + last.misses);
        let sample = Sample {
            at: crate::sys::unix_now(),
            connections: metrics.connections.get(),
            sessions: metrics.sessions.get(),
            watches: i64::try_from(watches).unwrap_or(i64::MAX),
            commits_per_second: rate(commits, last.commits),
            deliveries_per_second: rate(deliveries, last.deliveries),
            errors_per_second: errors
                .iter()
                .map(|(code, n)| {
                    (
                        code.clone(),
                        rate(*n, last.errors.get(code).copied().unwrap_or(0)),
                    )
                })
                .filter(|(_, r)| *r > 0.0)
                .collect(),
            cache_hit_rate: (lookups > 0)
                .then(|| hits.saturating_sub(last.hits) as f64 / lookups as f64),
            disk_bytes,
        };
        *last = Totals {
            at: Some(now),
            commits,
            deliveries,
            hits,
            misses,
            errors,
        };
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// Every sample kept, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.0.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_counters_and_an_hour_is_kept() {
        let metrics = Metrics::new();
        let history = History::default();
        history.sample(&metrics, 0, None);
        metrics.commits.inc_by(50);
        metrics.cache_hits.inc_by(3);
        metrics.cache_misses.inc();
        metrics
            .errors
            .with_label_values(&["version_mismatch"])
            .inc_by(2);
        std::thread::sleep(Duration::from_millis(200));
        history.sample(&metrics, 7, Some(4096));
        let s = history.samples();
        assert_eq!(s.len(), 2);
        assert!(s[1].commits_per_second > 100.0, "{s:?}");
        assert_eq!(s[1].watches, 7);
        assert_eq!(s[1].disk_bytes, Some(4096));
        assert_eq!(s[1].cache_hit_rate, Some(0.75));
        assert!(s[1].errors_per_second.contains_key("version_mismatch"));
        assert_eq!(s[0].cache_hit_rate, None);
        for _ in 0..KEPT + 5 {
            history.sample(&metrics, 0, None);
        }
        assert_eq!(history.samples().len(), KEPT);
    }
}

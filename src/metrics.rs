//! Prometheus metrics, served at `/metrics` in the text format. Labels are only ever drawn
//! from fixed sets (command names, error codes), never from client input, so a client cannot
//! blow up the number of series.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Open WebSockets.
    pub connections: IntGauge,
    /// WebSockets signed in.
    pub sessions: IntGauge,
    /// Live watches (set at scrape time from the hub).
    pub watches: IntGauge,
    /// Frames received, by command (`invalid` when the frame did not parse).
    pub frames_in: IntCounterVec,
    /// Replies sent, by frame type (changes pushed to watchers are `deliveries`).
    pub frames_out: IntCounterVec,
    /// Errors answered, by code, over WebSocket and HTTP.
    pub errors: IntCounterVec,
    /// Committed versions (including signups' version 0).
    pub commits: IntCounter,
    /// Log lines dropped because the output could not take them (`logging.rs`).
    pub log_dropped: IntCounter,
    /// Writes folded into one durable transaction.
    pub batch_size: Histogram,
    /// Updates committed on their caller's own thread, the writer being idle (redb).
    pub commits_here: IntCounter,
    /// Seconds from the start of a write transaction to its durable commit.
    pub commit_seconds: Histogram,
    /// Seconds per checkpoint of the write-ahead log: folding the update journal into the
    /// change log (redb) in one durable commit, which holds up the writer meanwhile.
    pub checkpoint_seconds: Histogram,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    /// `change` frames queued to watchers (WebSocket and SSE).
    pub deliveries: IntCounter,
    /// Snapshots sent instead of versions a watcher fell behind on.
    pub resyncs: IntCounter,
    /// Sockets closed with 4008 because their queue stayed full.
    pub slow_consumers: IntCounter,
    /// Commits per second lately, for `GET /v1/admin/stats`.
    pub commit_rate: Rate,
    /// Webhook deliveries, by result (`ok`, `failed`: an attempt that will be retried or
    /// paused the webhook).
    pub webhook_deliveries: IntCounterVec,
    /// Seconds per webhook delivery attempt.
    pub webhook_seconds: Histogram,
    /// Changes every webhook still has to look at, together (the feed's newest cursor less
    /// each one's).
    pub webhook_queue: IntGauge,
    /// 1 on the node delivering webhooks (one per cluster), 0 elsewhere.
    pub webhook_turn: IntGauge,
}

impl Metrics {
    /// Error frames answered so far, by code (for the admin overview, `overview.rs`).
    pub fn error_totals(&self) -> std::collections::BTreeMap<String, u64> {
        use prometheus::core::Collector;
        let mut out = std::collections::BTreeMap::new();
        for family in self.errors.collect() {
            for metric in family.get_metric() {
                if let Some(code) = metric.get_label().iter().find(|l| l.name() == "code") {
                    // Counts are whole numbers kept as f64 by the library.
                    out.insert(
                        code.value().to_owned(),
                        metric.get_counter().get_value() as u64,
                    );
                }
            }
        }
        out
    }
}

/// A counter's rate over the last ten seconds, from samples taken once a second.
#[derive(Default)]
pub struct Rate {
    samples: std::sync::Mutex<std::collections::VecDeque<(std::time::Instant, u64)>>,
}

impl Rate {
    const WINDOW: usize = 11;

    pub fn sample(&self, total: u64) {
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        samples.push_back((std::time::Instant::now(), total));
        while samples.len() > Self::WINDOW {
            samples.pop_front();
        }
    }

    pub fn per_second(&self) -> f64 {
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (samples.front(), samples.back()) {
            (Some(first), Some(last)) if last.0 > first.0 => {
                #[allow(clippy::cast_precision_loss)] // counts far below 2^52
                let done = last.1.saturating_sub(first.1) as f64;
                done / (last.0 - first.0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

impl Metrics {
    /// # Panics
    /// Only if two metrics were given the same name, which the code below does not do.
    #[must_use]
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("hearth".into()), None).expect("valid prefix");
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        Metrics {
            connections: gauge("connections", "Open WebSockets."),
            sessions: gauge("sessions", "WebSockets signed in."),
            watches: gauge("watches", "Live watches."),
            frames_in: counter_vec("frames_in_total", "Frames received, by command.", "type"),
            frames_out: counter_vec("frames_out_total", "Replies sent, by frame type.", "type"),
            errors: counter_vec("errors_total", "Errors answered, by code.", "code"),
            commits: counter("commits_total", "Committed versions."),
            log_dropped: counter(
                "log_lines_dropped_total",
                "Log lines that could not be written (full disk, closed output).",
            ),
            commits_here: counter(
                "commits_here_total",
                "Updates committed on their caller's thread, the writer being idle.",
            ),
            batch_size: histogram(
                "commit_batch_size",
                "Writes per durable transaction (group commit).",
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                ],
            ),
            commit_seconds: histogram(
                "commit_seconds",
                "Write transaction start to durable commit.",
                prometheus::exponential_buckets(0.000_05, 2.0, 16).unwrap_or_default(),
            ),
            checkpoint_seconds: histogram(
                "checkpoint_seconds",
                "Write-ahead log checkpoints: the update journal folded into the change log, durably.",
                prometheus::exponential_buckets(0.000_05, 2.0, 16).unwrap_or_default(),
            ),
            cache_hits: counter("cache_hits_total", "Document reads served from memory."),
            cache_misses: counter("cache_misses_total", "Document reads that went to storage."),
            deliveries: counter(
                "fanout_deliveries_total",
                "Change frames queued to watchers.",
            ),
            resyncs: counter(
                "resyncs_total",
                "Snapshots sent to watchers that fell behind.",
            ),
            slow_consumers: counter("slow_consumer_closes_total", "Sockets closed with 4008."),
            webhook_deliveries: counter_vec(
                "webhook_deliveries_total",
                "Webhook delivery attempts, by result.",
                "result",
            ),
            webhook_seconds: histogram(
                "webhook_delivery_seconds",
                "Seconds per webhook delivery attempt.",
                prometheus::exponential_buckets(0.001, 2.0, 15).unwrap_or_default(),
            ),
            webhook_queue: gauge(
                "webhook_queue",
                "Changes the webhooks still have to look at, together.",
            ),
            webhook_turn: gauge(
                "webhook_turn",
                "1 on the node that delivers webhooks (one per cluster), 0 elsewhere.",
            ),
            commit_rate: Rate::default(),
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let dropped = crate::logging::dropped();
        self.log_dropped
            .inc_by(dropped.saturating_sub(self.log_dropped.get()));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

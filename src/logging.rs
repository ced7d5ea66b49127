//! Where log lines go: standard output, never at the cost of the server.
//!
//! tracing-subscriber reports a failed write on standard error, and a failed write there
//! panics the thread that logged — with output on a full disk (or `/dev/full`) that took the
//! writer thread down with it, or the whole process at start. A line that cannot be written
//! is dropped here instead, and counted (`hearth_log_lines_dropped_total`).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines that could not be written since the process started.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Standard output for `tracing_subscriber::fmt().with_writer(...)`, dropping what it cannot
/// write.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stdout;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stdout {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

/// One event's output (the formatter writes each event in one call).
#[derive(Debug)]
pub struct Line;

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::io::stdout().lock().write_all(buf).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Nothing to report: a line that cannot be flushed is as good as dropped.
        let _ = std::io::stdout().lock().flush();
        Ok(())
    }
}

/// Warnings and errors kept for the admin dashboard (`GET /v1/admin/logs`), newest last.
const RECENT_KEPT: usize = 200;

static RECENT: std::sync::Mutex<std::collections::VecDeque<Recent>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// One warning or error, as the dashboard shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recent {
    /// RFC 3339.
    pub at: String,
    pub level: &'static str,
    pub target: String,
    /// The message, then its fields as `name=value`.
    pub message: String,
}

/// The last [`RECENT_KEPT`] warnings and errors this process logged, oldest first.
pub fn recent() -> Vec<Recent> {
    let kept = RECENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    kept.iter().cloned().collect()
}

/// A `tracing` layer that keeps warnings and errors in memory ([`recent`]), whatever
/// `RUST_LOG` sends to standard output: an operator without a terminal still sees them.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeepRecent;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for KeepRecent {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: tracing_subscriber::layer::Context<'_, S>) {
        let level = *event.metadata().level();
        if level > tracing::Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let line = Recent {
            at: crate::sys::now_rfc3339(),
            level: if level == tracing::Level::ERROR {
                "error"
            } else {
                "warn"
            },
            target: event.metadata().target().to_owned(),
            message: text.0,
        };
        let mut kept = RECENT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() == RECENT_KEPT {
            kept.pop_front();
        }
        kept.push_back(line);
    }
}

/// An event's message and fields as one line.
#[derive(Default)]
struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let sep = if self.0.is_empty() { "" } else { " " };
        let _ = if field.name() == "message" {
            write!(self.0, "{sep}{value:?}")
        } else {
            write!(self.0, "{sep}{}={value:?}", field.name())
        };
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        use std::fmt::Write as _;
        let sep = if self.0.is_empty() { "" } else { " " };
        let _ = if field.name() == "message" {
            write!(self.0, "{sep}{value}")
        } else {
            write!(self.0, "{sep}{}={value:?}", field.name())
        };
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_warnings_and_errors_only() {
        let subscriber = tracing_subscriber::registry().with(super::KeepRecent);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(path = "/x", "disk nearly full");
            tracing::error!(code = 7, "write failed");
        });
        let recent = super::recent();
        let mine: Vec<_> = recent
            .iter()
            .filter(|r| r.message.contains("disk nearly full") || r.message.contains("failed"))
            .collect();
        assert_eq!(mine.len(), 2, "{recent:?}");
        assert_eq!(mine[0].level, "warn");
        assert_eq!(mine[0].message, "disk nearly full path=\"/x\"");
        assert_eq!(mine[1].message, "write failed code=7");
        assert!(!recent.iter().any(|r| r.message.contains("not kept")));
    }
}

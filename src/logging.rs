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

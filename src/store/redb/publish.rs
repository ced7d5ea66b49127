//! When the writer tells a batch's watchers: right after its replies in a busy stream, a
//! moment later after a quiet spell.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::backend::Committed;

/// How long a batch's replies get before its watchers are told (see [`Unpublished`]).
const PUBLISH_DELAY: Duration = Duration::from_micros(250);
/// Changes published within this of the previous ones are a busy stream: told at once.
const PUBLISH_BUSY: Duration = Duration::from_millis(5);

/// Committed versions whose watchers have not been told yet, oldest first.
///
/// Contract: versions are published in commit order, each after its callers were answered;
/// after a quiet spell, [`PUBLISH_DELAY`] after the commit, in a busy stream (the last
/// publish under [`PUBLISH_BUSY`] ago, across all documents) at once.
///
/// Why wait after a quiet spell: published at once, a change to a document with many
/// watchers wakes the output thread in the very microseconds the session needs a core to
/// write its reply, and on a small machine the reply then waits for a scheduler slice. Why
/// not in a busy stream: the fanout is running anyway, and holding it back lets a pipelining
/// writer outrun its watchers. The writer takes new jobs meanwhile, so nothing else waits.
/// Measurements: BENCHMARKS.md, "Changes measured" (publish delay).
pub(super) struct Unpublished {
    versions: Vec<Arc<Committed>>,
    since: Option<Instant>,
    last: Option<Instant>,
    delay: Duration,
    busy: Duration,
}

impl Default for Unpublished {
    fn default() -> Self {
        Unpublished::with(PUBLISH_DELAY, PUBLISH_BUSY)
    }
}

impl Unpublished {
    fn with(delay: Duration, busy: Duration) -> Self {
        Unpublished {
            versions: Vec::new(),
            since: None,
            last: None,
            delay,
            busy,
        }
    }

    pub(super) fn add(&mut self, committed: Vec<Arc<Committed>>) {
        if self.since.is_none() && !committed.is_empty() {
            self.since = Some(Instant::now());
        }
        self.versions.extend(committed);
    }

    /// How long until the oldest is due; `None` when nothing waits.
    pub(super) fn due_in(&self) -> Option<Duration> {
        self.since
            .map(|since| self.delay.saturating_sub(since.elapsed()))
    }

    /// Publishes everything waiting, in commit order, once the oldest is due (or `now`).
    pub(super) fn publish(&mut self, mut tell: impl FnMut(&Arc<Committed>), now: bool) {
        let busy = self.last.is_some_and(|t| t.elapsed() < self.busy);
        if self.since.is_some() && (now || busy || self.due_in().is_some_and(|d| d.is_zero())) {
            for c in self.versions.drain(..) {
                tell(&c);
            }
            self.since = None;
            self.last = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Unpublished;
    use crate::store::backend::Committed;
    use crate::store::model::Document;

    fn committed(version: u64) -> Arc<Committed> {
        let mut doc = Document::new("ann", "2026-01-01T00:00:00Z");
        doc.metadata.version = version;
        Arc::new(Committed {
            doc: Arc::new(doc),
            entry: None,
            created: false,
            shares: Vec::new(),
        })
    }

    /// After a quiet spell a change waits for the delay (the replies' head start); in a busy
    /// stream it goes at once; either way in commit order, each exactly once. Delays of an
    /// hour and of zero keep the test independent of how fast the machine runs it.
    #[test]
    fn a_change_after_quiet_waits_a_moment_and_a_busy_stream_does_not() {
        let hour = Duration::from_secs(3600);
        let mut told: Vec<u64> = Vec::new();
        let mut waiting = Unpublished::with(hour, hour);
        assert_eq!(waiting.due_in(), None, "nothing waits");
        waiting.add(vec![committed(1), committed(2)]);
        waiting.publish(|c| told.push(c.doc.version()), false);
        assert!(told.is_empty(), "held back after a quiet spell");
        assert!(
            waiting
                .due_in()
                .is_some_and(|d| d > Duration::ZERO && d <= hour)
        );
        waiting.publish(|c| told.push(c.doc.version()), true);
        assert_eq!(told, [1, 2], "told in order when it is time");
        assert_eq!(waiting.due_in(), None);
        waiting.add(vec![committed(3)]);
        waiting.publish(|c| told.push(c.doc.version()), false);
        assert_eq!(told, [1, 2, 3], "busy: at once");
        waiting.publish(|c| told.push(c.doc.version()), true);
        assert_eq!(told.len(), 3, "nothing is told twice");

        let mut told: Vec<u64> = Vec::new();
        let mut due = Unpublished::with(Duration::ZERO, Duration::ZERO);
        due.add(vec![committed(7)]);
        due.publish(|c| told.push(c.doc.version()), false);
        assert_eq!(told, [7], "due once the delay has passed");
    }
}

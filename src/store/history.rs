//! Reading the change log back: a page of entries, and the versions a resuming watcher
//! missed, rebuilt from the log's base when it wants their data.

use std::sync::Arc;

use super::error::StoreError;
use super::model::{Document, LogEntry, Version};
use super::{History, Store, apply};

/// How much of each change log is kept: `CHANGELOG_RETAIN` versions younger than
/// `CHANGELOG_MAX_AGE` of a document; `STREAM_RETAIN` events of a stream, whose log is its
/// data (0: all).
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub versions: u64,
    pub max_age: Option<std::time::Duration>,
    pub stream_events: u64,
}

impl Retention {
    /// For the log of `key`: entries to keep, and whether the age limit applies; `None`:
    /// keep every entry.
    pub fn of(&self, key: &str) -> Option<(u64, bool)> {
        if super::streams::is_stream(key) {
            (self.stream_events > 0).then_some((self.stream_events, false))
        } else {
            Some((self.versions.max(1), true))
        }
    }
}

/// What a resuming watcher gets: every version after the one it saw, or word that the log
/// no longer reaches back that far.
#[derive(Debug)]
pub enum Replay {
    /// The log was trimmed past the requested version: send a snapshot marked `resync`.
    Gap,
    /// Versions in order, each with the document it produced when asked for.
    Versions(Vec<(LogEntry, Option<Arc<Document>>)>),
}

impl Store {
    /// The versions after `since` up to `upto`, for a watcher resuming from `since`. With
    /// `with_data`, each comes with its resulting document, rebuilt from the log's base.
    ///
    /// # Errors
    /// `Unavailable`; a log that does not replay cleanly is treated as a gap (and logged).
    pub async fn replay(
        &self,
        target: &str,
        since: Version,
        upto: Version,
        with_data: bool,
    ) -> Result<Replay, StoreError> {
        if since >= upto {
            return Ok(Replay::Versions(Vec::new()));
        }
        let history = self
            .inner
            .backend
            .history(target, since + 1, upto, usize::MAX, with_data)
            .await?;
        let first = if with_data {
            match &history.base {
                Some(base) if base.version() <= since => base.version() + 1,
                _ => return Ok(Replay::Gap),
            }
        } else {
            since + 1
        };
        let contiguous = history.entries.len() as u64 == upto + 1 - first
            && history
                .entries
                .iter()
                .zip(first..)
                .all(|(e, v)| e.version == v);
        if !contiguous {
            return Ok(Replay::Gap);
        }
        let Some(mut doc) = history.base.filter(|_| with_data) else {
            let out = history.entries.into_iter().map(|e| (e, None)).collect();
            return Ok(Replay::Versions(out));
        };
        let mut out = Vec::with_capacity((upto - since) as usize);
        for entry in history.entries {
            doc = match apply::replay(&doc, &entry) {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(%target, version = entry.version, error = %e, "change log does not replay");
                    return Ok(Replay::Gap);
                }
            };
            if entry.version > since {
                out.push((entry, Some(Arc::new(doc.clone()))));
            }
        }
        Ok(Replay::Versions(out))
    }

    /// A page of the change log: entries in `from..=to`, at most `limit`, and the oldest
    /// version still retained.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn changes(
        &self,
        target: &str,
        from: Version,
        to: Version,
        limit: usize,
    ) -> Result<History, StoreError> {
        self.inner
            .backend
            .history(target, from, to, limit, false)
            .await
    }
}

impl Store {
    /// The change feed: every document's committed versions after cursor `after`, in
    /// commit order, at most `limit` (`Backend::feed`).
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn feed(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<super::backend::FeedPage, StoreError> {
        self.inner.backend.feed(after, limit, None).await
    }

    /// [`Store::feed`] of `owner`'s documents only: the others are passed over unread.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn feed_of(
        &self,
        after: u64,
        limit: usize,
        owner: &str,
    ) -> Result<super::backend::FeedPage, StoreError> {
        self.inner
            .backend
            .feed(after, limit, Some(owner.to_owned()))
            .await
    }
}

//! The change feed's shape for every surface (SSE and pages in `http/feed.rs`, the socket's
//! `feed` frame here), and following it on a socket.

use std::time::Duration;

use serde_json::{Value, json};

use crate::connection::Outbound;
use crate::state::AppState;
use crate::store::backend::{FeedItem, FeedPage};

/// Changes read at a time, and how long a follower with nothing to send waits for the bell
/// (`fanout/bell.rs`) before it looks again anyway.
const PAGE: usize = 1000;
pub const IDLE: Duration = Duration::from_secs(1);
/// After a failed read.
const RETRY: Duration = Duration::from_secs(1);

/// One change as the feed shows it: `{cursor, username, name?, version, at, by, op, opId?}`,
/// or, for a version the log no longer holds, `{cursor, username, name?, version, resync:
/// true}` (read the document itself).
pub fn item(i: FeedItem) -> Value {
    let (username, name) = crate::frame::split_key(&i.key);
    let mut v = json!({"cursor": i.cursor, "username": username, "version": i.version});
    if let Some(name) = name {
        v["name"] = json!(name);
    }
    match i.entry {
        Some(entry) => {
            v["at"] = json!(entry.at);
            v["by"] = json!(entry.by);
            v["op"] = json!(entry.op);
            if let Some(op_id) = entry.op_id {
                v["opId"] = json!(op_id);
            }
        }
        None => v["resync"] = json!(true),
    }
    v
}

/// Whether cursors after `after` were dropped before the consumer read them.
pub fn missed(after: u64, page: &FeedPage) -> bool {
    page.oldest.is_some_and(|oldest| oldest > after + 1)
}

/// [`follow`] as the socket's task (after its reply is queued, as a watch's pushes come after
/// its snapshot); it ends when the handle is dropped.
pub fn spawn(
    state: &AppState,
    out: &Outbound,
    after: u64,
) -> tokio_util::task::AbortOnDropHandle<()> {
    let task = tokio::spawn(follow(state.clone(), out.clone(), after));
    tokio_util::task::AbortOnDropHandle::new(task)
}

/// Pushes the changes after `after` to a socket as `feed` frames (`{"type": "feed", cursor,
/// …}`), then each new one as it commits, until the socket stops taking them for
/// `SLOW_CONSUMER_TIMEOUT` (it resumes with `feed` from the last cursor it got) or closes.
pub async fn follow(state: AppState, out: Outbound, mut after: u64) {
    let wait = state.limits.slow_consumer_timeout;
    let mut first = true;
    loop {
        let bell = state.hub.bell().listen();
        let page = match state.store.feed(after, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "reading the change feed failed");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if first && missed(after, &page) {
            let frame = json!({"type": "feed", "resync": true}).to_string();
            if out.send_timeout(frame.into(), wait).await.is_err() {
                return;
            }
        }
        first = false;
        if page.items.is_empty() {
            bell.wait(IDLE).await;
            continue;
        }
        drop(bell);
        after = page.through;
        for i in page.items {
            let mut frame = item(i);
            frame["type"] = json!("feed");
            if out
                .send_timeout(frame.to_string().into(), wait)
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

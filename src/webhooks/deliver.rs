//! Delivering webhooks: one task per active webhook reads the change feed after its cursor
//! and posts what it wants, in order; a supervisor starts and stops those tasks as webhooks
//! come, go, pause and resume.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::turn::Turn;
use super::{Hook, MAX_FAILURES, address, payload};
use crate::state::AppState;
use crate::store::backend::FeedItem;

/// How often the supervisor looks at the webhooks (an idle deliverer waits for the next
/// commit, `fanout/bell.rs`).
const SUPERVISE: Duration = Duration::from_secs(1);
/// Changes looked at in the feed at a time.
const PAGE: usize = 1000;
/// Longest wait for a receiver's answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Fewer changes than this in a page: the deliverer waits [`GATHER`] before reading again.
const BATCH: usize = 32;
const GATHER: Duration = Duration::from_millis(50);
/// Longest a deliverer goes without storing its progress while it delivers.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Every webhook's record.
///
/// # Errors
/// `Unavailable`, or a record that does not parse.
pub async fn all(state: &AppState) -> Result<Vec<Hook>, crate::error::Error> {
    state
        .store
        .webhooks()
        .await?
        .iter()
        .map(|bytes| {
            serde_json::from_slice(bytes).map_err(|e| {
                crate::error::Error::from(crate::store::StoreError::Unavailable(format!(
                    "a webhook record does not parse: {e}"
                )))
            })
        })
        .collect()
}

/// Stores `hook` as it is now; with `over`, only if the stored record is still that one.
///
/// # Errors
/// `VersionMismatch` when it is not (changed or removed meanwhile); `Unavailable`.
pub async fn save(
    state: &AppState,
    hook: &Hook,
    over: Option<&Hook>,
) -> Result<(), crate::error::Error> {
    let json = |h: &Hook| serde_json::to_vec(h).map_err(|_| crate::error::Error::Internal);
    let expect = over.map(json).transpose()?;
    Ok(state
        .store
        .save_webhook(&hook.id, Some(json(hook)?), expect)
        .await?)
}

/// Runs until shutdown: while this node has the turn (`turn.rs`), keeps one deliverer per
/// active webhook, and the queue gauge.
pub async fn supervise(state: AppState, pg: Option<crate::store::PgSettings>) {
    while let Some(turn) = Turn::take(pg.as_ref(), &state.shutdown).await {
        state.metrics.webhook_turn.set(1);
        tokio::select! {
            () = state.shutdown.cancelled() => {}
            () = turn.lost() => {}
            () = keep_deliverers(&state) => {}
        }
        state.metrics.webhook_turn.set(0);
        // Not delivering any more, here: another node may be by now.
        state.webhooks.retain(|_| false);
        if state.shutdown.is_cancelled() {
            return;
        }
    }
}

/// Starts and stops deliverers as webhooks come, go, pause and resume; never returns.
async fn keep_deliverers(state: &AppState) {
    let state = state.clone();
    loop {
        match all(&state).await {
            Ok(hooks) => {
                let active = |id: &str| hooks.iter().any(|h| h.id == id && h.paused.is_none());
                state.webhooks.retain(active);
                for hook in hooks.iter().filter(|h| h.paused.is_none()) {
                    if !state.webhooks.is_running(&hook.id) {
                        let task = tokio::spawn(deliver(state.clone(), hook.id.clone()));
                        state
                            .webhooks
                            .start(&hook.id, tokio_util::task::AbortOnDropHandle::new(task));
                    }
                }
                if let Ok(page) = state.store.feed(u64::MAX - 1, 1).await {
                    let newest = page.newest.unwrap_or(0);
                    let behind: u64 = hooks
                        .iter()
                        .filter(|h| h.paused.is_none())
                        .map(|h| newest.saturating_sub(h.cursor))
                        .sum();
                    state
                        .metrics
                        .webhook_queue
                        .set(i64::try_from(behind).unwrap_or(i64::MAX));
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhooks: cannot read them"),
        }
        tokio::time::sleep(SUPERVISE).await;
    }
}

/// One webhook's deliverer: from its cursor on, each change it wants, in order, until it is
/// paused, or stopped (the supervisor stops a removed or paused webhook's; the API, one it
/// changes).
///
/// Progress is stored at most every [`SAVE_EVERY`] (and at every failure): one durable write
/// per delivery cost the writers of b) a fifth of their commits (BENCHMARKS.md). So after a
/// crash, up to that long of answered changes are posted again, with the delivery ids they
/// had: at least once, as documented, and a receiver drops them by id.
async fn deliver(state: AppState, id: String) {
    let base = Duration::from_millis(state.config.webhook_retry_ms.max(1));
    // Kept while the URL resolves to the same address: its connection is reused.
    let mut client = None;
    let mut hook = loop {
        match all(&state).await {
            Ok(hooks) => match hooks.into_iter().find(|h| h.id == id) {
                Some(hook) if hook.paused.is_none() => break hook,
                _ => return,
            },
            Err(_) => tokio::time::sleep(SUPERVISE).await,
        }
    };
    // The record as last stored: progress is stored only over it, so a webhook removed (or
    // changed on another node) meanwhile ends this deliverer instead of coming back.
    let mut stored = hook.clone();
    let (mut saved, mut dirty) = (Instant::now(), false);
    loop {
        // An owner's webhook reads only the owner's changes: the others are passed over
        // unread, so a quiet webhook on a busy server costs little.
        let bell = state.hub.bell().listen();
        let page = if hook.global {
            state.store.feed(hook.cursor, PAGE).await
        } else {
            state.store.feed_of(hook.cursor, PAGE, &hook.owner).await
        };
        let page = match page {
            Ok(page) if page.through > hook.cursor => page,
            Ok(_) => {
                // Caught up: a good moment to store how far it got.
                if dirty {
                    match progress(&state, &hook, &mut stored).await {
                        Saved::Yes => (saved, dirty) = (Instant::now(), false),
                        Saved::No => {}
                        Saved::Gone => return,
                    }
                }
                bell.wait(crate::feed::IDLE).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, webhook = %id, "webhooks: cannot read the feed");
                tokio::time::sleep(SUPERVISE).await;
                continue;
            }
        };
        // A short page means the webhook keeps up: wait a little so the next read brings a
        // batch, rather than one read of the feed per change (a webhook on a document written
        // 1,000 times a second cost b)'s writers 8% reading one change at a time).
        drop(bell);
        let short = page.items.len() < BATCH;
        for item in page.items {
            if hook.wants(&item) {
                loop {
                    match post(&state, &hook, &item, &mut client).await {
                        Ok(()) => {
                            hook.delivered += 1;
                            hook.failures = 0;
                            hook.last_error = None;
                            break;
                        }
                        Err(why) => {
                            hook.failures += 1;
                            hook.last_error = Some(why);
                            if hook.failures >= MAX_FAILURES {
                                hook.paused =
                                    Some(format!("{MAX_FAILURES} failed deliveries in a row"));
                                if progress(&state, &hook, &mut stored).await == Saved::Yes {
                                    tracing::warn!(webhook = %id, "webhook paused after failing");
                                }
                                return;
                            }
                            if progress(&state, &hook, &mut stored).await == Saved::Gone {
                                return;
                            }
                            let wait = base.saturating_mul(1 << (hook.failures - 1).min(20));
                            tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
                        }
                    }
                }
            }
            hook.cursor = item.cursor;
        }
        hook.cursor = hook.cursor.max(page.through);
        dirty = true;
        if saved.elapsed() >= SAVE_EVERY {
            match progress(&state, &hook, &mut stored).await {
                Saved::Yes => (saved, dirty) = (Instant::now(), false),
                Saved::No => {}
                Saved::Gone => return,
            }
        }
        if short {
            tokio::time::sleep(GATHER).await;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Saved {
    Yes,
    /// Not now (the store is unavailable): it is tried again later.
    No,
    /// The record changed or went meanwhile: this deliverer must stop.
    Gone,
}

/// Stores a deliverer's progress over the record it last stored.
async fn progress(state: &AppState, hook: &Hook, stored: &mut Hook) -> Saved {
    match save(state, hook, Some(stored)).await {
        Ok(()) => {
            *stored = hook.clone();
            Saved::Yes
        }
        Err(crate::error::Error::VersionMismatch { .. }) => {
            tracing::info!(webhook = %hook.id, "webhook changed or removed meanwhile; its deliverer stops");
            Saved::Gone
        }
        Err(e) => {
            tracing::warn!(error = %e, webhook = %hook.id, "webhooks: cannot store progress");
            Saved::No
        }
    }
}

/// A client bound to one resolved address (`address.rs`), and that address.
type Pinned = Option<(std::net::SocketAddr, reqwest::Client)>;

/// One attempt: the change posted, signed, to the address the URL resolves to now.
async fn post(
    state: &AppState,
    hook: &Hook,
    item: &FeedItem,
    client: &mut Pinned,
) -> Result<(), String> {
    let started = Instant::now();
    let result = attempt(state, hook, item, client).await;
    let metrics = &state.metrics;
    metrics
        .webhook_seconds
        .observe(started.elapsed().as_secs_f64());
    let label = if result.is_ok() { "ok" } else { "failed" };
    metrics.webhook_deliveries.with_label_values(&[label]).inc();
    result
}

async fn attempt(
    state: &AppState,
    hook: &Hook,
    item: &FeedItem,
    pinned: &mut Pinned,
) -> Result<(), String> {
    let target = address::resolve(&hook.url, state.config.webhook_allow_private).await?;
    let body = serde_json::to_vec(&payload(hook, item)).map_err(|e| e.to_string())?;
    let client = match pinned {
        Some((addr, client)) if *addr == target.addr => client.clone(),
        _ => {
            let client = reqwest::Client::builder()
                .resolve(&target.host, target.addr)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(TIMEOUT)
                .user_agent("hearth-webhooks")
                .build()
                .map_err(|e| e.to_string())?;
            *pinned = Some((target.addr, client.clone()));
            client
        }
    };
    let response = client
        .post(target.url)
        .header("content-type", "application/json")
        .header(
            "x-hearth-signature",
            format!("sha256={}", sign(&hook.secret, &body)),
        )
        .header("x-hearth-delivery", super::delivery_id(hook, item.cursor))
        .header("x-hearth-timestamp", crate::sys::unix_now().to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", target.addr))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered HTTP {}", status.as_u16()))
    }
}

/// HMAC-SHA256 of `body` under `secret`, hex.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use std::fmt::Write as _;
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new(); // any key length is accepted; not reached
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn signs_as_rfc_4231_says() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

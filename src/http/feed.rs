//! The change feed over HTTP (Varasto's push stream, seed 004): every committed change of
//! every document and stream, in commit order, for operators and integrations that follow
//! the data. A consumer keeps the cursor of the last change it handled and asks for what
//! comes after it, as a page or as a live SSE stream (`Last-Event-ID` is the cursor): after
//! a crash it resumes from its stored cursor and sees each change exactly once. Nothing is
//! skipped silently: a consumer behind what the feed keeps gets `resync`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::FeedCaller;
use super::error::ApiError;
use crate::feed::{item, missed};
use crate::state::AppState;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FeedQuery {
    /// The cursor of the last change already handled (0 or none: from the oldest kept).
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/admin/feed?after=&limit=` (an admin's token, or a feed-scoped one: `POST
/// /v1/login` with `"scope": "feed"`): `{changes, next, resync, newest}` where `next` is the
/// cursor to ask after next time, `resync` says changes after `after` were dropped (re-read
/// every document, then follow from `next`) and `newest` is the newest cursor there is. With `Accept: text/event-stream`: the same
/// changes as SSE events whose ids are their cursors, then each new one as it commits.
#[utoipa::path(get, path = "/v1/admin/feed", params(FeedQuery, ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, description = "{newest, changes: [{cursor, username, name?, version, at, by, op, opId?} | {cursor, username, name?, version, resync: true}], next, resync}, or text/event-stream"), (status = 403)), tag = "admin")]
pub async fn feed(
    State(state): State<AppState>,
    FeedCaller(claims): FeedCaller,
    Query(q): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = last_event.or(q.after).unwrap_or(0);
    let wants_sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_sse {
        let expires = Duration::from_secs(claims.exp.saturating_sub(crate::sys::unix_now()));
        return Ok(live(state, after, expires).into_response());
    }
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let page = state.store.feed(after, limit).await?;
    let resync = missed(after, &page);
    let (next, newest) = (page.through, page.newest);
    let changes: Vec<Value> = page.items.into_iter().map(item).collect();
    Ok(
        Json(json!({"changes": changes, "next": next, "resync": resync, "newest": newest}))
            .into_response(),
    )
}

/// The live form: pages as they come, waiting for the next commit when there is nothing
/// new, until shutdown or the token's expiry.
fn live(
    state: AppState,
    after: u64,
    expires: Duration,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let shutdown = state.shutdown.clone();
    let events = stream::unfold((state, after, true), |(state, after, first)| async move {
        loop {
            let bell = state.hub.bell().listen();
            let page = match state.store.feed(after, MAX_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the change feed failed");
                    tokio::time::sleep(crate::feed::IDLE).await;
                    continue;
                }
            };
            let mut out = Vec::with_capacity(page.items.len() + 1);
            if first && missed(after, &page) {
                out.push(Event::default().data(json!({"type": "resync"}).to_string()));
            }
            let next = page.through;
            for i in page.items {
                let id = i.cursor.to_string();
                out.push(Event::default().id(id).data(item(i).to_string()));
            }
            if !out.is_empty() {
                drop(bell);
                return Some((stream::iter(out.into_iter().map(Ok)), (state, next, false)));
            }
            bell.wait(crate::feed::IDLE).await;
        }
    })
    .flatten()
    .take_until(async move {
        tokio::select! {
            () = shutdown.cancelled() => {},
            () = tokio::time::sleep(expires) => {},
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

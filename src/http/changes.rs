//! The change log over HTTP: pages of history, and a Server-Sent Events stream of changes
//! that a browser's `EventSource` resumes by itself (`Last-Event-ID` is the version).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::auth::{Caller, ClientIp};
use super::data::{DataPath, readable};
use super::error::ApiError;
use crate::auth::{Auth, Control};
use crate::cmd::read::parse_fields;
use crate::error::Error;
use crate::fanout::Mode;
use crate::fanout::watcher::{self, Output, Push, PushKind, WatchRequest};
use crate::frame::{Reply, encode};
use crate::state::AppState;
use crate::store::Version;

/// Entries per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Events queued per SSE stream before its watcher waits (and then resyncs).
const SSE_QUEUE: usize = 64;
/// SSE comment lines this often keep proxies from cutting idle streams.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ChangesQuery {
    pub(super) from: Option<Version>,
    to: Option<Version>,
    limit: Option<usize>,
}

/// `GET /v1/users/{user}/changes?from=&to=&limit=`: `{username, version, oldest, changes,
/// next}` where `next` is the `from` of the following page, or null at the end.
#[utoipa::path(get, path = "/v1/users/{user}/changes", params(("user" = String, Path), ChangesQuery),
    responses((status = 200, description = "{username, version, oldest, changes, next}"), (status = 404)), tag = "changes")]
pub async fn changes(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, ApiError> {
    let user = p.key()?;
    let doc = readable(&state, &claims.sub, &user).await?;
    page(&state, &doc, &q).await
}

/// A page of `doc`'s change log, as `changes` answers it.
pub(super) async fn page(
    state: &AppState,
    doc: &crate::store::Document,
    q: &ChangesQuery,
) -> Result<Response, ApiError> {
    let user = doc.key();
    let current = doc.version();
    let to = q.to.unwrap_or(current).min(current);
    let from = q.from.unwrap_or(1).max(1);
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let history = state.store.changes(&user, from, to, limit).await?;
    let next = match history.entries.last() {
        Some(last) if history.entries.len() == limit && last.version < to => Some(last.version + 1),
        _ => None,
    };
    let (username, name) = crate::frame::split_key(&user);
    let mut body = json!({
        "username": username,
        "version": current,
        "oldest": history.oldest,
        "changes": history.entries,
        "next": next,
    });
    if let (Some(name), Some(map)) = (name, body.as_object_mut()) {
        map.insert("name".into(), name.into());
        map.insert("incarnation".into(), json!(doc.metadata.incarnation));
    }
    let mut response = Json(body).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{current}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    pub(super) since: Option<Version>,
    /// With `since` on a named document: the incarnation it counts in.
    pub(super) incarnation: Option<String>,
    /// Comma-separated field paths.
    pub(super) fields: Option<String>,
    pub(super) mode: Option<String>,
    /// `1`: presence events too (`presence` frames, without ids), after the opening ones.
    pub(super) presence: Option<String>,
}

/// `GET /v1/users/{user}/events`: the document's changes as SSE. Each event's data is the
/// same JSON frame a WebSocket watcher gets and its `id` the version, so a reconnecting
/// `EventSource` sends `Last-Event-ID` and resumes with no gap. Without `since` the stream
/// opens with the current snapshot. Ends when access is revoked (after an `error` event), when
/// the token is logged out, and at shutdown.
#[utoipa::path(get, path = "/v1/users/{user}/events", params(("user" = String, Path), EventsQuery, ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, description = "text/event-stream"), (status = 404)), tag = "changes")]
pub async fn events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Caller(claims): Caller,
    Path(p): Path<DataPath>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    stream_events(state, ip, claims, p.key()?, q, headers, false).await
}

/// `events` for `user`'s document; `as_admin`, the admin API's view of any document.
pub(super) async fn stream_events(
    state: AppState,
    ip: std::net::IpAddr,
    claims: crate::auth::Claims,
    user: String,
    q: EventsQuery,
    headers: HeaderMap,
    as_admin: bool,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let key = user.clone();
    let with_presence = matches!(q.presence.as_deref(), Some("1" | "true"));
    // A stream holds a connection open as a socket does, and counts as one against the
    // per-address and per-user limits (429 `too_many_connections` past them).
    let slots = (
        state.limiters.connect_ip(ip)?,
        state.limiters.connect_user(&claims.sub)?,
    );
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_event_id);
    let fields: Option<Vec<String>> = q.fields.map(|f| f.split(',').map(str::to_owned).collect());
    let mode = match q.mode.as_deref() {
        None | Some("full") => Mode::Full,
        Some("ops") => Mode::Ops,
        Some(_) => return Err(Error::BadRequest("mode is \"full\" or \"ops\"".into()).into()),
    };
    let request = WatchRequest {
        viewer: claims.sub.clone(),
        target: user,
        fields: parse_fields(fields.as_deref())?,
        since: last_event_id.as_ref().map(|(v, _)| *v).or(q.since),
        incarnation: match last_event_id {
            Some((_, incarnation)) => incarnation,
            None => q.incarnation,
        },
        mode,
        as_admin,
    };
    let (tx, rx) = mpsc::channel::<Push>(SSE_QUEUE);
    let presence_tx = tx.clone();
    let out = Output {
        sink: tx,
        metrics: state.metrics.clone(),
        control: None,
        slow: state.limits.slow_consumer_timeout,
    };
    let started = watcher::start(&state, request, out).await?;
    let incarnation = started.incarnation.clone();
    let first = first_event(&started.reply, incarnation.as_deref());
    // Presence: who is here now, then each join, update and leave, for the stream's life. A
    // push the stream has no room for ends it, rather than leave it without presence from
    // then on: the client reconnects (`Last-Event-ID`) and gets a fresh list.
    let behind = tokio_util::sync::CancellationToken::new();
    let (present, membership) = if with_presence {
        let conn = state.next_conn_id();
        let behind = behind.clone();
        state.presence.listen(&key, &claims.sub, conn, || {
            std::sync::Arc::new(move |frame: &axum::extract::ws::Utf8Bytes| {
                let push = Push {
                    frame: frame.clone(),
                    version: None,
                    kind: PushKind::Change,
                };
                let taken = presence_tx.try_send(push).is_ok();
                if !taken {
                    behind.cancel();
                }
                taken
            })
        });
        let (username, name) = crate::frame::split_key(&key);
        let (present, seq) = state.presence.list(&key);
        let list = Reply::Presence {
            username,
            name,
            present,
            seq,
        };
        let event = Event::default().data(encode(None, &list).as_str());
        let membership = crate::presence::Membership::new(&state.presence, &key, conn);
        (Some(event), Some(membership))
    } else {
        drop(presence_tx);
        (None, None)
    };
    let forwarder = AbortOnDropHandle::new(state.output.spawn(started.watcher.run()));

    // Logout of this token ends the stream, as it signs out a socket.
    let (control, mut control_rx) = crate::mailbox::channel(1);
    let registration = Registration::new(
        &state.auth,
        &claims.sid,
        &claims.sub,
        state.next_conn_id(),
        control,
    );
    // So does the token's expiry: a stream must not outlive the token that opened it.
    let expires_in =
        std::time::Duration::from_secs(claims.exp.saturating_sub(crate::sys::unix_now()));
    let ended = {
        let shutdown = state.shutdown.clone();
        async move {
            let told_to_end = async {
                // A `shared` notice is for sockets; anything else ends the stream.
                while let Some(crate::auth::Control::Notice(_)) = control_rx.recv().await {}
            };
            tokio::select! {
                () = shutdown.cancelled() => {},
                () = told_to_end => {},
                () = tokio::time::sleep(expires_in) => {},
                () = behind.cancelled() => {},
            }
        }
    };

    let live = stream::unfold(
        (rx, forwarder, registration, slots, membership),
        |(mut rx, f, r, s, m)| async move {
            let push = rx.recv().await?;
            Some((push, (rx, f, r, s, m)))
        },
    )
    .map(move |push| Ok(to_event(push, incarnation.as_deref())));
    let stream = stream::once(async move { Ok(first) })
        .chain(stream::iter(present.map(Ok)))
        .chain(live)
        .take_until(ended);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The stream's opening event. A snapshot carries its version as the event id; a `watching`
/// reply must not (the replay after it has not arrived yet, and a reconnect in between would
/// otherwise skip it).
fn first_event(reply: &Reply, incarnation: Option<&str>) -> Event {
    let event = Event::default().data(encode(None, reply).as_str());
    match reply {
        Reply::Data { version, .. } => event.id(event_id(*version, incarnation)),
        _ => event,
    }
}

fn to_event(push: Push, incarnation: Option<&str>) -> Event {
    let event = Event::default().data(push.frame.as_str());
    match (push.kind, push.version) {
        (PushKind::Ended, _) | (_, None) => event,
        (PushKind::Change | PushKind::Resync, Some(v)) => event.id(event_id(v, incarnation)),
    }
}

/// An event's id: the version, and for a named document `:` and its incarnation, so that a
/// reconnect after the document was deleted and created again resyncs.
fn event_id(version: Version, incarnation: Option<&str>) -> String {
    match incarnation {
        None => version.to_string(),
        Some(i) => format!("{version}:{i}"),
    }
}

/// `Last-Event-ID`: `version` or `version:incarnation`.
fn parse_event_id(id: &str) -> Option<(Version, Option<String>)> {
    let (version, incarnation) = match id.trim().split_once(':') {
        Some((v, i)) => (v, Some(i.to_owned())),
        None => (id.trim(), None),
    };
    Some((version.parse().ok()?, incarnation))
}

/// Keeps an SSE stream in the revocation registry for as long as it lives.
struct Registration {
    auth: std::sync::Arc<Auth>,
    sid: String,
    username: String,
    conn: u64,
}

impl Registration {
    fn new(
        auth: &std::sync::Arc<Auth>,
        sid: &str,
        username: &str,
        conn: u64,
        control: crate::mailbox::Sender<Control>,
    ) -> Self {
        auth.sockets.register(sid, username, conn, control);
        Registration {
            auth: auth.clone(),
            sid: sid.to_owned(),
            username: username.to_owned(),
            conn,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.auth
            .sockets
            .unregister(&self.sid, &self.username, self.conn);
    }
}

//! The two Engine.IO transports over HTTP: long-polling (`GET` waits for packets, `POST`
//! delivers the client's) and WebSocket, opened directly or as an upgrade of a polling
//! connection (probe `2probe` / `3probe`, a `noop` to end the pending poll, then `5`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::auth::ClientIp;
use crate::socketio::Engine;
use crate::socketio::packet::{self, SEPARATOR};
use crate::state::AppState;

type Params = Query<HashMap<String, String>>;

/// Engine.IO's error answer: `{"code", "message"}` with 400 (403 for a refused origin).
fn refuse(code: u8, message: &str) -> Response {
    let status = if code == 4 {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        status,
        axum::Json(serde_json::json!({"code": code, "message": message})),
    )
        .into_response()
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], body).into_response()
}

/// What every request must pass: protocol 4, a transport we have, an allowed origin.
fn check(
    state: &AppState,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), Box<Response>> {
    if q.get("EIO").map(String::as_str) != Some("4") {
        return Err(Box::new(refuse(5, "Unsupported protocol version")));
    }
    if !matches!(
        q.get("transport").map(String::as_str),
        Some("polling" | "websocket")
    ) {
        return Err(Box::new(refuse(0, "Transport unknown")));
    }
    if !super::ws::origin_allowed(state.limits.origins.as_deref(), headers) {
        return Err(Box::new(refuse(4, "Forbidden")));
    }
    Ok(())
}

/// `GET /socket.io/`: a handshake, a long-poll, or a WebSocket.
#[utoipa::path(get, path = "/socket.io/", responses((status = 200, description = "Engine.IO packets (text/plain)"), (status = 101, description = "WebSocket transport"), (status = 400, description = "{code, message}: Engine.IO's errors"), (status = 403)), security(()), tag = "socket.io")]
pub async fn poll(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(q): Params,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if let Err(r) = check(&state, &q, &headers) {
        return *r;
    }
    let sid = q.get("sid");
    if q.get("transport").map(String::as_str) == Some("websocket") {
        let Ok(ws) = ws else {
            return refuse(3, "Bad request");
        };
        let max = state.limits.max_message_size;
        // The buffers `/ws` uses, for the same reasons (an idle socket stays small).
        let ws = ws
            .read_buffer_size(super::ws::READ_BUFFER)
            .write_buffer_size(super::ws::WRITE_BUFFER)
            .max_message_size(max)
            .max_frame_size(max);
        return match sid {
            Some(sid) => match state.socketio.get(sid) {
                Some(engine) => ws.on_upgrade(move |socket| upgrade(engine, socket)),
                None => refuse(1, "Session ID unknown"),
            },
            None => match open(&state, ip) {
                Ok(engine) => ws.on_upgrade(move |socket| async move {
                    let (interval, timeout) = heartbeat(&state.limits);
                    let hello = packet::open(&engine.sid, &[], ms(interval), ms(timeout), max);
                    engine.upgraded.store(true, Ordering::SeqCst);
                    let mut socket = socket;
                    if socket.send(Message::Text(hello.into())).await.is_ok() {
                        carry(&engine, socket).await;
                    }
                    engine.close();
                }),
                Err(r) => *r,
            },
        };
    }
    let Some(sid) = sid else {
        return match open(&state, ip) {
            Ok(engine) => {
                let (interval, timeout) = heartbeat(&state.limits);
                let max = state.limits.max_message_size;
                text(packet::open(
                    &engine.sid,
                    &["websocket"],
                    ms(interval),
                    ms(timeout),
                    max,
                ))
            }
            Err(r) => *r,
        };
    };
    let Some(engine) = state.socketio.get(sid) else {
        return refuse(1, "Session ID unknown");
    };
    if engine.upgraded.load(Ordering::SeqCst) {
        return refuse(3, "Bad request");
    }
    if engine.polling.swap(true, Ordering::SeqCst) {
        // Two polls at once: Engine.IO closes the connection.
        engine.close();
        return refuse(3, "Bad request");
    }
    /// Ends the poll however this handler ends: an aborted request drops it mid-wait, and
    /// a flag left set would refuse the client's next poll as a second one.
    struct Polling<'a>(&'a Engine);
    impl Drop for Polling<'_> {
        fn drop(&mut self) {
            self.0.polling.store(false, Ordering::SeqCst);
        }
    }
    let _polling = Polling(&engine);
    let packets = loop {
        let ready = engine.ready.notified();
        let packets = engine.take();
        if !packets.is_empty() {
            break packets;
        }
        if engine.closed.is_cancelled() {
            break vec![packet::CLOSE.to_owned()];
        }
        ready.await;
    };
    text(packets.join(&SEPARATOR.to_string()))
}

/// `POST /socket.io/`: the client's packets, long-polling.
#[utoipa::path(post, path = "/socket.io/", request_body(content = String, description = "Engine.IO packets separated by \\x1e"), responses((status = 200, description = "ok"), (status = 400, description = "{code, message}")), security(()), tag = "socket.io")]
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Params,
    body: Bytes,
) -> Response {
    if let Err(r) = check(&state, &q, &headers) {
        return *r;
    }
    let Some(engine) = q.get("sid").and_then(|sid| state.socketio.get(sid)) else {
        return refuse(1, "Session ID unknown");
    };
    if body.len() > state.limits.max_message_size {
        engine.close();
        return (StatusCode::PAYLOAD_TOO_LARGE, "payload too large").into_response();
    }
    let Ok(body) = std::str::from_utf8(&body) else {
        engine.close();
        return refuse(3, "Bad request");
    };
    for p in body.split(SEPARATOR) {
        if let Err(e) = engine.receive(p).await {
            tracing::debug!(sid = %engine.sid, error = %e, "socket.io packet refused");
            engine.close();
            return refuse(3, "Bad request");
        }
    }
    ([(header::CONTENT_TYPE, "text/html")], "ok").into_response()
}

/// A new connection, if the server takes one more from `ip`: its session and heartbeat
/// start, and it is registered under its `sid` until it closes.
fn open(state: &AppState, ip: std::net::IpAddr) -> Result<Arc<Engine>, Box<Response>> {
    if state.shutdown.is_cancelled() {
        return Err(Box::new(
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response(),
        ));
    }
    let slot = state
        .limiters
        .connect_ip(ip)
        .map_err(|e| Box::new(super::error::ApiError(e).into_response()))?;
    let (engine, transport) = Engine::new(state.limits.outbound_buffer);
    state.socketio.insert(engine.clone());
    let (st, e) = (state.clone(), engine.clone());
    state.tracker.spawn(async move {
        crate::session::run(st.clone(), transport, ip, slot).await;
        e.close();
        st.socketio.remove(&e.sid);
    });
    let e = engine.clone();
    let (interval, timeout) = heartbeat(&state.limits);
    state
        .tracker
        .spawn(async move { e.heartbeat(interval, timeout).await });
    Ok(engine)
}

/// Engine.IO's `pingInterval` and `pingTimeout`: `/ws`'s ping interval, and whatever is left
/// of its idle timeout after one interval (at least a second), so a client that vanishes is
/// dropped about as soon as on `/ws`.
fn heartbeat(limits: &crate::state::SessionLimits) -> (Duration, Duration) {
    let interval = limits.ping_interval;
    let timeout = limits
        .idle_timeout
        .saturating_sub(interval)
        .max(Duration::from_secs(1));
    (interval, timeout)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A polling connection moves to this WebSocket once the client has probed it.
async fn upgrade(engine: Arc<Engine>, mut socket: WebSocket) {
    let probe = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    if !matches!(probe, Ok(Some(Ok(Message::Text(ref t)))) if t.as_str() == "2probe") {
        return;
    }
    if socket
        .send(Message::Text(packet::PROBE_PONG.into()))
        .await
        .is_err()
    {
        return;
    }
    // Ends the poll the client has pending, so it stops polling and sends `5`.
    engine.push(packet::NOOP.to_owned());
    let upgraded = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    if !matches!(upgraded, Ok(Some(Ok(Message::Text(ref t)))) if t.as_str() == "5") {
        return;
    }
    engine.upgraded.store(true, Ordering::SeqCst);
    carry(&engine, socket).await;
    engine.close();
}

/// Packets both ways over a WebSocket until either side ends.
async fn carry(engine: &Engine, socket: WebSocket) {
    let (sink, mut stream) = socket.split();
    engine.attach(sink).await;
    loop {
        let ready = engine.ready.notified();
        if !engine.drain().await || engine.closed.is_cancelled() {
            break;
        }
        tokio::select! {
            () = ready => {}
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if engine.receive(t.as_str()).await.is_err() {
                        engine.close();
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => {
                    engine.close();
                    break;
                }
            },
        }
    }
    // What the session queued last (its close, say) still goes out.
    engine.drain().await;
    engine.detach().await;
}

//! The WebSocket upgrade: refuse during shutdown, set the socket's size limits, and hand the
//! socket to a tracked session task.

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;

use super::auth::ClientIp;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::session;
use crate::state::AppState;

/// Small buffers keep an idle connection cheap; tungstenite's defaults (128 KiB read buffer)
/// would cost ~137 KiB each. The read buffer is allocated up front for every socket, and what
/// clients send is small commands (a larger message just takes a few more reads), so it is
/// 1 KiB: 13.4 → 10.4 KiB of server RSS per idle connection (hearth-bench e, one run).
pub(crate) const READ_BUFFER: usize = 1024;
/// How much tungstenite gathers before it writes to the socket on its own; the writer loop
/// flushes whatever is left once its queue is drained, so this bounds the bytes per `send`,
/// not the latency. The buffer grows only when there is something to write, so an idle socket
/// pays nothing. Why 64 KiB: at 4 KiB a watcher catching up wrote ≈ 10 changes per `send`,
/// and on loopback a `send` (which also runs the receiver's TCP stack) cost more than the
/// changes it carried: saturation (d) went from ≈ 650k to ≈ 1.1–1.4M deliveries/s
/// (BENCHMARKS.md). A busy socket keeps up to this much capacity, far below the
/// `OUTBOUND_BUFFER` its queue may already hold.
pub(crate) const WRITE_BUFFER: usize = 64 * 1024;

/// The WebSocket endpoint: the whole protocol (PROTOCOL.md) runs over one socket.
#[utoipa::path(get, path = "/ws", responses((status = 101, description = "switching to the WebSocket protocol"), (status = 403, description = "origin not allowed"), (status = 429, description = "too_many_connections"), (status = 503)), security(()), tag = "websocket")]
pub async fn upgrade(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if !origin_allowed(state.limits.origins.as_deref(), &headers) {
        // Cross-site WebSocket hijacking: a page elsewhere riding on a user's session.
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let ip_slot = match state.limiters.connect_ip(ip) {
        Ok(slot) => slot,
        Err(e) => return crate::http::error::ApiError(e).into_response(),
    };
    let max = state.limits.max_message_size;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let tracker = state.tracker.clone();
            tracker.track_future(session::run(state, socket.into(), ip, ip_slot))
        })
}

/// With `CORS_ORIGINS` set to a list, a browser's upgrade must come from one of them.
/// Requests without `Origin` (not from a browser) are not cross-site and pass.
pub(crate) fn origin_allowed(origins: Option<&[String]>, headers: &HeaderMap) -> bool {
    let Some(allowed) = origins.filter(|o| !o.is_empty()) else {
        return true;
    };
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    allowed.iter().any(|a| a == origin.trim_end_matches('/'))
}

/// A bare echo socket for conformance runs (`WS_ECHO`): the same WebSocket stack as `/ws`,
/// none of the protocol on top.
pub async fn echo(ws: WebSocketUpgrade) -> Response {
    const ECHO_MAX: usize = 64 * 1024 * 1024;
    ws.max_message_size(ECHO_MAX)
        .max_frame_size(ECHO_MAX)
        .on_upgrade(|mut socket| async move {
            while let Some(Ok(msg)) = socket.recv().await {
                let reply = match msg {
                    axum::extract::ws::Message::Text(_) | axum::extract::ws::Message::Binary(_) => {
                        msg
                    }
                    // Keep reading: the next read flushes the close reply tungstenite queued,
                    // then ends the stream; breaking here would leave the handshake unclean.
                    _ => continue,
                };
                if socket.send(reply).await.is_err() {
                    break;
                }
            }
        })
}

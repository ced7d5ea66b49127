//! HTTP routes, declared in one place. The WebSocket upgrade lives in [`ws`].

mod auth;
mod changes;
mod demo;
pub mod error;
mod ws;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(demo::index))
        .route("/app.js", get(demo::app))
        .route("/style.css", get(demo::style))
        .route("/hearth-client.js", get(demo::client))
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/users/{user}/changes", get(changes::changes))
        .route("/v1/users/{user}/events", get(changes::events))
        .with_state(state)
}

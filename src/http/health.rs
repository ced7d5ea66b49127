//! Liveness, readiness and metrics: what load balancers and Prometheus ask.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::state::AppState;

/// The process is up; says nothing about storage.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "ok")), security(()), tag = "operations")]
pub async fn live() -> &'static str {
    "ok"
}

/// Ready to take traffic: not shutting down, and storage accepting commits. Load balancers
/// stop sending traffic on 503; `/healthz` only says the process is alive.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, description = "unavailable: shutting down, or storage failing")), security(()), tag = "operations")]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !state.store.healthy() {
        (StatusCode::SERVICE_UNAVAILABLE, "storage failing")
    } else {
        (StatusCode::OK, "ready")
    }
}

/// Prometheus text format. Public like `/healthz`: it holds counts, never data; keep the
/// port off the open internet or filter `/metrics` at the proxy if that matters.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")), security(()), tag = "operations")]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    #[allow(clippy::cast_possible_wrap)] // watcher counts are far below i64::MAX
    state.metrics.watches.set(state.hub.watchers() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

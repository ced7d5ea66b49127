//! HTTP routes, declared in one place: the WebSocket upgrade, the REST view of documents,
//! sessions, the change log, health, the OpenAPI document and the demo page.

mod account;
mod admin;
mod auth;
mod blobs;
mod body;
mod changes;
mod data;
mod demo;
pub mod error;
mod openapi;
mod rivet;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{delete, get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/signup", post(account::signup))
        .route("/v1/login", post(account::login))
        .route("/v1/logout", post(account::logout))
        .route("/v1/me", get(account::me).delete(account::delete_me))
        .route("/v1/me/export", get(account::export))
        .route("/v1/refresh", post(account::refresh))
        .route("/v1/me/password", post(account::change_password))
        .route("/v1/sessions", get(account::sessions))
        .route("/v1/sessions/{id}", delete(account::delete_session))
        .route("/v1/users/{user}", get(data::document))
        .route(
            "/v1/users/{user}/data",
            get(data::get_root)
                .put(data::put_data)
                .patch(data::patch_data)
                .delete(data::delete_data),
        )
        .route(
            "/v1/users/{user}/data/{*path}",
            get(data::get_data)
                .put(data::put_data)
                .patch(data::patch_data)
                .delete(data::delete_data),
        )
        .route("/v1/users/{user}/keys", get(data::keys))
        .route("/v1/users/{user}/keys/{*path}", get(data::keys))
        .route("/v1/users/{user}/batch", post(data::batch))
        .route("/v1/users/{user}/changes", get(changes::changes))
        .route("/v1/users/{user}/events", get(changes::events))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/admin/stats", get(admin::stats))
        .route(
            "/v1/admin/users",
            get(admin::users).post(admin::create_user),
        )
        .route(
            "/v1/admin/backup",
            get(admin::backup_download).post(admin::backup_to_dir),
        )
        .route("/v1/admin/users/{user}/disable", post(admin::disable))
        .route(
            "/v1/admin/users/{user}/password",
            post(admin::reset_password),
        )
        .route(
            "/v1/admin/users/{user}/admin",
            post(admin::grant_admin).delete(admin::revoke_admin),
        )
        .route("/v1/admin/users/{user}/enable", post(admin::enable))
        .route("/v1/admin/users/{user}", delete(admin::delete_user))
        // Rivet's paths, onto the same handlers.
        .route("/login", get(account::rivet_login))
        .route("/logout", get(account::rivet_logout))
        .route("/store/{user}", get(rivet::store_list))
        .route(
            "/store/{user}/{*key}",
            get(rivet::store_get)
                .put(rivet::store_put)
                .post(rivet::store_put)
                .delete(rivet::store_delete),
        )
        .layer(DefaultBodyLimit::max(state.limits.max_message_size));
    // Blob uploads stream to disk under their own limits (BLOB_MAX_SIZE, BLOB_QUOTA).
    let blob_routes = Router::new()
        .route("/v1/blobs", get(blobs::list).put(blobs::upload))
        .route(
            "/v1/blobs/{sha256}",
            get(blobs::download)
                .put(blobs::upload_named)
                .delete(blobs::delete),
        )
        .layer(DefaultBodyLimit::disable());

    let mut app = Router::new()
        .route("/", get(demo::index))
        .route("/app.js", get(demo::app))
        .route("/style.css", get(demo::style))
        .route("/hearth-client.js", get(demo::client))
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .merge(api)
        .merge(blob_routes)
        .fallback(|| async { error::ApiError(crate::error::Error::NotFound) });
    if state.limits.ws_echo {
        app = app.route("/echo", get(ws::echo));
    }
    app = app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        count_errors,
    ));
    if let Some(origins) = &state.limits.origins {
        app = app.layer(cors(origins));
    }
    app.with_state(state)
}

/// Ready to take traffic: not shutting down, and storage accepting commits. Load balancers
/// stop sending traffic on 503; `/healthz` only says the process is alive.
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, &'static str) {
    if state.shutdown.is_cancelled() {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !state.store.healthy() {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "storage failing",
        )
    } else {
        (axum::http::StatusCode::OK, "ready")
    }
}

/// Prometheus text format. Public like `/healthz`: it holds counts, never data; keep the
/// port off the open internet or filter `/metrics` at the proxy if that matters.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
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

/// Gives every HTTP error the JSON shape (`error::as_json`) and counts them by code.
async fn count_errors(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = error::as_json(next.run(request).await).await;
    if let Some(error::ErrorCode(code)) = response.extensions().get::<error::ErrorCode>() {
        state.metrics.errors.with_label_values(&[code]).inc();
    }
    response
}

/// CORS for browsers on other origins (`CORS_ORIGINS`); `ETag` is exposed so apps can make
/// conditional writes.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::RANGE,
            HeaderName::from_static("x-session-token"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::CONTENT_RANGE,
            header::LOCATION,
            HeaderName::from_static("x-session-token"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

//! HTTP routes, declared in one place: the WebSocket upgrade, the REST view of documents,
//! sessions, the change log, health, the OpenAPI document and the demo page.

mod account;
mod admin;
mod apie;
mod audit;
mod auth;
mod blobs;
mod body;
mod changes;
mod data;
mod demo;
mod docs;
pub mod error;
mod feed;
mod health;
mod inspect;
mod kopano;
mod kv;
mod named;
mod openapi;
mod operations;
mod presence;
mod rivet;
mod root;
pub mod serve;
mod socketio;
mod streams;
mod webhooks;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::get;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::state::AppState;

/// Declares routes and, beside them, the table of what was declared
/// ([`documented_routes`]), so the OpenAPI test compares the document with the router itself.
macro_rules! routes {
    ($name:ident { $($method:ident $path:literal => $handler:path,)* }) => {
        fn $name() -> (Router<AppState>, Vec<(&'static str, &'static str)>) {
            let mut router = Router::new();
            let mut table = Vec::new();
            $(
                router = router.route($path, axum::routing::$method($handler));
                table.push((stringify!($method), $path));
            )*
            (router, table)
        }
    };
}

routes!(api_routes {
    post "/v1/signup" => account::signup,
    post "/v1/login" => account::login,
    post "/v1/logout" => account::logout,
    post "/v1/refresh" => account::refresh,
    get "/v1/me" => account::me,
    delete "/v1/me" => account::delete_me,
    post "/v1/me/password" => account::change_password,
    get "/v1/me/export" => account::export,
    get "/v1/sessions" => account::sessions,
    delete "/v1/sessions/{id}" => account::delete_session,
    get "/v1/users/{user}" => data::document,
    get "/v1/users/{user}/data" => data::get_root,
    put "/v1/users/{user}/data" => root::put,
    patch "/v1/users/{user}/data" => root::patch,
    delete "/v1/users/{user}/data" => root::delete,
    get "/v1/users/{user}/data/{*path}" => data::get_data,
    put "/v1/users/{user}/data/{*path}" => data::put_data,
    patch "/v1/users/{user}/data/{*path}" => data::patch_data,
    delete "/v1/users/{user}/data/{*path}" => data::delete_data,
    get "/v1/users/{user}/keys" => root::keys,
    get "/v1/users/{user}/keys/{*path}" => data::keys,
    post "/v1/users/{user}/batch" => data::batch,
    get "/v1/users/{user}/changes" => changes::changes,
    get "/v1/users/{user}/events" => changes::events,
    get "/v1/users/{user}/presence" => presence::present,
    get "/v1/me/shared" => docs::shared,
    post "/v1/me/webhooks" => webhooks::register,
    get "/v1/me/webhooks" => webhooks::mine,
    delete "/v1/me/webhooks/{id}" => webhooks::remove,
    post "/v1/me/webhooks/{id}/resume" => webhooks::resume,
    get "/v1/users/{user}/docs" => docs::list_docs,
    get "/v1/users/{user}/docs/{name}" => docs::get_doc,
    put "/v1/users/{user}/docs/{name}" => docs::put_doc,
    delete "/v1/users/{user}/docs/{name}" => docs::delete_doc,
    get "/v1/users/{user}/docs/{name}/data" => named::get_root,
    put "/v1/users/{user}/docs/{name}/data" => named::put_root,
    patch "/v1/users/{user}/docs/{name}/data" => named::patch_root,
    delete "/v1/users/{user}/docs/{name}/data" => named::delete_root,
    get "/v1/users/{user}/docs/{name}/data/{*path}" => named::get_data,
    put "/v1/users/{user}/docs/{name}/data/{*path}" => named::put_data,
    patch "/v1/users/{user}/docs/{name}/data/{*path}" => named::patch_data,
    delete "/v1/users/{user}/docs/{name}/data/{*path}" => named::delete_data,
    get "/v1/users/{user}/docs/{name}/keys" => named::root_keys,
    get "/v1/users/{user}/docs/{name}/keys/{*path}" => named::keys,
    post "/v1/users/{user}/docs/{name}/batch" => named::batch,
    get "/v1/users/{user}/docs/{name}/changes" => named::changes,
    get "/v1/users/{user}/docs/{name}/events" => named::events,
    get "/v1/users/{user}/docs/{name}/presence" => presence::named_present,
    post "/v1/users/{user}/streams/{name}" => streams::append,
    get "/v1/users/{user}/streams/{name}" => streams::read,
    get "/v1/users/{user}/streams/{name}/{at}" => streams::event,
    get "/v1/openapi.json" => openapi::document,
    get "/v1/admin/stats" => admin::stats,
    get "/v1/admin/overview" => admin::overview,
    get "/v1/admin/settings" => admin::settings,
    get "/v1/admin/audit" => audit::lines,
    get "/v1/admin/users" => admin::users,
    get "/v1/admin/users/{user}" => inspect::account,
    delete "/v1/admin/users/{user}/sessions" => inspect::end_sessions,
    get "/v1/admin/doc" => inspect::document,
    put "/v1/admin/doc" => inspect::edit,
    get "/v1/admin/doc/changes" => inspect::changes,
    get "/v1/admin/doc/events" => inspect::events,
    post "/v1/admin/users" => admin::create_user,
    delete "/v1/admin/users/{user}" => admin::delete_user,
    get "/v1/admin/backup" => admin::backup_download,
    get "/v1/admin/backups" => operations::backups,
    get "/v1/admin/backups/{name}" => operations::backup_file,
    get "/v1/admin/logs" => operations::logs,
    get "/v1/admin/feed" => feed::feed,
    post "/v1/admin/webhooks" => webhooks::register_global,
    get "/v1/admin/webhooks" => webhooks::every,
    post "/v1/admin/backup" => admin::backup_to_dir,
    post "/v1/admin/users/{user}/disable" => admin::disable,
    post "/v1/admin/users/{user}/enable" => admin::enable,
    post "/v1/admin/users/{user}/password" => admin::reset_password,
    post "/v1/admin/users/{user}/admin" => admin::grant_admin,
    delete "/v1/admin/users/{user}/admin" => admin::revoke_admin,
    post "/v1/admin/import/personal-backend" => admin::import_personal_backend,
    // Kopano kvs: collections are named documents of the caller.
    get "/api/kvs/v1/kv/user/{*key}" => kopano::get,
    put "/api/kvs/v1/kv/user/{*key}" => kopano::put,
    delete "/api/kvs/v1/kv/user/{*key}" => kopano::delete,
    // Rivet's paths: a flat key space in the user's document `store`.
    get "/login" => account::rivet_login,
    get "/logout" => account::rivet_logout,
    get "/store/{user}" => rivet::store_list,
    get "/store/{user}/{*key}" => rivet::store_get,
    put "/store/{user}/{*key}" => rivet::store_put,
    post "/store/{user}/{*key}" => rivet::store_post,
    delete "/store/{user}/{*key}" => rivet::store_delete,
    get "/healthz" => health::live,
    get "/readyz" => health::ready,
    get "/metrics" => health::metrics,
    get "/ws" => ws::upgrade,
    // personal-backend's socket.io clients (seed 003).
    get "/socket.io/" => socketio::poll,
    post "/socket.io/" => socketio::post,
    // Apie's paths (seed 002): the caller's default stream, with HTTP Basic.
    put "/events" => apie::put_event,
    get "/events" => apie::events,
    get "/events/{id}" => apie::event,
});

// Blob uploads stream to disk under their own limits (`BLOB_MAX_SIZE`, `BLOB_QUOTA`).
routes!(blob_routes {
    get "/v1/blobs" => blobs::list,
    put "/v1/blobs" => blobs::upload,
    get "/v1/blobs/{sha256}" => blobs::download,
    put "/v1/blobs/{sha256}" => blobs::upload_named,
    delete "/v1/blobs/{sha256}" => blobs::delete,
    put "/storage/" => apie::put_blob,
    put "/storage/{sha256}" => apie::put_named_blob,
    get "/storage/{sha256}" => apie::get_blob,
    delete "/storage/{sha256}" => apie::delete_blob,
});

/// Every route the OpenAPI document must describe, as `(method, path)` in axum's syntax:
/// all but the demo page's static files and the conformance-only `/echo`.
pub fn documented_routes() -> Vec<(&'static str, &'static str)> {
    let mut table = api_routes().1;
    table.extend(blob_routes().1);
    table
}

pub fn router(state: AppState) -> Router {
    let api = api_routes()
        .0
        .layer(DefaultBodyLimit::max(state.limits.max_message_size));
    let blobs = blob_routes().0.layer(DefaultBodyLimit::disable());

    let mut app = Router::new()
        .route("/", get(demo::index))
        .route("/app.js", get(demo::app))
        .route("/style.css", get(demo::style))
        .route("/hearth-client.js", get(demo::client))
        .route("/client/{file}", get(demo::client_module))
        .route("/sw.js", get(demo::worker))
        .route("/admin", get(demo::admin_page))
        .route("/admin/{file}", get(demo::admin_file))
        .merge(api)
        .merge(blobs)
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

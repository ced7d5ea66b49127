//! The demo page and the client library, embedded in the binary: `cargo run` is all a
//! person needs to try Hearth in a browser.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../client-js/demo/index.html");
const APP: &str = include_str!("../../client-js/demo/app.js");
const STYLE: &str = include_str!("../../client-js/demo/style.css");
const WORKER: &str = include_str!("../../client-js/demo/sw.js");
const ADMIN_PAGE: &str = include_str!("../../client-js/admin/index.html");

/// The dashboard's modules and style, served under `/admin/` as they sit in
/// `client-js/admin/` (their relative imports resolve there).
const ADMIN_FILES: [(&str, &str, &str); 7] = [
    (
        "admin.js",
        JS,
        include_str!("../../client-js/admin/admin.js"),
    ),
    (
        "common.js",
        JS,
        include_str!("../../client-js/admin/common.js"),
    ),
    (
        "users.js",
        JS,
        include_str!("../../client-js/admin/users.js"),
    ),
    ("data.js", JS, include_str!("../../client-js/admin/data.js")),
    (
        "operations.js",
        JS,
        include_str!("../../client-js/admin/operations.js"),
    ),
    (
        "integrations.js",
        JS,
        include_str!("../../client-js/admin/integrations.js"),
    ),
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_str!("../../client-js/admin/admin.css"),
    ),
];

/// The client's modules, served under `/client/` as they sit in `client-js/src/` (their
/// relative imports resolve there).
const CLIENT: [(&str, &str); 6] = [
    ("index.js", include_str!("../../client-js/src/index.js")),
    ("errors.js", include_str!("../../client-js/src/errors.js")),
    ("outbox.js", include_str!("../../client-js/src/outbox.js")),
    ("stores.js", include_str!("../../client-js/src/stores.js")),
    ("patches.js", include_str!("../../client-js/src/patches.js")),
    (
        "presence.js",
        include_str!("../../client-js/src/presence.js"),
    ),
];

/// `/hearth-client.js`, where pages have always imported the client from.
const CLIENT_ENTRY: &str = "export * from \"/client/index.js\";\n";

const JS: &str = "text/javascript; charset=utf-8";

pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

pub async fn app() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, JS)], APP)
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

pub async fn client() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, JS)], CLIENT_ENTRY)
}

/// One of the client's modules; 404 for any other name.
pub async fn client_module(Path(file): Path<String>) -> Response {
    match CLIENT.iter().find(|(name, _)| *name == file) {
        Some((_, source)) => ([(header::CONTENT_TYPE, JS)], *source).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The demo's service worker (so the page opens offline). Never cached by the browser's
/// HTTP cache, so a new build's worker is picked up on the next visit.
pub async fn worker() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, JS),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        WORKER,
    )
}

/// The admin dashboard (`/admin`): a page over the admin API, which does every check.
pub async fn admin_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        ADMIN_PAGE,
    )
}

/// One of the dashboard's files; 404 for any other name.
pub async fn admin_file(Path(file): Path<String>) -> Response {
    match ADMIN_FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, source)) => ([(header::CONTENT_TYPE, *kind)], *source).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

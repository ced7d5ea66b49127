//! The demo page and the client library, embedded in the binary: `cargo run` is all a
//! person needs to try Hearth in a browser.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("../../client-js/demo/index.html");
const APP: &str = include_str!("../../client-js/demo/app.js");
const STYLE: &str = include_str!("../../client-js/demo/style.css");
const CLIENT: &str = include_str!("../../client-js/src/index.js");

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
    ([(header::CONTENT_TYPE, JS)], CLIENT)
}

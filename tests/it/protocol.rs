//! Frame-level behaviour: envelopes, ids, malformed input, limits on the socket itself.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn malformed_frames_get_bad_request_and_the_socket_stays_open() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let cases: &[(&str, Option<Value>)] = &[
        ("{not json", None),
        ("[1,2,3]", None),
        ("\"signup\"", None),
        (r#"{"id": 5}"#, Some(json!(5))),
        (r#"{"id": "abc", "type": 7}"#, Some(json!("abc"))),
        (r#"{"id": {"x":1}, "type": "fetch"}"#, None),
        (r#"{"id": 6, "type": "frobnicate"}"#, Some(json!(6))),
        (
            r#"{"id": 7, "type": "fetch", "feilds": ["a"]}"#,
            Some(json!(7)),
        ),
        (
            r#"{"id": 8, "type": "fetch", "fields": "a"}"#,
            Some(json!(8)),
        ),
        (
            r#"{"id": 9, "type": "login", "username": 1, "password": "x"}"#,
            Some(json!(9)),
        ),
        (
            r#"{"id": 10, "type": "signup", "username": "ann"}"#,
            Some(json!(10)),
        ),
    ];
    for (text, id) in cases {
        c.send_raw(Message::text(*text)).await;
        let reply = c.recv().await;
        assert_error(&reply, "bad_request");
        assert_eq!(reply.get("id"), id.as_ref(), "id echo for {text}: {reply}");
    }
    c.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    assert_error(&c.recv().await, "bad_request");
    // Still open and working.
    let reply = c.request(json!({"type": "signup"})).await;
    assert_eq!(reply["type"], "auth");
}

#[tokio::test]
async fn ids_are_echoed_as_given() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.send(json!({"type": "signup", "id": "req-1"})).await;
    let reply = c.recv().await;
    assert_eq!(reply["id"], "req-1");
    assert_eq!(reply["type"], "auth");
    c.send(json!({"type": "fetch", "id": 42.5})).await;
    let reply = c.recv().await;
    assert_eq!(reply["id"], 42.5);
    assert_eq!(reply["type"], "data");
    // No id, no id in the reply.
    c.send(json!({"type": "fetch"})).await;
    let reply = c.recv().await;
    assert!(reply.get("id").is_none(), "{reply}");
}

#[tokio::test]
async fn commands_need_authentication() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for frame in [
        json!({"type": "fetch"}),
        json!({"type": "watch"}),
        json!({"type": "unwatch"}),
        json!({"type": "logout"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {}}}),
    ] {
        assert_error(&c.request(frame).await, "auth_required");
    }
}

#[tokio::test]
async fn oversize_messages_close_the_socket_with_1009() {
    let server = TestServer::start_with(|c| c.max_message_size = 4096).await;
    let (mut c, _, _) = server.user().await;
    let big = json!({"type": "fetch", "pad": "x".repeat(10_000)});
    c.send(big).await;
    assert_eq!(c.closed_with().await, 1009);
    // Others are unaffected.
    let (mut other, _, _) = server.user().await;
    assert_eq!(
        other.request(json!({"type": "fetch"})).await["type"],
        "data"
    );
}

#[tokio::test]
async fn healthz_answers() {
    let server = TestServer::start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("ok"), "{body}");
}

#[tokio::test]
async fn the_demo_page_and_client_library_are_served() {
    let server = TestServer::start().await;
    let base = format!("http://{}", server.addr);
    for (path, kind, needle) in [
        ("/", "text/html", "<title>Hearth</title>"),
        ("/app.js", "text/javascript", "hearth-client.js"),
        ("/style.css", "text/css", "--accent"),
        ("/hearth-client.js", "text/javascript", "/client/index.js"),
        (
            "/client/index.js",
            "text/javascript",
            "export function connect",
        ),
        (
            "/client/outbox.js",
            "text/javascript",
            "export class Outbox",
        ),
        (
            "/client/patches.js",
            "text/javascript",
            "export function jsonPatch",
        ),
        ("/sw.js", "text/javascript", "caches"),
        ("/admin", "text/html", "<title>Hearth admin</title>"),
        ("/admin/admin.js", "text/javascript", "/v1/admin/overview"),
        ("/admin/admin.css", "text/css", "prefers-color-scheme"),
        (
            "/admin/common.js",
            "text/javascript",
            "export async function api",
        ),
        ("/admin/users.js", "text/javascript", "/v1/admin/users"),
        ("/admin/data.js", "text/javascript", "/v1/admin/doc/events"),
        (
            "/admin/operations.js",
            "text/javascript",
            "/v1/admin/backups",
        ),
    ] {
        let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        assert!(resp.text().await.unwrap().contains(needle), "{path}");
    }
    // Only the client's own modules are served from there.
    for path in [
        "/client/nope.js",
        "/client/..%2Fsw.js",
        "/client/",
        "/admin/nope.js",
        "/admin/..%2Fdemo%2Fapp.js",
    ] {
        let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
}

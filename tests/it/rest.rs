//! The REST view over real HTTP: sessions, key paths, conditional writes, listing, batches,
//! Rivet's paths, CORS, and fanout to WebSocket watchers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Client, TestServer, assert_error};

struct Http {
    base: String,
    client: reqwest::Client,
}

struct Resp {
    status: StatusCode,
    etag: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Http {
    fn new(server: &TestServer) -> Http {
        Http {
            base: format!("http://{}", server.addr),
            client: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let etag = headers.get("etag").map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            etag,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None, &[]).await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body), &[])
            .await
    }
}

#[track_caller]
fn expect(resp: &Resp, status: u16, code: Option<&str>) {
    assert_eq!(resp.status.as_u16(), status, "{:?}", resp.body);
    if let Some(code) = code {
        assert_eq!(resp.body["code"], code, "{:?}", resp.body);
        assert!(resp.body["message"].is_string());
    }
}

async fn signup(http: &Http, name: &str) -> String {
    let r = http
        .call(
            Method::POST,
            "/v1/signup",
            None,
            Some(json!({"username": name, "password": "correct horse"})),
            &[],
        )
        .await;
    expect(&r, 201, None);
    assert_eq!(r.body["username"], name);
    r.body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sessions_over_http_with_json_basic_bearer_and_session_token() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let token = signup(&http, "ann").await;

    // Generated-name signup with an empty body.
    let anon = http.call(Method::POST, "/v1/signup", None, None, &[]).await;
    expect(&anon, 201, None);
    assert!(anon.body["username"].as_str().unwrap().contains('-'));

    let basic = http
        .client
        .post(format!("{}/v1/login", http.base))
        .basic_auth("ann", Some("correct horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    assert!(basic.headers().contains_key("x-session-token"));
    let basic: Value = basic.json().await.unwrap();
    let t2 = basic["token"].as_str().unwrap().to_owned();
    expect(
        &http
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(json!({"username": "ann", "password": "nope nope"})),
                &[],
            )
            .await,
        401,
        Some("invalid_credentials"),
    );
    expect(
        &http
            .call(
                Method::POST,
                "/v1/signup",
                None,
                Some(json!({"username": "ann", "password": "correct horse"})),
                &[],
            )
            .await,
        409,
        Some("username_taken"),
    );
    expect(
        &http
            .call(
                Method::POST,
                "/v1/signup",
                None,
                Some(json!({"username": "BAD NAME", "password": "correct horse"})),
                &[],
            )
            .await,
        400,
        Some("bad_request"),
    );

    // Three ways to present a token.
    let me = http.get("/v1/me", &token).await;
    expect(&me, 200, None);
    assert_eq!(me.body["username"], "ann");
    let via_header = http
        .call(
            Method::GET,
            "/v1/me",
            None,
            None,
            &[("X-Session-Token", &t2)],
        )
        .await;
    expect(&via_header, 200, None);
    expect(
        &http.call(Method::GET, "/v1/me", None, None, &[]).await,
        401,
        Some("auth_required"),
    );
    expect(
        &http
            .call(Method::GET, "/v1/me", Some("junk"), None, &[])
            .await,
        401,
        Some("invalid_token"),
    );

    // Rivet's GET /login and GET /logout.
    let rivet = http
        .client
        .get(format!("{}/login", http.base))
        .basic_auth("ann", Some("correct horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(rivet.status(), 200);
    let rivet_token = rivet.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = http
        .call(
            Method::GET,
            "/logout",
            None,
            None,
            &[("X-Session-Token", &rivet_token)],
        )
        .await;
    expect(&out, 204, None);
    expect(
        &http.get("/v1/me", &rivet_token).await,
        401,
        Some("invalid_token"),
    );

    // Sessions: list, mark current, revoke one; it dies at once on HTTP and on sockets.
    let list = http.get("/v1/sessions", &token).await;
    expect(&list, 200, None);
    let sessions = list.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "signup + basic login: {sessions:?}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut socket = server.client().await;
    socket.request(json!({"type": "auth", "token": t2})).await;
    socket.request(json!({"type": "watch"})).await;
    expect(
        &http
            .call(
                Method::DELETE,
                &format!("/v1/sessions/{other}"),
                Some(&token),
                None,
                &[],
            )
            .await,
        204,
        None,
    );
    expect(&http.get("/v1/me", &t2).await, 401, Some("invalid_token"));
    let told = socket.next_push().await;
    assert_error(&told, "invalid_token");
    expect(
        &http
            .call(Method::DELETE, "/v1/sessions/nope", Some(&token), None, &[])
            .await,
        404,
        Some("not_found"),
    );

    // Logout of the presented token.
    expect(
        &http
            .call(Method::POST, "/v1/logout", Some(&token), None, &[])
            .await,
        204,
        None,
    );
    expect(
        &http.get("/v1/me", &token).await,
        401,
        Some("invalid_token"),
    );
}

#[tokio::test]
async fn key_paths_etags_and_conditional_writes() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let token = signup(&http, "ann").await;

    let created = http
        .put(
            "/v1/users/ann/data/profile/address/billing",
            &token,
            json!({"city": "Oslo"}),
        )
        .await;
    expect(&created, 201, None);
    assert_eq!(created.body, json!({"username": "ann", "version": 1}));
    assert_eq!(created.etag.as_deref(), Some("\"1\""));
    let replaced = http
        .put(
            "/v1/users/ann/data/profile/address/billing",
            &token,
            json!({"city": "Bergen"}),
        )
        .await;
    expect(&replaced, 200, None);

    let got = http.get("/v1/users/ann/data/profile/address", &token).await;
    expect(&got, 200, None);
    assert_eq!(got.body, json!({"billing": {"city": "Bergen"}}));
    assert_eq!(got.etag.as_deref(), Some("\"2\""));
    expect(
        &http.get("/v1/users/ann/data/profile/nope", &token).await,
        404,
        Some("not_found"),
    );
    expect(
        &http.get("/v1/users/ann/data/a//b", &token).await,
        400,
        Some("bad_request"),
    );

    let patched = http
        .call(
            Method::PATCH,
            "/v1/users/ann/data/profile",
            Some(&token),
            Some(json!({"name": "Ann", "address": {"billing": null}})),
            &[],
        )
        .await;
    expect(&patched, 200, None);
    let whole = http.get("/v1/users/ann", &token).await;
    assert_eq!(
        whole.body["userdata"],
        json!({"profile": {"name": "Ann", "address": {}}})
    );
    assert_eq!(whole.body["metadata"]["version"], 3);
    assert_eq!(
        http.get("/v1/users/ann/data", &token).await.body,
        whole.body["userdata"]
    );

    // If-Match: stale is 412 with the current version; current commits; junk is 400.
    let stale = http
        .call(
            Method::PUT,
            "/v1/users/ann/data/x",
            Some(&token),
            Some(json!(1)),
            &[("If-Match", "\"1\"")],
        )
        .await;
    expect(&stale, 412, Some("version_mismatch"));
    assert_eq!(stale.body["version"], 3);
    let ok = http
        .call(
            Method::PUT,
            "/v1/users/ann/data/x",
            Some(&token),
            Some(json!(1)),
            &[("If-Match", "\"3\"")],
        )
        .await;
    expect(&ok, 201, None);
    expect(
        &http
            .call(
                Method::PUT,
                "/v1/users/ann/data/x",
                Some(&token),
                Some(json!(2)),
                &[("If-Match", "soon")],
            )
            .await,
        400,
        Some("bad_request"),
    );

    expect(
        &http
            .call(
                Method::DELETE,
                "/v1/users/ann/data/x",
                Some(&token),
                None,
                &[],
            )
            .await,
        200,
        None,
    );
    expect(
        &http
            .call(
                Method::DELETE,
                "/v1/users/ann/data/x",
                Some(&token),
                None,
                &[],
            )
            .await,
        404,
        Some("not_found"),
    );
    // Writing through a non-object is refused; the whole userdata must stay an object.
    expect(
        &http
            .put("/v1/users/ann/data/profile/name/first", &token, json!("A"))
            .await,
        400,
        Some("bad_request"),
    );
    expect(
        &http.put("/v1/users/ann/data", &token, json!([1])).await,
        400,
        Some("bad_request"),
    );
    expect(
        &http
            .call(
                Method::PUT,
                "/v1/users/ann/data/y",
                Some(&token),
                None,
                &[("content-type", "application/json")],
            )
            .await,
        400,
        Some("bad_request"),
    );

    // Too large a body is 413.
    let big = json!("x".repeat(2 * 1024 * 1024));
    expect(
        &http.put("/v1/users/ann/data/big", &token, big).await,
        413,
        Some("too_large"),
    );

    // Strangers and unknown users: the same 404.
    let eve = signup(&http, "eve").await;
    let a = http.get("/v1/users/ann/data", &eve).await;
    let b = http.get("/v1/users/nobody/data", &eve).await;
    expect(&a, 404, Some("unauthorized"));
    assert_eq!(a.body, b.body);
    expect(
        &http.put("/v1/users/ann/data/z", &eve, json!(1)).await,
        404,
        Some("unauthorized"),
    );
}

/// Many writers editing keys of one multi-kilobyte document, so that updates recycle the
/// versions earlier ones replaced (`store/redb/spares.rs`): every write lands, the document
/// is exactly the last value of every key, and it is the same after a restart, when it is
/// rebuilt from disk rather than from the versions kept in memory.
#[tokio::test]
async fn concurrent_key_writes_to_a_large_document_are_exact_and_survive_a_restart() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let token = signup(&http, "kim").await;
    let note = "x".repeat(40);
    for k in 0..60 {
        let r = http
            .put(
                &format!("/v1/users/kim/data/items/k{k}"),
                &token,
                json!({"n": -1, "note": note}),
            )
            .await;
        expect(&r, 201, None);
    }
    let writers = (0..4).map(|w| {
        let http = Http::new(&server);
        let token = token.clone();
        let note = note.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                let key = (w * 15) + (i % 15);
                let r = http
                    .put(
                        &format!("/v1/users/kim/data/items/k{key}"),
                        &token,
                        json!({"n": i, "w": w, "note": note}),
                    )
                    .await;
                expect(&r, 200, None);
            }
        })
    });
    for w in futures_util::future::join_all(writers).await {
        w.expect("writer");
    }
    let mut expected = serde_json::Map::new();
    for w in 0..4 {
        for k in 0..15 {
            // Each writer's last write to its key k was the last i < 50 with i % 15 == k.
            let last = (49 - k) / 15 * 15 + k;
            expected.insert(
                format!("k{}", w * 15 + k),
                json!({"n": last, "w": w, "note": note}),
            );
        }
    }
    let expected = json!({"items": expected});
    let whole = http.get("/v1/users/kim", &token).await;
    assert_eq!(whole.body["userdata"], expected);
    assert_eq!(whole.body["metadata"]["version"], 60 + 4 * 50);

    let server = server.restart().await;
    let http = Http::new(&server);
    let again = http.get("/v1/users/kim", &token).await;
    assert_eq!(again.body["userdata"], expected, "rebuilt from disk");
    assert_eq!(again.body["metadata"], whole.body["metadata"]);
}

#[tokio::test]
async fn read_only_tokens_are_refused_on_every_write_route() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    signup(&http, "ann").await;
    let ro = http
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"username": "ann", "password": "correct horse", "scope": "read"})),
            &[],
        )
        .await;
    let ro = ro.body["token"].as_str().unwrap().to_owned();
    assert_eq!(http.get("/v1/me", &ro).await.body["scope"], "read");
    expect(&http.get("/v1/users/ann/data", &ro).await, 200, None);
    let writes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::PUT, "/v1/users/ann/data/a", Some(json!(1))),
        (Method::PATCH, "/v1/users/ann/data/a", Some(json!({}))),
        (Method::DELETE, "/v1/users/ann/data/a", None),
        (Method::PUT, "/v1/users/ann/data", Some(json!({}))),
        (
            Method::POST,
            "/v1/users/ann/batch",
            Some(json!([{"op": "put", "path": "a", "value": 1}])),
        ),
        (Method::PUT, "/store/ann/a", Some(json!(1))),
        (Method::POST, "/store/ann/a", Some(json!(1))),
        (Method::DELETE, "/store/ann/a", None),
        (Method::DELETE, "/v1/sessions/whatever", None),
    ];
    for (method, path, body) in writes {
        let r = http.call(method.clone(), path, Some(&ro), body, &[]).await;
        expect(&r, 403, Some("forbidden"));
    }
    // And on the WebSocket: reads work, writes are forbidden.
    let mut c = server.client().await;
    c.request(json!({"type": "auth", "token": ro})).await;
    assert_eq!(c.request(json!({"type": "fetch"})).await["type"], "data");
    let w = c
        .request(json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {}}}))
        .await;
    assert_error(&w, "forbidden");
    assert_eq!(
        http.get("/v1/users/ann", &ro).await.body["metadata"]["version"],
        0
    );
}

#[tokio::test]
async fn batches_are_all_or_nothing_and_one_version() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let token = signup(&http, "ann").await;
    let ok = http
        .call(
            Method::POST,
            "/v1/users/ann/batch",
            Some(&token),
            Some(json!([
                {"op": "put", "path": "a/b", "value": 1},
                {"op": "patch", "path": "a", "value": {"c": 2}},
                {"op": "put", "path": "list", "value": [1, 2]},
                {"op": "delete", "path": "a/b"},
            ])),
            &[],
        )
        .await;
    expect(&ok, 200, None);
    assert_eq!(ok.body["version"], 1);
    assert_eq!(
        http.get("/v1/users/ann/data", &token).await.body,
        json!({"a": {"c": 2}, "list": [1, 2]})
    );

    let failing = http
        .call(
            Method::POST,
            "/v1/users/ann/batch",
            Some(&token),
            Some(json!([
                {"op": "put", "path": "new", "value": true},
                {"op": "delete", "path": "absent"},
            ])),
            &[],
        )
        .await;
    expect(&failing, 404, Some("not_found"));
    let after = http.get("/v1/users/ann/data", &token).await;
    assert_eq!(
        after.body,
        json!({"a": {"c": 2}, "list": [1, 2]}),
        "nothing applied"
    );
    assert_eq!(after.etag.as_deref(), Some("\"1\""), "no version taken");
    for bad in [
        json!([]),
        json!([{"op": "frob", "path": "a"}]),
        json!([{"op": "put", "path": "a"}]),
        json!({"op": "put"}),
    ] {
        expect(
            &http
                .call(
                    Method::POST,
                    "/v1/users/ann/batch",
                    Some(&token),
                    Some(bad),
                    &[],
                )
                .await,
            400,
            Some("bad_request"),
        );
    }
}

#[tokio::test]
async fn paging_through_a_thousand_keys_returns_each_once() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let token = signup(&http, "ann").await;
    let ops: Vec<Value> = (0..1000)
        .map(|i| json!({"op": "put", "path": format!("items/k{i:04}"), "value": {"n": i}}))
        .collect();
    expect(
        &http
            .call(
                Method::POST,
                "/v1/users/ann/batch",
                Some(&token),
                Some(Value::Array(ops)),
                &[],
            )
            .await,
        200,
        None,
    );

    let mut seen = Vec::new();
    let mut offset = Some(0u64);
    while let Some(o) = offset {
        let page = http
            .get(
                &format!("/v1/users/ann/keys/items?limit=128&offset={o}"),
                &token,
            )
            .await;
        expect(&page, 200, None);
        seen.extend(
            page.body["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned()),
        );
        offset = page.body["next_offset"].as_u64();
    }
    let expected: Vec<String> = (0..1000).map(|i| format!("k{i:04}")).collect();
    assert_eq!(seen, expected);

    let filtered = http
        .get("/v1/users/ann/keys/items?prefix=k09", &token)
        .await;
    assert_eq!(filtered.body["keys"].as_array().unwrap().len(), 100);

    // recurse=1: leaves with values, 500 per page by default, with a continuation.
    let first = http.get("/v1/users/ann/keys?recurse=1", &token).await;
    let entries = first.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 500);
    assert_eq!(entries[0], json!({"key": "items/k0000/n", "value": 0}));
    assert_eq!(first.body["next_offset"], 500);
    let second = http
        .get("/v1/users/ann/keys?recurse=1&offset=500", &token)
        .await;
    assert_eq!(second.body["entries"].as_array().unwrap().len(), 500);
    assert_eq!(second.body["next_offset"], Value::Null);
}

/// Rivet's seed, run as its README describes: a session token in `X-Session-Token`, route-like
/// keys that are independent of each other, raw values with their content type (binary too,
/// byte for byte), 201 from POST only for a new key, and a list paged by the last key.
#[tokio::test]
async fn rivet_store_is_a_flat_key_space_of_raw_values() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let token = signup(&http, "ann").await;
    let raw = |method: Method, path: &str, body: Vec<u8>| {
        http.client
            .request(method, format!("{}{path}", http.base))
            .header("X-Session-Token", &token)
            .body(body)
    };
    // The seed's own example keys: each one stands alone.
    for (key, body) in [
        ("profile", "Ann"),
        ("profile/bio", "hello there"),
        ("profile/address/billing", "1 Main St"),
    ] {
        let created = raw(Method::POST, &format!("/store/ann/{key}"), body.into())
            .header("content-type", "text/plain")
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{key}");
    }
    let again = raw(
        Method::POST,
        "/store/ann/profile/bio",
        b"hello again".to_vec(),
    )
    .header("content-type", "text/plain")
    .send()
    .await
    .unwrap();
    assert_eq!(again.status(), 200, "POST of an existing key");
    let put = raw(Method::PUT, "/store/ann/fresh", b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "PUT answers 200 either way");
    let text = raw(Method::GET, "/store/ann/profile", vec![])
        .send()
        .await
        .unwrap();
    assert_eq!(text.headers()["content-type"], "text/plain");
    assert_eq!(
        text.text().await.unwrap(),
        "Ann",
        "writing profile/bio left profile alone"
    );
    let bio = raw(Method::GET, "/store/ann/profile/bio", vec![])
        .send()
        .await
        .unwrap();
    assert_eq!(bio.text().await.unwrap(), "hello again");

    // Binary values round-trip byte for byte, with their type.
    let png: Vec<u8> = (0..=255u8)
        .chain([0, 0xff, 0x89, b'P', b'N', b'G'])
        .collect();
    let stored = raw(Method::PUT, "/store/ann/avatar", png.clone())
        .header("content-type", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    let back = raw(Method::GET, "/store/ann/avatar", vec![])
        .send()
        .await
        .unwrap();
    assert_eq!(back.headers()["content-type"], "image/png");
    assert_eq!(back.bytes().await.unwrap().to_vec(), png);

    // The list: keys in order, paged by the last key, filtered by prefix.
    let first = http.get("/store/ann?limit=2", &token).await;
    assert_eq!(
        first.body,
        json!({"keys": ["avatar", "fresh"], "next_offset": "fresh"})
    );
    let second = http.get("/store/ann?limit=2&offset=fresh", &token).await;
    assert_eq!(
        second.body["keys"],
        json!(["profile", "profile/address/billing"])
    );
    let prefixed = http.get("/store/ann?prefix=profile/", &token).await;
    assert_eq!(
        prefixed.body["keys"],
        json!(["profile/address/billing", "profile/bio"])
    );

    // It is a document like any other: versioned and readable as `ann/store`.
    let doc = http.get("/v1/users/ann/docs/store", &token).await;
    assert_eq!(
        doc.body["userdata"]["profile/bio"]["value"]
            .as_str()
            .map(str::len),
        Some(16)
    );
    assert_eq!(doc.body["metadata"]["version"], 6);

    for status in [200, 404] {
        let r = raw(Method::DELETE, "/store/ann/profile/bio", vec![])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
    }
    let still = raw(Method::GET, "/store/ann/profile", vec![])
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200, "deleting profile/bio left profile");
}

#[tokio::test]
async fn rest_writes_fan_out_to_websocket_watchers() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let token = signup(&http, "ann").await;
    let mut watcher: Client = server.client().await;
    watcher
        .request(json!({"type": "auth", "token": token}))
        .await;
    watcher.request(json!({"type": "watch"})).await;
    http.put("/v1/users/ann/data/groceries/milk", &token, json!(2))
        .await;
    let change = watcher.next_push().await;
    assert_eq!(change["type"], "change");
    assert_eq!(change["version"], 1);
    assert_eq!(
        change["data"]["userdata"],
        json!({"groceries": {"milk": 2}})
    );
    assert_eq!(change["op"]["jsonPatch"][0]["op"], "add");
    // A WebSocket update at the version REST left is accepted: one version line.
    let r = watcher.request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": 1}, "userdata": {"eggs": 1}}})).await;
    assert_eq!(r["version"], 2);
}

#[tokio::test]
async fn cors_preflight_and_websocket_origin_checks() {
    let server =
        TestServer::start_with(|c| c.cors_origins = Some("https://app.example".into())).await;
    let http = Http::new(&server);
    let pre = http
        .call(
            Method::OPTIONS,
            "/v1/users/ann/data/x",
            None,
            None,
            &[
                ("Origin", "https://app.example"),
                ("Access-Control-Request-Method", "PUT"),
                (
                    "Access-Control-Request-Headers",
                    "authorization,if-match,content-type",
                ),
            ],
        )
        .await;
    assert!(pre.status.is_success(), "{}", pre.status);
    assert_eq!(
        pre.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = pre.headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("PUT"), "{methods}");
    let token = signup(&http, "ann").await;
    let got = http
        .call(
            Method::GET,
            "/v1/me",
            Some(&token),
            None,
            &[("Origin", "https://app.example")],
        )
        .await;
    assert_eq!(
        got.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        got.headers["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("etag")
    );
    let evil = http
        .call(
            Method::GET,
            "/v1/me",
            Some(&token),
            None,
            &[("Origin", "https://evil.example")],
        )
        .await;
    assert!(evil.headers.get("access-control-allow-origin").is_none());

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = server.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(req).await;
    assert!(refused.is_err(), "a foreign origin cannot open the socket");
    let mut req = server.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "https://app.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
    // Non-browser clients send no Origin and are fine.
    let mut c = server.client().await;
    assert_eq!(
        c.request(json!({"type": "fetch"})).await["code"],
        "auth_required"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let doc = http
        .call(Method::GET, "/v1/openapi.json", None, None, &[])
        .await;
    expect(&doc, 200, None);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.body["paths"].as_object().unwrap();
    // The router's own table of routes, not a list kept by hand beside it.
    let routes = hearth::http::documented_routes();
    assert!(routes.len() > 50, "{} routes", routes.len());
    for (method, path) in &routes {
        // axum's `{*rest}` is OpenAPI's `{rest}`.
        let path = path.replace("{*", "{");
        assert!(
            paths.get(&path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        routes.len(),
        "every documented operation is a route we serve"
    );
    // The gaps issue 25 found are closed.
    for (path, method) in [
        ("/store/{user}/{key}", "post"),
        ("/v1/users/{user}/data", "put"),
        ("/v1/users/{user}/data", "patch"),
        ("/v1/users/{user}/data", "delete"),
        ("/v1/users/{user}/keys", "get"),
    ] {
        assert!(paths[path].get(method).is_some(), "{method} {path}");
    }
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
}

//! Kopano kvs (seed 001) on named documents: its README's examples run as written (with a
//! Hearth token), then what the README describes around them.

use reqwest::Method;
use serde_json::json;

use crate::common::{TestServer, http};

async fn raw(
    method: Method,
    url: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn the_seed_examples_run_verbatim() {
    let server = TestServer::start().await;
    let (_c, _name, token) = server.user().await;
    let kvs_host = format!("http://{}", server.addr);
    // $ curl -s -k -XPUT -H "Authorization: Bearer $TOKEN_VALUE" "$KVS_HOST/api/kvs/v1/kv/user/test1/doc1" -H "Content-Type: application/json" --data '{}'
    let put = raw(
        Method::PUT,
        &format!("{kvs_host}/api/kvs/v1/kv/user/test1/doc1"),
        &token,
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(put.status(), 200);
    // $ curl -s -k -H "Authorization: Bearer $TOKEN_VALUE" "$KVS_HOST/api/kvs/v1/kv/user/test1/doc1"
    let (status, got) = http(
        Method::GET,
        &format!("{kvs_host}/api/kvs/v1/kv/user/test1/doc1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got["key"], "test1/doc1");
    assert_eq!(got["value"], json!({}));
    assert_eq!(got["content_type"], "application/json");
    // $ curl -s -k -XDELETE -H "Authorization: Bearer $TOKEN_VALUE" "$KVS_HOST/api/kvs/v1/kv/user/test1/doc1"
    let (status, _) = http(
        Method::DELETE,
        &format!("{kvs_host}/api/kvs/v1/kv/user/test1/doc1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = http(
        Method::DELETE,
        &format!("{kvs_host}/api/kvs/v1/kv/user/test1/doc1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404, "DELETE 200, then 404");
    let (status, _) = http(
        Method::GET,
        &format!("{kvs_host}/api/kvs/v1/kv/user/test1/doc1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn collections_recurse_raw_batch_and_bytes() {
    let server = TestServer::start().await;
    let (mut ws, name, token) = server.user().await;
    let (_, _, other) = server.user().await;
    let base = format!("http://{}/api/kvs/v1/kv/user", server.addr);
    for (key, body) in [
        ("notes/a", json!({"n": 1})),
        ("notes/b", json!([1, 2])),
        ("notes/sub/c", json!("x")),
    ] {
        let r = raw(
            Method::PUT,
            &format!("{base}/{key}"),
            &token,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await;
        assert_eq!(r.status(), 200, "{key}");
    }
    // A value that is not JSON is kept byte for byte, Base64 in the envelope, bare with raw=1.
    let bytes: Vec<u8> = vec![0, 159, 146, 150, 255];
    let r = raw(
        Method::PUT,
        &format!("{base}/notes/blob"),
        &token,
        "application/octet-stream",
        bytes.clone(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, envelope) = http(
        Method::GET,
        &format!("{base}/notes/blob"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        envelope,
        json!({"key": "notes/blob", "value": "AJ+Slv8=", "content_type": "application/octet-stream"})
    );
    let bare = reqwest::Client::new()
        .get(format!("{base}/notes/blob?raw=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.headers()["content-type"], "application/octet-stream");
    assert_eq!(bare.bytes().await.unwrap().to_vec(), bytes);
    let (_, json_raw) = http(
        Method::GET,
        &format!("{base}/notes/a?raw=1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(json_raw, json!({"n": 1}));

    // recurse=1: every entry of the collection, or under a prefix.
    let (_, all) = http(
        Method::GET,
        &format!("{base}/notes?recurse=1"),
        Some(&token),
        None,
    )
    .await;
    let keys: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["notes/a", "notes/b", "notes/blob", "notes/sub/c"]);
    let (_, sub) = http(
        Method::GET,
        &format!("{base}/notes/sub?recurse=1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        sub,
        json!([{"key": "notes/sub/c", "value": "x", "content_type": "application/json"}])
    );

    // batch=1: an array as recurse returns it, written as one version.
    let before = ws
        .request(json!({"type": "fetch", "target": format!("{name}/notes")}))
        .await["version"]
        .as_u64()
        .unwrap();
    let batch = json!([
        {"key": "notes/a", "value": {"n": 2}, "content_type": "application/json"},
        {"key": "d", "value": "aGk=", "content_type": "text/plain"},
    ]);
    let r = raw(
        Method::PUT,
        &format!("{base}/notes?batch=1"),
        &token,
        "application/json",
        batch.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let after = ws
        .request(json!({"type": "fetch", "target": format!("{name}/notes")}))
        .await;
    assert_eq!(
        after["version"].as_u64(),
        Some(before + 1),
        "one version for the batch"
    );
    assert_eq!(after["data"]["userdata"]["a"]["value"], json!({"n": 2}));
    let text = reqwest::Client::new()
        .get(format!("{base}/notes/d?raw=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(text.text().await.unwrap(), "hi");
    let bad = raw(
        Method::PUT,
        &format!("{base}/notes?batch=1"),
        &token,
        "application/json",
        br#"[{"key": 1}]"#.to_vec(),
    )
    .await;
    assert_eq!(bad.status(), 400);

    // The collection is a document: listed, watchable, and nobody else's business.
    let list = ws.request(json!({"type": "list"})).await;
    assert_eq!(list["documents"][0]["name"], "notes");
    let (status, _) = http(Method::GET, &format!("{base}/notes/a"), Some(&other), None).await;
    assert_eq!(status, 404, "the caller's own space only");
    let bad_name = raw(
        Method::PUT,
        &format!("{base}/Not%20A%20Name/x"),
        &token,
        "application/json",
        b"1".to_vec(),
    )
    .await;
    assert_eq!(bad_name.status(), 400);
    let invalid = raw(
        Method::PUT,
        &format!("{base}/notes/x"),
        &token,
        "application/json",
        b"{nope".to_vec(),
    )
    .await;
    assert_eq!(invalid.status(), 400);
}

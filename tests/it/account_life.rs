//! An account's own life after signup (issue 25, point 8): changing its password ends its
//! other sessions, deleting it leaves nothing behind (nor anything a later account of the same
//! name could inherit), and exporting gives all of it back in one download.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, hearth_cli, http, http_get};

fn base(server: &TestServer) -> String {
    format!("http://{}", server.addr)
}

async fn login(server: &TestServer, name: &str, password: &str) -> (u16, Value) {
    http(
        Method::POST,
        &format!("{}/v1/login", base(server)),
        None,
        Some(json!({"username": name, "password": password})),
    )
    .await
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let server = TestServer::start().await;
    let (mut first, first_token) = server.named_user("ann").await;
    let (_, second) = login(&server, "ann", "correct horse").await;
    let second = second["token"].as_str().unwrap().to_owned();

    // Wrong old password: refused, nothing changes.
    let wrong = first
        .request(json!({"type": "password", "old": "wrong horse", "new": "battery staple"}))
        .await;
    assert_error(&wrong, "invalid_credentials");
    let (status, _) = http_get(&format!("{}/v1/me", base(&server)), &second).await;
    assert_eq!(status, 200);

    // Over REST, from the second session: the first (a live socket) is told and signed out.
    let (status, body) = http(
        Method::POST,
        &format!("{}/v1/me/password", base(&server)),
        Some(&second),
        Some(json!({"old": "correct horse", "new": "battery staple"})),
    )
    .await;
    assert_eq!((status, body["ended"].as_u64()), (200, Some(1)), "{body}");
    let pushed = first.next_push().await;
    assert_error(&pushed, "invalid_token");
    assert_eq!(pushed["detail"], "token revoked");
    let (status, _) = http_get(&format!("{}/v1/me", base(&server)), &first_token).await;
    assert_eq!(status, 401, "the other session's token is dead");
    let (status, _) = http_get(&format!("{}/v1/me", base(&server)), &second).await;
    assert_eq!(status, 200, "the caller's session stays");
    assert_eq!(login(&server, "ann", "correct horse").await.0, 401);
    assert_eq!(login(&server, "ann", "battery staple").await.0, 200);

    // Over the WebSocket too; a generated account may set its first password without one.
    let (mut gen_client, name, _) = server.user().await;
    let set = gen_client
        .request(json!({"type": "password", "new": "a first password"}))
        .await;
    assert_eq!(set["type"], "password", "{set}");
    assert_eq!(login(&server, &name, "a first password").await.0, 200);
}

#[tokio::test]
async fn deleting_an_account_leaves_nothing_to_inherit() {
    let server = TestServer::start().await;
    let (mut ann, ann_token) = server.named_user("ann").await;
    let (mut bob, bob_token) = server.named_user("bob").await;
    // bob shares his document with ann; ann writes to her own and holds a blob.
    let shared = bob
        .request(json!({"type": "update", "data": {"metadata": {"version": 0,
            "collaborators": ["ann"], "readers": ["ann"]}, "userdata": {"list": []}}}))
        .await;
    assert_eq!(shared["type"], "version", "{shared}");
    // …and a named one, read-only (found through the sharing index at deletion).
    let plans = bob
        .request(json!({"type": "create", "name": "plans", "readers": ["ann"]}))
        .await;
    assert_eq!(plans["version"], 0, "{plans}");
    for v in 0..5 {
        let w = ann
            .request(json!({"type": "update", "patch": true,
                "data": {"metadata": {"version": v}, "userdata": {"n": v}}}))
            .await;
        assert_eq!(w["type"], "version", "{w}");
    }
    let blob = reqwest::Client::new()
        .put(format!("{}/v1/blobs", base(&server)))
        .bearer_auth(&ann_token)
        .body("ann's private bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 201);
    let sha = blob.json::<Value>().await.unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob_file = server.dir.path().join("blobs").join(&sha[..2]).join(&sha);
    assert!(blob_file.exists());
    let watch = bob.request(json!({"type": "watch"})).await;
    assert_eq!(watch["type"], "data");
    let notes = ann
        .request(json!({"type": "create", "name": "notes", "userdata": {"secret": true}}))
        .await;
    assert_eq!(notes["version"], 0, "{notes}");
    ann.request(
        json!({"type": "update", "target": "ann/notes", "patch": true,
        "data": {"metadata": {"version": 0}, "userdata": {"more": 1}}}),
    )
    .await;

    // The export has it all.
    let response = reqwest::Client::new()
        .get(format!("{}/v1/me/export", base(&server)))
        .bearer_auth(&ann_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("hearth-ann.json")
    );
    let export: Value = response.json().await.unwrap();
    assert_eq!(export["document"]["metadata"]["version"], 5);
    assert_eq!(export["document"]["userdata"]["n"], 4);
    assert_eq!(export["changes"].as_array().unwrap().len(), 5);
    assert_eq!(export["blobs"][0]["sha256"], sha.as_str());
    let named = &export["documents"][0];
    assert_eq!(named["document"]["metadata"]["name"], "notes", "{export}");
    assert_eq!(
        named["document"]["userdata"],
        json!({"secret": true, "more": 1})
    );
    assert_eq!(named["changes"][0]["op"], json!({"merge": {"more": 1}}));

    // Without the password: refused.
    let (status, body) = http(
        Method::DELETE,
        &format!("{}/v1/me", base(&server)),
        Some(&ann_token),
        Some(json!({"password": "wrong horse"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (status, report) = http(
        Method::DELETE,
        &format!("{}/v1/me", base(&server)),
        Some(&ann_token),
        Some(json!({"password": "correct horse"})),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["blobs"], 1);
    assert_eq!(report["unshared"], 2);

    // Her socket is closed, her tokens dead, her name gone from bob's lists (a version
    // bob's watcher sees), her blob file gone.
    assert_eq!(ann.closed_with().await, 4004);
    let (status, _) = http_get(&format!("{}/v1/me", base(&server)), &ann_token).await;
    assert_eq!(status, 401);
    let change = bob.next_push().await;
    assert_eq!(change["type"], "change", "{change}");
    assert_eq!(change["data"]["metadata"]["collaborators"], json!([]));
    assert_eq!(change["data"]["metadata"]["readers"], json!([]));
    assert!(!blob_file.exists());
    assert_eq!(login(&server, "ann", "correct horse").await.0, 401);

    // A new "ann" starts from nothing, also after a restart.
    let server = server.restart().await;
    let (mut new_ann, new_token) = server.named_user("ann").await;
    let doc = new_ann.request(json!({"type": "fetch"})).await;
    assert_eq!(doc["version"], 0, "{doc}");
    assert_eq!(doc["data"]["userdata"], json!({}));
    assert_error(
        &new_ann
            .request(json!({"type": "fetch", "target": "bob"}))
            .await,
        "unauthorized",
    );
    let (_, changes) = http_get(
        &format!("{}/v1/users/ann/changes", base(&server)),
        &new_token,
    )
    .await;
    assert_eq!(changes["changes"], json!([]), "{changes}");
    let (_, blobs) = http_get(&format!("{}/v1/blobs", base(&server)), &new_token).await;
    assert_eq!(blobs["blobs"], json!([]));
    assert_eq!(blobs["used"], 0);
    let w = new_ann
        .request(json!({"type": "update", "patch": true,
            "data": {"metadata": {"version": 0}, "userdata": {"fresh": true}}}))
        .await;
    assert_eq!(w["version"], 1, "{w}");
    let (_, bob_doc) = http_get(&format!("{}/v1/users/bob", base(&server)), &bob_token).await;
    assert_eq!(bob_doc["metadata"]["collaborators"], json!([]));
    let (_, plans) = http_get(
        &format!("{}/v1/users/bob/docs/plans", base(&server)),
        &bob_token,
    )
    .await;
    assert_eq!(plans["metadata"]["readers"], json!([]), "{plans}");
    assert_error(
        &new_ann
            .request(json!({"type": "fetch", "target": "bob/plans"}))
            .await,
        "unauthorized",
    );
    let list = new_ann.request(json!({"type": "list"})).await;
    assert_eq!(list["shared"], json!([]), "{list}");
}

/// `hearth user delete` on a stopped server's data dir, right after updates that may still
/// be only in the write-ahead log.
#[tokio::test]
async fn the_cli_deletes_an_account_on_a_stopped_server() {
    if std::env::var("TEST_STORE").is_ok_and(|s| s == "postgres") {
        return; // The data dir's redb file is the point here.
    }
    let mut server = TestServer::start().await;
    let (mut ann, _) = server.named_user("ann").await;
    for v in 0..3 {
        ann.request(json!({"type": "update", "patch": true,
            "data": {"metadata": {"version": v}, "userdata": {"n": v}}}))
            .await;
    }
    server.shutdown().await;
    let out = hearth_cli(&["user", "delete", "ann"], server.dir.path(), "").await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("deleted ann"), "{}", out.stdout);
    let again = hearth_cli(&["user", "delete", "ann"], server.dir.path(), "").await;
    assert!(!again.ok, "a second delete finds no such user");
    let list = hearth_cli(&["user", "list"], server.dir.path(), "").await;
    assert!(!list.stdout.contains("ann"), "{}", list.stdout);
    let server = server.restart().await;
    let (mut c, _) = server.named_user("ann").await;
    let doc = tokio::time::timeout(Duration::from_secs(5), c.request(json!({"type": "fetch"})))
        .await
        .unwrap();
    assert_eq!(doc["version"], 0);
}

//! `hearth import personal-backend DIR`: a personal-backend `.data/` directory into a stopped
//! server's data dir and through a running one, accounts and documents as they were.

use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, hearth_cli, http, http_get};

/// A `.data/` directory as personal-backend 0.1.0 writes it: one `<username>.json` each.
fn seed_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "ann.json",
            json!({"metadata": {"username": "ann", "version": 4, "collaborators": ["bob", "ghost"],
            "createdAt": "2017-01-30T10:00:00.000Z", "lastUpdate": {"at": "2017-02-01T09:00:00.000Z", "by": "bob"}},
            "userdata": {"list": ["milk", "eggs"]}}),
        ),
        (
            "bob.json",
            json!({"metadata": {"username": "bob", "version": 0, "collaborators": [],
            "createdAt": "2017-01-31T10:00:00.000Z"}, "userdata": {}}),
        ),
        (
            "Not A Name.json",
            json!({"metadata": {"username": "Not A Name", "version": 1, "collaborators": []},
            "userdata": {}}),
        ),
    ];
    for (name, doc) in files {
        std::fs::write(dir.path().join(name), doc.to_string()).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a user").unwrap();
    dir
}

async fn check_imported(server: &TestServer) {
    let (mut admin, _) = server.named_user("zoe").await;
    drop(admin.request(json!({"type": "fetch"})).await);
    // ann's document, as it was; a seed token would sign her in (tests/it/legacy.rs).
    let state = server.state();
    let ann = state
        .store
        .document("ann")
        .await
        .unwrap()
        .expect("ann imported");
    let m = &ann.metadata;
    assert_eq!(m.version, 4);
    assert_eq!(m.collaborators, vec!["bob".to_owned()], "ghost dropped");
    assert_eq!(m.created_at, "2017-01-30T10:00:00.000Z");
    assert_eq!(
        (m.last_update.at.as_str(), m.last_update.by.as_str()),
        ("2017-02-01T09:00:00.000Z", "bob")
    );
    assert_eq!(
        serde_json::to_value(&ann.userdata).unwrap(),
        json!({"list": ["milk", "eggs"]})
    );
    let bob = state
        .store
        .document("bob")
        .await
        .unwrap()
        .expect("bob imported");
    assert_eq!(bob.metadata.last_update.at, "2017-01-31T10:00:00.000Z");
    // bob may write ann's list at the version it had; the change log starts there.
    let (token, _) = state
        .auth
        .tokens
        .issue("bob", hearth::store::Scope::Full)
        .unwrap();
    let mut bob_c = server.client().await;
    bob_c.request(json!({"type": "auth", "token": token})).await;
    let stale = bob_c
        .request(json!({"type": "update", "target": "ann", "patch": true,
            "data": {"metadata": {"version": 3}, "userdata": {"x": 1}}}))
        .await;
    assert_error(&stale, "version_mismatch");
    let w = bob_c
        .request(json!({"type": "update", "target": "ann", "patch": true,
            "data": {"metadata": {"version": 4}, "userdata": {"x": 1}}}))
        .await;
    assert_eq!(w["version"], 5, "{w}");
    let list = bob_c.request(json!({"type": "list"})).await;
    assert_eq!(list["shared"][0]["owner"], "ann", "{list}");
}

#[tokio::test]
async fn into_a_stopped_server_and_again_changes_nothing() {
    if std::env::var("TEST_STORE").is_ok_and(|s| s == "postgres") {
        return; // The data dir's redb file is the point here.
    }
    let seed = seed_dir();
    let mut server = TestServer::start().await;
    server.shutdown().await;
    let dir = seed.path().to_str().unwrap();
    let out = hearth_cli(&["import", "personal-backend", dir], server.dir.path(), "").await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("imported 2, already present 0, skipped 1, collaborators dropped 1"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Not A Name"), "{}", out.stdout);
    assert!(out.stdout.contains("\"ghost\""), "{}", out.stdout);
    assert!(
        out.stderr.contains("import: 2/2"),
        "progress: {}",
        out.stderr
    );
    let again = hearth_cli(&["import", "personal-backend", dir], server.dir.path(), "").await;
    assert!(
        again.stdout.contains("imported 0, already present 2"),
        "{}",
        again.stdout
    );
    let server = server.restart().await;
    check_imported(&server).await;
}

#[tokio::test]
async fn through_a_running_server_as_an_admin() {
    let seed = seed_dir();
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_root, root_token) = server.named_user("boss").await;
    let (_eve, eve_token) = server.named_user("eve").await;
    let body = |name: &str| {
        let content = std::fs::read_to_string(seed.path().join(name)).unwrap();
        json!({"files": [{"name": name, "content": content}]})
    };
    let base = format!("http://{}/v1/admin/import/personal-backend", server.addr);
    let (status, _) = http(
        reqwest::Method::POST,
        &base,
        Some(&eve_token),
        Some(body("ann.json")),
    )
    .await;
    assert_eq!(status, 403, "admins only");
    let url = format!("http://{}", server.addr);
    let out = hearth_cli(
        &[
            "import",
            "personal-backend",
            seed.path().to_str().unwrap(),
            "--url",
            &url,
            "--token",
            &root_token,
        ],
        server.dir.path(),
        "",
    )
    .await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("imported 2, already present 0, skipped 1"),
        "{}",
        out.stdout
    );
    let (status, report) = http(
        reqwest::Method::POST,
        &base,
        Some(&root_token),
        Some(body("ann.json")),
    )
    .await;
    assert_eq!(
        (status, report["present"].clone()),
        (200, json!(["ann"])),
        "{report}"
    );
    // Importing gives the admin no access to what was imported.
    let (_, doc): (u16, Value) = http_get(&format!("{url}/v1/users/ann"), &root_token).await;
    assert_eq!(doc["code"], "unauthorized", "{doc}");
    check_imported(&server).await;
}

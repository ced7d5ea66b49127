//! The admin API's view into accounts and data (issue 33): search across every account, one
//! account at a glance, any document whatever its lists say, its log and its changes live,
//! an admin's edit as an ordinary versioned update, scheduled backups and recent errors.
//! Every read and edit of someone's data is in the audit log; none of it is open to others.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Sse, TestServer, hearth_cli, http, spawn_hearth};

async fn admin_call(server: &TestServer, method: Method, path: &str, token: &str) -> (u16, Value) {
    http(
        method,
        &format!("http://{}{path}", server.addr),
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn search_finds_users_across_every_page() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, token) = server.named_user("boss").await;
    for name in ["ann", "anna", "bob", "joanne", "zed"] {
        server.named_user(name).await;
    }
    let get = |q: &'static str| admin_call(&server, Method::GET, q, &token);
    let (status, page) = get("/v1/admin/users?q=ann&limit=2").await;
    assert_eq!(status, 200, "{page}");
    let names = |p: &Value| -> Vec<String> {
        p["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&page), ["ann", "anna"]);
    assert_eq!(page["total"], 3);
    assert_eq!(page["next_offset"], 2);
    let (_, rest) = get("/v1/admin/users?q=ann&limit=2&offset=2").await;
    assert_eq!(names(&rest), ["joanne"]);
    assert_eq!(rest["next_offset"], Value::Null);
    // Upper case finds lower-case names; a search matching nothing is an empty page.
    let (_, upper) = get("/v1/admin/users?q=ZE").await;
    assert_eq!(names(&upper), ["zed"]);
    let (_, none) = get("/v1/admin/users?q=%25").await;
    assert_eq!((none["total"].clone(), names(&none).len()), (json!(0), 0));
}

#[tokio::test]
async fn an_account_at_a_glance_and_its_sessions_ended() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, token) = server.named_user("boss").await;
    let (mut ann, ann_token) = server.named_user("ann").await;
    ann.request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": 0}, "userdata": {"a": 1}}}))
        .await;
    let url = format!("http://{}", server.addr);
    let (status, _) = http(
        Method::PUT,
        &format!("{url}/v1/users/ann/docs/notes"),
        Some(&ann_token),
        Some(json!({"t": "hi"})),
    )
    .await;
    assert_eq!(status, 201);

    let (status, acct) = admin_call(&server, Method::GET, "/v1/admin/users/ann", &token).await;
    assert_eq!(status, 200, "{acct}");
    assert_eq!(acct["username"], "ann");
    assert_eq!(acct["disabled"], false);
    let docs = acct["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2, "{acct}");
    assert_eq!(
        (docs[0]["version"].clone(), docs[0].get("name").cloned()),
        (json!(1), None)
    );
    assert_eq!(docs[1]["name"], "notes");
    assert!(docs[0]["size"].as_u64().unwrap() > 0);
    let sessions = acct["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{acct}");
    // Used just now (the socket signed in, the PUT above), and one socket open.
    let last = sessions[0]["lastUsed"].as_u64().expect("lastUsed");
    assert!(
        last + 60
            > std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
    );
    assert_eq!(sessions[0]["open"], 1);
    assert_eq!(acct["blobs"]["used"], 0);
    let (status, _) = admin_call(&server, Method::GET, "/v1/admin/users/nobody", &token).await;
    assert_eq!(status, 404);

    // Ending the sessions closes the socket and refuses the token.
    let (status, ended) = admin_call(
        &server,
        Method::DELETE,
        "/v1/admin/users/ann/sessions",
        &token,
    )
    .await;
    assert_eq!((status, ended["ended"].clone()), (200, json!(1)), "{ended}");
    // The socket is told and signed out.
    let told = ann.next_push_or_close().await.expect("told");
    assert_eq!(
        (told["code"].as_str(), told["detail"].as_str()),
        (Some("invalid_token"), Some("token revoked"))
    );
    let (status, _) = http(Method::GET, &format!("{url}/v1/me"), Some(&ann_token), None).await;
    assert_eq!(status, 401);
    let (_, audit) = admin_call(&server, Method::GET, "/v1/admin/audit", &token).await;
    assert_eq!(audit["lines"][0]["action"], "end_sessions");
    assert_eq!(audit["lines"][0]["target"], "ann");
}

#[tokio::test]
async fn an_admin_reads_watches_and_edits_any_document_and_each_is_recorded() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, token) = server.named_user("boss").await;
    let (mut ann, ann_token) = server.named_user("ann").await;
    let (_cat, cat_token) = server.named_user("cat").await;
    let url = format!("http://{}", server.addr);
    http(
        Method::PUT,
        &format!("{url}/v1/users/ann/docs/notes"),
        Some(&ann_token),
        Some(json!({"t": "one"})),
    )
    .await;

    // Nobody else may: not a stranger, not through these routes.
    for (method, path) in [
        (Method::GET, "/v1/admin/users/ann"),
        (Method::DELETE, "/v1/admin/users/ann/sessions"),
        (Method::GET, "/v1/admin/doc?key=ann/notes"),
        (Method::PUT, "/v1/admin/doc?key=ann/notes"),
        (Method::GET, "/v1/admin/doc/changes?key=ann/notes"),
        (Method::GET, "/v1/admin/doc/events?key=ann/notes"),
        (Method::GET, "/v1/admin/backups"),
        (Method::GET, "/v1/admin/backups/manual-x.redb"),
        (Method::GET, "/v1/admin/logs"),
    ] {
        let (status, body) = admin_call(&server, method, path, &cat_token).await;
        assert_eq!(
            (status, body["code"].clone()),
            (403, json!("forbidden")),
            "{path}"
        );
    }

    // The document, though boss is on none of its lists.
    let (status, doc) =
        admin_call(&server, Method::GET, "/v1/admin/doc?key=ann/notes", &token).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["userdata"], json!({"t": "one"}));
    assert_eq!(doc["metadata"]["version"], 0);
    let (status, _) = admin_call(
        &server,
        Method::GET,
        "/v1/admin/doc?key=ann/missing",
        &token,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = admin_call(&server, Method::GET, "/v1/admin/doc?key=../x", &token).await;
    assert_eq!(status, 400);

    // Live: ann's change arrives on boss's stream.
    let mut sse = Sse::open(
        &format!("{url}/v1/admin/doc/events?key=ann/notes"),
        &token,
        None,
    )
    .await;
    let first = sse.next().await.expect("snapshot");
    assert_eq!(
        first.data["data"]["userdata"],
        json!({"t": "one"}),
        "{:?}",
        first.data
    );
    ann.request(json!({"type": "watch", "target": "ann/notes"}))
        .await;
    let r = ann
        .request(json!({"type": "update", "target": "ann/notes", "patch": true, "data": {"metadata": {"version": 0}, "userdata": {"t": "two"}}}))
        .await;
    assert_eq!(r["version"], 1, "{r}");
    let change = sse.next().await.expect("change");
    assert_eq!(
        change.id.as_deref().map(|i| i.split(':').next().unwrap()),
        Some("1")
    );
    assert_eq!(
        change.data["data"]["userdata"]["t"], "two",
        "{:?}",
        change.data
    );

    // An edit needs the version seen; a stale one is refused, a current one commits `by`
    // boss, and ann's watch gets it like any change.
    let put = |body: Value, if_match: Option<&'static str>| {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let mut req = reqwest::Client::new()
                .put(format!("{url}/v1/admin/doc?key=ann/notes"))
                .bearer_auth(token)
                .json(&body);
            if let Some(m) = if_match {
                req = req.header("If-Match", m);
            }
            let resp = req.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(put(json!({"t": "x"}), None).await.0, 400);
    assert_eq!(put(json!({"t": "x"}), Some("\"0\"")).await.0, 412);
    assert_eq!(put(json!([1]), Some("\"1\"")).await.0, 400);
    let deep = (0..70).fold(json!(1), |v, _| json!({"d": v}));
    assert_eq!(
        put(deep, Some("\"1\"")).await.0,
        400,
        "too deep: the store refuses it"
    );
    let (status, body) = put(json!({"t": "fixed by boss"}), Some("\"1\"")).await;
    assert_eq!((status, body["version"].clone()), (200, json!(2)), "{body}");
    let mut push = ann.next_push().await;
    while push["version"] == 1 {
        push = ann.next_push().await; // her own change first
    }
    assert_eq!(push["data"]["userdata"]["t"], "fixed by boss", "{push}");
    let edited = sse.next().await.expect("the edit, live");
    assert_eq!(edited.data["data"]["metadata"]["lastUpdate"]["by"], "boss");
    // The edit changed no list: boss still may not read it as himself.
    let (status, _) = http(
        Method::GET,
        &format!("{url}/v1/users/ann/docs/notes"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404);

    let (status, log) = admin_call(
        &server,
        Method::GET,
        "/v1/admin/doc/changes?key=ann/notes",
        &token,
    )
    .await;
    assert_eq!(status, 200, "{log}");
    let by: Vec<&str> = log["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["ann", "boss"]);
    assert_eq!(
        log["changes"][1]["op"],
        json!({"replace": {"t": "fixed by boss"}})
    );

    let (_, audit) = admin_call(&server, Method::GET, "/v1/admin/audit", &token).await;
    let got: Vec<(&str, &str)> = audit["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap(),
                l["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("read_changes", "ann/notes"),
            ("edit_document", "ann/notes"),
            ("watch_document", "ann/notes"),
            ("read_document", "ann/notes"),
        ]
    );
}

/// The real binary with `BACKUP_INTERVAL=1`: its scheduled snapshots are listed and each
/// downloads whole; a name outside the list is not served.
#[tokio::test]
async fn scheduled_backups_are_listed_and_download() {
    let dir = tempfile::tempdir().unwrap();
    create_boss(dir.path()).await;
    let (_child, addr) = spawn_hearth(
        dir.path(),
        &[
            ("ADMIN_USERS", "boss"),
            ("BACKUP_INTERVAL", "1"),
            ("BACKUP_KEEP", "2"),
        ],
    )
    .await;
    let base = format!("http://{addr}");
    let token = admin_token(&base).await;
    let list = || {
        let (base, token) = (base.clone(), token.clone());
        async move {
            http(
                Method::GET,
                &format!("{base}/v1/admin/backups"),
                Some(&token),
                None,
            )
            .await
            .1
        }
    };
    let mut listed = Value::Null;
    for _ in 0..50 {
        listed = list().await;
        if listed["backups"].as_array().is_some_and(|b| b.len() >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        (listed["interval"].clone(), listed["keep"].clone()),
        (json!(1), json!(2)),
        "{listed}"
    );
    let backups = listed["backups"].as_array().expect("backups");
    assert!(backups.len() >= 2, "{listed}");
    assert!(
        backups
            .iter()
            .all(|b| b["scheduled"] == true && b["bytes"].as_u64().unwrap() > 0)
    );
    let name = backups[0]["name"].as_str().unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/admin/backups/{name}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let announced: u64 = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, announced);
    assert!(bytes.starts_with(b"redb"), "a redb file");
    for bad in ["..%2Fhearth.redb", "hearth.redb", "manual-nothing.redb"] {
        let (status, _) = http(
            Method::GET,
            &format!("{base}/v1/admin/backups/{bad}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 404, "{bad}");
    }
}

/// A careless operator: a file where the backups directory should be. The scheduled backup
/// fails, and the dashboard's log view shows why, newest first.
#[tokio::test]
async fn recent_errors_are_served_to_admins() {
    let dir = tempfile::tempdir().unwrap();
    create_boss(dir.path()).await;
    std::fs::write(dir.path().join("backups"), b"not a directory").unwrap();
    let (_child, addr) = spawn_hearth(
        dir.path(),
        &[("ADMIN_USERS", "boss"), ("BACKUP_INTERVAL", "1")],
    )
    .await;
    let base = format!("http://{addr}");
    let token = admin_token(&base).await;
    let mut lines = Value::Null;
    for _ in 0..50 {
        lines = http(
            Method::GET,
            &format!("{base}/v1/admin/logs"),
            Some(&token),
            None,
        )
        .await
        .1;
        if lines["lines"].as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = &lines["lines"][0];
    assert_eq!(first["level"], "error", "{lines}");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("backups directory"),
        "{lines}"
    );
    assert!(first["at"].is_string());
}

/// An admin named in `ADMIN_USERS` is made by the operator, not signed up.
async fn create_boss(data_dir: &std::path::Path) {
    let out = hearth_cli(
        &["user", "create", "boss", "--password-stdin"],
        data_dir,
        "correct horse\n",
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
}

async fn admin_token(base: &str) -> String {
    let (status, body) = http(
        Method::POST,
        &format!("{base}/v1/login"),
        None,
        Some(json!({"username": "boss", "password": "correct horse"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

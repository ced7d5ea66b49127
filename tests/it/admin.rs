//! The admin API: refused to non-admins; stats and users; disabling an account closes its
//! sockets and refuses its tokens at once, and survives a restart.

use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("http://{}{path}", server.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admins_see_stats_and_can_disable_accounts() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss, root-ops".into())).await;
    let (_boss, boss_token) = server.named_user("boss").await;
    let (mut ann, ann_token) = server.named_user("ann").await;
    ann.request(json!({"type": "watch"})).await;

    // Not for others.
    for (method, path) in [
        (reqwest::Method::GET, "/v1/admin/stats"),
        (reqwest::Method::GET, "/v1/admin/overview"),
        (reqwest::Method::GET, "/v1/admin/settings"),
        (reqwest::Method::GET, "/v1/admin/audit"),
        (reqwest::Method::GET, "/v1/admin/users"),
        (reqwest::Method::POST, "/v1/admin/users/boss/disable"),
        (reqwest::Method::POST, "/v1/admin/users/boss/enable"),
        (reqwest::Method::POST, "/v1/admin/users"),
        (reqwest::Method::POST, "/v1/admin/users/boss/password"),
        (reqwest::Method::POST, "/v1/admin/users/ann/admin"),
        (reqwest::Method::DELETE, "/v1/admin/users/boss/admin"),
        (reqwest::Method::GET, "/v1/admin/backup"),
        (reqwest::Method::POST, "/v1/admin/backup"),
    ] {
        let (status, body) = call(&server, method, path, &ann_token).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(body["code"], "forbidden");
    }

    let (status, stats) = call(
        &server,
        reqwest::Method::GET,
        "/v1/admin/stats",
        &boss_token,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stats["users"], 2);
    assert_eq!(stats["documents"], 2);
    assert_eq!(stats["connections"], 2);
    assert_eq!(stats["watches"], 1);
    assert!(stats["dataBytes"].as_u64().unwrap() > 0, "{stats}");
    // Commits per second: sampled once a second over the last ten.
    for v in 0..20u64 {
        let r = ann
            .request(json!({"type": "update", "data": {"metadata": {"version": v}, "userdata": {"n": v}}}))
            .await;
        assert_eq!(r["version"], v + 1);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let (_, stats) = call(
        &server,
        reqwest::Method::GET,
        "/v1/admin/stats",
        &boss_token,
    )
    .await;
    assert!(stats["commitsPerSecond"].as_f64().unwrap() > 0.0, "{stats}");
    let (_, page) = call(
        &server,
        reqwest::Method::GET,
        "/v1/admin/users?limit=1",
        &boss_token,
    )
    .await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["users"][0]["username"], "ann");
    assert_eq!(page["users"][0]["disabled"], false);
    assert_eq!(page["next_offset"], 1);

    // Disable ann: her socket closes, her token and her password stop working.
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/v1/admin/users/ann/disable",
        &boss_token,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(ann.closed_with().await, 4003);
    let (status, body) = call(&server, reqwest::Method::GET, "/v1/me", &ann_token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let mut again = server.client().await;
    assert_error(
        &again
            .request(json!({"type": "auth", "token": ann_token}))
            .await,
        "invalid_token",
    );
    assert_error(
        &again
            .request(json!({"type": "login", "username": "ann", "password": "correct horse"}))
            .await,
        "invalid_credentials",
    );
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/v1/admin/users/nobody/disable",
        &boss_token,
    )
    .await;
    assert_eq!(status, 404);

    // It survives a restart; enabling restores access.
    let server = server.restart().await;
    let mut c = server.client().await;
    assert_error(
        &c.request(json!({"type": "auth", "token": ann_token})).await,
        "invalid_token",
    );
    let (_, page) = call(
        &server,
        reqwest::Method::GET,
        "/v1/admin/users",
        &boss_token,
    )
    .await;
    assert_eq!(page["users"][0]["disabled"], true);
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/v1/admin/users/ann/enable",
        &boss_token,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        c.request(json!({"type": "auth", "token": ann_token})).await["type"],
        "auth"
    );
}

/// The overview: this node's name and store, readiness, the counts, and the hour of samples
/// (the first taken at start).
#[tokio::test]
async fn the_overview_shows_the_node_and_its_last_hour() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, token) = server.named_user("boss").await;
    let (status, body) = call(&server, reqwest::Method::GET, "/v1/admin/overview", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node"].as_str().map(str::len), Some(16), "{body}");
    let kind = if std::env::var("TEST_STORE").is_ok_and(|s| s == "postgres") {
        "postgres"
    } else {
        "redb"
    };
    assert_eq!(body["store"], kind);
    assert_eq!(body["ready"], true);
    assert_eq!(body["stats"]["users"], 1);
    let samples = body["samples"].as_array().expect("samples");
    assert!(!samples.is_empty(), "sampled at start: {body}");
    for key in [
        "at",
        "connections",
        "sessions",
        "watches",
        "commitsPerSecond",
        "deliveriesPerSecond",
        "errorsPerSecond",
    ] {
        assert!(samples[0].get(key).is_some(), "{key}: {}", samples[0]);
    }
}

/// The settings in force, by their environment names, with secrets never shown.
#[tokio::test]
async fn the_settings_in_force_are_shown_with_secrets_masked() {
    let server = TestServer::start_with(|c| {
        c.admin_users = Some("boss".into());
        c.jwt_secret = Some("sekrit-do-not-show".into());
        c.max_watches = 42;
    })
    .await;
    let (_boss, token) = server.named_user("boss").await;
    let (status, body) = call(&server, reqwest::Method::GET, "/v1/admin/settings", &token).await;
    assert_eq!(status, 200, "{body}");
    let settings = &body["settings"];
    assert_eq!(settings["MAX_WATCHES"], 42);
    assert_eq!(settings["HOST"], "127.0.0.1");
    assert_eq!(settings["JWT_SECRET"], "(set)");
    assert!(!body.to_string().contains("sekrit"), "{body}");
    assert!(settings.get("FAULTS").is_none());
}

/// Every admin action leaves a line (who, what, to whom, when), served newest first and
/// paged, and kept across a restart.
#[tokio::test]
async fn every_admin_action_is_in_the_audit_log() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, token) = server.named_user("boss").await;
    let (_ann, _) = server.named_user("ann").await;
    let post = |path: &'static str, body: Option<Value>| {
        let (addr, token) = (server.addr, token.clone());
        async move {
            let mut req = reqwest::Client::new()
                .post(format!("http://{addr}{path}"))
                .bearer_auth(token);
            if let Some(body) = body {
                req = req.json(&body);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(post("/v1/admin/users/ann/disable", None).await, 204);
    assert_eq!(post("/v1/admin/users/ann/enable", None).await, 204);
    assert_eq!(post("/v1/admin/users/ann/admin", None).await, 204);
    assert_eq!(
        post(
            "/v1/admin/users/ann/password",
            Some(json!({"password": "another horse"}))
        )
        .await,
        200
    );
    assert_eq!(
        post(
            "/v1/admin/users",
            Some(json!({"username": "cat", "password": "correct horse"}))
        )
        .await,
        201
    );
    // A refused action records nothing.
    assert_eq!(post("/v1/admin/users/nobody-here/disable", None).await, 404);
    let (status, _) = call(
        &server,
        reqwest::Method::DELETE,
        "/v1/admin/users/cat",
        &token,
    )
    .await;
    assert_eq!(status, 200);
    let expected = [
        ("delete_user", Some("cat")),
        ("create_user", Some("cat")),
        ("reset_password", Some("ann")),
        ("grant_admin", Some("ann")),
        ("enable", Some("ann")),
        ("disable", Some("ann")),
    ];
    let check = |body: &Value| {
        let lines = body["lines"].as_array().expect("lines");
        let got: Vec<(&str, Option<&str>)> = lines
            .iter()
            .map(|l| (l["action"].as_str().unwrap(), l["target"].as_str()))
            .collect();
        assert_eq!(got, expected, "{body}");
        assert!(
            lines
                .iter()
                .all(|l| l["by"] == "boss" && l["at"].is_string())
        );
        let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] > w[1]),
            "newest first: {seqs:?}"
        );
    };
    let (status, body) = call(&server, reqwest::Method::GET, "/v1/admin/audit", &token).await;
    assert_eq!(status, 200, "{body}");
    check(&body);
    // Paged: two at a time, then on from `next`.
    let (_, first) = call(
        &server,
        reqwest::Method::GET,
        "/v1/admin/audit?limit=2",
        &token,
    )
    .await;
    assert_eq!(first["lines"].as_array().unwrap().len(), 2);
    let next = first["next"].as_u64().expect("next");
    let (_, rest) = call(
        &server,
        reqwest::Method::GET,
        &format!("/v1/admin/audit?before={next}"),
        &token,
    )
    .await;
    assert_eq!(rest["lines"].as_array().unwrap().len(), 4);
    // Kept across a restart (a cluster keeps it in its database).
    if std::env::var("TEST_STORE").is_err() {
        let server = server.restart().await;
        let (_, body) = call(&server, reqwest::Method::GET, "/v1/admin/audit", &token).await;
        check(&body);
    }
}

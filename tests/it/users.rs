//! `hearth user ...` through the real binary: on a stopped server's data dir, and through a
//! running server with an admin token; plus the admin API's account routes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, hearth_cli, http, http_get};

/// Runs `hearth args...` on `data_dir`, with `stdin` fed in; (success, stdout, stderr).
async fn hearth(args: &[&str], data_dir: &std::path::Path, stdin: &str) -> (bool, String, String) {
    let run = hearth_cli(args, data_dir, stdin).await;
    (run.ok, run.stdout, run.stderr)
}

async fn login(base: &str, name: &str, password: &str) -> (u16, Value) {
    let body = json!({"username": name, "password": password});
    http(Method::POST, &format!("{base}/v1/login"), None, Some(body)).await
}

async fn get(base: &str, path: &str, token: &str) -> u16 {
    http_get(&format!("{base}{path}"), token).await.0
}

#[tokio::test]
async fn offline_commands_prepare_a_data_dir_the_server_then_honours() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = hearth(
        &["user", "create", "olga", "--password-stdin"],
        dir.path(),
        "a long secret\n",
    )
    .await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = hearth(&["user", "create", "pete"], dir.path(), "").await;
    assert!(ok, "{err}");
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password is printed")
        .to_owned();
    let (ok, _, err) = hearth(&["user", "create", "olga"], dir.path(), "").await;
    assert!(!ok);
    assert!(err.contains("username taken"), "{err}");
    let (ok, _, err) = hearth(&["user", "create", "Bad Name"], dir.path(), "").await;
    assert!(!ok, "{err}");
    assert!(
        hearth(&["user", "grant-admin", "olga"], dir.path(), "")
            .await
            .0
    );
    assert!(hearth(&["user", "disable", "pete"], dir.path(), "").await.0);
    let (ok, _, err) = hearth(&["user", "disable", "nobody"], dir.path(), "").await;
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");
    let (ok, list, _) = hearth(&["user", "list"], dir.path(), "").await;
    assert!(ok);
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(
        (rows[0][0], rows[0][2], rows[0][3]),
        ("olga", "false", "true")
    );
    assert_eq!(
        (rows[1][0], rows[1][2], rows[1][3]),
        ("pete", "true", "false")
    );

    // A server on that data dir: olga signs in and is an admin; pete is disabled.
    let mut config = hearth::Config::defaults(dir.path());
    config.logins_per_ip = 1000;
    let server = TestServer::start_in(dir, config).await;
    let base = format!("http://{}", server.addr);
    let (status, body) = login(&base, "olga", "a long secret").await;
    assert_eq!(status, 200, "{body}");
    let olga = body["token"].as_str().unwrap().to_owned();
    assert_eq!(get(&base, "/v1/admin/stats", &olga).await, 200);
    let (status, body) = login(&base, "pete", &generated).await;
    assert_eq!(status, 401, "{body}");

    // While it runs, the data dir is refused: the command says to go through the server.
    let (ok, _, err) = hearth(&["user", "list"], server.dir.path(), "").await;
    assert!(!ok);
    assert!(err.contains("--url"), "{err}");
    let url = base.clone();
    let (ok, list, err) = hearth(
        &["user", "list", "--url", &url, "--token", &olga],
        server.dir.path(),
        "",
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        list.contains("pete\t") && list.contains("\ttrue\tfalse"),
        "{list}"
    );
}

#[tokio::test]
async fn online_commands_reset_passwords_disable_and_grant_through_the_server() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let base = format!("http://{}", server.addr);
    let (_boss_ws, boss) = server.named_user("boss").await;
    let (mut ann_ws, ann) = server.named_user("ann").await;
    let run = |args: Vec<String>, stdin: &'static str| {
        let dir = server.dir.path().to_owned();
        let (base, boss) = (base.clone(), boss.clone());
        async move {
            let mut all: Vec<String> = args;
            all.extend(["--url".into(), base, "--token".into(), boss]);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            hearth(&refs, &dir, stdin).await
        }
    };

    // Not for non-admins.
    let (ok, _, err) = hearth(
        &["user", "list", "--url", &base, "--token", &ann],
        server.dir.path(),
        "",
    )
    .await;
    assert!(!ok);
    assert!(err.contains("403"), "{err}");

    // Create, then reset ann's password: her token and socket go, the old password too.
    let (ok, _, err) = run(
        vec![
            "user".into(),
            "create".into(),
            "cleo".into(),
            "--password-stdin".into(),
        ],
        "cleo's password\n",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(login(&base, "cleo", "cleo's password").await.0, 200);
    let (ok, out, err) = run(
        vec![
            "user".into(),
            "reset-password".into(),
            "ann".into(),
            "--password-stdin".into(),
        ],
        "brand new password\n",
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("1 sessions revoked"), "{out}");
    let pushed = ann_ws.next_push().await;
    assert_error(&pushed, "invalid_token");
    assert_eq!(get(&base, "/v1/me", &ann).await, 401);
    assert_eq!(login(&base, "ann", "correct horse").await.0, 401);
    let (status, body) = login(&base, "ann", "brand new password").await;
    assert_eq!(status, 200);
    let ann = body["token"].as_str().unwrap().to_owned();

    // Grant and withdraw admin; boss (ADMIN_USERS) stays whatever happens.
    assert_eq!(get(&base, "/v1/admin/stats", &ann).await, 403);
    assert!(
        run(vec!["user".into(), "grant-admin".into(), "ann".into()], "")
            .await
            .0
    );
    assert_eq!(get(&base, "/v1/admin/stats", &ann).await, 200);
    assert!(
        run(vec!["user".into(), "revoke-admin".into(), "ann".into()], "")
            .await
            .0
    );
    assert_eq!(get(&base, "/v1/admin/stats", &ann).await, 403);
    assert!(
        run(
            vec!["user".into(), "revoke-admin".into(), "boss".into()],
            ""
        )
        .await
        .0
    );
    assert_eq!(get(&base, "/v1/admin/stats", &boss).await, 200);

    // Disable closes her sockets at once; enable lets her back in.
    let mut ann_ws2 = server.client().await;
    let r = ann_ws2.request(json!({"type": "auth", "token": ann})).await;
    assert_eq!(r["type"], "auth", "{r}");
    assert!(
        run(vec!["user".into(), "disable".into(), "ann".into()], "")
            .await
            .0
    );
    assert_eq!(ann_ws2.closed_with().await, 4003);
    assert_eq!(get(&base, "/v1/me", &ann).await, 401);
    assert!(
        run(vec!["user".into(), "enable".into(), "ann".into()], "")
            .await
            .0
    );
    assert_eq!(get(&base, "/v1/me", &ann).await, 200);
}

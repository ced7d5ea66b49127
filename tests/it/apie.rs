//! Apie's README examples (seed 002), run verbatim with curl, adding only `--user` (Apie
//! authenticates every request with HTTP Basic) and this server's address. And what Basic
//! must not allow: a wrong password, an old password after a reset, a disabled account.

use serde_json::{Value, json};

use crate::common::TestServer;

/// Runs curl with `args` (`{url}` replaced by the server's address), in `dir`.
async fn curl(dir: &std::path::Path, base: &str, args: &[&str]) -> (bool, Vec<u8>) {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("http://localhost:8000", base))
        .collect();
    let out = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail-with-body"])
        .args(&args)
        .current_dir(dir)
        .output()
        .await
        .expect("curl runs");
    (out.status.success(), out.stdout)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

#[tokio::test]
async fn apies_readme_examples_run_with_basic_auth() {
    let server = TestServer::start().await;
    server.named_user("ann").await; // password "correct horse"
    let base = format!("http://{}", server.addr);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("event.json"),
        br#"{"type": "todo-added", "title": "milk"}"#,
    )
    .unwrap();
    let with_user = |cmd: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["--user", "ann:correct horse"];
        v.extend_from_slice(cmd);
        v
    };

    // Event store.
    let (ok, out) = curl(
        dir.path(),
        &base,
        &with_user(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data",
            "@event.json",
            "http://localhost:8000/events",
        ]),
    )
    .await;
    assert!(ok, "{}", String::from_utf8_lossy(&out));
    let first = json_of(&out);
    assert_eq!(first["seq"], 1);
    std::fs::write(
        dir.path().join("event.json"),
        br#"{"type": "todo-done", "title": "milk"}"#,
    )
    .unwrap();
    let (_, out) = curl(
        dir.path(),
        &base,
        &with_user(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data",
            "@event.json",
            "http://localhost:8000/events",
        ]),
    )
    .await;
    let second = json_of(&out);
    let (id1, id2) = (
        first["id"].as_str().unwrap().to_owned(),
        second["id"].as_str().unwrap().to_owned(),
    );

    let (ok, out) = curl(
        dir.path(),
        &base,
        &with_user(&["http://localhost:8000/events"]),
    )
    .await;
    assert!(ok);
    let all = json_of(&out);
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    assert_eq!(
        all[0]["event"],
        json!({"type": "todo-added", "title": "milk"})
    );
    assert_eq!(all[1]["id"], id2.as_str());

    let from = format!("http://localhost:8000/events?from={id1}");
    let from: &'static str = Box::leak(from.into_boxed_str());
    let (_, out) = curl(dir.path(), &base, &with_user(&[from])).await;
    let after = json_of(&out);
    assert_eq!(after.as_array().unwrap().len(), 1);
    assert_eq!(after[0]["id"], id2.as_str());

    let to = format!("http://localhost:8000/events?to={id1}");
    let to: &'static str = Box::leak(to.into_boxed_str());
    let (_, out) = curl(dir.path(), &base, &with_user(&[to])).await;
    let upto = json_of(&out);
    assert_eq!(upto.as_array().unwrap().len(), 1);
    assert_eq!(upto[0]["id"], id1.as_str());

    let one = format!("http://localhost:8000/events/{id1}");
    let one: &'static str = Box::leak(one.into_boxed_str());
    let (ok, out) = curl(dir.path(), &base, &with_user(&[one])).await;
    assert!(ok);
    assert_eq!(json_of(&out)["event"]["type"], "todo-added");

    // Content store: `-T` with a trailing slash, as the README writes it.
    let pdf = b"%PDF-1.4 not really a pdf, but bytes all the same".repeat(100);
    std::fs::write(dir.path().join("test.pdf"), &pdf).unwrap();
    let (ok, out) = curl(
        dir.path(),
        &base,
        &with_user(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/pdf",
            "-T",
            "test.pdf",
            "http://localhost:8000/storage/",
        ]),
    )
    .await;
    assert!(ok, "{}", String::from_utf8_lossy(&out));
    let blob = json_of(&out);
    let sha = blob["sha256"].as_str().unwrap().to_owned();
    assert_eq!(blob["contentType"], "application/pdf");
    let get = format!("http://localhost:8000/storage/{sha}");
    let get: &'static str = Box::leak(get.into_boxed_str());
    let (ok, _) = curl(
        dir.path(),
        &base,
        &with_user(&["-X", "GET", get, "--output", "back.pdf"]),
    )
    .await;
    assert!(ok);
    assert_eq!(std::fs::read(dir.path().join("back.pdf")).unwrap(), pdf);
    let (ok, _) = curl(dir.path(), &base, &with_user(&["-X", "DELETE", get])).await;
    assert!(ok);
    let (ok, _) = curl(
        dir.path(),
        &base,
        &with_user(&["-X", "GET", get, "--output", "gone.pdf"]),
    )
    .await;
    assert!(!ok, "deleted");

    // The same events through the Hearth routes: /events is the stream `ann/~events`.
    let (_, r) = crate::common::http(
        reqwest::Method::GET,
        &format!("{base}/v1/users/ann/streams/events"),
        Some(&login(&base).await),
        None,
    )
    .await;
    assert_eq!(r["events"].as_array().map(Vec::len), Some(2), "{r}");
}

async fn login(base: &str) -> String {
    let (_, r) = crate::common::http(
        reqwest::Method::POST,
        &format!("{base}/v1/login"),
        None,
        Some(json!({"username": "ann", "password": "correct horse"})),
    )
    .await;
    r["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn basic_credentials_end_with_the_password_and_the_account() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    server.named_user("ann").await;
    let (_boss, boss) = server.named_user("boss").await;
    let base = format!("http://{}", server.addr);
    let get = |user: &'static str, pass: &'static str| {
        let base = base.clone();
        async move {
            let resp = reqwest::Client::new()
                .get(format!("{base}/events"))
                .basic_auth(user, Some(pass))
                .send()
                .await
                .unwrap();
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), challenge)
        }
    };
    assert_eq!(get("ann", "correct horse").await, (200, None));
    assert_eq!(get("ann", "correct horse").await.0, 200, "remembered");
    let (status, challenge) = get("ann", "wrong horse").await;
    assert_eq!(
        (status, challenge.as_deref()),
        (401, Some("Basic realm=\"hearth\""))
    );
    assert_eq!(get("nobody", "correct horse").await.0, 401);
    // No credentials at all: asked for them.
    let resp = reqwest::get(format!("{base}/events")).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));

    // A reset ends the remembered credential at once, not when the cache forgets it.
    let (status, _) = crate::common::http(
        reqwest::Method::POST,
        &format!("{base}/v1/admin/users/ann/password"),
        Some(&boss),
        Some(json!({"password": "battery staple"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(get("ann", "correct horse").await.0, 401);
    assert_eq!(get("ann", "battery staple").await.0, 200);
    // So does disabling the account.
    let (status, _) = crate::common::http(
        reqwest::Method::POST,
        &format!("{base}/v1/admin/users/ann/disable"),
        Some(&boss),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(get("ann", "battery staple").await.0, 401);
}

/// Guessing through Basic counts against the login limits like any login; a credential
/// remembered before the guessing still works (it costs no login), so a guesser cannot
/// lock the owner's app out.
#[tokio::test]
async fn guessing_through_basic_is_rate_limited_but_the_owner_goes_on() {
    let server = TestServer::start_with(|c| c.logins_per_ip_user = 3).await;
    server.named_user("ann").await;
    let url = format!("http://{}/events", server.addr);
    let get = |pass: String| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .get(&url)
                .basic_auth("ann", Some(pass))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get("correct horse".into()).await, 200);
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(get(format!("guess {i}")).await);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(
        get("correct horse".into()).await,
        200,
        "remembered: no login needed"
    );
}

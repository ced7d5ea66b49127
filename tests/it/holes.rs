//! The holes issue 25 found by trying Hearth as an attacker and a careless user would, each
//! over real sockets: access lists, reserved admin names, tokens of missing accounts, expiring
//! tokens, login lock-outs, proxies, and the shape of every REST error.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, http, http_get};

fn base(server: &TestServer) -> String {
    format!("http://{}", server.addr)
}

/// Point 1: an access list naming an account that does not exist is refused, naming it, and
/// nothing changes; whoever signs up under that name later gets nothing.
#[tokio::test]
async fn access_lists_name_existing_accounts_only() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.named_user("ann").await;
    server.named_user("bob").await;
    let reply = ann
        .request(json!({"type": "update", "data": {"metadata": {"version": 0,
            "collaborators": ["bob", "typo-friend-92157"], "readers": ["nobody-yet"]}}}))
        .await;
    assert_error(&reply, "unknown_users");
    assert_eq!(reply["users"], json!(["typo-friend-92157", "nobody-yet"]));
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("typo-friend-92157")
    );
    let doc = ann.request(json!({"type": "fetch"})).await;
    assert_eq!(doc["version"], 0, "nothing changed");
    assert_eq!(doc["data"]["metadata"]["collaborators"], json!([]));

    // The squatter arrives later and finds nothing to read.
    let (mut typo, _) = server.named_user("typo-friend-92157").await;
    let denied = typo
        .request(json!({"type": "fetch", "target": "ann"}))
        .await;
    assert_error(&denied, "unauthorized");

    // Existing names are accepted.
    let ok = ann
        .request(json!({"type": "update", "data": {"metadata": {"version": 0,
            "collaborators": ["bob"]}}}))
        .await;
    assert_eq!(ok["type"], "version", "{ok}");
}

/// Point 3: a name in ADMIN_USERS cannot be claimed by signing up; `hearth user create`
/// (here its admin API twin's store call) makes it, and then it is an admin.
#[tokio::test]
async fn admin_names_are_reserved_until_created() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let mut c = server.client().await;
    let reply = c
        .request(json!({"type": "signup", "username": "boss", "password": "correct horse"}))
        .await;
    assert_error(&reply, "username_taken");
    let (status, body) = http(
        Method::POST,
        &format!("{}/v1/signup", base(&server)),
        None,
        Some(json!({"username": "boss", "password": "correct horse"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("username_taken"))
    );

    let state = server.state();
    hearth::accounts::create(&state.store, &state.auth, "boss", "correct horse".into())
        .await
        .unwrap();
    let (status, body) = http(
        Method::POST,
        &format!("{}/v1/login", base(&server)),
        None,
        Some(json!({"username": "boss", "password": "correct horse"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let (status, _) = http_get(&format!("{}/v1/admin/stats", base(&server)), token).await;
    assert_eq!(status, 200, "the created account is the admin");
}

/// Point 4: a validly signed token whose account does not exist here is refused by REST as
/// it is by the WebSocket.
#[tokio::test]
async fn tokens_of_missing_accounts_are_refused_everywhere() {
    let server = TestServer::start().await;
    let (token, _) = server
        .state()
        .auth
        .tokens
        .issue("ghost", hearth::store::Scope::Full)
        .unwrap();
    let (status, body) = http_get(&format!("{}/v1/me", base(&server)), &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let mut c = server.client().await;
    assert_error(
        &c.request(json!({"type": "auth", "token": token})).await,
        "invalid_token",
    );
}

/// Point 5: at expiry a socket is told (`invalid_token`, "token expired") and signed out, so
/// its watch stops; an SSE stream ends; `refresh` renews before that.
#[tokio::test]
async fn an_expiring_token_ends_what_it_opened() {
    let server = TestServer::start_with(|c| c.token_ttl = 3).await;
    let (mut ann, ann_token) = server.named_user("ann").await;
    let (mut bob, bob_token) = server.named_user("bob").await;
    let share = ann
        .request(
            json!({"type": "update", "data": {"metadata": {"version": 0, "readers": ["bob"]}}}),
        )
        .await;
    assert_eq!(share["type"], "version");
    let watch = bob.request(json!({"type": "watch", "target": "ann"})).await;
    assert_eq!(watch["type"], "data", "{watch}");
    let mut sse = crate::common::Sse::open(
        &format!("{}/v1/users/ann/events", base(&server)),
        &bob_token,
        None,
    )
    .await;
    assert!(sse.next().await.is_some(), "the opening snapshot");

    // ann keeps her session alive by refreshing; bob does not.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let renewed = ann.request(json!({"type": "refresh"})).await;
    assert_eq!(renewed["type"], "auth", "{renewed}");
    let new_token = renewed["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, ann_token);

    let pushed = tokio::time::timeout(Duration::from_secs(5), bob.next_push())
        .await
        .expect("bob is told his token expired");
    assert_error(&pushed, "invalid_token");
    assert_eq!(pushed["detail"], "token expired");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while sse.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the SSE stream ended at expiry");

    // ann's socket is still signed in past her first token's expiry; her write reaches no
    // one on bob's ended watch.
    let write = ann
        .request(json!({"type": "update", "patch": true,
            "data": {"metadata": {"version": 1}, "userdata": {"a": 1}}}))
        .await;
    assert_eq!(write["type"], "version", "{write}");

    // REST: the refreshed token works, and POST /v1/refresh renews again.
    let (status, body) = http(
        Method::POST,
        &format!("{}/v1/refresh", base(&server)),
        Some(&new_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, me) = http_get(
        &format!("{}/v1/me", base(&server)),
        body["token"].as_str().unwrap(),
    )
    .await;
    assert_eq!((status, me["username"].as_str()), (200, Some("ann")));
    assert_eq!(me["session"], renewed_sid(&new_token), "the same session");

    assert!(
        bob.quiet_for(Duration::from_millis(300)).await,
        "no change after expiry"
    );
    assert_error(
        &bob.request(json!({"type": "fetch"})).await,
        "auth_required",
    );
}

fn renewed_sid(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["sid"].clone()
}

/// Points 6 and 7: wrong passwords from one address lock out that address, for that name,
/// not the owner at another; and behind a trusted proxy the forwarded address is the one
/// limited, while without one the header is ignored.
#[tokio::test]
async fn guessing_from_one_address_does_not_lock_the_owner_out() {
    let server = TestServer::start_with(|c| {
        c.logins_per_ip = 60;
        c.logins_per_ip_user = 10;
        c.logins_per_user = 100;
        c.trusted_proxies = hearth::proxies::parse("127.0.0.1").unwrap();
    })
    .await;
    server.named_user("ann").await;
    let login = |from: &'static str, password: &'static str| {
        let url = format!("{}/v1/login", base(&server));
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("x-forwarded-for", from)
                .json(&json!({"username": "ann", "password": password}))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    for _ in 0..10 {
        assert_eq!(login("203.0.113.66", "wrong guess").await, 401);
    }
    assert_eq!(
        login("203.0.113.66", "correct horse").await,
        429,
        "the guessing address is held back"
    );
    assert_eq!(
        login("198.51.100.7", "correct horse").await,
        200,
        "the owner, elsewhere, is not"
    );
}

#[tokio::test]
async fn forwarded_headers_are_ignored_without_a_trusted_proxy() {
    let server = TestServer::start_with(|c| {
        c.logins_per_ip_user = 3;
    })
    .await;
    server.named_user("ann").await;
    for i in 0..3 {
        let status = reqwest::Client::new()
            .post(format!("{}/v1/login", base(&server)))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"username": "ann", "password": "wrong guess"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    let status = reqwest::Client::new()
        .post(format!("{}/v1/login", base(&server)))
        .header("x-forwarded-for", "198.51.100.9")
        .json(&json!({"username": "ann", "password": "correct horse"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 429, "a client cannot pick its own address");
}

/// Point 11: errors made by the framework rather than a handler are `{code, message}` JSON
/// too, and an empty last path segment is refused like an empty middle one.
#[tokio::test]
async fn every_rest_error_is_json() {
    let server = TestServer::start().await;
    let (_, token) = server.named_user("ann").await;
    let send = |method: Method, path: &str, body: Option<&str>| {
        let url = format!("{}{path}", base(&server));
        let token = token.clone();
        let body = body.map(str::to_owned);
        async move {
            let mut request = reqwest::Client::new()
                .request(method, url)
                .bearer_auth(token);
            if let Some(body) = body {
                request = request.body(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let kind = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, kind, body)
        }
    };
    let cases = [
        (
            Method::GET,
            "/v1/users/ann/changes?limit=lots",
            None,
            400,
            "bad_request",
        ),
        (
            Method::GET,
            "/v1/users/ann/keys?offset=-1",
            None,
            400,
            "bad_request",
        ),
        (
            Method::DELETE,
            "/v1/signup",
            None,
            405,
            "method_not_allowed",
        ),
        (Method::PATCH, "/v1/me", None, 405, "method_not_allowed"),
        (
            Method::PUT,
            "/v1/users/ann/data/a/",
            Some("1"),
            400,
            "bad_request",
        ),
        (
            Method::PUT,
            "/v1/users/ann/data/a//b",
            Some("1"),
            400,
            "bad_request",
        ),
        (
            Method::GET,
            "/v1/users/ann/data/%FF%FE",
            None,
            400,
            "bad_request",
        ),
        (Method::GET, "/no/such/route", None, 404, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let (got, kind, answer) = send(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert_eq!(kind.as_deref(), Some("application/json"), "{method} {path}");
        assert_eq!(answer["code"], code, "{method} {path}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: {answer}"
        );
    }
}

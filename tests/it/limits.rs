//! Abuse limits: connections per address and per user, request and signup/login rates,
//! slow consumers, idle sockets.

use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, assert_error, client_from};

#[tokio::test]
async fn connections_per_address_are_capped_and_other_addresses_unaffected() {
    let server = TestServer::start_with(|c| c.max_connections_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            client_from(&server, "127.0.0.1")
                .await
                .expect("within the limit"),
        );
    }
    let refused = client_from(&server, "127.0.0.1")
        .await
        .err()
        .expect("fourth is refused");
    assert!(refused.contains("429"), "{refused}");
    let mut other = client_from(&server, "127.0.0.2")
        .await
        .expect("another address");
    assert_eq!(
        other.request(json!({"type": "signup"})).await["type"],
        "auth"
    );
    // Closing one frees its slot.
    held.pop().unwrap().close().await;
    let mut again = None;
    for _ in 0..50 {
        if let Ok(c) = client_from(&server, "127.0.0.1").await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a freed slot can be used again");
}

#[tokio::test]
async fn connections_per_user_are_capped() {
    let server = TestServer::start_with(|c| c.max_connections_per_user = 2).await;
    let (first, _, token) = server.user().await;
    let mut second = server.client().await;
    assert_eq!(
        second
            .request(json!({"type": "auth", "token": token}))
            .await["type"],
        "auth"
    );
    let mut third = server.client().await;
    assert_error(
        &third.request(json!({"type": "auth", "token": token})).await,
        "too_many_connections",
    );
    assert_error(
        &third.request(json!({"type": "fetch"})).await,
        "auth_required",
    );
    // Re-authenticating on a socket that already counts does not count twice.
    assert_eq!(
        second
            .request(json!({"type": "auth", "token": token}))
            .await["type"],
        "auth"
    );
    first.close().await;
    let mut ok = false;
    for _ in 0..50 {
        if third.request(json!({"type": "auth", "token": token})).await["type"] == "auth" {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a closed socket frees its user slot");
}

#[tokio::test]
async fn requests_per_connection_are_rate_limited() {
    let server = TestServer::start_with(|c| c.max_requests_per_second = 5).await;
    let (mut c, _, token) = server.user().await;
    let mut limited = 0;
    for _ in 0..30 {
        let r = c.request(json!({"type": "fetch"})).await;
        if r["type"] == "error" {
            assert_error(&r, "rate_limited");
            assert!(r["retryAfter"].as_u64().unwrap() >= 1);
            limited += 1;
        }
    }
    assert!(limited >= 15, "only {limited} of 30 limited");
    // Another connection of the same user has its own budget.
    let mut other = server.client().await;
    assert_eq!(
        other.request(json!({"type": "auth", "token": token})).await["type"],
        "auth"
    );
    assert_eq!(
        other.request(json!({"type": "fetch"})).await["type"],
        "data"
    );
}

#[tokio::test]
async fn signup_and_login_rates_per_address_and_username() {
    let server = TestServer::start_with(|c| {
        c.signups_per_ip = 3;
        c.logins_per_ip = 100;
        c.logins_per_user = 2;
    })
    .await;
    let mut a = client_from(&server, "127.0.0.1").await.unwrap();
    assert_eq!(
        a.request(json!({"type": "signup", "username": "ann", "password": "correct horse"}))
            .await["type"],
        "auth"
    );
    for _ in 0..2 {
        assert_eq!(a.request(json!({"type": "signup"})).await["type"], "auth");
    }
    let limited = a.request(json!({"type": "signup"})).await;
    assert_error(&limited, "rate_limited");
    // Over HTTP too, with Retry-After.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{}/v1/signup", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["code"],
        "rate_limited"
    );
    // Another address is unaffected.
    let mut b = client_from(&server, "127.0.0.2").await.unwrap();
    assert_eq!(b.request(json!({"type": "signup"})).await["type"], "auth");

    // Logins for one username are limited wherever they come from.
    for _ in 0..2 {
        let r = b
            .request(json!({"type": "login", "username": "ann", "password": "wrong wrong"}))
            .await;
        assert_error(&r, "invalid_credentials");
    }
    let mut c = client_from(&server, "127.0.0.3").await.unwrap();
    let r = c
        .request(json!({"type": "login", "username": "ann", "password": "correct horse"}))
        .await;
    assert_error(&r, "rate_limited");
    // Other usernames are not.
    assert_eq!(
        c.request(json!({"type": "signup", "username": "bob", "password": "correct horse"}))
            .await["type"],
        "auth"
    );
    assert_eq!(
        c.request(json!({"type": "login", "username": "bob", "password": "correct horse"}))
            .await["type"],
        "auth"
    );
}

/// One watcher stops reading. It is closed with 4008; the other watcher of the same document
/// still gets every version, in order, promptly. (Writers are not slowed by the fanout, so
/// the buffer holds all 150 versions: a healthy watcher that falls behind on a busy machine
/// would rightly be resynced, which is not what this test is about.)
#[tokio::test]
async fn a_slow_consumer_is_closed_and_others_are_unaffected() {
    let server = TestServer::start_with(|c| {
        c.outbound_buffer = 64 * 1024;
        c.slow_consumer_timeout = 300;
        c.watch_buffer = 256;
    })
    .await;
    let (mut owner, _, token) = server.user().await;
    let mut slow = server.client().await;
    slow.request(json!({"type": "auth", "token": token})).await;
    slow.request(json!({"type": "watch"})).await;
    let mut fast = server.client().await;
    fast.request(json!({"type": "auth", "token": token})).await;
    fast.request(json!({"type": "watch"})).await;

    let reader = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        for v in 1..=150u64 {
            let change = fast.next_push().await;
            assert_eq!(change["version"], v, "{change}");
            assert!(change.get("resync").is_none());
        }
        started.elapsed()
    });
    // The slow one reads nothing until the server has given up on it, then drains what it
    // was left. Waiting on the server's count rather than a fixed sleep: the server sends its
    // close frame for a bounded time only (close handshake, then `CLOSE_FLUSH`), and on a
    // slow store the updates alone can outlast a fixed sleep.
    let addr = server.addr;
    let slow = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = reqwest::get(format!("http://{addr}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if text
                .lines()
                .any(|l| l.starts_with("hearth_slow_consumer_closes_total") && !l.ends_with(" 0"))
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the slow consumer was never closed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        slow.closed_with().await
    });
    let pad = "x".repeat(60 * 1024);
    for v in 0..150u64 {
        let r = owner
            .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": v}, "userdata": {"pad": pad, "v": v}}}))
            .await;
        assert_eq!(r["version"], v + 1);
    }
    let took = reader.await.unwrap();
    assert!(
        took < Duration::from_secs(10),
        "the healthy watcher kept up: {took:?}"
    );
    assert_eq!(slow.await.unwrap(), 4008);
}

#[tokio::test]
async fn silent_sockets_are_reaped_and_live_ones_kept() {
    let server = TestServer::start_with(|c| {
        c.ping_interval = 100;
        c.idle_timeout = 400;
    })
    .await;
    let mut silent = crate::common::RawWs::connect(&server).await;
    let mut live = server.client().await;
    // `live` keeps reading, so it answers pings; `silent` never answers.
    assert!(
        live.idle_for(Duration::from_millis(1200)).await,
        "a socket that answers pings stays open"
    );
    assert_eq!(
        live.request(json!({"type": "signup"})).await["type"],
        "auth"
    );
    assert_eq!(silent.close_code().await, Some(4009));
}

//! signup, login, auth, logout.

use std::collections::HashSet;

use serde_json::json;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn generated_signup_creates_version_zero_document() {
    let server = TestServer::start().await;
    let (mut c, name, token) = server.user().await;
    let parts: Vec<&str> = name.split('-').collect();
    assert_eq!(parts.len(), 3, "{name}");
    assert!(parts[2].parse::<u16>().is_ok(), "{name}");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let data = c.request(json!({"type": "fetch"})).await;
    assert_eq!(data["type"], "data");
    assert_eq!(data["username"], name.as_str());
    assert_eq!(data["version"], 0);
    let meta = &data["data"]["metadata"];
    assert_eq!(meta["username"], name.as_str());
    assert_eq!(meta["version"], 0);
    assert_eq!(meta["collaborators"], json!([]));
    assert_eq!(meta["readers"], json!([]));
    assert!(meta["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(meta["lastUpdate"]["by"], name.as_str());
    assert_eq!(data["data"]["userdata"], json!({}));
}

#[tokio::test]
async fn password_signup_login_and_auth() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let reply = c
        .request(json!({"type": "signup", "username": "ann", "password": "correct horse"}))
        .await;
    assert_eq!(reply["type"], "auth");
    assert_eq!(reply["username"], "ann");

    let mut again = server.client().await;
    let taken = again
        .request(json!({"type": "signup", "username": "ann", "password": "another one"}))
        .await;
    assert_error(&taken, "username_taken");

    let wrong = again
        .request(json!({"type": "login", "username": "ann", "password": "wrong horse"}))
        .await;
    assert_error(&wrong, "invalid_credentials");
    let unknown = again
        .request(json!({"type": "login", "username": "nobody", "password": "whatever1"}))
        .await;
    assert_error(&unknown, "invalid_credentials");
    assert_eq!(
        wrong["message"], unknown["message"],
        "same answer either way"
    );

    let ok = again
        .request(json!({"type": "login", "username": "ann", "password": "correct horse"}))
        .await;
    assert_eq!(ok["type"], "auth");
    let token = ok["token"].as_str().unwrap().to_owned();
    assert_eq!(
        again.request(json!({"type": "fetch"})).await["username"],
        "ann"
    );

    let mut third = server.client().await;
    let authed = third.request(json!({"type": "auth", "token": token})).await;
    assert_eq!(authed["type"], "auth");
    assert_eq!(authed["username"], "ann");
    assert_eq!(authed["token"], token.as_str());
    assert_eq!(
        third.request(json!({"type": "fetch"})).await["username"],
        "ann"
    );
}

#[tokio::test]
async fn usernames_and_passwords_are_validated() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for bad in [
        "ab",
        "Ann",
        "ann smith",
        "ann/../x",
        "ännä",
        "admin",
        &"a".repeat(33),
        "",
    ] {
        let reply = c
            .request(json!({"type": "signup", "username": bad, "password": "long enough"}))
            .await;
        assert_error(&reply, "bad_request");
        assert!(
            reply["message"].as_str().unwrap().contains("usernames are")
                || reply["message"].as_str().unwrap().contains("reserved"),
            "{reply}"
        );
    }
    let short = c
        .request(json!({"type": "signup", "username": "bob", "password": "short"}))
        .await;
    assert_error(&short, "bad_request");
}

#[tokio::test]
async fn bad_tokens_are_answered_with_invalid_token() {
    let server = TestServer::start().await;
    let (_, name, token) = server.user().await;
    let mut c = server.client().await;
    let forged = {
        let other = TestServer::start().await;
        let (_, _, t) = other.user().await;
        t
    };
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        "garbage".to_owned(),
        forged,
        tampered,
        format!("eyJhbGciOiJub25lIn0.{}.", token.split('.').nth(1).unwrap()),
    ] {
        assert_error(
            &c.request(json!({"type": "auth", "token": bad})).await,
            "invalid_token",
        );
    }
    assert_error(&c.request(json!({"type": "fetch"})).await, "auth_required");
    let good = c.request(json!({"type": "auth", "token": token})).await;
    assert_eq!(good["username"], name.as_str());
}

#[tokio::test]
async fn logout_revokes_the_token_on_every_socket() {
    let server = TestServer::start().await;
    let (mut first, token) = server.named_user("ann").await;
    // Another session of the same user, with its own token, on its own socket.
    let mut other_session = server.client().await;
    let other = other_session
        .request(json!({"type": "login", "username": "ann", "password": "correct horse"}))
        .await;
    assert_eq!(other["type"], "auth");
    let mut second = server.client().await;
    assert_eq!(
        second
            .request(json!({"type": "auth", "token": token}))
            .await["type"],
        "auth"
    );
    second.request(json!({"type": "watch"})).await;

    let reply = first.request(json!({"type": "logout"})).await;
    assert_eq!(reply["type"], "logout");
    assert_error(
        &first.request(json!({"type": "fetch"})).await,
        "auth_required",
    );

    // The other socket is told, and is signed out.
    let told = second.next_push().await;
    assert_error(&told, "invalid_token");
    assert_eq!(told["detail"], "token revoked");
    assert_error(
        &second.request(json!({"type": "fetch"})).await,
        "auth_required",
    );

    // The token is dead for new sockets too.
    let mut third = server.client().await;
    assert_error(
        &third.request(json!({"type": "auth", "token": token})).await,
        "invalid_token",
    );
    // The watch ended with the session (its forwarder is aborted, and goes at the output
    // thread's next turn).
    crate::common::eventually("the revoked session's watch ends", || {
        server.state().hub.watchers() == 0
    })
    .await;
    // The user's other session is unaffected.
    assert_eq!(
        other_session.request(json!({"type": "fetch"})).await["username"],
        "ann"
    );
    let mut fourth = server.client().await;
    assert_eq!(
        fourth
            .request(json!({"type": "auth", "token": other["token"]}))
            .await["type"],
        "auth"
    );
}

#[tokio::test]
async fn a_thousand_generated_signups_never_reuse_a_name() {
    let server = TestServer::start().await;
    let mut handles = Vec::new();
    for _ in 0..4 {
        let url = server.url();
        handles.push(tokio::spawn(async move {
            let mut c = crate::common::Client::connect(&url).await;
            let mut names = Vec::new();
            for _ in 0..250 {
                let reply = c.request(json!({"type": "signup"})).await;
                assert_eq!(reply["type"], "auth", "{reply}");
                names.push(reply["username"].as_str().unwrap().to_owned());
            }
            names
        }));
    }
    let mut all = HashSet::new();
    for h in handles {
        for name in h.await.unwrap() {
            assert!(all.insert(name.clone()), "{name} handed out twice");
        }
    }
    assert_eq!(all.len(), 1000);
}

//! personal-backend's tokens (`LEGACY_JWT_SECRET`): accepted on every surface for accounts
//! that exist, traded for an ordinary token by `auth`, refused otherwise.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use crate::common::{TestServer, assert_error, http_get};

/// `jwt.sign(name, secret)` as personal-backend 0.1.0 calls it: the bare name as payload.
fn seed_token(name: &str, secret: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(name)
    );
    let key = EncodingKey::from_secret(secret.as_bytes());
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{sig}")
}

#[tokio::test]
async fn seed_tokens_work_everywhere_for_existing_accounts_only() {
    let server = TestServer::start_with(|c| c.legacy_jwt_secret = Some("pb-secret".into())).await;
    let (_ann, _) = server.named_user("ann").await;
    let legacy = seed_token("ann", "pb-secret");
    let base = format!("http://{}", server.addr);

    // REST and SSE's surface: the caller is ann.
    let (status, me) = http_get(&format!("{base}/v1/me"), &legacy).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (200, Some("ann")),
        "{me}"
    );
    let (status, _) = http_get(&format!("{base}/v1/users/ann"), &legacy).await;
    assert_eq!(status, 200);

    // `auth` answers with an ordinary token to keep, which works too.
    let mut c = server.client().await;
    let auth = c.request(json!({"type": "auth", "token": legacy})).await;
    assert_eq!(auth["username"], "ann", "{auth}");
    let fresh = auth["token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, legacy);
    assert_eq!(c.request(json!({"type": "fetch"})).await["type"], "data");
    let (status, _) = http_get(&format!("{base}/v1/me"), &fresh).await;
    assert_eq!(status, 200);

    // Not for accounts that do not exist, nor signed with another secret, nor forged.
    let mut c = server.client().await;
    for bad in [
        seed_token("zed", "pb-secret"),
        seed_token("ann", "other"),
        seed_token("ann", "pb-secret").replace(".YW5u.", ".Ym9i."),
    ] {
        assert_error(
            &c.request(json!({"type": "auth", "token": bad})).await,
            "invalid_token",
        );
        let (status, _) = http_get(&format!("{base}/v1/me"), &bad).await;
        assert_eq!(status, 401);
    }

    // Logging out with one revokes that token (and only that one).
    let mut d = server.client().await;
    assert_eq!(
        d.request(json!({"type": "auth", "token": legacy})).await["type"],
        "auth"
    );
    let (status, _) = crate::common::http(
        reqwest::Method::POST,
        &format!("{base}/v1/logout"),
        Some(&legacy),
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status}");
    let (status, _) = http_get(&format!("{base}/v1/me"), &legacy).await;
    assert_eq!(status, 401);
    let (status, _) = http_get(&format!("{base}/v1/me"), &fresh).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn without_the_setting_seed_tokens_are_refused() {
    let server = TestServer::start().await;
    let (_ann, _) = server.named_user("ann").await;
    let mut c = server.client().await;
    assert_error(
        &c.request(json!({"type": "auth", "token": seed_token("ann", "")}))
            .await,
        "invalid_token",
    );
}

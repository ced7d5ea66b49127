//! personal-backend's tokens (`LEGACY_JWT_SECRET`), so that nobody is logged out by the move
//! to Hearth. The seed signed the bare username (`jwt.sign(username, JWT_SECRET)`: HS256, the
//! payload a string, not a claims object, and no expiry), so `jsonwebtoken`'s claims
//! decoding cannot read them; the signature is checked with its HMAC all the same.
//!
//! Such a token never expires and cannot be told from a copy, which is why this is off by
//! default and why `auth` with one answers with an ordinary token to keep instead. Each
//! legacy token gets a session id of its own (a hash of it), so logging out revokes it
//! alone; it is good for `TOKEN_TTL` at a time, counted from when it is checked.

use jsonwebtoken::{Algorithm, DecodingKey};
use sha2::{Digest, Sha256};

use super::tokens::Claims;
use crate::store::Scope;

/// Marks a legacy token's session id.
const SID_PREFIX: &str = "legacy-";

pub struct Legacy {
    key: DecodingKey,
}

impl Legacy {
    pub fn new(secret: &str) -> Legacy {
        Legacy {
            key: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// The claims of a good legacy token, valid for `ttl` seconds from `now`; `None` for
    /// anything else (another algorithm, a bad signature, a payload that is not a name).
    pub fn claims(&self, token: &str, now: u64, ttl: u64) -> Option<Claims> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = token.split('.');
        let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let head: serde_json::Value = serde_json::from_slice(&b64.decode(header).ok()?).ok()?;
        if head.get("alg")? != "HS256" {
            return None;
        }
        let message = &token[..header.len() + 1 + payload.len()];
        if !jsonwebtoken::crypto::verify(signature, message.as_bytes(), &self.key, Algorithm::HS256)
            .ok()?
        {
            return None;
        }
        let payload = String::from_utf8(b64.decode(payload).ok()?).ok()?;
        // jsonwebtoken (Node) signs a string as it is; a JSON string is taken too.
        let sub = match serde_json::from_str::<serde_json::Value>(&payload) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(_) => return None,
            Err(_) => payload,
        };
        let digest = format!("{:x}", Sha256::digest(token.as_bytes()));
        let sid = format!("{SID_PREFIX}{}", &digest[..24]);
        Some(Claims {
            sub,
            sid,
            iat: now,
            exp: now + ttl,
            scope: Scope::Full,
        })
    }
}

/// Whether a session came from a legacy token (`auth` then issues an ordinary one).
pub fn is_legacy(claims: &Claims) -> bool {
    claims.sid.starts_with(SID_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What personal-backend 0.1.0 hands out: `jwt.sign("ann", "s3cret")` (jsonwebtoken 7).
    fn seed_token(name: &str, secret: &str) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b64.encode(name.as_bytes());
        let message = format!("{head}.{body}");
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{message}.{sig}")
    }

    #[test]
    fn seed_tokens_are_read_and_nothing_else() {
        let legacy = Legacy::new("s3cret");
        let token = seed_token("ann", "s3cret");
        let c = legacy.claims(&token, 100, 60).expect("a good token");
        assert_eq!((c.sub.as_str(), c.exp), ("ann", 160));
        assert!(is_legacy(&c));
        // Another token has another session id.
        let other = legacy
            .claims(&seed_token("bob", "s3cret"), 100, 60)
            .unwrap();
        assert_ne!(c.sid, other.sid);
        assert!(
            legacy
                .claims(&seed_token("ann", "other"), 100, 60)
                .is_none()
        );
        let forged = token.replacen("YW5u", "Ym9i", 1); // payload "ann" → "bob"
        assert!(legacy.claims(&forged, 100, 60).is_none());
        let none = format!(
            "{}.YW5u.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                br#"{"alg":"none"}"#
            )
        );
        assert!(legacy.claims(&none, 100, 60).is_none());
        assert!(legacy.claims("a.b", 100, 60).is_none());
        assert!(legacy.claims("", 100, 60).is_none());
    }
}

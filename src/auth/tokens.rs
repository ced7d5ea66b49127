//! Session tokens: HS256 JWTs naming a user and a random session id (`sid`).
//!
//! A token proves who signed in and until when. Whether its session still stands (logout,
//! revocation) and whether its account may still sign in (disabled) are asked elsewhere
//! ([`super::Auth::verify`] puts the answers together).

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::store::Scope;
use crate::sys::{random_hex, unix_now};

/// Verified tokens remembered ([`Tokens::remember`]): about 300 bytes each.
const VERIFIED_TOKENS: u64 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
    /// Absent on full tokens, so they stay short.
    #[serde(default, skip_serializing_if = "Scope::is_full")]
    pub scope: Scope,
}

impl Claims {
    /// # Errors
    /// `Forbidden` for read-only tokens.
    pub fn can_write(&self) -> Result<(), Error> {
        match self.scope {
            Scope::Full => Ok(()),
            Scope::Read | Scope::Feed => Err(Error::Forbidden),
        }
    }
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens whose signature checked out and whose account exists, with their claims
    /// ([`Tokens::remember`]). Why: REST sends the token with every request, and decoding it
    /// (base64, HMAC, JSON) every time was a large share of a GET's cost.
    verified: moka::sync::Cache<Box<str>, Arc<Claims>>,
    ttl: u64,
}

impl Tokens {
    pub fn new(secret: &[u8], ttl: u64) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .build(),
            validation,
            ttl,
        }
    }

    /// A fresh token (and its claims) for `username`, with a new session id.
    ///
    /// # Errors
    /// `Internal` if signing fails, which HS256 with a valid key does not.
    pub fn issue(&self, username: &str, scope: Scope) -> Result<(String, Claims), Error> {
        self.sign(Claims {
            sub: username.to_owned(),
            sid: random_hex(16),
            iat: 0,
            exp: 0,
            scope,
        })
    }

    /// A fresh token for the session `claims` belongs to: same session id and scope, a new
    /// expiry `TOKEN_TTL` from now (`refresh`). Revoking the session ends both tokens.
    ///
    /// # Errors
    /// `Internal` if signing fails.
    pub fn reissue(&self, claims: &Claims) -> Result<(String, Claims), Error> {
        self.sign(claims.clone())
    }

    /// Signs `claims`, issued now and expiring `TOKEN_TTL` from now.
    fn sign(&self, mut claims: Claims) -> Result<(String, Claims), Error> {
        let now = unix_now();
        claims.iat = now;
        claims.exp = now + self.ttl;
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            Error::Internal
        })?;
        Ok((token, claims))
    }

    /// Seconds a token is good for (`TOKEN_TTL`).
    pub fn ttl(&self) -> u64 {
        self.ttl
    }

    /// How long a revocation made now must be kept: until every token of the session could
    /// have expired, including one refreshed a moment ago.
    pub fn revoked_until(&self, expires: u64) -> u64 {
        expires.max(unix_now() + self.ttl + self.validation.leeway)
    }

    /// Checks signature, algorithm (HS256 only) and expiry: nothing about the session or the
    /// account. The second value says whether the token was seen before
    /// ([`Tokens::remember`]).
    ///
    /// # Errors
    /// `InvalidToken`.
    pub fn decode(&self, token: &str) -> Result<(Arc<Claims>, bool), Error> {
        match self.verified.get(token) {
            // The same expiry rule as `validation` (exp plus leeway must not be past).
            Some(claims) if claims.exp.saturating_add(self.validation.leeway) >= unix_now() => {
                Ok((claims, true))
            }
            Some(_) => {
                self.verified.invalidate(token);
                Err(Error::InvalidToken)
            }
            None => {
                let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                    .map_err(|_| Error::InvalidToken)?;
                Ok((Arc::new(data.claims), false))
            }
        }
    }

    /// Remembers that `token`'s signature checked out and its account exists, so later
    /// requests skip both. Only the signature and the account's existence are remembered:
    /// expiry, revocation and disabled accounts are checked on every call, and deleting an
    /// account revokes its sessions, so nothing here can outlive a logout or a deletion.
    pub fn remember(&self, token: &str, claims: &Claims) {
        self.verified.insert(token.into(), Arc::new(claims.clone()));
    }

    #[cfg(test)]
    pub(super) fn remember_raw(&self, token: &str, claims: Claims) {
        self.verified.insert(token.into(), Arc::new(claims));
    }
}

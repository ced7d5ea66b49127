//! Who is signed in: tokens, passwords, the live sockets of each session, account flags.
//!
//! A token is an HS256 JWT carrying a random session id (`sid`, [`tokens`]). Logout puts the
//! sid in a revocation set (durable in the store, mirrored in [`sockets`]) and tells every
//! socket that authenticated with it, so a revoked token stops working everywhere at once,
//! not at `exp`. [`Auth`] holds one of each part; the few answers that need two parts
//! (is this token good? disable an account and close its sockets) live here.

pub mod basic;
pub mod flags;
pub mod legacy;
pub mod passwords;
pub mod secret;
pub mod seen;
pub mod sockets;
pub mod tokens;

pub use self::passwords::{MAX_PASSWORD, MIN_PASSWORD};
pub(crate) use self::secret::write_private;
pub use self::secret::{load_secret, random_secret};
pub use self::sockets::Control;
pub use self::tokens::Claims;

use crate::error::Error;

pub struct Auth {
    pub tokens: tokens::Tokens,
    pub passwords: passwords::Passwords,
    /// Shared with the store's publisher (`fanout/publisher.rs`), which exists before the
    /// secret does (in cluster mode the secret is read from the store it opens).
    pub sockets: std::sync::Arc<sockets::Sockets>,
    pub flags: flags::Flags,
    /// When each session was last used on this node (the admin's view of an account).
    pub seen: seen::Seen,
    /// HTTP Basic credentials verified lately (Apie's paths).
    pub basic: basic::BasicCache,
    /// personal-backend's tokens, accepted when `LEGACY_JWT_SECRET` is set.
    pub legacy: Option<legacy::Legacy>,
}

impl Auth {
    pub fn new(secret: &[u8], ttl: u64, admins: Vec<String>) -> Auth {
        Auth::with_sockets(secret, ttl, admins, std::sync::Arc::default())
    }

    pub fn with_sockets(
        secret: &[u8],
        ttl: u64,
        admins: Vec<String>,
        sockets: std::sync::Arc<sockets::Sockets>,
    ) -> Auth {
        Auth {
            tokens: tokens::Tokens::new(secret, ttl),
            passwords: passwords::Passwords::default(),
            sockets,
            flags: flags::Flags::new(admins),
            seen: seen::Seen::default(),
            basic: basic::BasicCache::default(),
            legacy: None,
        }
    }

    /// Checks signature, algorithm (HS256 only), expiry, revocation and the account's
    /// disabled flag. The second value says whether the token was seen before
    /// ([`tokens::Tokens::remember`]); a new one must still be checked against the store (its
    /// account may not exist) before it is remembered.
    ///
    /// # Errors
    /// `InvalidToken`.
    pub fn verify(&self, token: &str) -> Result<(Claims, bool), Error> {
        let (claims, known) = match self.tokens.decode(token) {
            Ok(decoded) => decoded,
            Err(e) => {
                let now = crate::sys::unix_now();
                let legacy = self
                    .legacy
                    .as_ref()
                    .and_then(|l| l.claims(token, now, self.tokens.ttl()));
                (std::sync::Arc::new(legacy.ok_or(e)?), false)
            }
        };
        if self.ended(&claims) {
            return Err(Error::InvalidToken);
        }
        self.seen.touch(&claims.sid);
        Ok((Claims::clone(&claims), known))
    }

    /// Whether a socket signed in as `claims` must be signed out now: its token expired, its
    /// session was revoked, or its account disabled.
    pub fn lapsed(&self, claims: &Claims) -> bool {
        claims.exp < crate::sys::unix_now() || self.ended(claims)
    }

    /// The session was revoked, or its account disabled.
    fn ended(&self, claims: &Claims) -> bool {
        self.sockets.is_revoked(&claims.sid) || self.flags.is_disabled(&claims.sub)
    }

    /// Refuses the account's tokens from now on and closes its sockets (4003). The caller
    /// persists the flag.
    pub fn disable(&self, username: &str) {
        self.flags.disable(username);
        self.close_disabled(username);
    }

    /// Makes the disabled set exactly `names` (cluster catch-up), closing newly disabled
    /// accounts' sockets.
    pub fn sync_disabled(&self, names: Vec<String>) {
        let wanted = names.into_iter().collect();
        for name in self.flags.sync_disabled(&wanted) {
            self.close_disabled(&name);
        }
    }

    fn close_disabled(&self, username: &str) {
        self.sockets
            .tell(username, &Control::Close(4003, "account disabled"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Scope;
    use crate::sys::unix_now;

    #[test]
    fn tokens_round_trip_and_revoke() {
        let auth = Auth::new(b"secret", 60, vec![]);
        let (token, claims) = auth.tokens.issue("ann", Scope::Full).unwrap();
        assert_eq!(auth.verify(&token).unwrap(), (claims.clone(), false));
        auth.tokens.remember(&token, &claims);
        assert_eq!(auth.verify(&token).unwrap(), (claims.clone(), true));
        assert_eq!(
            Auth::new(b"other", 60, vec![]).verify(&token).map(|v| v.0),
            Err(Error::InvalidToken)
        );
        auth.sockets.revoke(&claims.sid, claims.exp, 0);
        assert_eq!(auth.verify(&token).map(|v| v.0), Err(Error::InvalidToken));
    }

    /// A remembered signature does not make a token outlive its expiry.
    #[test]
    fn a_verified_token_still_expires() {
        let auth = Auth::new(b"secret", 60, vec![]);
        let (token, mut claims) = auth.tokens.issue("ann", Scope::Full).unwrap();
        assert!(auth.verify(&token).is_ok());
        claims.exp = unix_now() - 10;
        auth.tokens.remember_raw(&token, claims);
        assert_eq!(auth.verify(&token).map(|v| v.0), Err(Error::InvalidToken));
    }

    #[test]
    fn alg_none_is_refused() {
        let auth = Auth::new(b"secret", 60, vec![]);
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        let body = "eyJzdWIiOiJhbm4iLCJzaWQiOiJ4IiwiaWF0IjoxLCJleHAiOjk5OTk5OTk5OTl9";
        assert_eq!(
            auth.verify(&format!("{header}.{body}.")).map(|v| v.0),
            Err(Error::InvalidToken)
        );
    }

    #[test]
    fn disabling_closes_and_syncing_reopens() {
        let auth = Auth::new(b"secret", 60, vec![]);
        let (token, _) = auth.tokens.issue("ann", Scope::Full).unwrap();
        auth.sync_disabled(vec!["ann".into()]);
        assert_eq!(auth.verify(&token).map(|v| v.0), Err(Error::InvalidToken));
        auth.sync_disabled(vec![]);
        assert!(auth.verify(&token).is_ok());
    }
}

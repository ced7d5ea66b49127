//! Sessions: JWTs, instant revocation, and password hashing kept off the async workers.
//!
//! A token is an HS256 JWT carrying a random session id (`sid`). Logout puts the sid in a
//! revocation set (durable in the store, mirrored here in memory) and tells every socket that
//! authenticated with it, so a revoked token stops working everywhere at once, not at `exp`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use dashmap::DashMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::mailbox;

use crate::error::Error;
use crate::store::Scope;

/// Password rules: long enough to matter, short enough that hashing cannot be abused.
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;
/// Verified tokens remembered (`Auth::verified`): about 300 bytes each.
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
            Scope::Read => Err(Error::Forbidden),
        }
    }
}

/// What a socket is told when something outside it changes its session.
#[derive(Debug, Clone)]
pub enum Control {
    /// The token this socket authenticated with was revoked (logout elsewhere).
    Revoked,
    /// Close the socket with this code and reason (slow consumer, ...).
    Close(u16, &'static str),
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens whose signature checked out and whose account exists, with their claims
    /// ([`Auth::remember`]). Why: REST sends the token with every request, and decoding it
    /// (base64, HMAC, JSON) was 9% of the server's CPU on GETs (BENCHMARKS.md, g).
    verified: moka::sync::Cache<Box<str>, Arc<Claims>>,
    ttl: u64,
    /// sid → expiry (Unix seconds); entries are useless after expiry and are skipped at load.
    revoked: DashMap<String, u64>,
    /// sid → the sockets authenticated with it, by connection id.
    live: DashMap<String, HashMap<u64, mailbox::Sender<Control>>>,
    /// username → its signed-in sockets, to close them when the account is disabled.
    by_user: DashMap<String, HashMap<u64, mailbox::Sender<Control>>>,
    /// Disabled accounts: their tokens are refused.
    disabled: dashmap::DashSet<String>,
    /// Accounts allowed on `/v1/admin` by configuration (`ADMIN_USERS`).
    admins: Vec<String>,
    /// Accounts made admins through the store (`hearth user grant-admin`).
    granted: dashmap::DashSet<String>,
    /// Argon2 costs ~20 MiB and tens of ms per hash: at most this many run at once, on the
    /// blocking pool, so a login flood queues instead of starving the runtime.
    hashing: Semaphore,
    /// Verified against when a login names an unknown user, so timing does not reveal which
    /// users exist. Made on first use: start-up stays fast.
    dummy_hash: Arc<OnceLock<String>>,
}

impl Auth {
    pub fn new(secret: &[u8], ttl: u64, admins: Vec<String>) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .build(),
            validation,
            ttl,
            revoked: DashMap::new(),
            live: DashMap::new(),
            by_user: DashMap::new(),
            disabled: dashmap::DashSet::new(),
            admins,
            granted: dashmap::DashSet::new(),
            hashing: Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            ),
            dummy_hash: Arc::new(OnceLock::new()),
        }
    }

    /// A fresh token (and its claims) for `username`, with a new session id.
    ///
    /// # Errors
    /// `Internal` if signing fails, which HS256 with a valid key does not.
    pub fn issue(&self, username: &str, scope: Scope) -> Result<(String, Claims), Error> {
        let sid: u128 = rand::rng().random();
        self.sign(Claims {
            sub: username.to_owned(),
            sid: format!("{sid:032x}"),
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

    /// How long a revocation made now must be kept: until every token of the session could
    /// have expired, including one refreshed a moment ago.
    pub fn revoked_until(&self, expires: u64) -> u64 {
        expires.max(unix_now() + self.ttl + self.validation.leeway)
    }

    /// Checks signature, algorithm (HS256 only), expiry and revocation. The second value says
    /// whether the token was seen before ([`Auth::remember`]); a new one must still be
    /// checked against the store (its account may not exist) before it is remembered.
    ///
    /// # Errors
    /// `InvalidToken`.
    pub fn verify(&self, token: &str) -> Result<(Claims, bool), Error> {
        let (claims, known) = match self.verified.get(token) {
            // The same expiry rule as `validation` (exp plus leeway must not be past).
            Some(claims) if claims.exp.saturating_add(self.validation.leeway) >= unix_now() => {
                (claims, true)
            }
            Some(_) => {
                self.verified.invalidate(token);
                return Err(Error::InvalidToken);
            }
            None => {
                let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                    .map_err(|_| Error::InvalidToken)?;
                (Arc::new(data.claims), false)
            }
        };
        if self.revoked.contains_key(&claims.sid) || self.disabled.contains(&claims.sub) {
            return Err(Error::InvalidToken);
        }
        Ok((Claims::clone(&claims), known))
    }

    /// Remembers that `token`'s signature checked out and its account exists, so later
    /// requests skip both. Only the signature and the account's existence are remembered:
    /// expiry, revocation and disabled accounts are checked on every call, and deleting an
    /// account revokes its sessions, so nothing here can outlive a logout or a deletion.
    pub fn remember(&self, token: &str, claims: &Claims) {
        self.verified.insert(token.into(), Arc::new(claims.clone()));
    }

    /// True if the session was logged out or revoked.
    pub fn is_revoked(&self, sid: &str) -> bool {
        self.revoked.contains_key(sid)
    }

    pub fn is_disabled(&self, username: &str) -> bool {
        self.disabled.contains(username)
    }

    pub fn is_admin(&self, username: &str) -> bool {
        self.admins.iter().any(|a| a == username) || self.granted.contains(username)
    }

    /// Whether `username` is an admin by `ADMIN_USERS` (which no command can revoke).
    pub fn is_configured_admin(&self, username: &str) -> bool {
        self.admins.iter().any(|a| a == username)
    }

    /// Records a grant (or its withdrawal) made through the store.
    pub fn set_granted_admin(&self, username: &str, admin: bool) {
        if admin {
            self.granted.insert(username.to_owned());
        } else {
            self.granted.remove(username);
        }
    }

    /// Loads accounts disabled in earlier runs.
    pub fn restore_disabled(&self, names: impl IntoIterator<Item = String>) {
        for name in names {
            self.disabled.insert(name);
        }
    }

    /// Refuses the account's tokens from now on and closes its sockets (4003). The caller
    /// persists the flag.
    pub fn disable(&self, username: &str) {
        self.disabled.insert(username.to_owned());
        self.close_sockets(username, Control::Close(4003, "account disabled"));
    }

    /// Tells every signed-in socket and stream of `username` (and closes them, with a
    /// `Close`).
    pub fn close_sockets(&self, username: &str, control: Control) {
        if let Some(sockets) = self.by_user.get(username) {
            for tx in sockets.values() {
                // A full or closed control queue means that socket is going away anyway.
                let _ = tx.try_send(control.clone());
            }
        }
    }

    /// The account was deleted: its flags go with it, so a later account of the same name
    /// starts plain.
    pub fn forget_account(&self, username: &str) {
        self.disabled.remove(username);
        self.granted.remove(username);
    }

    pub fn enable(&self, username: &str) {
        self.disabled.remove(username);
    }

    /// Makes the disabled set exactly `names` (cluster catch-up), closing newly disabled
    /// accounts' sockets.
    pub fn sync_disabled(&self, names: Vec<String>) {
        let wanted: std::collections::HashSet<String> = names.into_iter().collect();
        self.disabled.retain(|name| wanted.contains(name));
        for name in &wanted {
            if !self.disabled.contains(name) {
                self.disable(name);
            }
        }
    }

    /// Makes the granted admins exactly `names` (cluster catch-up).
    pub fn sync_granted_admins(&self, names: Vec<String>) {
        let wanted: std::collections::HashSet<String> = names.into_iter().collect();
        self.granted.retain(|name| wanted.contains(name));
        for name in wanted {
            self.granted.insert(name);
        }
    }

    /// Loads revocations persisted by earlier runs.
    pub fn restore_revoked(&self, entries: impl IntoIterator<Item = (String, u64)>) {
        for (sid, exp) in entries {
            self.revoked.insert(sid, exp);
        }
    }

    /// Revokes in memory and tells every other socket using `sid` (not `except`, the socket
    /// that asked). The caller persists the revocation.
    pub fn revoke(&self, sid: &str, exp: u64, except: u64) {
        self.revoked.insert(sid.to_owned(), exp);
        if let Some((_, sockets)) = self.live.remove(sid) {
            for (conn, tx) in sockets {
                if conn != except {
                    // A full or closed control queue means that socket is going away anyway.
                    let _ = tx.try_send(Control::Revoked);
                }
            }
        }
    }

    pub fn register(&self, sid: &str, username: &str, conn: u64, tx: mailbox::Sender<Control>) {
        self.live
            .entry(sid.to_owned())
            .or_default()
            .insert(conn, tx.clone());
        self.by_user
            .entry(username.to_owned())
            .or_default()
            .insert(conn, tx);
    }

    pub fn unregister(&self, sid: &str, username: &str, conn: u64) {
        self.live.remove_if_mut(sid, |_, sockets| {
            sockets.remove(&conn);
            sockets.is_empty()
        });
        self.by_user.remove_if_mut(username, |_, sockets| {
            sockets.remove(&conn);
            sockets.is_empty()
        });
    }

    /// # Errors
    /// `Internal` if hashing fails or the blocking pool is gone.
    pub async fn hash_password(&self, password: String) -> Result<String, Error> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| Error::Unavailable)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|_| Error::Internal)?
    }

    /// True if `password` matches `hash`. With no hash (unknown user, or an account without
    /// a password) a dummy hash is checked anyway so both paths take the same time.
    pub async fn verify_password(&self, hash: Option<String>, password: String) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        let real = hash.is_some();
        let dummy = self.dummy_hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let hash = hash.unwrap_or_else(|| {
                dummy
                    .get_or_init(|| hash_blocking("not-a-real-password").unwrap_or_default())
                    .clone()
            });
            PasswordHash::new(&hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        ok && real
    }
}

/// Argon2id with the crate's defaults, which are OWASP's recommendation (m=19 MiB, t=2, p=1).
fn hash_blocking(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| Error::Internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| {
            tracing::error!(error = %e, "hashing a password failed");
            Error::Internal
        })
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The JWT secret: `JWT_SECRET` if set, else the one kept in `DATA_DIR/jwt_secret`, created
/// (mode 0600) at first start so tokens survive restarts without any configuration.
///
/// # Errors
/// The data dir cannot be read or written.
/// 256 random bits as hex: a fresh JWT secret.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn load_secret(configured: Option<&str>, data_dir: &Path) -> std::io::Result<Arc<[u8]>> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        return Ok(secret.as_bytes().into());
    }
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().as_bytes().into()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let secret = random_secret();
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a JWT secret (set JWT_SECRET to manage it yourself)");
    Ok(secret.as_bytes().into())
}

pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_revoke() {
        let auth = Auth::new(b"secret", 60, vec![]);
        let (token, claims) = auth.issue("ann", Scope::Full).unwrap();
        assert_eq!(auth.verify(&token).unwrap(), (claims.clone(), false));
        auth.remember(&token, &claims);
        assert_eq!(auth.verify(&token).unwrap(), (claims.clone(), true));
        assert_eq!(
            Auth::new(b"other", 60, vec![]).verify(&token).map(|v| v.0),
            Err(Error::InvalidToken)
        );
        auth.revoke(&claims.sid, claims.exp, 0);
        assert_eq!(auth.verify(&token).map(|v| v.0), Err(Error::InvalidToken));
    }

    /// A remembered signature does not make a token outlive its expiry.
    #[test]
    fn a_verified_token_still_expires() {
        let auth = Auth::new(b"secret", 60, vec![]);
        let (token, mut claims) = auth.issue("ann", Scope::Full).unwrap();
        assert!(auth.verify(&token).is_ok());
        claims.exp = unix_now() - 10;
        auth.verified
            .insert(token.as_str().into(), Arc::new(claims));
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
}

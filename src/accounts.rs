//! Accounts and sessions, the same for every surface: WebSocket commands and HTTP handlers
//! both sign people up, in and out through here. Deleting an account is `deletion.rs`.

use crate::auth::{Auth, Claims, MAX_PASSWORD, MIN_PASSWORD};
use crate::error::Error;
use crate::names;
use crate::state::AppState;
use crate::store::{Flag, Scope, SessionRecord, Store, StoreError, UserRecord};
use crate::sys::now_rfc3339;

pub use crate::deletion::{CLOSE_DELETED, Deleted, delete_account};

/// Generated names collide about once in 22 million draws; a few retries are plenty.
const NAME_ATTEMPTS: usize = 16;

/// A freshly issued session.
#[derive(Debug, Clone)]
pub struct Issued {
    pub username: String,
    pub token: String,
    pub claims: Claims,
}

fn session_record(claims: &Claims) -> SessionRecord {
    SessionRecord {
        id: claims.sid.clone(),
        username: claims.sub.clone(),
        created_at: now_rfc3339(),
        expires: claims.exp,
        scope: claims.scope,
    }
}

fn user_record(name: &str, password_hash: Option<String>) -> UserRecord {
    UserRecord {
        username: name.to_owned(),
        password_hash,
        created_at: now_rfc3339(),
    }
}

/// Creates an account (with a generated name when neither `username` nor `password` is
/// given) and its first session.
///
/// # Errors
/// `RateLimited`, `BadRequest` (invalid name or password, or only one of them),
/// `UsernameTaken`, `Unavailable`.
pub async fn signup(
    state: &AppState,
    ip: std::net::IpAddr,
    username: Option<String>,
    password: Option<String>,
    scope: Scope,
) -> Result<Issued, Error> {
    state.limiters.signup(ip)?;
    match (username, password) {
        (None, None) => {
            for _ in 0..NAME_ATTEMPTS {
                let name = names::generate();
                if state.auth.flags.is_configured_admin(&name) {
                    continue;
                }
                let (token, claims) = state.auth.tokens.issue(&name, scope)?;
                let session = Some(session_record(&claims));
                match state
                    .store
                    .create_user(user_record(&name, None), session)
                    .await
                {
                    Ok(_) => {
                        return Ok(Issued {
                            username: name,
                            token,
                            claims,
                        });
                    }
                    Err(StoreError::UsernameTaken) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(Error::Unavailable)
        }
        (Some(name), Some(password)) => {
            names::validate(&name).map_err(Error::BadRequest)?;
            // A name in ADMIN_USERS carries the admin API (and backups carry the JWT secret):
            // it is reserved for `hearth user create` until that account exists, never
            // claimed by whoever signs up first. Answered as a taken name, which it is.
            if state.auth.flags.is_configured_admin(&name) {
                return Err(Error::UsernameTaken);
            }
            check_password(&password)?;
            let hash = state.auth.passwords.hash_password(password).await?;
            let (token, claims) = state.auth.tokens.issue(&name, scope)?;
            let session = Some(session_record(&claims));
            state
                .store
                .create_user(user_record(&name, Some(hash)), session)
                .await?;
            Ok(Issued {
                username: name,
                token,
                claims,
            })
        }
        _ => Err(Error::BadRequest(
            "give both username and password, or neither for a generated name".into(),
        )),
    }
}

fn check_password(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(Error::BadRequest(format!(
            "passwords are {MIN_PASSWORD} to {MAX_PASSWORD} bytes long"
        )));
    }
    Ok(())
}

/// Checks a password and opens a session.
///
/// # Errors
/// `RateLimited`, `InvalidCredentials` (the same for unknown users, wrong passwords and
/// accounts without one), `Unavailable`.
pub async fn login(
    state: &AppState,
    ip: std::net::IpAddr,
    username: &str,
    password: &str,
    scope: Scope,
) -> Result<Issued, Error> {
    state.limiters.login(ip, username)?;
    let user = if names::plausible(username) && password.len() <= MAX_PASSWORD {
        state.store.user(username).await?
    } else {
        None
    };
    let hash = user.and_then(|u| u.password_hash);
    let password: String = password.chars().take(MAX_PASSWORD).collect();
    // A disabled account gets the same answer as a wrong password, after the same work.
    if !state
        .auth
        .passwords
        .verify_password(hash.clone(), password)
        .await
        || state.auth.flags.is_disabled(username)
    {
        return Err(Error::InvalidCredentials);
    }
    let (token, claims) = state.auth.tokens.issue(username, scope)?;
    state.store.add_session(session_record(&claims)).await?;
    // A password reset that committed while this login was checking the old password has
    // already revoked every session it could see; this one it could not, so it goes too.
    let current = state
        .store
        .user(username)
        .await?
        .and_then(|u| u.password_hash);
    if current != hash {
        revoke(state, username, &claims.sid, claims.exp, 0).await?;
        return Err(Error::InvalidCredentials);
    }
    Ok(Issued {
        username: username.to_owned(),
        token,
        claims,
    })
}

/// Verifies a token, including that its user exists: a validly signed token of an account
/// that was deleted (or never existed here: another data dir with the same secret) is refused
/// on every surface. The account is looked up once per token; deleting an account revokes
/// its sessions, which `verify` checks every time.
///
/// # Errors
/// `InvalidToken`, `Unavailable`.
pub async fn check_token(state: &AppState, token: &str) -> Result<Claims, Error> {
    let claims = check_any_token(state, token).await?;
    // A feed token reads the change feed and nothing else (`check_any_token` there).
    if claims.scope == Scope::Feed {
        return Err(Error::Forbidden);
    }
    Ok(claims)
}

/// [`check_token`], feed tokens included: for the change feed alone.
///
/// # Errors
/// `InvalidToken`, `Unavailable`.
pub async fn check_any_token(state: &AppState, token: &str) -> Result<Claims, Error> {
    let (claims, known) = state.auth.verify(token)?;
    if !known {
        if !names::plausible(&claims.sub) || state.store.user(&claims.sub).await?.is_none() {
            return Err(Error::InvalidToken);
        }
        state.auth.tokens.remember(token, &claims);
    }
    Ok(claims)
}

/// Revokes session `sid` of `username` everywhere: at once in memory (telling every socket
/// and stream using it, except connection `except`), then durably.
///
/// # Errors
/// `Unavailable` if the revocation could not be stored (it still holds until restart).
pub async fn revoke(
    state: &AppState,
    username: &str,
    sid: &str,
    expires: u64,
    except: u64,
) -> Result<(), Error> {
    let expires = state.auth.tokens.revoked_until(expires);
    state.auth.sockets.revoke(sid, expires, except);
    state.store.revoke(username, sid, expires).await?;
    Ok(())
}

/// Operator: creates an account with a password and no session (`hearth user create`,
/// `POST /v1/admin/users`).
///
/// # Errors
/// `BadRequest` (invalid name or password), `UsernameTaken`, `Unavailable`.
pub async fn create(store: &Store, auth: &Auth, name: &str, password: String) -> Result<(), Error> {
    names::validate(name).map_err(Error::BadRequest)?;
    check_password(&password)?;
    let hash = auth.passwords.hash_password(password).await?;
    store
        .create_user(user_record(name, Some(hash)), None)
        .await?;
    Ok(())
}

/// Operator: disables an account (its tokens are refused at once, its sockets close with
/// 4003, logins fail) or enables it again.
///
/// # Errors
/// `NotFound` for an unknown user, `Unavailable`.
pub async fn set_disabled(
    store: &Store,
    auth: &Auth,
    name: &str,
    disabled: bool,
) -> Result<(), Error> {
    set_flag(store, name, Flag::Disabled, disabled).await?;
    if disabled {
        auth.disable(name);
    } else {
        auth.flags.enable(name);
    }
    Ok(())
}

/// Operator: makes an account an admin, or withdraws that (accounts named in `ADMIN_USERS`
/// stay admins whatever the store says).
///
/// # Errors
/// `NotFound` for an unknown user, `Unavailable`.
pub async fn set_admin(store: &Store, auth: &Auth, name: &str, admin: bool) -> Result<(), Error> {
    set_flag(store, name, Flag::Admin, admin).await?;
    auth.flags.set_granted_admin(name, admin);
    Ok(())
}

async fn set_flag(store: &Store, name: &str, flag: Flag, on: bool) -> Result<(), Error> {
    if !names::plausible(name) {
        return Err(Error::NotFound);
    }
    store.set_flag(name, flag, on).await.map_err(|e| match e {
        StoreError::Unauthorized => Error::NotFound,
        other => other.into(),
    })
}

/// Operator: sets a new password and revokes every session of the account (its sockets and
/// streams end), since whoever held the old password may hold those tokens. Returns how many
/// sessions were revoked.
///
/// # Errors
/// `BadRequest` for a password out of bounds, `NotFound` for an unknown user, `Unavailable`.
pub async fn reset_password(
    store: &Store,
    auth: &Auth,
    name: &str,
    password: String,
) -> Result<usize, Error> {
    check_password(&password)?;
    if !names::plausible(name) {
        return Err(Error::NotFound);
    }
    let hash = auth.passwords.hash_password(password).await?;
    store.set_password(name, hash).await.map_err(|e| match e {
        StoreError::Unauthorized => Error::NotFound,
        other => other.into(),
    })?;
    // Listed after the new hash committed: a login racing with this either shows up here or
    // sees the new hash afterwards and revokes itself (see `login`).
    let sessions = store.sessions(name).await?;
    for session in &sessions {
        auth.sockets.revoke(&session.id, session.expires, 0);
        store.revoke(name, &session.id, session.expires).await?;
    }
    Ok(sessions.len())
}

/// A new token for the caller's session, valid `TOKEN_TTL` from now (`refresh`, `POST
/// /v1/refresh`): clients renew before expiry instead of signing in again. The session
/// record keeps its id and creation time and takes the new expiry.
///
/// # Errors
/// `Internal`, `Unavailable`.
pub async fn refresh(state: &AppState, claims: &Claims) -> Result<Issued, Error> {
    let (token, fresh) = state.auth.tokens.reissue(claims)?;
    let mut record = session_record(&fresh);
    if let Some(old) = state
        .store
        .sessions(&claims.sub)
        .await?
        .into_iter()
        .find(|s| s.id == claims.sid)
    {
        record.created_at = old.created_at;
    }
    state.store.add_session(record).await?;
    Ok(Issued {
        username: fresh.sub.clone(),
        token,
        claims: fresh,
    })
}

/// A new ordinary session for the holder of a personal-backend token (`LEGACY_JWT_SECRET`),
/// so apps move off tokens that never expire the first time they sign in.
///
/// # Errors
/// `Internal`, `Unavailable`.
pub async fn upgrade_legacy(state: &AppState, legacy: &Claims) -> Result<Issued, Error> {
    let (token, claims) = state.auth.tokens.issue(&legacy.sub, legacy.scope)?;
    state.store.add_session(session_record(&claims)).await?;
    Ok(Issued {
        username: claims.sub.clone(),
        token,
        claims,
    })
}

/// Checks that `given` is `username`'s password before an act that needs it (changing it,
/// deleting the account). An account without a password (a generated name) needs none, but
/// one given anyway must then be absent. Attempts count against the login limits, so this is
/// no side door for guessing.
///
/// # Errors
/// `RateLimited`, `InvalidCredentials`, `InvalidToken` (no such account), `Unavailable`.
pub async fn confirm_password(
    state: &AppState,
    ip: std::net::IpAddr,
    username: &str,
    given: Option<String>,
) -> Result<(), Error> {
    let hash = state
        .store
        .user(username)
        .await?
        .ok_or(Error::InvalidToken)?
        .password_hash;
    if hash.is_none() && given.is_none() {
        return Ok(());
    }
    state.limiters.login(ip, username)?;
    let given: String = given
        .unwrap_or_default()
        .chars()
        .take(MAX_PASSWORD)
        .collect();
    if state.auth.passwords.verify_password(hash, given).await {
        Ok(())
    } else {
        Err(Error::InvalidCredentials)
    }
}

/// The caller changes their own password (`POST /v1/me/password`, the `password` frame).
/// `old` must match; an account that never had a password (a generated name) may set its
/// first one without. Every other session of the account ends, since whoever knew the old
/// password may hold them; the caller's own stays. Attempts count against the login limits,
/// so this is no side door for guessing. Returns how many sessions ended.
///
/// # Errors
/// `RateLimited`, `InvalidCredentials` (wrong `old`), `BadRequest` (new password out of
/// bounds), `Forbidden` (read-only token), `Unavailable`.
pub async fn change_password(
    state: &AppState,
    ip: std::net::IpAddr,
    claims: &Claims,
    old: Option<String>,
    new: String,
) -> Result<usize, Error> {
    claims.can_write()?;
    check_password(&new)?;
    confirm_password(state, ip, &claims.sub, old).await?;
    let hash = state.auth.passwords.hash_password(new).await?;
    state
        .store
        .set_password(&claims.sub, hash)
        .await
        .map_err(|e| match e {
            StoreError::Unauthorized => Error::InvalidToken,
            other => other.into(),
        })?;
    let mut ended = 0;
    for session in state.store.sessions(&claims.sub).await? {
        if session.id != claims.sid {
            revoke(state, &claims.sub, &session.id, session.expires, 0).await?;
            ended += 1;
        }
    }
    Ok(ended)
}

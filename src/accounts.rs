//! Accounts and sessions, the same for every surface: WebSocket commands and HTTP handlers
//! both sign people up, in and out through here.

use crate::auth::{Auth, Claims, MAX_PASSWORD, MIN_PASSWORD};
use crate::error::Error;
use crate::names;
use crate::state::AppState;
use crate::store::model::now_rfc3339;
use crate::store::{Flag, Scope, SessionRecord, Store, StoreError, UserRecord};

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
                let (token, claims) = state.auth.issue(&name, scope)?;
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
            check_password(&password)?;
            let hash = state.auth.hash_password(password).await?;
            let (token, claims) = state.auth.issue(&name, scope)?;
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
    if !state.auth.verify_password(hash.clone(), password).await || state.auth.is_disabled(username)
    {
        return Err(Error::InvalidCredentials);
    }
    let (token, claims) = state.auth.issue(username, scope)?;
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

/// Verifies a token, including that its user still exists.
///
/// # Errors
/// `InvalidToken`, `Unavailable`.
pub async fn check_token(state: &AppState, token: &str) -> Result<Claims, Error> {
    let claims = state.auth.verify(token)?;
    if state.store.document(&claims.sub).await?.is_none() {
        return Err(Error::InvalidToken);
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
    state.auth.revoke(sid, expires, except);
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
    let hash = auth.hash_password(password).await?;
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
        auth.enable(name);
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
    auth.set_granted_admin(name, admin);
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
    let hash = auth.hash_password(password).await?;
    store.set_password(name, hash).await.map_err(|e| match e {
        StoreError::Unauthorized => Error::NotFound,
        other => other.into(),
    })?;
    // Listed after the new hash committed: a login racing with this either shows up here or
    // sees the new hash afterwards and revokes itself (see `login`).
    let sessions = store.sessions(name).await?;
    for session in &sessions {
        auth.revoke(&session.id, session.expires, 0);
        store.revoke(name, &session.id, session.expires).await?;
    }
    Ok(sessions.len())
}

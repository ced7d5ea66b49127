//! `signup`, `login`, `auth`, `logout`: who this socket is.

use serde::Deserialize;

use crate::auth::{MAX_PASSWORD, MIN_PASSWORD};
use crate::error::Error;
use crate::frame::Reply;
use crate::names;
use crate::session::Session;
use crate::store::{StoreError, UserRecord, model::now_rfc3339};

/// Generated names collide about once in 22 million draws; a few retries are plenty.
const NAME_ATTEMPTS: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    username: Option<String>,
    password: Option<String>,
}

impl Signup {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let state = session.state.clone();
        let username = match (self.username, self.password) {
            (None, None) => {
                let mut created = None;
                for _ in 0..NAME_ATTEMPTS {
                    let name = names::generate();
                    match state.store.create_user(record(&name, None)).await {
                        Ok(_) => {
                            created = Some(name);
                            break;
                        }
                        Err(StoreError::UsernameTaken) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                created.ok_or(Error::Unavailable)?
            }
            (Some(name), Some(password)) => {
                names::validate(&name).map_err(Error::BadRequest)?;
                check_password(&password)?;
                let hash = state.auth.hash_password(password).await?;
                state.store.create_user(record(&name, Some(hash))).await?;
                name
            }
            _ => {
                return Err(Error::BadRequest(
                    "give both username and password, or neither for a generated name".into(),
                ));
            }
        };
        let (token, claims) = state.auth.issue(&username)?;
        session.authenticate(claims);
        Ok(Reply::Auth { username, token })
    }
}

fn record(name: &str, password_hash: Option<String>) -> UserRecord {
    UserRecord {
        username: name.to_owned(),
        password_hash,
        created_at: now_rfc3339(),
    }
}

fn check_password(password: &str) -> Result<(), Error> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(Error::BadRequest(format!(
            "passwords are {MIN_PASSWORD} to {MAX_PASSWORD} bytes long"
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

impl Login {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let state = session.state.clone();
        let user = if names::plausible(&self.username) && self.password.len() <= MAX_PASSWORD {
            state.store.user(&self.username).await?
        } else {
            None
        };
        let hash = user.and_then(|u| u.password_hash);
        let password: String = self.password.chars().take(MAX_PASSWORD).collect();
        if !state.auth.verify_password(hash, password).await {
            return Err(Error::InvalidCredentials);
        }
        let (token, claims) = state.auth.issue(&self.username)?;
        session.authenticate(claims);
        Ok(Reply::Auth {
            username: self.username,
            token,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCmd {
    token: String,
}

impl AuthCmd {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let state = session.state.clone();
        let claims = state.auth.verify(&self.token)?;
        // A valid signature for a user who no longer exists is still not a session.
        if state.store.document(&claims.sub).await?.is_none() {
            return Err(Error::InvalidToken);
        }
        let username = claims.sub.clone();
        session.authenticate(claims);
        Ok(Reply::Auth {
            username,
            token: self.token,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logout {}

impl Logout {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let claims = session.user()?.clone();
        let state = session.state.clone();
        // In memory first, so the token is dead everywhere before we wait on the disk.
        state.auth.revoke(&claims.sid, claims.exp, session.conn);
        session.unauthenticate();
        state.store.revoke(claims.sid, claims.exp).await?;
        Ok(Reply::Logout {})
    }
}

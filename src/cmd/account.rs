//! `signup`, `login`, `auth`, `logout`: who this socket is.

use serde::Deserialize;

use crate::accounts;
use crate::error::Error;
use crate::frame::Reply;
use crate::session::Session;
use crate::store::Scope;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    username: Option<String>,
    password: Option<String>,
    #[serde(default)]
    scope: Scope,
}

impl Signup {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let issued = accounts::signup(
            &session.state,
            session.ip,
            self.username,
            self.password,
            self.scope,
        )
        .await?;
        signed_in(session, issued)
    }
}

fn signed_in(session: &mut Session, issued: accounts::Issued) -> Result<Reply, Error> {
    session.authenticate(issued.claims)?;
    Ok(Reply::Auth {
        username: issued.username,
        token: issued.token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
    #[serde(default)]
    scope: Scope,
}

impl Login {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let issued = accounts::login(
            &session.state,
            session.ip,
            &self.username,
            &self.password,
            self.scope,
        )
        .await?;
        signed_in(session, issued)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCmd {
    token: String,
}

impl AuthCmd {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let claims = accounts::check_token(&session.state, &self.token).await?;
        let username = claims.sub.clone();
        session.authenticate(claims)?;
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
        session.unauthenticate();
        accounts::revoke(&state, &claims.sub, &claims.sid, claims.exp, session.conn).await?;
        Ok(Reply::Logout {})
    }
}

/// `refresh`: a new token for this socket's session, before the old one expires.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refresh {}

impl Refresh {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let claims = session.user()?.clone();
        let issued = accounts::refresh(&session.state, &claims).await?;
        session.refreshed(issued.claims);
        Ok(Reply::Auth {
            username: issued.username,
            token: issued.token,
        })
    }
}

/// `password`: change the signed-in account's password; its other sessions end.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Password {
    old: Option<String>,
    new: String,
}

impl Password {
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        let claims = session.user()?.clone();
        let ended =
            accounts::change_password(&session.state, session.ip, &claims, self.old, self.new)
                .await?;
        Ok(Reply::Password { ended })
    }
}

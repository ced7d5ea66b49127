//! `signup`, `login`, `auth`, `logout`: who this socket is.

use serde::Deserialize;

use super::{Context, Effect, Outcome};
use crate::accounts;
use crate::error::Error;
use crate::frame::Reply;
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
    pub async fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        let issued =
            accounts::signup(cx.state, cx.ip, self.username, self.password, self.scope).await?;
        Ok(signed_in(issued))
    }
}

fn signed_in(issued: accounts::Issued) -> Outcome {
    let reply = Reply::Auth {
        username: issued.username,
        token: issued.token,
    };
    Outcome::then(reply, Effect::SignIn(issued.claims))
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
    pub async fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        let issued =
            accounts::login(cx.state, cx.ip, &self.username, &self.password, self.scope).await?;
        Ok(signed_in(issued))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCmd {
    token: String,
}

impl AuthCmd {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        let claims = accounts::check_token(cx.state, &self.token).await?;
        if crate::auth::legacy::is_legacy(&claims) {
            // A personal-backend token: answered with an ordinary one to keep instead.
            let issued = accounts::upgrade_legacy(cx.state, &claims).await?;
            return Ok(signed_in(issued));
        }
        let reply = Reply::Auth {
            username: claims.sub.clone(),
            token: self.token,
        };
        Ok(Outcome::then(reply, Effect::SignIn(claims)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logout {}

impl Logout {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        let claims = cx.user()?;
        // This socket is spared the revocation's close (`cx.conn`): it signs out, and stays.
        match accounts::revoke(cx.state, &claims.sub, &claims.sid, claims.exp, cx.conn).await {
            Ok(()) => Ok(Outcome::then(Reply::Logout {}, Effect::SignOut)),
            Err(e) => Ok(Outcome::failed_then(&e, Effect::SignOut)),
        }
    }
}

/// `refresh`: a new token for this socket's session, before the old one expires.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refresh {}

impl Refresh {
    pub async fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        let issued = accounts::refresh(cx.state, cx.user()?).await?;
        let reply = Reply::Auth {
            username: issued.username,
            token: issued.token,
        };
        Ok(Outcome::then(reply, Effect::Refreshed(issued.claims)))
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
    pub async fn apply(self, cx: &Context<'_>) -> Result<Reply, Error> {
        let ended =
            accounts::change_password(cx.state, cx.ip, cx.user()?, self.old, self.new).await?;
        Ok(Reply::Password { ended })
    }
}

//! Client commands: one file each, parsing next to applying.
//!
//! [`Command::from_frame`] turns a decoded [`Frame`] into a typed command (unknown `type`s
//! and malformed fields are `bad_request`); [`Command::apply`] runs it against what the
//! socket shows it ([`Context`]) and returns an [`Outcome`]: the reply, and what the socket
//! must change (sign in or out, start or end a watch). Commands never reach into the
//! socket's state; the session applies the outcome, so data flows one way.

pub mod account;
pub mod docs;
pub mod feed;
pub mod presence;
pub mod read;
pub mod streams;
pub mod update;
pub mod watch;

use std::collections::HashMap;
use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio_util::task::AbortOnDropHandle;

use crate::auth::{Claims, Control};
use crate::connection::Outbound;
use crate::error::Error;
use crate::fanout::watcher::Watcher;
use crate::frame::{ErrorBody, Frame, Reply};
use crate::mailbox;
use crate::names;
use crate::state::AppState;

/// What a command may know of the socket that sent it, read-only.
pub struct Context<'a> {
    pub state: &'a AppState,
    /// The client's address, for per-address limits.
    pub ip: IpAddr,
    /// The connection's id in the socket registry (a logout spares its own socket).
    pub conn: u64,
    /// The signed-in user, checked by the session just before this command (not expired,
    /// revoked or disabled); `None` when anonymous.
    pub user: Option<&'a Claims>,
    /// The socket was signed in, but its token stopped being good (the session has signed it
    /// out): commands that need a user answer `invalid_token` rather than `auth_required`.
    pub lapsed: bool,
    /// The socket's watches, by document; some may have ended by themselves.
    pub watches: &'a HashMap<String, AbortOnDropHandle<()>>,
    /// Where a watch started by this command writes its pushes.
    pub out: &'a Outbound,
    /// The socket's control mailbox: a watcher whose consumer stalls asks it to close.
    pub control: &'a mailbox::Sender<Control>,
}

impl Context<'_> {
    /// The signed-in user.
    ///
    /// # Errors
    /// `AuthRequired` on an anonymous socket; `InvalidToken` if its token lapsed.
    pub fn user(&self) -> Result<&Claims, Error> {
        match self.user {
            Some(claims) => Ok(claims),
            None if self.lapsed => Err(Error::InvalidToken),
            None => Err(Error::AuthRequired),
        }
    }

    /// The document a command is about, as its key: `target` (`owner` or `owner/name`), or
    /// the caller's default document; with the caller's name. A target that cannot exist is
    /// `unauthorized`, as an unknown user is.
    ///
    /// # Errors
    /// `AuthRequired`, `InvalidToken`, `Unauthorized`.
    pub fn target(&self, target: Option<String>) -> Result<(String, String), Error> {
        let me = self.user()?.sub.clone();
        let target = target.unwrap_or_else(|| me.clone());
        if !names::Target::valid(&target) {
            return Err(Error::Unauthorized);
        }
        Ok((me, target))
    }
}

/// What running a command produced: the reply to send, then what the socket must change.
pub struct Outcome {
    pub reply: Reply,
    pub effect: Option<Effect>,
}

/// A change to the socket's own state that a command asks for; the session makes it.
pub enum Effect {
    /// Sign the socket in as this user (its watches end if the user changes). If the user
    /// already holds as many sockets as allowed, the reply becomes that error.
    SignIn(Claims),
    /// Sign the socket out, ending its watches.
    SignOut,
    /// Same session, later expiry (`refresh`).
    Refreshed(Claims),
    /// Start forwarding this watch once the reply (its snapshot) is queued, so a change can
    /// never overtake the snapshot it follows; it replaces any watch of the same document.
    Watch(Box<Watcher<Outbound>>),
    /// End the watch of this document, if there is one.
    Unwatch(String),
    /// Push `shared` and `unshared` to this socket from now on (it asked for `list`).
    HearShares,
    /// The socket takes part in the document's presence while it watches it.
    Present(String),
    /// Push the change feed after this cursor (`feed.rs`), in place of any earlier one.
    Feed(u64),
}

impl Outcome {
    fn reply(reply: Reply) -> Outcome {
        Outcome {
            reply,
            effect: None,
        }
    }

    fn then(reply: Reply, effect: Effect) -> Outcome {
        Outcome {
            reply,
            effect: Some(effect),
        }
    }

    /// The command failed, but the socket must change all the same (a logout whose
    /// revocation could not be stored still signs this socket out).
    fn failed_then(e: &Error, effect: Effect) -> Outcome {
        Outcome::then(Reply::Error(ErrorBody::from(e)), effect)
    }
}

pub enum Command {
    Signup(account::Signup),
    Login(account::Login),
    Auth(account::AuthCmd),
    Logout(account::Logout),
    Refresh(account::Refresh),
    Password(account::Password),
    Update(update::UpdateCmd),
    Fetch(read::Fetch),
    Watch(watch::Watch),
    Unwatch(watch::Unwatch),
    Create(docs::Create),
    Delete(docs::Delete),
    List(docs::List),
    Presence(presence::PresenceCmd),
    Append(streams::Append),
    Read(streams::Read),
    Feed(feed::Feed),
}

impl Command {
    /// # Errors
    /// `BadRequest` naming the unknown type or the field that is wrong.
    pub fn from_frame(frame: Frame) -> Result<Command, Error> {
        let body = frame.body;
        Ok(match frame.kind.as_str() {
            "signup" => Command::Signup(args(body)?),
            "login" => Command::Login(args(body)?),
            "auth" => Command::Auth(args(body)?),
            "logout" => Command::Logout(args(body)?),
            "refresh" => Command::Refresh(args(body)?),
            "password" => Command::Password(args(body)?),
            "update" => Command::Update(args(body)?),
            "fetch" => Command::Fetch(args(body)?),
            "watch" => Command::Watch(args(body)?),
            "unwatch" => Command::Unwatch(args(body)?),
            "create" => Command::Create(args(body)?),
            "delete" => Command::Delete(args(body)?),
            "list" => Command::List(args(body)?),
            "presence" => Command::Presence(args(body)?),
            "append" => Command::Append(args(body)?),
            "read" => Command::Read(args(body)?),
            "feed" => Command::Feed(args(body)?),
            other => {
                let mut shown: String = other.chars().take(40).collect();
                if shown.len() < other.len() {
                    shown.push('…');
                }
                return Err(Error::BadRequest(format!(
                    "unknown type {shown:?}; expected signup, login, auth, logout, refresh, password, update, fetch, watch, unwatch, create, delete, list, presence, append, read or feed"
                )));
            }
        })
    }

    /// The command's name, for metrics labels (a fixed set).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Signup(_) => "signup",
            Command::Login(_) => "login",
            Command::Auth(_) => "auth",
            Command::Logout(_) => "logout",
            Command::Refresh(_) => "refresh",
            Command::Password(_) => "password",
            Command::Update(_) => "update",
            Command::Fetch(_) => "fetch",
            Command::Watch(_) => "watch",
            Command::Unwatch(_) => "unwatch",
            Command::Create(_) => "create",
            Command::Delete(_) => "delete",
            Command::List(_) => "list",
            Command::Presence(_) => "presence",
            Command::Append(_) => "append",
            Command::Read(_) => "read",
            Command::Feed(_) => "feed",
        }
    }

    /// # Errors
    /// Whatever the command refuses with; see PROTOCOL.md for each.
    pub async fn apply(self, cx: &Context<'_>) -> Result<Outcome, Error> {
        match self {
            Command::Signup(c) => c.apply(cx).await,
            Command::Login(c) => c.apply(cx).await,
            Command::Auth(c) => c.apply(cx).await,
            Command::Logout(c) => c.apply(cx).await,
            Command::Refresh(c) => c.apply(cx).await,
            Command::Password(c) => c.apply(cx).await.map(Outcome::reply),
            Command::Update(c) => c.apply(cx).await.map(Outcome::reply),
            Command::Fetch(c) => c.apply(cx).await.map(Outcome::reply),
            Command::Watch(c) => c.apply(cx).await,
            Command::Unwatch(c) => c.apply(cx),
            Command::Create(c) => c.apply(cx).await.map(Outcome::reply),
            Command::Delete(c) => c.apply(cx).await.map(Outcome::reply),
            Command::List(c) => c
                .apply(cx)
                .await
                .map(|reply| Outcome::then(reply, Effect::HearShares)),
            Command::Presence(c) => c.apply(cx).await,
            Command::Append(c) => c.apply(cx).await.map(Outcome::reply),
            Command::Read(c) => c.apply(cx).await.map(Outcome::reply),
            Command::Feed(c) => c.apply(cx),
        }
    }
}

/// Reads a command's fields. Unknown fields are refused (each command struct says
/// `deny_unknown_fields`) so a typo like `feilds` is an error, not a silent full fetch.
fn args<T: DeserializeOwned>(body: Map<String, Value>) -> Result<T, Error> {
    serde_json::from_value(Value::Object(body)).map_err(|e| Error::BadRequest(e.to_string()))
}

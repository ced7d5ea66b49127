//! Client commands: one file each, parsing next to applying.
//!
//! [`Command::from_frame`] turns a decoded [`Frame`] into a typed command (unknown `type`s
//! and malformed fields are `bad_request`); [`Command::apply`] runs it for a session and
//! returns the reply frame.

pub mod account;
pub mod read;
pub mod update;
pub mod watch;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::frame::{Frame, Reply};
use crate::session::Session;

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
            other => {
                let mut shown: String = other.chars().take(40).collect();
                if shown.len() < other.len() {
                    shown.push('…');
                }
                return Err(Error::BadRequest(format!(
                    "unknown type {shown:?}; expected signup, login, auth, logout, refresh, password, update, fetch, watch or unwatch"
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
        }
    }

    /// # Errors
    /// Whatever the command refuses with; see PROTOCOL.md for each.
    pub async fn apply(self, session: &mut Session) -> Result<Reply, Error> {
        match self {
            Command::Signup(c) => c.apply(session).await,
            Command::Login(c) => c.apply(session).await,
            Command::Auth(c) => c.apply(session).await,
            Command::Logout(c) => c.apply(session).await,
            Command::Refresh(c) => c.apply(session).await,
            Command::Password(c) => c.apply(session).await,
            Command::Update(c) => c.apply(session).await,
            Command::Fetch(c) => c.apply(session).await,
            Command::Watch(c) => c.apply(session).await,
            Command::Unwatch(c) => c.apply(session),
        }
    }
}

/// Reads a command's fields. Unknown fields are refused (each command struct says
/// `deny_unknown_fields`) so a typo like `feilds` is an error, not a silent full fetch.
fn args<T: DeserializeOwned>(body: Map<String, Value>) -> Result<T, Error> {
    serde_json::from_value(Value::Object(body)).map_err(|e| Error::BadRequest(e.to_string()))
}

//! Hearth: a realtime personal backend.
//!
//! People sign up, each owns one versioned JSON document, and they share it with
//! collaborators (read and write) and readers (read only). Clients fetch, update (replace,
//! merge patch, JSON Patch, always against the version they last saw) and watch documents
//! over one WebSocket; every committed version is pushed to watchers the moment it is durable.
//!
//! # Layout
//! Data flows one way: socket → [`frame`] → [`cmd`] → [`store`] (commit) → [`fanout`] →
//! each watcher's socket.
//!
//! - [`server`]: start, serve, shut down in order. The binary is a thin wrapper around it.
//! - [`config`]: every setting and limit, with its default and why.
//! - [`http`]: routes; the WebSocket upgrade.
//! - [`session`]: one socket's loop, the only code that changes what a socket owns;
//!   [`connection`]: the socket's writer; [`closing`]: how it closes.
//! - [`frame`]: the wire format, decoded and encoded only there.
//! - [`cmd`]: one module per command family, parse next to apply; each returns an outcome
//!   (reply and effect) for the session to apply.
//! - [`store`]: cache + [`store::Backend`] (redb by default) with group commit.
//! - [`fanout`]: per-document broadcast, serialized once per view.
//! - [`auth`]: tokens, passwords, live sockets and revocation, account flags;
//!   [`accounts`]: signup/login/logout for every surface; [`names`]: usernames.
//! - [`limits`]: connections and rates; [`metrics`]: Prometheus counters.
//! - [`error`]: protocol errors, one wire code each; [`sys`]: time and random bytes.
//!
//! No source file imports another that imports it back (`scripts/import-cycles`).

pub mod accounts;
pub mod auth;
pub mod blobs;
pub mod closing;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod connection;
pub mod deletion;
pub mod error;
pub mod fanout;
pub mod feed;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod logging;
pub mod mailbox;
pub mod metrics;
pub mod names;
pub mod ops;
pub mod output;
pub mod overview;
pub mod presence;
pub mod proxies;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod socketio;
pub mod state;
pub mod store;
pub mod streams;
pub mod sys;
pub mod webhooks;

pub use config::Config;
pub use error::Error;
pub use server::{Running, run, start};

//! Cluster mode: how a node learns what other nodes committed.
//!
//! Each commit's transaction `NOTIFY`s `(username, version)` on the cluster's channel (see
//! `store::postgres::committer`); so do revocations and account flags. Every node `LISTEN`s on a
//! connection of its own and, for each notification:
//! - a commit: forgets older cached copies of the document, and if someone here watches it,
//!   reads the newest version and publishes it to the local hub. The hub only ever sends a
//!   watcher newer versions, and a watcher that sees a jump reads the versions in between
//!   from the change log (`fanout::watcher`), so every watcher on every node sees the same
//!   sequence: no gap, no duplicate, however late a notification arrives;
//! - a revocation, a disabled or re-enabled account, an admin grant: applied to `Auth` just
//!   as on the node that made it (sockets told, tokens refused).
//!
//! When the connection drops, the node reconnects with backoff, `LISTEN`s again and then
//! catches up: it drops its whole cache, reloads revocations and flags, and publishes the
//! newest version of every watched document (watchers fill the rest from the log). Catching
//! up *after* `LISTEN` is active leaves no window in which a commit goes unseen.
//!
//! [`Bus`] is the seam: [`PgBus`] delivers PostgreSQL's notifications; a NATS bus would
//! deliver the same [`Event`]s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::store::{Access, Committed, Flag, PgSettings, ShareChange, Version};

/// What one node tells the others.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Event {
    /// `username`'s document reached `version`.
    Commit {
        #[serde(rename = "c")]
        username: String,
        #[serde(rename = "v")]
        version: Version,
    },
    /// Session `sid` is revoked until `expires`.
    Revoke {
        #[serde(rename = "r")]
        sid: String,
        #[serde(rename = "e")]
        expires: u64,
    },
    /// Named document `key` was deleted: its watches here end.
    Deleted {
        #[serde(rename = "d")]
        key: String,
    },
    /// Document `key` is now shared with `user` as `role`, or no longer (`None`).
    Share {
        #[serde(rename = "s")]
        user: String,
        #[serde(rename = "k")]
        key: String,
        #[serde(rename = "r")]
        role: Option<String>,
    },
    /// An account flag changed.
    Flag {
        #[serde(rename = "f")]
        flag: String,
        #[serde(rename = "u")]
        username: String,
        on: bool,
    },
    /// A presence message (`presence/remote.rs`). Parsed by [`Event::parse`], not by the
    /// derive: its raw `state` cannot pass through an untagged enum's buffering.
    #[serde(skip_deserializing)]
    Presence(crate::presence::remote::Wire),
}

impl Event {
    /// A notification's payload. Presence messages start with their `pz` field.
    ///
    /// # Errors
    /// Not a notification this build knows.
    pub fn parse(payload: &str) -> Result<Event, serde_json::Error> {
        if payload.starts_with("{\"pz\"") {
            return serde_json::from_str(payload).map(Event::Presence);
        }
        serde_json::from_str(payload)
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a [`Bus`] hands its node.
#[derive(Debug, PartialEq)]
pub enum BusMessage {
    /// Subscribed (again): anything sent while not subscribed may have been missed.
    Subscribed,
    Event(Event),
}

/// How nodes hear each other. Publishing is the store's business (PostgreSQL notifies
/// inside each commit's transaction); a bus only delivers. A NATS bus would implement this
/// with a subscription, and the store would publish after each commit.
pub trait Bus: Send + 'static {
    /// Starts delivering until `stop`: reconnecting by itself and sending
    /// [`BusMessage::Subscribed`] after every (re)subscription.
    fn start(self, stop: CancellationToken) -> mpsc::UnboundedReceiver<BusMessage>;
}

/// LISTEN on the cluster's channel, on a connection of its own.
pub struct PgBus {
    pub url: String,
    pub channel: String,
}

impl PgBus {
    pub fn new(pg: &PgSettings) -> PgBus {
        PgBus {
            url: pg.url.clone(),
            channel: crate::store::postgres::channel(&pg.schema),
        }
    }

    /// One connection's life: LISTEN, then forward notifications until it fails.
    async fn session(&self, tx: &mpsc::UnboundedSender<BusMessage>) -> Ended {
        let lost = |subscribed, why: String| Ended::Lost { subscribed, why };
        let (client, mut connection) =
            match tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await {
                Ok(pair) => pair,
                Err(e) => return lost(false, e.to_string()),
            };
        let (note_tx, mut notes) = mpsc::unbounded_channel::<String>();
        let pump = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if note_tx.send(n.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "notification connection failed");
                        return;
                    }
                }
            }
        }));
        if let Err(e) = client
            .batch_execute(&format!("LISTEN \"{}\"", self.channel))
            .await
        {
            return lost(false, e.to_string());
        }
        if tx.send(BusMessage::Subscribed).is_err() {
            return Ended::ConsumerGone;
        }
        while let Some(payload) = notes.recv().await {
            match Event::parse(&payload) {
                Ok(event) => {
                    if tx.send(BusMessage::Event(event)).is_err() {
                        return Ended::ConsumerGone;
                    }
                }
                Err(e) => tracing::warn!(error = %e, %payload, "unknown cluster notification"),
            }
        }
        drop(pump);
        drop(client);
        lost(true, "connection closed".into())
    }
}

enum Ended {
    ConsumerGone,
    Lost { subscribed: bool, why: String },
}

impl Bus for PgBus {
    fn start(self, stop: CancellationToken) -> mpsc::UnboundedReceiver<BusMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let outcome = tokio::select! {
                    () = stop.cancelled() => return,
                    outcome = self.session(&tx) => outcome,
                };
                match outcome {
                    Ended::ConsumerGone => return,
                    Ended::Lost { subscribed, why } => {
                        if subscribed {
                            backoff = Duration::from_millis(100);
                        }
                        tracing::warn!(error = %why, "lost the cluster bus; reconnecting");
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        rx
    }
}

/// Applies what the bus delivers until shutdown. Messages that queued up meanwhile are
/// taken together and commits of one document coalesced: a busy document costs one read
/// per round, not one per version.
pub async fn listen(state: AppState, bus: impl Bus) {
    let mut rx = bus.start(state.shutdown.clone());
    let mut peers = crate::presence::remote::Peers::default();
    let mut sweep = tokio::time::interval(crate::presence::remote::SWEEP);
    loop {
        let first = tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = sweep.tick() => {
                state.presence.sweep(&mut peers);
                continue;
            }
            message = rx.recv() => match message {
                Some(m) => m,
                None => return,
            },
        };
        let mut commits: HashMap<String, Version> = HashMap::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                BusMessage::Event(Event::Commit { username, version }) => {
                    let newest = commits.entry(username).or_insert(version);
                    *newest = (*newest).max(version);
                }
                BusMessage::Event(Event::Presence(wire)) => state.presence.remote(wire, &mut peers),
                BusMessage::Event(event) => apply_account_event(&state, event),
                BusMessage::Subscribed => {
                    flush(&state, &mut commits).await;
                    catch_up(&state).await;
                    state.presence.rejoined(&mut peers);
                }
            }
            next = rx.try_recv().ok();
        }
        flush(&state, &mut commits).await;
    }
}

async fn flush(state: &AppState, commits: &mut HashMap<String, Version>) {
    for (username, version) in commits.drain() {
        commit(state, &username, version).await;
    }
}

fn apply_account_event(state: &AppState, event: Event) {
    match event {
        Event::Revoke { sid, expires } => state.auth.sockets.revoke(&sid, expires, 0),
        Event::Flag { flag, username, on } => match (flag.as_str(), on) {
            ("disabled", true) => state.auth.disable(&username),
            ("disabled", false) => state.auth.flags.enable(&username),
            ("admin", on) => state.auth.flags.set_granted_admin(&username, on),
            ("deleted", _) => state.auth.sockets.tell(
                &username,
                &crate::auth::Control::Close(crate::deletion::CLOSE_DELETED, "account deleted"),
            ),
            _ => tracing::warn!(%flag, "unknown account flag"),
        },
        Event::Deleted { key } => {
            state.store.invalidate_older(&key, Version::MAX);
            state.hub.end(&key);
            state.presence.end(&key);
        }
        Event::Share { user, key, role } => {
            let role = match role.as_deref() {
                None => None,
                Some("write") => Some(Access::Write),
                Some(_) => Some(Access::Read),
            };
            if role.is_none() {
                state.presence.evict(&key, &user);
            }
            crate::fanout::publisher::tell_share(
                &state.auth.sockets,
                &key,
                &ShareChange { user, role },
            );
        }
        Event::Commit { .. } | Event::Presence(_) => {}
    }
}

/// Another node (or this one) committed `version` of `username`.
async fn commit(state: &AppState, username: &str, version: Version) {
    // Another node's commit is in the feed now: its followers here wake.
    state.hub.bell().ring();
    if state
        .hub
        .watched(username)
        .is_some_and(|last| last >= version)
    {
        return; // this node's own commit, already published by its own writer
    }
    state.store.invalidate_older(username, version);
    if state.hub.watched(username).is_some() {
        publish_latest(state, username).await;
    }
}

/// Publishes the newest committed version of `username` to this node's watchers.
async fn publish_latest(state: &AppState, username: &str) {
    let doc = match state.store.document(username).await {
        Ok(Some(doc)) => doc,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, %username, "reading a notified document failed");
            return;
        }
    };
    let version = doc.version();
    if state
        .hub
        .watched(username)
        .is_none_or(|last| last >= version)
    {
        return;
    }
    let entry = match state.store.changes(username, version, version, 1).await {
        Ok(history) => history.entries.into_iter().next(),
        Err(e) => {
            tracing::error!(error = %e, %username, "reading a notified version failed");
            return;
        }
    };
    state.hub.publish(&Arc::new(Committed {
        doc,
        entry,
        created: false,
        shares: Vec::new(),
    }));
}

/// After (re)connecting: nothing heard while away may stay unapplied.
async fn catch_up(state: &AppState) {
    state.store.invalidate_all();
    match state.store.revoked().await {
        Ok(revoked) => {
            for (sid, expires) in revoked {
                state.auth.sockets.revoke(&sid, expires, 0);
            }
        }
        Err(e) => tracing::error!(error = %e, "reloading revocations failed"),
    }
    match state.store.flagged(Flag::Disabled).await {
        Ok(names) => state.auth.sync_disabled(names),
        Err(e) => tracing::error!(error = %e, "reloading disabled accounts failed"),
    }
    match state.store.flagged(Flag::Admin).await {
        Ok(names) => state.auth.flags.sync_granted_admins(names),
        Err(e) => tracing::error!(error = %e, "reloading admins failed"),
    }
    for username in state.hub.watched_documents() {
        publish_latest(state, &username).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn notifications_parse() {
        assert_eq!(
            serde_json::from_str::<Event>(r#"{"c":"ann","v":7}"#).ok(),
            Some(Event::Commit {
                username: "ann".into(),
                version: 7
            })
        );
        assert_eq!(
            serde_json::from_str::<Event>(r#"{"r":"abc","e":99}"#).ok(),
            Some(Event::Revoke {
                sid: "abc".into(),
                expires: 99
            })
        );
        assert_eq!(
            serde_json::from_str::<Event>(r#"{"f":"disabled","u":"ann","on":true}"#).ok(),
            Some(Event::Flag {
                flag: "disabled".into(),
                username: "ann".into(),
                on: true
            })
        );
        assert!(serde_json::from_str::<Event>(r#"{"x":1}"#).is_err());
        // Presence messages never parse as another notification.
        let seat = r#"{"pz":"j","pn":"n1","pk":"ann/list","pc":3,"pu":"bob","ps":{},"pt":"t"}"#;
        assert!(matches!(
            Event::parse(seat),
            Ok(Event::Presence(w)) if w.key.as_deref() == Some("ann/list") && w.conn == Some(3)
        ));
    }
}

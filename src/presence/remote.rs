//! Presence across a cluster's nodes, over the channel commits already use (PostgreSQL
//! `NOTIFY`). Each node sends only its own seats' changes and applies the others':
//! - `j` a seat joined or changed state, `l` a seat left;
//! - `h` every [`HEARTBEAT`]: the node is alive. A node not heard from for [`NODE_TIMEOUT`]
//!   (killed, cut off) loses every seat it held, on every survivor, within
//!   `NODE_TIMEOUT` + one sweep ([`SWEEP`]): nothing lingers;
//! - `b` goodbye (a clean stop): its seats go at once;
//! - `q` a node (re)joined the channel and asks everyone to send their seats again.
//!
//! Why not a table of leases: presence changes many times a second while someone types;
//! writing each into a table would put that traffic on the database's disk. Notifications
//! cost no write, and the heartbeats give the same guarantee a lease would.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Presence, SeatId};

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Silence after which a node's seats are dropped.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(6);
/// How often silent nodes are looked for.
pub const SWEEP: Duration = Duration::from_secs(1);

/// One presence message on the cluster's channel. Its field names start with `p` so that
/// it never parses as one of the commit, revocation or account notifications.
#[derive(Debug, Serialize, Deserialize)]
pub struct Wire {
    #[serde(rename = "pz")]
    pub kind: String,
    #[serde(rename = "pn")]
    pub node: String,
    #[serde(rename = "pk", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(rename = "pc", default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<u64>,
    #[serde(rename = "pu", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(rename = "ps", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Box<RawValue>>,
    #[serde(rename = "pt", default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

impl PartialEq for Wire {
    fn eq(&self, o: &Wire) -> bool {
        (
            &self.kind,
            &self.node,
            &self.key,
            self.conn,
            &self.user,
            &self.since,
        ) == (&o.kind, &o.node, &o.key, o.conn, &o.user, &o.since)
            && self.state.as_ref().map(|s| s.get()) == o.state.as_ref().map(|s| s.get())
    }
}

impl Wire {
    fn bare(kind: &str, node: &str) -> Wire {
        Wire {
            kind: kind.into(),
            node: node.into(),
            key: None,
            conn: None,
            user: None,
            state: None,
            since: None,
        }
    }
}

/// Where a node's presence messages wait for the publisher (`publish`). Sends never block:
/// a message that cannot be published is repaired by the next `q` exchange.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<String>,
}

impl Outbox {
    pub fn new() -> (Outbox, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Outbox { tx }, rx)
    }

    fn send(&self, wire: &Wire) {
        if let Ok(text) = serde_json::to_string(wire) {
            // Gone only at shutdown.
            let _ = self.tx.send(text);
        }
    }

    pub(super) fn seated(&self, key: &str, user: &str, id: &SeatId, state: &RawValue, since: &str) {
        let mut wire = Wire::bare("j", &id.node);
        wire.key = Some(key.into());
        wire.conn = Some(id.conn);
        wire.user = Some(user.into());
        wire.state = Some(state.to_owned());
        wire.since = Some(since.into());
        self.send(&wire);
    }

    pub(super) fn unseated(&self, key: &str, id: &SeatId) {
        let mut wire = Wire::bare("l", &id.node);
        wire.key = Some(key.into());
        wire.conn = Some(id.conn);
        self.send(&wire);
    }

    pub fn control(&self, kind: &str, node: &str) {
        self.send(&Wire::bare(kind, node));
    }
}

/// What a node keeps about the others.
#[derive(Default)]
pub struct Peers {
    last_heard: HashMap<String, Instant>,
}

impl Presence {
    /// Applies a message from the channel (this node's own come back too, and are skipped).
    pub fn remote(&self, wire: Wire, peers: &mut Peers) {
        if *wire.node == *self.node {
            return;
        }
        peers.last_heard.insert(wire.node.clone(), Instant::now());
        let node: Arc<str> = wire.node.as_str().into();
        match (wire.kind.as_str(), wire.key, wire.conn) {
            ("j", Some(key), Some(conn)) => {
                let (Some(user), Some(state), Some(since)) = (wire.user, wire.state, wire.since)
                else {
                    return;
                };
                self.seat_remote(
                    &key,
                    &user,
                    SeatId { node, conn },
                    state.into(),
                    since.into(),
                );
            }
            ("l", Some(key), Some(conn)) => self.unseat_remote(&key, &SeatId { node, conn }),
            ("b", ..) => {
                peers.last_heard.remove(&wire.node);
                self.forget_node(&wire.node);
            }
            ("q", ..) => self.announce(),
            _ => {}
        }
    }

    /// Sends every seat of this node again (asked by a node that joined the channel).
    fn announce(&self) {
        let Some(bus) = &self.bus else { return };
        for (key, user, id, state, since) in self.local_seats() {
            bus.seated(&key, &user, &id, &state, &since);
        }
    }

    /// This node (re)joined the channel: what it knew of the others may be stale, so it is
    /// dropped and asked for again.
    pub fn rejoined(&self, peers: &mut Peers) {
        for node in std::mem::take(&mut peers.last_heard).into_keys() {
            self.forget_node(&node);
        }
        if let Some(bus) = &self.bus {
            bus.control("q", &self.node);
        }
    }

    /// Drops the seats of nodes silent for longer than [`NODE_TIMEOUT`].
    pub fn sweep(&self, peers: &mut Peers) {
        let silent: Vec<String> = peers
            .last_heard
            .iter()
            .filter(|(_, at)| at.elapsed() > NODE_TIMEOUT)
            .map(|(n, _)| n.clone())
            .collect();
        for node in silent {
            tracing::warn!(%node, "a node fell silent; its presences are dropped");
            peers.last_heard.remove(&node);
            self.forget_node(&node);
        }
    }

    /// Says goodbye on the channel (a clean stop).
    pub fn goodbye(&self) {
        if let Some(bus) = &self.bus {
            bus.control("b", &self.node);
        }
    }
}

/// Sends this node's presence messages, in order, on a connection of its own, and a
/// heartbeat every [`HEARTBEAT`], until `stop`. While the database cannot be reached,
/// messages are dropped and a reconnect is tried at each heartbeat; the goodbye-and-announce
/// after it repairs what the other nodes hold.
pub async fn publish(
    url: String,
    channel: String,
    presence: Presence,
    mut rx: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        let (payload, heartbeat) = tokio::select! {
            () = stop.cancelled() => break,
            _ = beat.tick() => (serde_json::to_string(&Wire::bare("h", &presence.node)).unwrap_or_default(), true),
            next = rx.recv() => match next {
                Some(p) => (p, false),
                None => break,
            },
        };
        if client.is_none() {
            // Reconnect on the heartbeat only: typing while the database is away must not
            // become a connection attempt per keystroke. What is dropped meanwhile is
            // repaired by the goodbye and announce that follow a reconnect.
            if !heartbeat {
                continue;
            }
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((c, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    client = Some(c);
                    // Whatever was lost while away: others drop this node's seats, and get
                    // them again.
                    presence.goodbye();
                    presence.announce();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "presence: cannot reach PostgreSQL");
                    continue;
                }
            }
        }
        if let Some(c) = &client
            && let Err(e) = c
                .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await
        {
            tracing::warn!(error = %e, "presence: a notification failed");
            client = None;
        }
    }
    // A clean stop: the others drop this node's seats at once.
    while let Ok(p) = rx.try_recv() {
        if let Some(c) = &client {
            let _ = c.execute("SELECT pg_notify($1, $2)", &[&channel, &p]).await;
        }
    }
    if let Some(c) = &client {
        let bye = serde_json::to_string(&Wire::bare("b", &presence.node)).unwrap_or_default();
        let _ = c
            .execute("SELECT pg_notify($1, $2)", &[&channel, &bye])
            .await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::{Outbox, publish};
    use crate::presence::Presence;

    /// With the database away, a burst of presence changes does not become a burst of
    /// connection attempts: one at start, then one per heartbeat.
    #[tokio::test]
    async fn an_unreachable_database_is_retried_on_the_heartbeat_only() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = attempts.clone();
        // Accepts and hangs up at once: no PostgreSQL there.
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        let (outbox, rx) = Outbox::new();
        let presence = Presence::new(Some(outbox.clone()));
        let stop = CancellationToken::new();
        let url = format!("postgres://nobody@{addr}/none");
        let task = tokio::spawn(publish(url, "c".into(), presence, rx, stop.clone()));
        for _ in 0..500 {
            outbox.control("h", "n");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
        task.await.unwrap();
        let n = attempts.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&n),
            "{n} connection attempts for 500 messages"
        );
    }
}

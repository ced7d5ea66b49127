//! The live registry of signed-in sockets and streams, and session revocation: what lets a
//! logout, a disabled account or a deletion reach every socket at once, not at `exp`.

use std::collections::HashMap;

use dashmap::DashMap;

use crate::mailbox;

/// What a socket is told when something outside it changes its session.
#[derive(Debug, Clone)]
pub enum Control {
    /// The token this socket authenticated with was revoked (logout elsewhere).
    Revoked,
    /// Close the socket with this code and reason (slow consumer, ...).
    Close(u16, &'static str),
    /// Send this frame (a `shared` or `unshared` push); streams ignore it.
    Notice(axum::extract::ws::Utf8Bytes),
}

#[derive(Default)]
pub struct Sockets {
    /// sid → expiry (Unix seconds); entries are useless after expiry and are skipped at load.
    revoked: DashMap<String, u64>,
    /// sid → the sockets authenticated with it, by connection id.
    live: DashMap<String, HashMap<u64, mailbox::Sender<Control>>>,
    /// username → its signed-in sockets, to close them when the account is disabled.
    by_user: DashMap<String, HashMap<u64, mailbox::Sender<Control>>>,
}

impl Sockets {
    /// True if the session was logged out or revoked.
    pub fn is_revoked(&self, sid: &str) -> bool {
        self.revoked.contains_key(sid)
    }

    /// Loads revocations persisted by earlier runs.
    pub fn restore_revoked(&self, entries: impl IntoIterator<Item = (String, u64)>) {
        for (sid, exp) in entries {
            self.revoked.insert(sid, exp);
        }
    }

    /// Revokes in memory and tells every other socket using `sid` (not `except`, the socket
    /// that asked). The caller persists the revocation.
    pub fn revoke(&self, sid: &str, exp: u64, except: u64) {
        self.revoked.insert(sid.to_owned(), exp);
        if let Some((_, sockets)) = self.live.remove(sid) {
            for (conn, tx) in sockets {
                if conn != except {
                    // A full or closed control queue means that socket is going away anyway.
                    let _ = tx.try_send(Control::Revoked);
                }
            }
        }
    }

    /// Tells every signed-in socket and stream of `username`: closes them (a `Close`), or
    /// has sockets send a frame (a `Notice`).
    pub fn tell(&self, username: &str, control: &Control) {
        if let Some(sockets) = self.by_user.get(username) {
            for tx in sockets.values() {
                // A full or closed control queue means that socket is going away anyway.
                let _ = tx.try_send(control.clone());
            }
        }
    }

    /// Counts connection `conn` as signed in to session `sid` of `username` until
    /// [`Sockets::unregister`]; the caller must unregister it when it signs out or closes.
    pub fn register(&self, sid: &str, username: &str, conn: u64, tx: mailbox::Sender<Control>) {
        self.live
            .entry(sid.to_owned())
            .or_default()
            .insert(conn, tx.clone());
        self.by_user
            .entry(username.to_owned())
            .or_default()
            .insert(conn, tx);
    }

    /// Connections (sockets and streams) signed in to session `sid` now, on this node.
    pub fn open(&self, sid: &str) -> usize {
        self.live.get(sid).map_or(0, |s| s.len())
    }

    pub fn unregister(&self, sid: &str, username: &str, conn: u64) {
        self.live.remove_if_mut(sid, |_, sockets| {
            sockets.remove(&conn);
            sockets.is_empty()
        });
        self.by_user.remove_if_mut(username, |_, sockets| {
            sockets.remove(&conn);
            sockets.is_empty()
        });
    }
}

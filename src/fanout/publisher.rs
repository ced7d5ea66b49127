//! What this process does with each commit the store hands it ([`crate::store::Publish`]):
//! the document's watchers are told (the hub), and the users whose access changed are told on
//! every socket they have open here (`shared` / `unshared`).
//!
//! In cluster mode the access pushes come from the cluster's notifications instead
//! (`cluster.rs`), on every node alike, the committing one included; so here they are sent
//! only when `share_pushes` is set (a single node).

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;

use super::Hub;
use crate::auth::Control;
use crate::auth::sockets::Sockets;
use crate::frame::{Reply, encode, split_key};
use crate::store::{Committed, Document, ShareChange};

pub struct Publisher {
    pub hub: Hub,
    pub sockets: Arc<Sockets>,
    pub presence: crate::presence::Presence,
    pub share_pushes: bool,
}

impl crate::store::Publish for Publisher {
    fn publish(&self, committed: &Arc<Committed>) {
        self.hub.publish(committed);
        if self.share_pushes && !committed.shares.is_empty() {
            let key = committed.doc.key();
            for change in &committed.shares {
                tell_share(&self.sockets, &key, change);
                if change.role.is_none() {
                    self.presence.evict(&key, &change.user);
                }
            }
        }
    }

    fn deleted(&self, doc: &Arc<Document>, shares: &[ShareChange]) {
        self.hub.end(&doc.key());
        self.presence.end(&doc.key());
        if self.share_pushes {
            let key = doc.key();
            for change in shares {
                tell_share(&self.sockets, &key, change);
            }
        }
    }
}

/// Pushes `shared` or `unshared` for document `key` to every socket `change.user` has open
/// here. Best effort, as every push is: a socket whose control queue is full is closing or
/// far behind, and `list` is the authority a client reconciles with after a reconnect.
pub fn tell_share(sockets: &Sockets, key: &str, change: &ShareChange) {
    let (owner, name) = split_key(key);
    let reply = match change.role {
        Some(role) => Reply::Shared {
            owner,
            name,
            role: role.role_name(),
        },
        None => Reply::Unshared { owner, name },
    };
    let frame: Utf8Bytes = encode(None, &reply);
    sockets.tell(&change.user, &Control::Notice(frame));
}

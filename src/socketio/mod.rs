//! `/socket.io/`: personal-backend's clients (seed `003`), unchanged, on Hearth's store,
//! access rules and fanout. Engine.IO v4 (long-polling, WebSocket, and the upgrade from one
//! to the other) and Socket.IO v5 on the default namespace, written here over axum: the
//! protocol is two small packet formats (`packet.rs`), and a Node process beside the server
//! would double what there is to run and to secure.
//!
//! Each connection (`engine.rs`) runs an ordinary Hearth session (`session::run`) over a
//! transport of its own: the seed's events become Hearth frames on the way in, and Hearth's
//! replies and pushes become the seed's events on the way out (`events.rs`). So limits, rate
//! limits, metrics, revocation and watches are the very ones `/ws` has.

mod engine;
mod events;
pub mod packet;

use std::sync::Arc;

use dashmap::DashMap;

pub use self::engine::Engine;

/// Open connections by `sid`.
#[derive(Default)]
pub struct Registry(DashMap<String, Arc<Engine>>);

impl Registry {
    pub fn insert(&self, engine: Arc<Engine>) {
        self.0.insert(engine.sid.clone(), engine);
    }

    pub fn get(&self, sid: &str) -> Option<Arc<Engine>> {
        self.0.get(sid).map(|e| e.clone())
    }

    pub fn remove(&self, sid: &str) {
        self.0.remove(sid);
    }
}

/// A connection id: 120 random bits, URL-safe.
pub(crate) fn new_sid() -> String {
    use base64::Engine as _;
    let bytes: [u8; 15] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

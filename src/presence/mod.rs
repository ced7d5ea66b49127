//! Presence: who is looking at a document now, with a small state each ("typing in notes"),
//! on every node. Never stored, never a version: in memory, one room per document asked about.
//!
//! A room holds *seats* (one per connection that announced itself, on this node or another)
//! and *listeners* (connections here that asked about the room and watch the document).
//! Clients see people, not seats: several connections of one user are one person with a
//! `connections` count, their newest state and their earliest `since`. Every change to a
//! room happens under its map entry's lock and is pushed to its listeners before the lock
//! goes, so every listener sees one room's events in the order they happened.
//!
//! Seats end with what ends their connection's interest: the socket closes (idle timeout
//! included), unwatches, signs out, loses access (`evict`, from the share change), the
//! document is deleted (`end`), the server stops. In a cluster, seats of other nodes come
//! from the bus (`presence/remote.rs`) and go when their node says goodbye or falls silent.

pub mod remote;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use serde::Serialize;
use serde_json::value::RawValue;

/// Largest presence state, serialized.
pub const MAX_STATE_BYTES: usize = 1024;
/// State changes one connection may make per document per second (a burst of as many).
pub const MAX_SETS_PER_SECOND: u32 = 10;

/// Delivers one pushed frame to a listener; false when it could not take it (the listener
/// is then dropped, and its connection told it is too slow by the push itself).
pub type Push = Arc<dyn Fn(&Utf8Bytes) -> bool + Send + Sync>;

/// Which connection a seat belongs to: its node and its connection id there.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeatId {
    pub node: Arc<str>,
    pub conn: u64,
}

#[derive(Clone, Debug)]
struct Seat {
    state: Arc<RawValue>,
    since: Arc<str>,
    /// Order of state changes in the room: the person's state is their newest seat's.
    seq: u64,
    /// The rate limit's window: when it began and how many changes it has seen.
    window: (Instant, u32),
}

#[derive(Default)]
struct Room {
    people: HashMap<String, HashMap<SeatId, Seat>>,
    /// Connections here that hear this room, and whose they are.
    listeners: HashMap<u64, (String, Push)>,
    /// Counts changes: a push carries its event's, a list the one it is as of, so a client
    /// tells a push its list holds from one that overtook it.
    seq: u64,
}

/// One person as clients see them.
#[derive(Clone, Debug, Serialize)]
pub struct Person {
    pub username: String,
    pub connections: usize,
    pub state: Arc<RawValue>,
    pub since: Arc<str>,
}

impl PartialEq for Person {
    fn eq(&self, other: &Person) -> bool {
        self.username == other.username
            && self.connections == other.connections
            && self.state.get() == other.state.get()
            && self.since == other.since
    }
}

impl Room {
    fn person(&self, user: &str) -> Option<Person> {
        let seats = self.people.get(user)?;
        let newest = seats.values().max_by_key(|s| s.seq)?;
        let since = seats.values().map(|s| &s.since).min()?;
        Some(Person {
            username: user.to_owned(),
            connections: seats.len(),
            state: newest.state.clone(),
            since: since.clone(),
        })
    }

    fn list(&self) -> Vec<Person> {
        let mut out: Vec<Person> = self.people.keys().filter_map(|u| self.person(u)).collect();
        out.sort_by(|a, b| a.since.cmp(&b.since).then(a.username.cmp(&b.username)));
        out
    }

    fn is_empty(&self) -> bool {
        self.people.is_empty() && self.listeners.is_empty()
    }
}

/// A seat of this node as `remote.rs` announces it: document, user, seat, state, since.
pub(crate) type LocalSeat = (String, String, SeatId, Arc<RawValue>, Arc<str>);

/// What a change to a room did to one person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Join,
    Update,
    Leave,
}

/// Why a presence request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooLarge,
    RateLimited,
}

/// The presence of every document on this node. Cheap to clone.
#[derive(Clone)]
pub struct Presence {
    rooms: Arc<DashMap<String, Room>>,
    /// This node's name in seat ids (random per start).
    pub node: Arc<str>,
    /// Where local seat changes go for the other nodes (cluster mode).
    bus: Option<remote::Outbox>,
}

impl Presence {
    pub fn new(bus: Option<remote::Outbox>) -> Presence {
        Presence {
            rooms: Arc::new(DashMap::new()),
            node: crate::sys::random_hex(8).into(),
            bus,
        }
    }

    fn seat_id(&self, conn: u64) -> SeatId {
        SeatId {
            node: self.node.clone(),
            conn,
        }
    }

    /// Who is present on `key`, and the room's `seq` that list is as of.
    pub fn list(&self, key: &str) -> (Vec<Person>, u64) {
        self.rooms
            .get(key)
            .map(|r| (r.list(), r.seq))
            .unwrap_or_default()
    }

    /// Pushes `key`'s changes to `user`'s connection `conn` (until `depart`) through what `make`
    /// builds; one already listening keeps its push.
    pub fn listen(&self, key: &str, user: &str, conn: u64, make: impl FnOnce() -> Push) {
        self.rooms
            .entry(key.to_owned())
            .or_default()
            .listeners
            .entry(conn)
            .or_insert_with(|| (user.to_owned(), make()));
    }

    /// Seats connection `conn` of `user` on `key` with `state`, or changes its state.
    ///
    /// # Errors
    /// `TooLarge` past [`MAX_STATE_BYTES`]; `RateLimited` past [`MAX_SETS_PER_SECOND`].
    pub fn join(
        &self,
        key: &str,
        user: &str,
        conn: u64,
        state: Box<RawValue>,
    ) -> Result<(), Refusal> {
        if state.get().len() > MAX_STATE_BYTES {
            return Err(Refusal::TooLarge);
        }
        let id = self.seat_id(conn);
        let state: Arc<RawValue> = state.into();
        let since: Arc<str> = crate::sys::now_rfc3339().into();
        {
            let mut room = self.rooms.entry(key.to_owned()).or_default();
            let now = Instant::now();
            if let Some(seat) = room.people.get(user).and_then(|s| s.get(&id)) {
                let (start, count) = seat.window;
                if now.duration_since(start) < Duration::from_secs(1)
                    && count >= MAX_SETS_PER_SECOND
                {
                    return Err(Refusal::RateLimited);
                }
            }
            let seq = room.seq + 1;
            room.seq = seq;
            let before = room.person(user);
            let seats = room.people.entry(user.to_owned()).or_default();
            let seat = seats.entry(id.clone()).or_insert_with(|| Seat {
                state: state.clone(),
                since: since.clone(),
                seq,
                window: (now, 0),
            });
            seat.state = state.clone();
            seat.seq = seq;
            seat.window = if now.duration_since(seat.window.0) < Duration::from_secs(1) {
                (seat.window.0, seat.window.1 + 1)
            } else {
                (now, 1)
            };
            let seat_since = seat.since.clone();
            tell(key, &mut room, user, before);
            if let Some(bus) = &self.bus {
                bus.seated(key, user, &id, &state, &seat_since);
            }
        }
        Ok(())
    }

    /// Takes connection `conn`'s seat on `key` away, if it has one; it still listens.
    pub fn leave(&self, key: &str, conn: u64) {
        self.unseat(key, &self.seat_id(conn), true);
    }

    /// Connection `conn` is done with `key`: its seat and its listening go.
    pub fn depart(&self, key: &str, conn: u64) {
        self.unseat(key, &self.seat_id(conn), true);
        self.rooms.remove_if_mut(key, |_, room| {
            room.listeners.remove(&conn);
            room.is_empty()
        });
    }

    fn unseat(&self, key: &str, id: &SeatId, local: bool) {
        let Some(mut room) = self.rooms.get_mut(key) else {
            return;
        };
        let Some(user) = room
            .people
            .iter()
            .find(|(_, seats)| seats.contains_key(id))
            .map(|(u, _)| u.clone())
        else {
            return;
        };
        let before = room.person(&user);
        if let Some(seats) = room.people.get_mut(&user) {
            seats.remove(id);
            if seats.is_empty() {
                room.people.remove(&user);
            }
        }
        tell(key, &mut room, &user, before);
        if local && let Some(bus) = &self.bus {
            bus.unseated(key, id);
        }
        let empty = room.is_empty();
        drop(room);
        if empty {
            self.rooms.remove_if(key, |_, r| r.is_empty());
        }
    }

    /// `user` lost access to `key`: their seats there go, on every node (each node evicts
    /// its own, as each hears of the share change), and their connections stop listening.
    pub fn evict(&self, key: &str, user: &str) {
        // Deaf first: they hear nothing more of the room, their own leaving included.
        let seats: Vec<SeatId> = match self.rooms.get_mut(key) {
            Some(mut room) => {
                room.listeners.retain(|_, (who, _)| who != user);
                room.people
                    .get(user)
                    .map(|s| s.keys().cloned().collect())
                    .unwrap_or_default()
            }
            None => return,
        };
        for id in seats.iter().filter(|id| id.node == self.node) {
            self.unseat(key, id, true);
        }
        self.rooms.remove_if(key, |_, r| r.is_empty());
    }

    /// Document `key` is gone: so is its room, without a word (its watches end anyway).
    pub fn end(&self, key: &str) {
        self.rooms.remove(key);
    }

    /// A seat of another node (`remote.rs`).
    pub(crate) fn seat_remote(
        &self,
        key: &str,
        user: &str,
        id: SeatId,
        state: Arc<RawValue>,
        since: Arc<str>,
    ) {
        let mut room = self.rooms.entry(key.to_owned()).or_default();
        let seq = room.seq + 1;
        room.seq = seq;
        let before = room.person(user);
        room.people.entry(user.to_owned()).or_default().insert(
            id,
            Seat {
                state,
                since,
                seq,
                window: (Instant::now(), 0),
            },
        );
        tell(key, &mut room, user, before);
    }

    pub(crate) fn unseat_remote(&self, key: &str, id: &SeatId) {
        self.unseat(key, id, false);
    }

    /// Every seat of `node` goes (it said goodbye, or fell silent).
    pub(crate) fn forget_node(&self, node: &str) {
        let seats: Vec<(String, SeatId)> = self
            .rooms
            .iter()
            .flat_map(|room| {
                let key = room.key().clone();
                room.people
                    .values()
                    .flat_map(|s| s.keys().filter(|id| &*id.node == node).cloned())
                    .map(move |id| (key.clone(), id))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (key, id) in seats {
            self.unseat(&key, &id, false);
        }
    }

    /// This node's own seats, for a node that asks (it just joined the bus).
    pub(crate) fn local_seats(&self) -> Vec<LocalSeat> {
        let mut out = Vec::new();
        for room in self.rooms.iter() {
            for (user, seats) in &room.people {
                for (id, seat) in seats.iter().filter(|(id, _)| id.node == self.node) {
                    out.push((
                        room.key().clone(),
                        user.clone(),
                        id.clone(),
                        seat.state.clone(),
                        seat.since.clone(),
                    ));
                }
            }
        }
        out
    }

    /// Documents with someone present or listening.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }
}

/// A connection's part in one room, for as long as it watches the document: dropping it
/// takes the connection's seat away (if it has one) and stops its pushes.
pub struct Membership {
    presence: Presence,
    key: String,
    conn: u64,
}

impl Membership {
    pub fn new(presence: &Presence, key: &str, conn: u64) -> Membership {
        Membership {
            presence: presence.clone(),
            key: key.to_owned(),
            conn,
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.presence.depart(&self.key, self.conn);
    }
}

/// Pushes what the change to `user` did, if anything, to every listener of the room.
fn tell(key: &str, room: &mut Room, user: &str, before: Option<Person>) {
    let after = room.person(user);
    let event = match (&before, &after) {
        (None, None) => return,
        (None, Some(_)) => Event::Join,
        (Some(_), None) => Event::Leave,
        (Some(b), Some(a)) if b == a => return,
        (Some(_), Some(_)) => Event::Update,
    };
    room.seq += 1;
    if room.listeners.is_empty() {
        return;
    }
    let frame = push_frame(key, event, user, after.as_ref(), room.seq);
    room.listeners.retain(|_, (_, push)| push(&frame));
}

/// The `presence` push: `{type, username, name?, event, user, seq, connections?, state?,
/// since?}`.
fn push_frame(key: &str, event: Event, user: &str, person: Option<&Person>, seq: u64) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Pushed<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        username: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        event: Event,
        user: &'a str,
        seq: u64,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        person: Option<PersonFields<'a>>,
    }
    #[derive(Serialize)]
    struct PersonFields<'a> {
        connections: usize,
        state: &'a RawValue,
        since: &'a str,
    }
    let (username, name) = match key.split_once('/') {
        Some((owner, name)) => (owner, Some(name)),
        None => (key, None),
    };
    let pushed = Pushed {
        kind: "presence",
        username,
        name,
        event,
        user,
        seq,
        person: person.map(|p| PersonFields {
            connections: p.connections,
            state: &p.state,
            since: &p.since,
        }),
    };
    // Serializing these plain fields cannot fail; an empty frame would be skipped by clients.
    serde_json::to_string(&pushed).unwrap_or_default().into()
}

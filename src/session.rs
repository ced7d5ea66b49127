//! One socket's life: read frames, run commands one at a time, forward watched documents.
//!
//! Three kinds of task per socket, so none blocks another: this loop (reading and running
//! commands), the writer ([`crate::connection`]), and one forwarder per watch. Everything a
//! socket owns is dropped when this loop ends: watches unsubscribe, the session leaves the
//! revocation registry and the connection counts, the writer drains and closes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::task::AbortOnDropHandle;

use crate::auth::{Claims, Control};
use crate::closing::{CLOSE_FLUSH, close_for, finish};
use crate::cmd::{Command, Context, Effect, Outcome};
use crate::connection::{Outbound, Transport, close, write_loop};
use crate::error::Error;
use crate::frame::{ErrorBody, Frame, Reply, encode};
use crate::limits::{IpGuard, UserGuard};
use crate::mailbox;
use crate::state::AppState;

/// What one socket owns. Commands see it through a read-only [`Context`] and say what to
/// change in an [`Outcome`]; only this module changes it.
struct Session {
    state: AppState,
    conn: u64,
    /// The client's address, for per-address limits.
    ip: IpAddr,
    out: Outbound,
    control: mailbox::Sender<Control>,
    user: Option<Claims>,
    /// Counts this socket against its user's connection limit while signed in.
    user_slot: Option<UserGuard>,
    watches: HashMap<String, AbortOnDropHandle<()>>,
    /// The documents whose presence this socket takes part in: each ends with its watch.
    presence: HashMap<String, crate::presence::Membership>,
    /// The socket asked for `list` since it signed in: it is shown `shared` and `unshared`
    /// pushes from then on. Sockets that never list (every client written before named
    /// documents) get no frame they would not understand.
    hears_shares: bool,
    rate: DefaultDirectRateLimiter,
}

/// Updates queued to the store whose replies are not sent yet, oldest first. Kept beside the
/// session rather than in it: the futures are not `Sync`, and the session is shared by
/// reference across awaits. A plain deque whose front alone is awaited: replies go out in
/// order anyway, the commits proceed without being polled, and an empty `VecDeque`
/// allocates nothing, which matters on an idle socket (`FuturesOrdered` does allocate).
type Inflight = VecDeque<BoxFuture<'static, Answer>>;

/// The oldest queued update's reply, once it is ready. Cancel-safe: the future stays in the
/// deque until it has completed. Boxed because `select!` keeps its output in the socket's
/// task for as long as the branch runs: unboxed, a reply would make every socket's future
/// larger, idle or not.
async fn next_answer(inflight: &mut Inflight) -> Option<Box<Answer>> {
    let answer = inflight.front_mut()?.await;
    inflight.pop_front();
    Some(Box::new(answer))
}

type Answer = (Option<Value>, Result<Reply, Error>);

/// Updates one socket may have queued before it waits for the oldest to be answered. Why
/// queue more than one: a client that sends a burst (an editor saving keystrokes) gets it
/// committed in one or two fsyncs instead of one each; the writer applies them in order,
/// so the results and replies are exactly those of running them one at a time.
pub const MAX_PIPELINED_UPDATES: usize = 32;

pub async fn run(state: AppState, transport: Transport, ip: IpAddr, ip_slot: IpGuard) {
    let Transport { sink, mut stream } = transport;
    let sink = Arc::new(tokio::sync::Mutex::new(sink));
    let (out, out_rx) = Outbound::new(state.limits.outbound_buffer, sink.clone());
    let (close_tx, close_rx) = oneshot::channel();
    let writer = state.output.spawn(write_loop(sink, out_rx, close_rx));
    let (control, mut control_rx) = mailbox::channel(8);
    let shutdown = state.shutdown.clone();
    let per_second =
        NonZeroU32::new(state.limits.max_requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
    let mut ping = tokio::time::interval(state.limits.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.reset();
    let idle_after = state.limits.idle_timeout;
    let mut session = Session {
        conn: state.next_conn_id(),
        ip,
        state,
        out,
        control,
        user: None,
        user_slot: None,
        watches: HashMap::new(),
        presence: HashMap::new(),
        hears_shares: false,
        rate: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
    };
    let mut last_heard = Instant::now();
    let mut inflight = Inflight::new();
    session.state.metrics.connections.inc();

    let close_with: Option<(u16, &'static str)> = loop {
        // One timer for both deadlines, so an idle socket's task stays small.
        let idle_at = last_heard + idle_after;
        let expires_at = session.expires_at();
        let wake = tokio::time::sleep_until(expires_at.map_or(idle_at, |e| e.min(idle_at)));
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Some((close::GOING_AWAY, "server shutting down")),
            Some(ctl) = control_rx.recv() => match ctl {
                Control::Revoked => Box::pin(session.signed_out("token revoked")).await,
                Control::Close(code, reason) => break Some((code, reason)),
                Control::Notice(frame) => {
                    if session.hears_shares {
                        session.out.try_send_control(Message::Text(frame));
                    }
                }
            },
            Some(answer) = next_answer(&mut inflight), if !inflight.is_empty() => {
                if !Box::pin(session.answer(*answer)).await {
                    break None;
                }
            }
            msg = stream.next(), if inflight.len() < MAX_PIPELINED_UPDATES => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: a command's future is large (an update, a watch with its
                        // replay), and inline it would sit in every idle socket's task.
                        if !Box::pin(session.handle(text.as_str(), &mut inflight)).await {
                            break None;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let err = Error::BadRequest("binary frames are not supported; send JSON text".into());
                        if !Box::pin(session.drain(&mut inflight)).await
                            || !Box::pin(session.send_error(None, &err)).await
                        {
                            break None;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(e)) => break Some(close_for(e)),
                }
            }
            _ = ping.tick() => session.out.try_send_control(Message::Ping(Default::default())),
            () = wake => {
                // Read again: a `refresh` since the timer was set moves the expiry.
                if session.expires_at().is_some_and(|e| e <= Instant::now()) {
                    Box::pin(session.signed_out("token expired")).await;
                } else if last_heard + idle_after <= Instant::now() {
                    break Some((close::IDLE, "idle timeout"));
                }
            }
        }
    };

    // Updates already queued commit whatever happens to the socket; answer them while it
    // may still be open, but not for long, and not at all on a socket closed for not
    // reading: each reply would wait out the slow-consumer timeout.
    if close_with.is_none_or(|(code, _)| code != close::SLOW_CONSUMER) && !inflight.is_empty() {
        let drain = async {
            let _ = tokio::time::timeout(CLOSE_FLUSH, session.drain(&mut inflight)).await;
        };
        Box::pin(drain).await;
    }
    // Tell the writer our close code *before* dropping the session: dropping it drops the
    // queue's last senders, and a writer that sees its queue end first would close without
    // a code (1005) instead of ours.
    if let Some(reason) = close_with {
        // The writer may be gone already; then the socket is closed anyway.
        let _ = close_tx.send(reason);
    }
    session.end();
    session.state.metrics.connections.dec();
    drop(session);
    drop(ip_slot);
    // Boxed for the same reason as commands: only a closing socket needs this state.
    Box::pin(finish(stream, writer, close_with)).await;
}

impl Session {
    /// Runs one text frame. Returns false when the socket is gone.
    async fn handle(&mut self, text: &str, inflight: &mut Inflight) -> bool {
        let frame = match Frame::parse(text) {
            Ok(frame) => frame,
            Err((id, e)) => {
                self.state
                    .metrics
                    .frames_in
                    .with_label_values(&["invalid"])
                    .inc();
                let e = Error::BadRequest(e.to_string());
                return self.drain(inflight).await && self.send_error(id.as_ref(), &e).await;
            }
        };
        let id = frame.id.clone();
        if self.rate.check().is_err() {
            let e = Error::RateLimited { retry_after: 1 };
            return self.drain(inflight).await && self.send_error(id.as_ref(), &e).await;
        }
        let cmd = Command::from_frame(frame);
        self.state
            .metrics
            .frames_in
            .with_label_values(&[cmd.as_ref().map_or("invalid", Command::name)])
            .inc();
        let result = match cmd {
            Ok(Command::Update(update)) => match update.submit(&self.context()) {
                Ok((true, pending)) => {
                    inflight.push_back(pending.map(move |r| (id, r)).boxed());
                    return true;
                }
                // Not queued yet: it is queued when first polled, so nothing may be
                // submitted before it is answered.
                Ok((false, pending)) => {
                    if !self.drain(inflight).await {
                        return false;
                    }
                    pending.await
                }
                Err(e) => Err(e),
            },
            Ok(cmd) => {
                // Anything but an update waits for the updates before it: it must see
                // their effects, and its reply comes after theirs.
                if !self.drain(inflight).await {
                    return false;
                }
                let outcome = cmd.apply(&self.context()).await;
                return match outcome {
                    Ok(outcome) => self.conclude(id, outcome).await,
                    Err(e) => self.send_error(id.as_ref(), &e).await,
                };
            }
            Err(e) => Err(e),
        };
        self.drain(inflight).await && self.answer((id, result)).await
    }

    /// What a command sees: the socket as it is now, its user checked just before (a token
    /// that lapsed since the last command signs the socket out here, so that the command
    /// answers `invalid_token`).
    fn context(&mut self) -> Context<'_> {
        let lapsed = self
            .user
            .as_ref()
            .is_some_and(|c| self.state.auth.lapsed(c));
        if lapsed {
            self.unauthenticate();
        }
        self.watches.retain(|_, h| !h.is_finished());
        let watches = &self.watches;
        self.presence.retain(|key, _| watches.contains_key(key));
        Context {
            state: &self.state,
            ip: self.ip,
            conn: self.conn,
            user: self.user.as_ref(),
            lapsed,
            watches: &self.watches,
            out: &self.out,
            control: &self.control,
        }
    }

    /// Makes the change a command asked for, and sends its reply: a sign-in before the reply
    /// (it may turn the reply into an error), a new watch after it (the reply is the watch's
    /// snapshot, and nothing may overtake it).
    async fn conclude(&mut self, id: Option<Value>, outcome: Outcome) -> bool {
        let Outcome { mut reply, effect } = outcome;
        let mut feed = None;
        let watch = match effect {
            None => None,
            Some(Effect::SignIn(claims)) => {
                if let Err(e) = self.authenticate(claims) {
                    reply = Reply::Error(ErrorBody::from(&e));
                }
                None
            }
            Some(Effect::SignOut) => {
                self.unauthenticate();
                None
            }
            Some(Effect::Refreshed(claims)) => {
                if let Some(user) = &mut self.user {
                    user.exp = claims.exp;
                    user.iat = claims.iat;
                }
                None
            }
            Some(Effect::Unwatch(target)) => {
                self.watches.remove(&target);
                self.presence.remove(&target);
                None
            }
            Some(Effect::Present(target)) => {
                let (presence, conn) = (&self.state.presence, self.conn);
                self.presence.entry(target).or_insert_with_key(|key| {
                    crate::presence::Membership::new(presence, key, conn)
                });
                None
            }
            Some(Effect::Watch(watcher)) => Some(*watcher),
            Some(Effect::HearShares) => {
                self.hears_shares = true;
                None
            }
            Some(Effect::Feed(after)) => {
                feed = Some(after);
                None
            }
        };
        let sent = self.send(id.as_ref(), &reply).await;
        if let Some(after) = feed {
            let follower = crate::feed::spawn(&self.state, &self.out, after);
            self.watches.insert(crate::cmd::feed::KEY.into(), follower);
        }
        if let Some(watcher) = watch {
            // Replacing a watch of the same document drops (and so stops) the old one.
            let target = watcher.target().to_owned();
            let handle = AbortOnDropHandle::new(self.state.output.spawn(watcher.run()));
            self.watches.insert(target, handle);
        }
        sent
    }

    /// Sends the replies of every queued update, in order.
    async fn drain(&self, inflight: &mut Inflight) -> bool {
        while let Some(answer) = next_answer(inflight).await {
            if !self.answer(*answer).await {
                return false;
            }
        }
        true
    }

    async fn answer(&self, (id, result): Answer) -> bool {
        match result {
            Ok(reply) => self.send(id.as_ref(), &reply).await,
            Err(e) => self.send_error(id.as_ref(), &e).await,
        }
    }

    async fn send(&self, id: Option<&Value>, reply: &Reply) -> bool {
        self.state
            .metrics
            .frames_out
            .with_label_values(&[reply.kind()])
            .inc();
        if let Reply::Error(body) = reply {
            self.state
                .metrics
                .errors
                .with_label_values(&[body.code])
                .inc();
        }
        self.out
            .reply(encode(id, reply), self.state.limits.slow_consumer_timeout)
            .await
            .is_ok()
    }

    async fn send_error(&self, id: Option<&Value>, e: &Error) -> bool {
        self.send(id, &Reply::Error(ErrorBody::from(e))).await
    }

    /// Signs the socket in. Watches made under another identity end: they were checked for
    /// someone else.
    ///
    /// # Errors
    /// `TooManyConnections` when the user already holds `MAX_CONNECTIONS_PER_USER` sockets.
    fn authenticate(&mut self, claims: Claims) -> Result<(), Error> {
        let same_user = self.user.as_ref().is_some_and(|u| u.sub == claims.sub);
        let slot = if same_user {
            self.user_slot.take()
        } else {
            Some(self.state.limiters.connect_user(&claims.sub)?)
        };
        if let Some(old) = self.user.take() {
            self.state
                .auth
                .sockets
                .unregister(&old.sid, &old.sub, self.conn);
            self.state.metrics.sessions.dec();
            if !same_user {
                self.presence.clear();
                self.watches.clear();
                self.hears_shares = false;
            }
        }
        self.state
            .auth
            .sockets
            .register(&claims.sid, &claims.sub, self.conn, self.control.clone());
        self.state.metrics.sessions.inc();
        self.user = Some(claims);
        self.user_slot = slot;
        Ok(())
    }

    fn unauthenticate(&mut self) {
        self.hears_shares = false;
        if let Some(old) = self.user.take() {
            self.state
                .auth
                .sockets
                .unregister(&old.sid, &old.sub, self.conn);
            self.state.metrics.sessions.dec();
        }
        self.user_slot = None;
        self.presence.clear();
        self.watches.clear();
    }

    /// When the signed-in token expires, if the socket is signed in.
    fn expires_at(&self) -> Option<Instant> {
        let exp = self.user.as_ref()?.exp;
        Some(Instant::now() + Duration::from_secs(exp.saturating_sub(crate::sys::unix_now())))
    }

    /// The token stopped being good (revoked elsewhere, or expired): sign out, ending every
    /// watch it opened, and say why with a pushed `invalid_token`.
    async fn signed_out(&mut self, why: &str) {
        if self.user.is_none() {
            return;
        }
        self.unauthenticate();
        let mut body = ErrorBody::from(&Error::InvalidToken);
        body.detail = Some(why.into());
        self.send(None, &Reply::Error(body)).await;
    }

    fn end(&mut self) {
        self.unauthenticate();
    }
}

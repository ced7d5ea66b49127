//! One socket's life: read frames, run commands one at a time, forward watched documents.
//!
//! Three kinds of task per socket, so none blocks another: this loop (reading and running
//! commands), the writer ([`crate::connection`]), and one forwarder per watch. Everything a
//! socket owns is dropped when this loop ends: watches unsubscribe, the session leaves the
//! revocation registry, the writer drains and closes.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use crate::auth::{Claims, Control, unix_now};
use crate::cmd::{Command, watch::Watcher};
use crate::connection::{close, write_loop};
use crate::error::Error;
use crate::frame::{ErrorBody, Frame, Reply, encode};
use crate::names;
use crate::state::AppState;

/// How long a closing socket's writer may take to deliver the close frame.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

pub struct Session {
    pub state: AppState,
    pub conn: u64,
    pub out: mpsc::Sender<Message>,
    pub control: mpsc::Sender<Control>,
    pub user: Option<Claims>,
    pub watches: HashMap<String, AbortOnDropHandle<()>>,
    /// A watch whose snapshot reply is not yet queued. Started right after the reply, so a
    /// change can never overtake the snapshot it follows.
    pub pending_watch: Option<Watcher<Message>>,
}

pub async fn run(state: AppState, socket: WebSocket) {
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::channel(state.limits.outbound_queue);
    let (close_tx, close_rx) = oneshot::channel();
    let writer = tokio::spawn(write_loop(sink, out_rx, close_rx));
    let (control, mut control_rx) = mpsc::channel(8);
    let shutdown = state.shutdown.clone();
    let mut session = Session {
        conn: state.next_conn_id(),
        state,
        out,
        control,
        user: None,
        watches: HashMap::new(),
        pending_watch: None,
    };

    let close_with: Option<(u16, &'static str)> = loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Some((close::GOING_AWAY, "server shutting down")),
            Some(ctl) = control_rx.recv() => match ctl {
                Control::Revoked => session.revoked().await,
                Control::Close(code, reason) => break Some((code, reason)),
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if !session.handle(text.as_str()).await {
                        break None;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let err = Error::BadRequest("binary frames are not supported; send JSON text".into());
                    if !session.send_error(None, &err).await {
                        break None;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Err(e)) => break Some(close_for(e)),
            },
        }
    };

    session.end();
    drop(session);
    if let Some(reason) = close_with {
        // The writer may be gone already; then the socket is closed anyway.
        let _ = close_tx.send(reason);
    }
    let mut writer = writer;
    if tokio::time::timeout(CLOSE_FLUSH, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// The close code for a read error: oversize messages get 1009, anything else 1002.
fn close_for(e: axum::Error) -> (u16, &'static str) {
    let too_big = e
        .into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    if too_big {
        (close::TOO_BIG, "message too big")
    } else {
        (close::PROTOCOL_ERROR, "protocol error")
    }
}

impl Session {
    /// Runs one text frame. Returns false when the socket is gone.
    async fn handle(&mut self, text: &str) -> bool {
        let frame = match Frame::parse(text) {
            Ok(frame) => frame,
            Err((id, e)) => {
                return self
                    .send_error(id.as_ref(), &Error::BadRequest(e.to_string()))
                    .await;
            }
        };
        let id = frame.id.clone();
        let result = match Command::from_frame(frame) {
            Ok(cmd) => cmd.apply(self).await,
            Err(e) => Err(e),
        };
        let sent = match result {
            Ok(reply) => self.send(id.as_ref(), &reply).await,
            Err(e) => self.send_error(id.as_ref(), &e).await,
        };
        if let Some(watcher) = self.pending_watch.take() {
            let target = watcher.target().to_owned();
            let handle = AbortOnDropHandle::new(tokio::spawn(watcher.run()));
            self.watches.insert(target, handle);
        }
        sent
    }

    pub async fn send(&self, id: Option<&Value>, reply: &Reply) -> bool {
        self.out
            .send(Message::Text(encode(id, reply)))
            .await
            .is_ok()
    }

    pub async fn send_error(&self, id: Option<&Value>, e: &Error) -> bool {
        self.send(id, &Reply::Error(ErrorBody::from(e))).await
    }

    /// The signed-in user, if their token is still good (not expired, not revoked).
    ///
    /// # Errors
    /// `AuthRequired` on an anonymous socket; `InvalidToken` if the token expired.
    pub fn user(&mut self) -> Result<&Claims, Error> {
        let expired = match &self.user {
            None => return Err(Error::AuthRequired),
            Some(c) => c.exp < unix_now() || self.state.auth.is_revoked(&c.sid),
        };
        if expired {
            self.unauthenticate();
            return Err(Error::InvalidToken);
        }
        self.user.as_ref().ok_or(Error::AuthRequired)
    }

    /// The document a command is about: `target`, or the caller's own. A name that cannot
    /// exist is `unauthorized`, as an unknown user is.
    ///
    /// # Errors
    /// `AuthRequired`, `InvalidToken`, `Unauthorized`.
    pub fn target(&mut self, target: Option<String>) -> Result<(String, String), Error> {
        let me = self.user()?.sub.clone();
        let target = target.unwrap_or_else(|| me.clone());
        if !names::plausible(&target) {
            return Err(Error::Unauthorized);
        }
        Ok((me, target))
    }

    /// Signs the socket in. Watches made under another identity end: they were checked for
    /// someone else.
    pub fn authenticate(&mut self, claims: Claims) {
        if let Some(old) = self.user.take() {
            self.state.auth.unregister(&old.sid, self.conn);
            if old.sub != claims.sub {
                self.watches.clear();
            }
        }
        self.state
            .auth
            .register(&claims.sid, self.conn, self.control.clone());
        self.user = Some(claims);
    }

    pub fn unauthenticate(&mut self) {
        if let Some(old) = self.user.take() {
            self.state.auth.unregister(&old.sid, self.conn);
        }
        self.watches.clear();
    }

    /// Another socket logged this token out: sign out and say why.
    async fn revoked(&mut self) {
        if self.user.is_none() {
            return;
        }
        self.unauthenticate();
        let mut body = ErrorBody::from(&Error::InvalidToken);
        body.detail = Some("token revoked".into());
        self.send(None, &Reply::Error(body)).await;
    }

    fn end(&mut self) {
        self.unauthenticate();
        self.pending_watch = None;
    }
}

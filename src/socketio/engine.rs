//! One Engine.IO connection: the packets waiting for the client, whichever transport carries
//! them (long-polling, then perhaps a WebSocket), its heartbeat, and the Hearth session
//! behind it. The session runs exactly as it does for `/ws` (`session::run`), over a
//! transport made here: frames in from the client's events, frames out turned into events.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::SinkExt;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::events::{Inbound, inbound, outbound};
use super::packet::{self, EnginePacket, PacketError, SioPacket};
use crate::connection::Transport;

/// What a queued packet holds in memory, for the outbox's bound: its bytes and about what
/// a `String` and its slot cost besides (a flood of one-byte pongs is not free).
fn cost(packet: &str) -> usize {
    packet.len() + 48
}

/// A WebSocket's write half.
pub type WsSink = futures_util::stream::SplitSink<axum::extract::ws::WebSocket, Message>;

/// Client events queued for the session before a POST waits: a burst of updates pipelines,
/// a flood waits for the session to catch up.
const INBOUND: usize = 64;

/// Packets waiting for the client, bounded in bytes like a `/ws` socket's queue
/// (`OUTBOUND_BUFFER`): a client that stops polling stalls its session, which closes it as a
/// slow consumer.
#[derive(Default)]
struct Outbox {
    packets: VecDeque<String>,
    bytes: usize,
    /// The session's sink, waiting for room.
    waiting: Option<Waker>,
}

pub struct Engine {
    pub sid: String,
    outbox: Mutex<Outbox>,
    max_bytes: usize,
    /// Packets were queued, or the connection closed.
    pub ready: Notify,
    /// The write half of the WebSocket carrying the connection, once there is one. The
    /// session writes to it itself when it is free, as `/ws`'s sessions and forwarders do
    /// (`connection::Outbound`): waking the connection's own task for every packet made a
    /// delivery cost ≈ 2.6× a `/ws` one (BENCHMARKS.md, socket.io).
    ws: tokio::sync::Mutex<Option<WsSink>>,
    /// Frames for the session; taken (so its stream ends) when the connection closes.
    inbound: Mutex<Option<mpsc::Sender<Message>>>,
    pub closed: CancellationToken,
    pong: AtomicBool,
    /// The client has joined the default namespace (Socket.IO `CONNECT`).
    joined: AtomicBool,
    /// A WebSocket carries the packets now; polls are refused.
    pub upgraded: AtomicBool,
    /// A long-poll is waiting (a second one at once is a protocol error).
    pub polling: AtomicBool,
}

impl Engine {
    /// A new connection holding at most `max_bytes` for its client, and the transport its
    /// session runs over (`session::run`).
    pub fn new(max_bytes: usize) -> (Arc<Engine>, Transport) {
        let (tx, mut rx) = mpsc::channel(INBOUND);
        let engine = Arc::new(Engine {
            sid: super::new_sid(),
            outbox: Mutex::new(Outbox::default()),
            max_bytes,
            ready: Notify::new(),
            ws: tokio::sync::Mutex::new(None),
            inbound: Mutex::new(Some(tx)),
            closed: CancellationToken::new(),
            pong: AtomicBool::new(true),
            joined: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            polling: AtomicBool::new(false),
        });
        let transport = Transport {
            sink: Box::pin(EngineSink(engine.clone())),
            stream: Box::pin(futures_util::stream::poll_fn(move |cx| {
                rx.poll_recv(cx).map(|m| m.map(Ok))
            })),
        };
        (engine, transport)
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a packet for the client, and wakes whichever transport delivers it. Packets
    /// the client causes without the session (pongs to its pings, answers to unknown events)
    /// are bounded too: a client that sends them and never polls is closed once twice
    /// `OUTBOUND_BUFFER` waits, rather than growing the outbox without end.
    pub fn push(&self, packet: String) {
        if self.outbox().bytes > self.max_bytes.saturating_mul(2) {
            tracing::debug!(sid = %self.sid, "socket.io client does not read: closed");
            self.close();
            return;
        }
        self.queue(packet);
        self.ready.notify_one();
    }

    /// Queues a packet for the session's own flush to deliver.
    fn queue(&self, packet: String) {
        let mut out = self.outbox();
        out.bytes += cost(&packet);
        out.packets.push_back(packet);
    }

    /// The oldest packet waiting.
    fn pop(&self) -> Option<String> {
        let mut out = self.outbox();
        let packet = out.packets.pop_front()?;
        out.bytes -= cost(&packet);
        let waiting = out.waiting.take();
        drop(out);
        if let Some(w) = waiting {
            w.wake();
        }
        Some(packet)
    }

    /// Carries the connection over this WebSocket's write half from now on.
    pub async fn attach(&self, sink: WsSink) {
        *self.ws.lock().await = Some(sink);
    }

    /// Writes every packet waiting to the attached WebSocket. False once it is gone.
    pub async fn drain(&self) -> bool {
        let mut ws = self.ws.lock().await;
        let Some(sink) = ws.as_mut() else {
            return true;
        };
        let mut wrote = false;
        while let Some(p) = self.pop() {
            if sink.feed(Message::Text(p.into())).await.is_err() {
                return false;
            }
            wrote = true;
        }
        !wrote || sink.flush().await.is_ok()
    }

    /// Closes and lets go of the attached WebSocket.
    pub async fn detach(&self) {
        if let Some(mut sink) = self.ws.lock().await.take() {
            let _ = sink.close().await;
        }
    }

    /// Every packet waiting, oldest first; the session may queue more.
    pub fn take(&self) -> Vec<String> {
        let mut out = self.outbox();
        out.bytes = 0;
        let waiting = out.waiting.take();
        let packets = out.packets.drain(..).collect();
        drop(out);
        if let Some(w) = waiting {
            w.wake();
        }
        packets
    }

    /// Ends the connection: the session's stream ends, transports answer `close`.
    pub fn close(&self) {
        self.inbound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.closed.cancel();
        self.ready.notify_one();
        if let Some(w) = self.outbox().waiting.take() {
            w.wake();
        }
    }

    /// Pings every `interval`; a client that has not answered within `timeout` is gone.
    pub async fn heartbeat(&self, interval: Duration, timeout: Duration) {
        loop {
            tokio::select! {
                () = self.closed.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            self.pong.store(false, Ordering::SeqCst);
            self.push(packet::PING.to_owned());
            tokio::select! {
                () = self.closed.cancelled() => return,
                () = tokio::time::sleep(timeout) => {}
            }
            if !self.pong.load(Ordering::SeqCst) {
                tracing::debug!(sid = %self.sid, "socket.io client missed its ping");
                self.close();
                return;
            }
        }
    }

    /// Handles one Engine.IO packet from the client (the upgrade's own packets excepted).
    ///
    /// # Errors
    /// A packet this server does not take; the caller closes the connection.
    pub async fn receive(&self, text: &str) -> Result<(), PacketError> {
        match EnginePacket::parse(text)? {
            EnginePacket::Close => self.close(),
            EnginePacket::Ping(data) => self.push(format!("3{data}")),
            EnginePacket::Pong(_) => {
                self.pong.store(true, Ordering::SeqCst);
                // Keeps the session's idle timer honest, as a WebSocket pong does on `/ws`.
                if let Some(tx) = self.sender() {
                    let _ = tx.try_send(Message::Pong(Default::default()));
                }
            }
            EnginePacket::Message(m) => self.message(m).await?,
            EnginePacket::Upgrade | EnginePacket::Noop => {}
        }
        Ok(())
    }

    fn sender(&self) -> Option<mpsc::Sender<Message>> {
        self.inbound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn message(&self, text: &str) -> Result<(), PacketError> {
        match SioPacket::parse(text)? {
            SioPacket::Connect { nsp }
                if nsp == "/" && !self.joined.swap(true, Ordering::SeqCst) =>
            {
                self.push(packet::connected(&self.sid));
            }
            // A second `CONNECT` of a joined client needs no answer.
            SioPacket::Connect { nsp } if nsp == "/" => {}
            SioPacket::Connect { nsp } => {
                self.push(packet::connect_error(&nsp, "Invalid namespace"));
            }
            SioPacket::Disconnect { nsp } if nsp == "/" => self.close(),
            SioPacket::Event { nsp, args, .. }
                if nsp == "/" && self.joined.load(Ordering::SeqCst) =>
            {
                match inbound(&args) {
                    Inbound::Frames(frames) => {
                        if let Some(tx) = self.sender() {
                            for frame in frames {
                                // Waits while the session is busy: the client's POST too.
                                let _ = tx.send(Message::Text(frame.into())).await;
                            }
                        }
                    }
                    Inbound::Answer(packet) => self.push(packet),
                }
            }
            SioPacket::Binary => {
                self.push(packet::event(&[
                    &"issue",
                    &"binary events are not supported",
                ]));
            }
            // Events outside a joined namespace, acks (never asked for), other namespaces.
            _ => {}
        }
        Ok(())
    }
}

thread_local! {
    /// The last frame this thread translated, and its packet. A change reaches every watcher
    /// of a document as the same shared frame (`fanout`), so a thousand watchers cost one
    /// translation per thread instead of a thousand. Holding the frame keeps its bytes alive,
    /// so an equal pointer means the same frame.
    static LAST: std::cell::RefCell<Option<(Utf8Bytes, Option<String>)>> =
        const { std::cell::RefCell::new(None) };
}

/// `outbound`, remembered for the frame last seen on this thread.
fn translated(frame: Utf8Bytes) -> Option<String> {
    LAST.with_borrow_mut(|last| {
        if let Some((seen, packet)) = last.as_ref()
            && seen.as_str().as_ptr() == frame.as_str().as_ptr()
            && seen.len() == frame.len()
        {
            return packet.clone();
        }
        let packet = outbound(frame.as_str());
        *last = Some((frame, packet.clone()));
        packet
    })
}

/// The session's write half: Hearth frames become the seed's events in the outbox.
struct EngineSink(Arc<Engine>);

impl futures_util::Sink<Message> for EngineSink {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let engine = &self.0;
        if engine.closed.is_cancelled() {
            return Poll::Ready(Err(axum::Error::new("socket.io connection closed")));
        }
        let mut out = engine.outbox();
        if out.bytes < engine.max_bytes {
            return Poll::Ready(Ok(()));
        }
        out.waiting = Some(cx.waker().clone());
        Poll::Pending
    }

    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), Self::Error> {
        match msg {
            Message::Text(text) => {
                if let Some(packet) = translated(text) {
                    self.0.queue(packet);
                }
            }
            Message::Close(frame) => {
                // The server going away is a transport's end, which clients reconnect after
                // (as when a socket.io server restarts); anything else (account deleted or
                // disabled, too slow, idle) is Socket.IO's `DISCONNECT`, after which they
                // do not.
                let going_away =
                    frame.is_some_and(|f| f.code == crate::connection::close::GOING_AWAY);
                if !going_away {
                    self.0.queue("41".to_owned());
                }
                self.0.queue(packet::CLOSE.to_owned());
            }
            // Engine.IO has its own heartbeat.
            _ => {}
        }
        Ok(())
    }

    /// Writes what is queued to the WebSocket when one is attached and free; otherwise wakes
    /// the transport that delivers it (a long-poll, or the WebSocket's task, which holds it).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let engine = &self.0;
        let Ok(mut ws) = engine.ws.try_lock() else {
            engine.ready.notify_one();
            return Poll::Ready(Ok(()));
        };
        let Some(sink) = ws.as_mut() else {
            engine.ready.notify_one();
            return Poll::Ready(Ok(()));
        };
        loop {
            match sink.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let Some(p) = engine.pop() else { break };
            sink.start_send_unpin(Message::Text(p.into()))?;
        }
        sink.poll_flush_unpin(cx)
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

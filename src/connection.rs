//! The write half of a socket: the only code that writes to it.
//!
//! Frames arrive through a bounded queue; the loop feeds every frame that is ready and then
//! flushes once, so a burst of changes costs one syscall rather than one each. A close
//! request jumps the queue: a socket being closed for falling behind must not wait behind
//! the very backlog that got it closed.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::{mpsc, oneshot};

/// Close codes Hearth uses (besides the standard 1000/1001/1002/1009).
pub mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const TOO_BIG: u16 = 1009;
    pub const SLOW_CONSUMER: u16 = 4008;
}

pub async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
    mut close_rx: oneshot::Receiver<(u16, &'static str)>,
) {
    loop {
        tokio::select! {
            biased;
            close = &mut close_rx => {
                if let Ok((code, reason)) = close {
                    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
                    // The peer may already be gone; nothing more to do either way.
                    let _ = sink.send(Message::Close(Some(frame))).await;
                }
                let _ = sink.close().await;
                return;
            }
            msg = rx.recv() => {
                let Some(msg) = msg else {
                    let _ = sink.close().await;
                    return;
                };
                if sink.feed(msg).await.is_err() {
                    return;
                }
                while let Ok(msg) = rx.try_recv() {
                    if sink.feed(msg).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

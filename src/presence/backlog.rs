//! A socket's presence pushes, when its queue is full for a moment. A push never waits (it
//! is made under the room's lock), but closing a socket the moment its queue is full would
//! treat presence more harshly than a watch, which waits `SLOW_CONSUMER_TIMEOUT` for room:
//! a phone taking in a large snapshot would be dropped because someone started typing. So
//! what does not fit waits here, in order, and a task feeds it to the queue as room comes;
//! the socket is closed (4008) only if the queue stays full for that timeout, or the backlog
//! passes [`MAX_BACKLOG`] frames.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;

use super::Push;
use crate::auth::Control;
use crate::connection::{Outbound, QueueError, close};
use crate::mailbox;

/// Presence frames a socket may have waiting for room in its queue.
pub const MAX_BACKLOG: usize = 1024;

#[derive(Default)]
struct Waiting {
    frames: VecDeque<Utf8Bytes>,
    /// A task is feeding `frames` to the queue: new ones go behind them, never past.
    draining: bool,
}

/// How a listener's pushes reach socket `out`, whose session takes `control`.
pub fn push_to(out: &Outbound, control: &mailbox::Sender<Control>, wait: Duration) -> Push {
    let (out, control) = (out.clone(), control.clone());
    let waiting: Arc<Mutex<Waiting>> = Arc::default();
    Arc::new(move |frame| {
        let mut w = waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !w.draining && out.try_push(frame.clone()) {
            return true;
        }
        if w.frames.len() >= MAX_BACKLOG {
            too_slow(&control);
            return false;
        }
        w.frames.push_back(frame.clone());
        if !w.draining {
            w.draining = true;
            let task = drain(waiting.clone(), out.clone(), control.clone(), wait);
            tokio::spawn(task);
        }
        true
    })
}

/// Feeds the waiting frames to the queue in order, each waiting at most `wait` for room.
async fn drain(
    waiting: Arc<Mutex<Waiting>>,
    out: Outbound,
    control: mailbox::Sender<Control>,
    wait: Duration,
) {
    loop {
        let next = {
            let mut w = waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let next = w.frames.pop_front();
            if next.is_none() {
                w.draining = false;
            }
            next
        };
        let Some(frame) = next else { return };
        match out.send_timeout(frame, wait).await {
            Ok(()) => {}
            // Stuck for the whole timeout, as a watch would be: the socket goes. `draining`
            // stays set, so nothing more is queued for it.
            Err(QueueError::Full) => {
                too_slow(&control);
                return;
            }
            Err(QueueError::Closed) => return,
        }
    }
}

fn too_slow(control: &mailbox::Sender<Control>) {
    let _ = control.try_send(Control::Close(close::SLOW_CONSUMER, "too slow"));
}

//! The threads that write to sockets: every socket's writer loop and every watch's forwarder
//! run on a runtime of their own, apart from the one that reads sockets and runs commands.
//!
//! Why: a change to a document with 1000 watchers wakes 1000 forwarders and 1000 writer
//! loops at once. On the runtime that also runs sessions, a writer's next command and the
//! wakeup that answers it queued behind all of them, so each update waited for the previous
//! fanout to be scheduled: 150 updates/s under 1000 watchers, whatever the commit cost. On
//! their own runtime the fanout is still done as fast as the cores allow, but commands and
//! replies no longer wait for it (BENCHMARKS.md: saturation 175k → 690k deliveries/s).
//! Replies are written by the session itself when the socket's queue is empty
//! (`Outbound::reply`), so they do not wait for these threads either.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// A handle to the output runtime. Cheap to clone; the runtime stops when the last clone goes.
#[derive(Clone)]
pub struct OutputThreads {
    inner: Arc<Owned>,
}

struct Owned {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl OutputThreads {
    /// `threads` worker threads (at least one).
    ///
    /// # Errors
    /// The threads cannot be started.
    pub fn start(threads: usize) -> std::io::Result<OutputThreads> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("hearth-out")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(OutputThreads {
            inner: Arc::new(Owned {
                runtime: Some(runtime),
                handle,
            }),
        })
    }

    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.handle.spawn(task)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks finish, which panics inside another
        // runtime (where the last `AppState` usually goes). Sockets are closed by then.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The default: half the cores, at least one, so commands keep the other half.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

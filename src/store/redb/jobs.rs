//! What travels between a caller and the committer: a write, and its answer.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::store::backend::{Committed, Write};
use crate::store::error::StoreError;
use crate::store::model::Document;

/// A write's result: what it committed (`None` for writes that commit no document version),
/// or why it was refused (the inner error) or failed.
pub(super) type Outcome = Result<Option<Arc<Committed>>, StoreError>;

/// The version an update replaced, handed back to its caller. Why: freeing a document's
/// tree was most of the writer thread's time on PUTs of 100-key documents, and every commit
/// waits for that one thread. The caller parks it for the document's next update to recycle
/// (`recycle.rs`) or frees it, on its own thread.
pub(super) type Retired = Option<Arc<Document>>;

pub(super) struct Job {
    pub write: Write,
    /// The outcome, and the version an update replaced.
    pub reply: oneshot::Sender<(Outcome, Retired)>,
    pub retired: Retired,
}

/// A job for `write`, and where its answer arrives.
pub(super) fn job(write: Write) -> (Job, oneshot::Receiver<(Outcome, Retired)>) {
    let (reply, rx) = oneshot::channel();
    let job = Job {
        write,
        reply,
        retired: None,
    };
    (job, rx)
}

/// Answers every job with `e`, none of them written.
pub(super) fn refuse(jobs: &mut Vec<Job>, e: &StoreError) {
    for job in jobs.drain(..) {
        // The caller may have gone away; nothing was written either way.
        let _ = job.reply.send((Err(e.clone()), job.retired));
    }
}

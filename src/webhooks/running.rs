//! The webhooks delivering on this node, so that deleting or resuming one through the API
//! stops its deliverer first: nothing it does afterwards can write over the change.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::task::AbortOnDropHandle;

#[derive(Default)]
pub struct Running {
    tasks: Mutex<HashMap<String, AbortOnDropHandle<()>>>,
}

impl Running {
    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortOnDropHandle<()>>> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether webhook `id` has a deliverer that has not ended.
    pub fn is_running(&self, id: &str) -> bool {
        self.tasks().get(id).is_some_and(|t| !t.is_finished())
    }

    pub fn start(&self, id: &str, task: AbortOnDropHandle<()>) {
        self.tasks().insert(id.to_owned(), task);
    }

    /// Stops webhook `id`'s deliverer, if it has one (dropping the handle aborts it).
    pub fn stop(&self, id: &str) {
        let task = self.tasks().remove(id);
        drop(task);
    }

    /// Stops every deliverer whose webhook is not in `keep`.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.tasks().retain(|id, _| keep(id));
    }
}

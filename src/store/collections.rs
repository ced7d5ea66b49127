//! Named documents: creating, deleting and listing them. Reading and updating one is what
//! the default document does, under its key (`owner/name`, `model::Document::key`).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::Store;
use super::paths::PathEdit;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::backend::{Committed, Listed, Write};
use super::error::StoreError;
use super::model::{Access, Document, Update, share_changes};

/// Bytes a path edit may add at most: its value, serialized, and its path.
fn payload_len(edit: &PathEdit) -> usize {
    let (path, value) = match edit {
        PathEdit::Put { path, value } | PathEdit::Patch { path, patch: value } => {
            (path, Some(value))
        }
        PathEdit::Delete { path } => (path, None),
    };
    let value = value.map_or(0, |v| super::apply::serialized_len(v).unwrap_or(0));
    value + path.iter().map(|s| s.len() + 3).sum::<usize>()
}

/// A document shared with someone, as their `list` shows it.
#[derive(Debug, Clone)]
pub struct SharedDoc {
    pub doc: Arc<Document>,
    pub role: Access,
}

/// What a new named document starts with.
pub struct NewDoc {
    pub owner: String,
    pub name: String,
    pub userdata: Map<String, Value>,
    pub collaborators: Vec<String>,
    pub readers: Vec<String>,
}

impl Store {
    /// Creates `owner/name` at version 0 in a fresh incarnation. The caller has checked the
    /// name and that the listed accounts exist.
    ///
    /// # Errors
    /// `AlreadyExists`, `TooManyDocuments`, `TooLarge` (its `userdata`), `Invalid` (too
    /// deep), `Unauthorized` (no such owner), `Unavailable`.
    pub async fn create_doc(&self, new: NewDoc) -> Result<Arc<Document>, StoreError> {
        let now = crate::sys::now_rfc3339();
        let mut doc = Document::named(&new.owner, &new.name, &now, crate::sys::random_hex(8));
        let owner = new.owner.clone();
        let normalize = |list: Vec<String>| {
            let mut list: Vec<String> = list.into_iter().filter(|u| *u != owner).collect();
            list.sort();
            list.dedup();
            list
        };
        doc.metadata.collaborators = normalize(new.collaborators);
        doc.metadata.readers = normalize(new.readers);
        if super::streams::is_stream(&doc.key()) && !new.userdata.is_empty() {
            return Err(StoreError::Invalid(
                "a stream starts empty: append events to it".into(),
            ));
        }
        doc.userdata = new.userdata;
        let limits = &self.inner.limits;
        let depth = super::apply::depth(&doc.userdata);
        if depth > limits.max_depth {
            return Err(StoreError::Invalid(format!(
                "nesting deeper than {} levels",
                limits.max_depth
            )));
        }
        let size = super::apply::serialized_len(&doc)?;
        if size > limits.max_doc_bytes {
            return Err(StoreError::TooLarge {
                size,
                limit: limits.max_doc_bytes,
            });
        }
        if self.inner.usage.could_fill(&new.owner).is_none() {
            self.load_usage(&new.owner).await?;
        }
        self.inner
            .usage
            .check(&new.owner, &doc.key(), size as u64, true)?;
        let written = self
            .inner
            .backend
            .write(Write::CreateDoc {
                doc,
                max_docs: self.inner.max_documents,
            })
            .await?;
        let doc = written
            .committed
            .map(|c| c.doc.clone())
            .ok_or_else(|| StoreError::unavailable("create returned no document"))?;
        self.inner.usage.created(&doc);
        if self.inner.usage.could_fill(&doc.metadata.username) == Some(true) {
            // Past the point where sizes matter: know them all, not the ones written since.
            self.load_usage(&doc.metadata.username).await?;
        }
        Ok(doc)
    }

    /// Deletes named document `key`: its watchers get a pushed `not_found` ("deleted") and
    /// whoever it was shared with an `unshared`.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`.
    pub async fn delete_doc(&self, key: &str) -> Result<(), StoreError> {
        let doc = self.document(key).await?.ok_or(StoreError::NotFound)?;
        self.inner
            .backend
            .write(Write::DeleteDoc {
                key: key.to_owned(),
            })
            .await?;
        self.inner
            .commits
            .deleted(&doc, &share_changes(Some(&doc), None));
        Ok(())
    }

    /// An update of a named document must fit in its account's bytes (`usage.rs`): passes
    /// `update` on, or the answer to give instead. An account not listed yet is listed first,
    /// and then the update is not queued (see `Store::submit`).
    #[allow(clippy::type_complexity)]
    pub(super) fn check_named(
        &self,
        update: Update,
    ) -> Result<Update, (bool, BoxFuture<'static, Result<Arc<Committed>, StoreError>>)> {
        if !update.target.contains('/') {
            return Ok(update);
        }
        let owner = crate::names::owner_of(&update.target);
        match self.inner.usage.could_fill(owner) {
            None => {
                let (store, owner) = (self.clone(), owner.to_owned());
                let outcome = async move {
                    store.load_usage(&owner).await?;
                    store.check_usage(&owner, &update)?;
                    store.submit(update).1.await
                };
                Err((false, outcome.boxed()))
            }
            Some(false) => Ok(update), // cannot reach the quota: nothing to measure
            Some(true) => match self.check_usage(owner, &update) {
                Ok(()) => Ok(update),
                Err(e) => Err((true, async { Err(e) }.boxed())),
            },
        }
    }

    /// Every named document of `owner` as it is now, read past the cache (an account about
    /// to be deleted: [`Self::named_gone`] announces them).
    ///
    /// # Errors
    /// `Unavailable`.
    pub(super) async fn named_documents(
        &self,
        owner: &str,
    ) -> Result<Vec<Arc<Document>>, StoreError> {
        let mut out = Vec::new();
        for l in self.documents(owner, "", usize::MAX).await? {
            let key = format!("{owner}/{}", l.name);
            if let Some(doc) = self.inner.backend.document(&key).await? {
                out.push(Arc::new(doc));
            }
        }
        Ok(out)
    }

    /// The named documents of a deleted account are gone: their watchers and sharees are told.
    pub(super) fn named_gone(&self, docs: Vec<Arc<Document>>) {
        for doc in docs {
            self.inner
                .commits
                .deleted(&doc, &share_changes(Some(&doc), None));
        }
    }

    /// Lists `owner`'s documents to start keeping its bytes (`usage.rs`).
    ///
    /// # Errors
    /// `Unavailable`.
    pub(super) async fn load_usage(&self, owner: &str) -> Result<(), StoreError> {
        let listed = self.documents(owner, "", usize::MAX).await?;
        let default_size = match self.document(owner).await? {
            Some(doc) => match doc.size_bound() {
                Some(bound) => bound as u64,
                None => super::apply::serialized_len(&doc)? as u64,
            },
            None => 0,
        };
        self.inner.usage.load(owner, &listed, default_size);
        Ok(())
    }

    /// Whether `update` of a named document of `owner` fits in the account's bytes.
    ///
    /// # Errors
    /// `AccountFull`.
    pub(super) fn check_usage(&self, owner: &str, update: &Update) -> Result<(), StoreError> {
        use super::model::Edit;
        let (growth, replaces) = match &update.edit {
            None => return Ok(()),
            Some(Edit::Replace(map)) => (super::apply::serialized_len(map)?, true),
            Some(Edit::Merge(map)) => (super::apply::serialized_len(map)?, false),
            Some(Edit::JsonPatch(patch)) => (super::apply::serialized_len(patch)?, false),
            Some(Edit::Paths(edits)) => (edits.iter().map(payload_len).sum(), false),
            // A stream's document stays a summary; its events are bounded by STREAM_RETAIN.
            Some(Edit::Append(_)) => return Ok(()),
        };
        self.inner
            .usage
            .check(owner, &update.target, growth as u64, replaces)
    }

    /// `owner`'s named documents after `after`, at most `limit`.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn documents(
        &self,
        owner: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Listed>, StoreError> {
        self.inner.backend.documents(owner, after, limit).await
    }

    /// Documents shared with `user` whose keys sort after `after`, at most `limit`, each at
    /// its latest version. One that vanished meanwhile is left out.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn shared_with(
        &self,
        user: &str,
        after: &str,
        limit: usize,
    ) -> Result<(Vec<SharedDoc>, Option<String>), StoreError> {
        let keys = self.inner.backend.shared_with(user, after, limit).await?;
        let next = (keys.len() == limit)
            .then(|| keys.last().map(|(k, _)| k.clone()))
            .flatten();
        let mut out = Vec::with_capacity(keys.len());
        for (key, role) in keys {
            if let Some(doc) = self.document(&key).await? {
                out.push(SharedDoc { doc, role });
            }
        }
        Ok((out, next))
    }
}

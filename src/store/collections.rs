//! Named documents: creating, deleting and listing them. Reading and updating one is what
//! the default document does, under its key (`owner/name`, `model::Document::key`).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::Store;
use super::backend::{Listed, Write};
use super::error::StoreError;
use super::model::{Access, Document, share_changes};

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
        let written = self
            .inner
            .backend
            .write(Write::CreateDoc {
                doc,
                max_docs: self.inner.max_documents,
            })
            .await?;
        written
            .committed
            .map(|c| c.doc.clone())
            .ok_or_else(|| StoreError::unavailable("create returned no document"))
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

//! Accounts (created with their default document), their flags and passwords, sessions, revocations and blob references: writes and
//! reads that go straight to the backend. Nothing here is cached; the document cache and
//! where commits go live with documents (`mod.rs`, `commits.rs`).

use std::sync::Arc;

use super::{
    BlobAdd, BlobRecord, BlobRef, Document, Flag, SessionRecord, Store, StoreError, StoreStats,
    UserRecord, Write,
};

impl Store {
    /// `"postgres"` (a cluster's shared store) or `"redb"` (this node's file).
    pub fn kind(&self) -> &'static str {
        if self.inner.backend.shared() {
            "postgres"
        } else {
            "redb"
        }
    }

    /// Creates an account, its version-0 document and, optionally, its first session.
    ///
    /// # Errors
    /// `UsernameTaken`, or `Unavailable`.
    pub async fn create_user(
        &self,
        user: UserRecord,
        session: Option<SessionRecord>,
    ) -> Result<Arc<Document>, StoreError> {
        let doc = Document::new(&user.username, &user.created_at);
        let written = self
            .inner
            .backend
            .write(Write::CreateUser { user, doc, session })
            .await?;
        written
            .committed
            .map(|c| c.doc.clone())
            .ok_or_else(|| StoreError::unavailable("create returned no document"))
    }

    /// Creates an account with its document as it was elsewhere (an import): its version,
    /// access lists and dates kept. Whoever it shares with must exist already.
    ///
    /// # Errors
    /// `UsernameTaken`, or `Unavailable`.
    pub async fn import_user(&self, user: UserRecord, doc: Document) -> Result<(), StoreError> {
        self.inner
            .backend
            .write(Write::CreateUser {
                user,
                doc,
                session: None,
            })
            .await
            .map(|_| ())
    }

    /// Largest stored document (`MAX_DATA_SIZE_JSON`): what an import may bring.
    pub fn max_doc_bytes(&self) -> usize {
        self.inner.limits.max_doc_bytes
    }

    /// Durably sets or clears an account flag (disabled, admin).
    ///
    /// # Errors
    /// `Unauthorized` for an unknown user; `Unavailable`.
    pub async fn set_flag(&self, username: &str, flag: Flag, on: bool) -> Result<(), StoreError> {
        let write = Write::SetFlag {
            username: username.to_owned(),
            flag,
            on,
        };
        self.inner.backend.write(write).await.map(|_| ())
    }

    /// # Errors
    /// `Unavailable`.
    pub async fn flagged(&self, flag: Flag) -> Result<Vec<String>, StoreError> {
        self.inner.backend.flagged(flag).await
    }

    /// Durably replaces an account's password hash.
    ///
    /// # Errors
    /// `Unauthorized` for an unknown user; `Unavailable`.
    pub async fn set_password(&self, username: &str, hash: String) -> Result<(), StoreError> {
        let write = Write::SetPassword {
            username: username.to_owned(),
            hash,
        };
        self.inner.backend.write(write).await.map(|_| ())
    }

    /// Durably records a blob reference (see [`BlobAdd`]).
    ///
    /// # Errors
    /// `QuotaExceeded`, `Unauthorized` for an unknown user, `Unavailable`.
    pub async fn blob_add(&self, add: BlobAdd) -> Result<(), StoreError> {
        let write = Write::BlobAdd(add);
        self.inner.backend.write(write).await.map(|_| ())
    }

    /// Durably drops `username`'s reference to `sha256`.
    ///
    /// # Errors
    /// `NotFound` if it holds none; `Unavailable`.
    pub async fn blob_remove(&self, username: &str, sha256: &str) -> Result<(), StoreError> {
        let write = Write::BlobRemove {
            username: username.to_owned(),
            sha256: sha256.to_owned(),
        };
        self.inner.backend.write(write).await.map(|_| ())
    }

    /// # Errors
    /// `Unavailable`.
    pub async fn blob(&self, sha256: &str) -> Result<Option<BlobRecord>, StoreError> {
        self.inner.backend.blob(sha256).await
    }

    /// Who, holding `sha256`, recorded writing it into `doc`.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn mentioned_by(&self, doc: &str, sha256: &str) -> Result<Vec<String>, StoreError> {
        self.inner.backend.mentioned_by(doc, sha256).await
    }

    /// Whether any of `users` references `sha256`.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn holds_blob(&self, sha256: &str, users: Vec<String>) -> Result<bool, StoreError> {
        self.inner.backend.holds_blob(sha256, users).await
    }

    /// # Errors
    /// `Unavailable`.
    pub async fn user_blobs(
        &self,
        username: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<BlobRef>, u64), StoreError> {
        self.inner.backend.user_blobs(username, offset, limit).await
    }

    /// # Errors
    /// `Unavailable`.
    pub async fn users(
        &self,
        offset: usize,
        limit: usize,
        search: &str,
    ) -> Result<(Vec<UserRecord>, u64), StoreError> {
        self.inner.backend.users(offset, limit, search).await
    }

    /// # Errors
    /// `Unavailable`.
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.backend.stats().await
    }

    /// Durably records a newly issued session.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn add_session(&self, session: SessionRecord) -> Result<(), StoreError> {
        self.inner
            .backend
            .write(Write::Session(session))
            .await
            .map(|_| ())
    }

    /// # Errors
    /// `Unavailable`.
    pub async fn sessions(&self, username: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.backend.sessions(username).await
    }

    /// Durably records that session `sid` is revoked until `expires` (Unix seconds).
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn revoke(&self, username: &str, sid: &str, expires: u64) -> Result<(), StoreError> {
        let write = Write::Revoke {
            username: username.to_owned(),
            sid: sid.to_owned(),
            expires,
        };
        self.inner.backend.write(write).await.map(|_| ())
    }

    /// # Errors
    /// `Unavailable`.
    pub async fn revoked(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.backend.revoked().await
    }
}

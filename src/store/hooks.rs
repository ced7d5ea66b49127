//! Webhook records (`webhooks/`), kept in the store so they and their cursors survive
//! restarts, `kill -9` and backups like everything else.

use super::Store;
use super::backend::Write;
use super::error::StoreError;

impl Store {
    /// Every webhook's record (JSON).
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn webhooks(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.backend.webhooks().await
    }

    /// Stores webhook `id`'s record durably, or removes it (`None`); with `expect`, only
    /// over that record.
    ///
    /// # Errors
    /// `VersionMismatch` when the record is no longer `expect`; `Unavailable`.
    pub async fn save_webhook(
        &self,
        id: &str,
        record: Option<Vec<u8>>,
        expect: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        self.inner
            .backend
            .write(Write::Webhook {
                id: id.to_owned(),
                record,
                expect,
            })
            .await
            .map(|_| ())
    }
}

//! The audit log: who did what to whom, when, for every admin action (the dashboard shows it,
//! `GET /v1/admin/audit` serves it). Kept in the store beside the accounts it speaks of, so it
//! survives restarts, travels in backups, and is one log for a whole cluster.

use serde::{Deserialize, Serialize};

use super::Store;
use super::backend::Write;
use super::error::StoreError;

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditLine {
    /// Its place in the log (1, 2, …); set when read.
    #[serde(default)]
    pub seq: u64,
    pub at: String,
    /// The admin who acted.
    pub by: String,
    /// What they did: `disable`, `enable`, `delete_user`, `create_user`, `reset_password`,
    /// `grant_admin`, `revoke_admin`, `backup`, `import`.
    pub action: String,
    /// Whom or what it was done to (an account, a backup file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Store {
    /// Records that `by` did `action` (to `target`), durably.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn audit(
        &self,
        by: &str,
        action: &str,
        target: Option<&str>,
    ) -> Result<(), StoreError> {
        let line = AuditLine {
            seq: 0,
            at: crate::sys::now_rfc3339(),
            by: by.to_owned(),
            action: action.to_owned(),
            target: target.map(str::to_owned),
        };
        let json = serde_json::to_vec(&line).map_err(StoreError::unavailable)?;
        self.inner.backend.write(Write::Audit(json)).await?;
        Ok(())
    }

    /// Audit lines before `before` (all when `None`), newest first, at most `limit`.
    ///
    /// # Errors
    /// `Unavailable`, also on a line that is not one.
    pub async fn audit_lines(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditLine>, StoreError> {
        let rows = self.inner.backend.audit(before, limit).await?;
        rows.into_iter()
            .map(|(seq, json)| {
                let mut line: AuditLine = serde_json::from_slice(&json)
                    .map_err(|e| StoreError::Unavailable(format!("audit line {seq}: {e}")))?;
                line.seq = seq;
                Ok(line)
            })
            .collect()
    }
}

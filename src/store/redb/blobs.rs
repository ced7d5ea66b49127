//! Blob references in redb: who holds which blob, each blob's record, each account's usage.
//! The writer applies `BlobAdd`/`BlobRemove` here inside its batch transaction; the reads
//! serve `Backend::{blob, holds_blob, user_blobs}`.

use redb::{ReadableTable, Table, WriteTransaction};

use super::{BLOB_MENTIONS, BLOB_REFS, BLOB_USAGE, BLOBS, decode};
use crate::store::backend::BlobAdd;
use crate::store::error::StoreError;
use crate::store::model::{BlobRecord, BlobRef};

/// The three blob tables, opened in the writer's transaction.
pub(super) struct BlobTables<'t> {
    blobs: Table<'t, &'static str, &'static [u8]>,
    refs: Table<'t, (&'static str, &'static str), u64>,
    usage: Table<'t, &'static str, u64>,
    mentions: Table<'t, (&'static str, &'static str, &'static str), ()>,
}

impl<'t> BlobTables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(BlobTables {
            blobs: txn.open_table(BLOBS).map_err(StoreError::unavailable)?,
            refs: txn.open_table(BLOB_REFS).map_err(StoreError::unavailable)?,
            usage: txn
                .open_table(BLOB_USAGE)
                .map_err(StoreError::unavailable)?,
            mentions: txn
                .open_table(BLOB_MENTIONS)
                .map_err(StoreError::unavailable)?,
        })
    }

    /// Records that `by` wrote `sha256` into `doc`; refused (`NotFound`) unless `by` holds
    /// the blob: only a holder's own act can share it.
    pub(super) fn mention(
        &mut self,
        doc: &str,
        sha256: &str,
        by: &str,
    ) -> Result<Result<(), StoreError>, StoreError> {
        if self
            .refs
            .get((by, sha256))
            .map_err(StoreError::unavailable)?
            .is_none()
        {
            return Ok(Err(StoreError::NotFound));
        }
        self.mentions
            .insert((doc, sha256, by), ())
            .map_err(StoreError::unavailable)?;
        Ok(Ok(()))
    }

    /// Forgets what was written into `doc` (its account is being deleted).
    pub(super) fn forget_mentions(&mut self, doc: &str) -> Result<(), StoreError> {
        self.mentions
            .retain_in((doc, "", "")..=(doc, "\u{10ffff}", "\u{10ffff}"), |_, _| {
                false
            })
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    /// Records that `username` holds `sha256` (a no-op if it does). The outer `Err` is a
    /// storage failure, the inner one a refusal (`QuotaExceeded`).
    pub(super) fn add(
        &mut self,
        add: &BlobAdd,
        now: &str,
    ) -> Result<Result<(), StoreError>, StoreError> {
        let (username, sha256, size) = (add.username.as_str(), add.sha256.as_str(), add.size);
        let key = (username, sha256);
        if self
            .refs
            .get(key)
            .map_err(StoreError::unavailable)?
            .is_some()
        {
            return Ok(Ok(()));
        }
        let used = self.used(username)?;
        if used.saturating_add(size) > add.quota {
            return Ok(Err(StoreError::QuotaExceeded { quota: add.quota }));
        }
        let record = match self.record(sha256)? {
            Some(mut record) => {
                record.refs += 1;
                record
            }
            None => BlobRecord {
                size,
                content_type: add.content_type.clone(),
                refs: 1,
                created_at: now.to_owned(),
            },
        };
        self.put_record(sha256, &record)?;
        self.refs
            .insert(key, size)
            .map_err(StoreError::unavailable)?;
        self.usage
            .insert(username, used + size)
            .map_err(StoreError::unavailable)?;
        Ok(Ok(()))
    }

    /// Drops `username`'s reference; the record goes with the last one. Refused with
    /// `NotFound` if there is none.
    pub(super) fn remove(
        &mut self,
        username: &str,
        sha256: &str,
    ) -> Result<Result<(), StoreError>, StoreError> {
        let Some(size) = self
            .refs
            .remove((username, sha256))
            .map_err(StoreError::unavailable)?
            .map(|v| v.value())
        else {
            return Ok(Err(StoreError::NotFound));
        };
        let used = self.used(username)?;
        self.usage
            .insert(username, used.saturating_sub(size))
            .map_err(StoreError::unavailable)?;
        match self.record(sha256)? {
            Some(mut record) if record.refs > 1 => {
                record.refs -= 1;
                self.put_record(sha256, &record)?;
            }
            _ => {
                self.blobs.remove(sha256).map_err(StoreError::unavailable)?;
            }
        }
        Ok(Ok(()))
    }

    /// The blobs `username` holds a reference to.
    pub(super) fn held_by(&self, username: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for row in self
            .refs
            .range((username, "")..=(username, "\u{10ffff}"))
            .map_err(StoreError::unavailable)?
        {
            let (key, _) = row.map_err(StoreError::unavailable)?;
            out.push(key.value().1.to_owned());
        }
        Ok(out)
    }

    /// Drops `username`'s usage row (an account being deleted, its references gone).
    pub(super) fn forget_usage(&mut self, username: &str) -> Result<(), StoreError> {
        self.usage
            .remove(username)
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    fn used(&self, username: &str) -> Result<u64, StoreError> {
        Ok(self
            .usage
            .get(username)
            .map_err(StoreError::unavailable)?
            .map_or(0, |v| v.value()))
    }

    fn record(&self, sha256: &str) -> Result<Option<BlobRecord>, StoreError> {
        match self.blobs.get(sha256).map_err(StoreError::unavailable)? {
            Some(bytes) => Ok(Some(decode(bytes.value(), sha256)?)),
            None => Ok(None),
        }
    }

    fn put_record(&mut self, sha256: &str, record: &BlobRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(StoreError::unavailable)?;
        self.blobs
            .insert(sha256, bytes.as_slice())
            .map_err(StoreError::unavailable)?;
        Ok(())
    }
}

/// Whether any of `users` holds `sha256`.
pub(super) fn holds(
    txn: &redb::ReadTransaction,
    sha256: &str,
    users: &[String],
) -> Result<bool, StoreError> {
    let refs = txn.open_table(BLOB_REFS).map_err(StoreError::unavailable)?;
    for user in users {
        if refs
            .get((user.as_str(), sha256))
            .map_err(StoreError::unavailable)?
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Who recorded writing `sha256` into `doc`.
pub(super) fn mentioned_by(
    txn: &redb::ReadTransaction,
    doc: &str,
    sha256: &str,
) -> Result<Vec<String>, StoreError> {
    let mentions = txn
        .open_table(BLOB_MENTIONS)
        .map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    for row in mentions
        .range((doc, sha256, "")..=(doc, sha256, "\u{10ffff}"))
        .map_err(StoreError::unavailable)?
    {
        let (key, _) = row.map_err(StoreError::unavailable)?;
        out.push(key.value().2.to_owned());
    }
    Ok(out)
}

/// `name`'s references in hash order from `offset`, at most `limit`, and its usage.
pub(super) fn of_user(
    txn: &redb::ReadTransaction,
    name: &str,
    offset: usize,
    limit: usize,
) -> Result<(Vec<BlobRef>, u64), StoreError> {
    let refs = txn.open_table(BLOB_REFS).map_err(StoreError::unavailable)?;
    let usage = txn
        .open_table(BLOB_USAGE)
        .map_err(StoreError::unavailable)?;
    let used = usage
        .get(name)
        .map_err(StoreError::unavailable)?
        .map_or(0, |v| v.value());
    let mut out = Vec::new();
    for row in refs
        .range((name, "")..)
        .map_err(StoreError::unavailable)?
        .skip(offset)
    {
        let (key, size) = row.map_err(StoreError::unavailable)?;
        if key.value().0 != name || out.len() >= limit {
            break;
        }
        out.push(BlobRef {
            sha256: key.value().1.to_owned(),
            size: size.value(),
        });
    }
    Ok((out, used))
}

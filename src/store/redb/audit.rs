//! The audit log in the data file: lines appended by the writer in its batch's transaction,
//! read newest first.

use redb::{Database, ReadableDatabase, ReadableTable};

use super::schema::AUDIT;
use super::tables::{Tables, write_txn};
use crate::store::error::StoreError;

impl Tables<'_> {
    /// Appends `line` after the newest one.
    pub(super) fn audit(&mut self, line: &[u8]) -> Result<(), StoreError> {
        let mut table = write_txn(self.txn)?
            .open_table(AUDIT)
            .map_err(StoreError::unavailable)?;
        let next = table
            .last()
            .map_err(StoreError::unavailable)?
            .map_or(1, |(k, _)| k.value() + 1);
        table.insert(next, line).map_err(StoreError::unavailable)?;
        Ok(())
    }
}

/// `Backend::audit`.
pub(super) fn page(
    db: &Database,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = txn.open_table(AUDIT).map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    for row in table
        .range(..before.unwrap_or(u64::MAX))
        .map_err(StoreError::unavailable)?
        .rev()
        .take(limit)
    {
        let (k, v) = row.map_err(StoreError::unavailable)?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

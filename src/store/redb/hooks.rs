//! Webhook records in the data file (`webhooks/`): `id → JSON`, written by the writer in its
//! batch's transaction, read whole (there are few).

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::tables::{Tables, write_txn};
use crate::store::error::StoreError;

pub const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");

impl Tables<'_> {
    /// Stores the record of webhook `id`, or removes it (`None`); with `expect`, only over
    /// that record (else `VersionMismatch`, in the inner result).
    pub(super) fn webhook(
        &mut self,
        id: &str,
        record: Option<&[u8]>,
        expect: Option<&[u8]>,
    ) -> Result<Result<(), StoreError>, StoreError> {
        let mut table = write_txn(self.txn)?
            .open_table(WEBHOOKS)
            .map_err(StoreError::unavailable)?;
        if let Some(expect) = expect {
            let current = table.get(id).map_err(StoreError::unavailable)?;
            if current.as_ref().map(|v| v.value()) != Some(expect) {
                return Ok(Err(StoreError::VersionMismatch { current: 0 }));
            }
        }
        match record {
            Some(bytes) => table.insert(id, bytes).map(|_| ()),
            None => table.remove(id).map(|_| ()),
        }
        .map(Ok)
        .map_err(StoreError::unavailable)
    }
}

/// `Backend::webhooks`.
pub(super) fn all(db: &Database) -> Result<Vec<Vec<u8>>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = match txn.open_table(WEBHOOKS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::unavailable(e)),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(StoreError::unavailable)? {
        let (_, v) = row.map_err(StoreError::unavailable)?;
        out.push(v.value().to_vec());
    }
    Ok(out)
}

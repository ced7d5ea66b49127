//! Finding a retried update's first commit in the change log (`store/ops.rs` says why the
//! log and when), as the writer sees it mid-batch: the batch's own rows, the unfolded rows in
//! memory, then the folded log.

use redb::ReadableTable;

use super::LOG;
use super::tables::{Tables, open};
use crate::store::error::StoreError;
use crate::store::model::Version;
use crate::store::ops::committed_as;

impl Tables<'_> {
    /// The version `by`'s operation `op_id` made on `name`, if one after `after` did.
    pub(super) fn committed_op(
        &mut self,
        name: &str,
        by: &str,
        op_id: &str,
        after: Version,
    ) -> Result<Option<Version>, StoreError> {
        for row in self.updates.iter().filter(|r| r.name == name) {
            if let Some(version) = committed_as(&row.entry, by, op_id)? {
                return Ok(Some(version));
            }
        }
        let unfolded = self.durable.unfolded_entries(name)?;
        if let Some(e) = unfolded
            .iter()
            .find(|e| e.version > after && e.by == by && e.op_id.as_deref() == Some(op_id))
        {
            return Ok(Some(e.version));
        }
        if let Some(txn) = self.txn {
            let log = open(Some(txn), &mut self.log, LOG)?;
            return search(&*log, name, by, op_id, after);
        }
        let log = self
            .snapshot()?
            .open_table(LOG)
            .map_err(StoreError::unavailable)?;
        search(&log, name, by, op_id, after)
    }
}

/// The folded log of `name` after `after`, searched oldest first.
fn search(
    log: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    name: &str,
    by: &str,
    op_id: &str,
    after: Version,
) -> Result<Option<Version>, StoreError> {
    for row in log
        .range((name, after.saturating_add(1))..=(name, u64::MAX))
        .map_err(StoreError::unavailable)?
    {
        let (_, bytes) = row.map_err(StoreError::unavailable)?;
        if let Some(version) = committed_as(bytes.value(), by, op_id)? {
            return Ok(Some(version));
        }
    }
    Ok(None)
}

//! Who each document is shared with, both ways: `shares` (document → user) to change a
//! document's rows, `shared_with` (user → document) to answer "shared with me" in one range
//! read. Both are derived from documents' access lists and rewritten whenever a document's
//! lists may have changed, in the same transaction that writes the document: at create,
//! delete, and when a fold writes a document whose folded updates touched its lists (the
//! writer folds such a batch at once, so a list read after an ack sees it).

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use crate::store::error::StoreError;
use crate::store::model::{Access, Document};

/// `(document key, user) → role`.
pub(super) const SHARES: TableDefinition<(&str, &str), u8> = TableDefinition::new("shares");
/// `(user, document key) → role`: the same rows, the other way round.
pub(super) const SHARED_WITH: TableDefinition<(&str, &str), u8> =
    TableDefinition::new("shared_with");

const READ: u8 = 1;
const WRITE: u8 = 2;

/// Both tables, in `txn`.
pub(super) fn create(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SHARES).map_err(StoreError::unavailable)?;
    txn.open_table(SHARED_WITH)
        .map_err(StoreError::unavailable)?;
    Ok(())
}

/// Rewrites `key`'s rows from `doc`'s lists (`None`: the document is gone).
///
/// # Errors
/// `Unavailable`.
pub(super) fn reindex(
    txn: &WriteTransaction,
    key: &str,
    doc: Option<&Document>,
) -> Result<(), StoreError> {
    let mut shares = txn.open_table(SHARES).map_err(StoreError::unavailable)?;
    let mut with = txn
        .open_table(SHARED_WITH)
        .map_err(StoreError::unavailable)?;
    let mut old = Vec::new();
    for row in shares
        .range((key, "")..=(key, "\u{10ffff}"))
        .map_err(StoreError::unavailable)?
    {
        let (k, _) = row.map_err(StoreError::unavailable)?;
        old.push(k.value().1.to_owned());
    }
    for user in &old {
        shares
            .remove((key, user.as_str()))
            .map_err(StoreError::unavailable)?;
        with.remove((user.as_str(), key))
            .map_err(StoreError::unavailable)?;
    }
    let Some(doc) = doc else { return Ok(()) };
    let m = &doc.metadata;
    // Readers first, so that a name on both lists ends up a collaborator.
    for (users, role) in [(&m.readers, READ), (&m.collaborators, WRITE)] {
        for user in users.iter().filter(|u| **u != m.username) {
            shares
                .insert((key, user.as_str()), role)
                .map_err(StoreError::unavailable)?;
            with.insert((user.as_str(), key), role)
                .map_err(StoreError::unavailable)?;
        }
    }
    Ok(())
}

/// Documents shared with `user` whose key sorts after `after`, at most `limit`, with the
/// role each grants.
///
/// # Errors
/// `Unavailable`.
pub(super) fn shared_with(
    txn: &ReadTransaction,
    user: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<(String, Access)>, StoreError> {
    let with = txn
        .open_table(SHARED_WITH)
        .map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    for row in with
        .range((user, after)..=(user, "\u{10ffff}"))
        .map_err(StoreError::unavailable)?
    {
        let (k, role) = row.map_err(StoreError::unavailable)?;
        let key = k.value().1;
        if key == after {
            continue;
        }
        let role = if role.value() == WRITE {
            Access::Write
        } else {
            Access::Read
        };
        out.push((key.to_owned(), role));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

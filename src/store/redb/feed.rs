//! The change feed in redb: every committed version of every document and stream, in commit
//! order, under a cursor that survives restarts and backups.
//!
//! The cursor is the journal's sequence number, which already orders every update as it is
//! committed, logged and folded. A fold records `cursor → (key, version)` in `feed` as it
//! moves rows into `changelog`; the rows not folded yet carry their cursor in the journal.
//! At open the counter continues after the last cursor recorded (the log's and a backup's
//! rows are folded first, keeping the cursors their process gave them), so a cursor is never
//! handed out twice. The entry itself is read from `changelog`; `feed` holds only where it is.

use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::{LOG, decode};
use crate::store::backend::{FeedItem, FeedPage};
use crate::store::error::StoreError;

/// `cursor → (document key, version)`.
pub const FEED: TableDefinition<u64, (&str, u64)> = TableDefinition::new("feed");

/// Cursors kept; older ones are dropped by folds, and a consumer behind them is told so.
pub const KEEP: u64 = 1_000_000;

/// The first cursor this process hands out: one past the last recorded (1 on a new file).
///
/// # Errors
/// `Unavailable`.
pub fn next_cursor(db: &Database) -> Result<u64, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let table = match txn.open_table(FEED) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(1),
        Err(e) => return Err(StoreError::unavailable(e)),
    };
    let last = table
        .last()
        .map_err(StoreError::unavailable)?
        .map_or(0, |(k, _)| k.value());
    Ok(last + 1)
}

/// Records folded rows' places (called by the fold, inside its transaction), then drops
/// cursors past [`KEEP`].
///
/// # Errors
/// `Unavailable`.
pub fn record<'a>(
    txn: &WriteTransaction,
    rows: impl Iterator<Item = (u64, &'a str, u64)>,
) -> Result<(), StoreError> {
    let mut feed = txn.open_table(FEED).map_err(StoreError::unavailable)?;
    for (cursor, name, version) in rows {
        feed.insert(cursor, (name, version))
            .map_err(StoreError::unavailable)?;
    }
    let len = feed.len().map_err(StoreError::unavailable)?;
    if len > KEEP + KEEP / 10 {
        let first = feed
            .first()
            .map_err(StoreError::unavailable)?
            .map_or(0, |(k, _)| k.value());
        let upto = first + (len - KEEP);
        feed.retain_in(..upto, |_, _| false)
            .map_err(StoreError::unavailable)?;
    }
    Ok(())
}

/// The changes after `after`, looking at at most `limit`: the folded ones from `feed` in
/// `txn`, then `pending`, the rows not folded yet in the same view
/// (`Journal::snapshot_after`), as `journal::feed_items` decodes them. With `owner`, others'
/// changes are passed over without reading their entries.
///
/// # Errors
/// `Unavailable`.
pub fn read(
    txn: &ReadTransaction,
    after: u64,
    limit: usize,
    owner: Option<&str>,
    pending: Vec<(u64, Option<FeedItem>)>,
) -> Result<FeedPage, StoreError> {
    let mut page = FeedPage {
        through: after,
        ..FeedPage::default()
    };
    let mut looked = 0;
    let log = txn.open_table(LOG).map_err(StoreError::unavailable)?;
    match txn.open_table(FEED) {
        Ok(feed) => {
            page.oldest = feed
                .first()
                .map_err(StoreError::unavailable)?
                .map(|(k, _)| k.value());
            page.newest = feed
                .last()
                .map_err(StoreError::unavailable)?
                .map(|(k, _)| k.value());
            for row in feed
                .range(after + 1..)
                .map_err(StoreError::unavailable)?
                .take(limit)
            {
                let (cursor, place) = row.map_err(StoreError::unavailable)?;
                let (name, version) = place.value();
                looked += 1;
                page.through = cursor.value();
                if owner.is_some_and(|o| crate::names::owner_of(name) != o) {
                    continue;
                }
                let entry = match log.get((name, version)).map_err(StoreError::unavailable)? {
                    Some(bytes) => Some(decode(bytes.value(), name)?),
                    None => None, // trimmed, or its document deleted
                };
                page.items.push(FeedItem {
                    cursor: cursor.value(),
                    key: name.to_owned(),
                    version,
                    entry,
                });
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(StoreError::unavailable(e)),
    }
    // A fold may have committed without its rows dropped yet: those were read above.
    let last = page.through;
    for (cursor, item) in pending {
        if looked >= limit {
            break;
        }
        if cursor <= last {
            continue;
        }
        looked += 1;
        page.through = cursor;
        page.items.extend(item);
    }
    if page.oldest.is_none() {
        page.oldest = page.items.first().map(|i| i.cursor);
    }
    if looked > 0 {
        page.newest = page.newest.max(Some(page.through));
    }
    Ok(page)
}

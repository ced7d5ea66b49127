//! The change feed in PostgreSQL: one order for every node. Each commit transaction numbers
//! its versions in `feed` while holding a transaction-scoped advisory lock, taken after its
//! rows are written and released by its commit, so numbers are handed out in commit order
//! across the cluster and a reader never sees a later number commit before an earlier one.
//! The entry itself is read from `changelog`; `feed` holds only where it is. Webhooks, the
//! feed's consumers with cursors of their own, keep their records here too.

use deadpool_postgres::{Pool, Transaction};

use super::{decode, int, pg};
use crate::store::backend::{FeedItem, FeedPage};
use crate::store::error::StoreError;

/// Cursors kept; older ones are dropped every [`TRIM_EVERY`] cursors.
const KEEP: i64 = 1_000_000;
const TRIM_EVERY: i64 = 10_000;

/// Numbers `names[i]`'s `versions[i]` in the feed, in this order, inside the commit `tx`.
///
/// # Errors
/// `Unavailable`.
pub async fn record(
    tx: &Transaction<'_>,
    s: &str,
    names: &[String],
    versions: &[i64],
) -> Result<(), StoreError> {
    // One lock per schema: its key is the schema's name, hashed by PostgreSQL.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("{s}.feed")],
    )
    .await
    .map_err(pg)?;
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO {s}.feed (seq, username, version)
             SELECT (SELECT coalesce(max(seq), 0) FROM {s}.feed) + u.o, u.n, u.v
             FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(n, v, o)
             RETURNING seq"
        ))
        .await
        .map_err(pg)?;
    let rows = tx.query(&stmt, &[&names, &versions]).await.map_err(pg)?;
    let last: i64 = rows.iter().map(|r| r.get::<_, i64>(0)).max().unwrap_or(0);
    if last / TRIM_EVERY != (last - i64::try_from(rows.len()).unwrap_or(0)) / TRIM_EVERY {
        tx.execute(
            &format!("DELETE FROM {s}.feed WHERE seq <= $1"),
            &[&(last - KEEP)],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// Stores webhook `id`'s record, or removes it (`None`), inside `tx`; with `expect`, only
/// over that record.
///
/// # Errors
/// `VersionMismatch` when the record is not `expect`; `Unavailable`.
pub async fn save_webhook(
    tx: &Transaction<'_>,
    s: &str,
    id: &str,
    record: Option<&[u8]>,
    expect: Option<&[u8]>,
) -> Result<(), StoreError> {
    if let Some(expect) = expect {
        // The row lock taken here holds off any other writer of it until this commits.
        let current = tx
            .query_opt(
                &format!("SELECT record FROM {s}.webhooks WHERE id = $1 FOR UPDATE"),
                &[&id],
            )
            .await
            .map_err(pg)?;
        if current
            .map(|row| row.get::<_, String>(0))
            .as_deref()
            .map(str::as_bytes)
            != Some(expect)
        {
            return Err(StoreError::VersionMismatch { current: 0 });
        }
    }
    if let Some(bytes) = record {
        let text = String::from_utf8_lossy(bytes).into_owned();
        tx.execute(
            &format!(
                "INSERT INTO {s}.webhooks (id, record) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record"
            ),
            &[&id, &text],
        )
        .await
        .map_err(pg)?;
    } else {
        tx.execute(&format!("DELETE FROM {s}.webhooks WHERE id = $1"), &[&id])
            .await
            .map_err(pg)?;
    }
    Ok(())
}

/// Every webhook's record.
///
/// # Errors
/// `Unavailable`.
pub async fn webhooks(pool: &Pool, s: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let client = pool.get().await.map_err(pg)?;
    let rows = client
        .query(&format!("SELECT record FROM {s}.webhooks"), &[])
        .await
        .map_err(pg)?;
    Ok(rows
        .into_iter()
        .map(|r| r.get::<_, String>(0).into_bytes())
        .collect())
}

/// The changes after `after`, at most `limit`, with their log entries while kept; with
/// `owner`, only that account's. One statement, so the page and the newest cursor come from
/// one snapshot: a page shorter than asked has seen everything up to that newest cursor.
///
/// # Errors
/// `Unavailable`.
pub async fn read(
    pool: &Pool,
    s: &str,
    after: u64,
    limit: usize,
    owner: Option<&str>,
) -> Result<FeedPage, StoreError> {
    let client = pool.get().await.map_err(pg)?;
    let rows = client
        .query(
            &format!(
                "WITH ends AS (SELECT min(seq) AS oldest, max(seq) AS newest FROM {s}.feed),
                      page AS (SELECT f.seq, f.username, f.version, c.entry FROM {s}.feed f
                               LEFT JOIN {s}.changelog c ON c.username = f.username AND c.version = f.version
                               WHERE f.seq > $1 AND ($3::text IS NULL OR split_part(f.username, '/', 1) = $3)
                               ORDER BY f.seq LIMIT $2)
                 SELECT ends.oldest, ends.newest, page.seq, page.username, page.version, page.entry
                 FROM ends LEFT JOIN page ON true ORDER BY page.seq"
            ),
            &[&int(after), &int(limit as u64), &owner],
        )
        .await
        .map_err(pg)?;
    let mut page = FeedPage {
        through: after,
        ..FeedPage::default()
    };
    for row in rows {
        page.oldest = row.get::<_, Option<i64>>(0).map(i64::unsigned_abs);
        page.newest = row.get::<_, Option<i64>>(1).map(i64::unsigned_abs);
        let Some(seq) = row.get::<_, Option<i64>>(2) else {
            continue; // no change after `after`
        };
        let key: String = row.get(3);
        let entry = match row.get::<_, Option<String>>(5) {
            Some(text) => Some(decode(&text, &key)?),
            None => None,
        };
        page.items.push(FeedItem {
            cursor: seq.unsigned_abs(),
            version: row.get::<_, i64>(4).unsigned_abs(),
            key,
            entry,
        });
    }
    page.through = match page.items.last() {
        Some(last) if page.items.len() >= limit => last.cursor,
        // Fewer than asked: everything up to the newest was looked at.
        _ => page.newest.unwrap_or(after).max(after),
    };
    Ok(page)
}

//! Who each document is shared with (`shares`: one row per document and user), rewritten in
//! the transaction that changes a document's lists, and the notifications that tell every
//! node's sockets (`cluster.rs` turns them into `shared` / `unshared` pushes).

use deadpool_postgres::Transaction;
use serde_json::json;

use super::pg;
use crate::store::error::StoreError;
use crate::store::model::{Access, Document, ShareChange};

/// Rewrites `key`'s rows from `doc`'s lists (`None`: the document is gone).
///
/// # Errors
/// `Unavailable`.
pub(super) async fn reindex(
    tx: &Transaction<'_>,
    s: &str,
    key: &str,
    doc: Option<&Document>,
) -> Result<(), StoreError> {
    tx.execute(&format!("DELETE FROM {s}.shares WHERE doc = $1"), &[&key])
        .await
        .map_err(pg)?;
    let Some(doc) = doc else { return Ok(()) };
    let (users, roles): (Vec<String>, Vec<i16>) = doc
        .shared_with()
        .into_iter()
        .map(|(u, role)| (u.to_owned(), role_code(role)))
        .unzip();
    if users.is_empty() {
        return Ok(());
    }
    tx.execute(
        &format!(
            "INSERT INTO {s}.shares (doc, username, role)
             SELECT $1, u, r FROM unnest($2::text[], $3::smallint[]) AS x(u, r)"
        ),
        &[&key, &users, &roles],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Tells every node (this one too) that `key`'s access changed for each of `shares`.
///
/// # Errors
/// `Unavailable`.
pub(super) async fn notify(
    tx: &Transaction<'_>,
    channel: &str,
    key: &str,
    shares: &[ShareChange],
) -> Result<(), StoreError> {
    for change in shares {
        let role = change.role.map(Access::role_name);
        let payload = json!({"s": change.user, "k": key, "r": role}).to_string();
        tx.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
            .await
            .map_err(pg)?;
    }
    Ok(())
}

pub(super) fn role_code(role: Access) -> i16 {
    if role >= Access::Write { 2 } else { 1 }
}

pub(super) fn role_of(code: i16) -> Access {
    if code >= 2 {
        Access::Write
    } else {
        Access::Read
    }
}

//! Named documents in PostgreSQL: creating one (counted against its owner's limit, under a
//! lock on the owner's row so two creates cannot both pass) and deleting one, each in the
//! caller's transaction, with the notifications that tell every node.

use std::sync::Arc;

use deadpool_postgres::Transaction;
use serde_json::json;

use super::{PgBackend, decode, encode, pg};
use crate::names::named_range;
use crate::store::backend::Committed;
use crate::store::error::StoreError;
use crate::store::model::{Document, share_changes};

impl PgBackend {
    /// A named document at version 0, its log base and its `shares` rows; every node is told
    /// whom it is shared with.
    pub(super) async fn create_doc(
        &self,
        tx: &Transaction<'_>,
        doc: &Document,
        max_docs: usize,
    ) -> Result<Arc<Committed>, StoreError> {
        let s = &self.s;
        let key = doc.key().into_owned();
        self.require_user(tx, doc.owner()).await?;
        let (from, to) = named_range(doc.owner());
        // Serializes creates of one account, so two at once cannot both pass the count.
        tx.execute(
            &format!("SELECT 1 FROM {s}.users WHERE username = $1 FOR UPDATE"),
            &[&doc.owner()],
        )
        .await
        .map_err(pg)?;
        let held: i64 = tx
            .query_one(
                &format!("SELECT count(*) FROM {s}.docs WHERE username > $1 AND username < $2"),
                &[&from, &to],
            )
            .await
            .map_err(pg)?
            .get(0);
        if usize::try_from(held).unwrap_or(usize::MAX) >= max_docs {
            return Err(StoreError::TooManyDocuments { limit: max_docs });
        }
        let body = encode(doc)?;
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO {s}.docs (username, version, body) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING"
                ),
                &[&key, &body],
            )
            .await
            .map_err(pg)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        // A log left by a deleted document of the same name must not be replayed into this one.
        tx.execute(
            &format!("DELETE FROM {s}.changelog WHERE username = $1"),
            &[&key],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            &format!(
                "INSERT INTO {s}.changelog_base (username, body) VALUES ($1, $2)
                 ON CONFLICT (username) DO UPDATE SET body = EXCLUDED.body"
            ),
            &[&key, &body],
        )
        .await
        .map_err(pg)?;
        super::sharing::reindex(tx, s, &key, Some(doc)).await?;
        let shares = share_changes(None, Some(doc));
        super::sharing::notify(tx, &self.channel, &key, &shares).await?;
        Ok(Arc::new(Committed {
            doc: Arc::new(doc.clone()),
            entry: None,
            created: true,
            shares,
        }))
    }

    /// Every row of named document `key`; every node ends its watches (`{"d": key}`) and
    /// tells whoever it was shared with.
    pub(super) async fn delete_doc(
        &self,
        tx: &Transaction<'_>,
        key: &str,
    ) -> Result<(), StoreError> {
        let s = &self.s;
        let Some(row) = tx
            .query_opt(
                &format!("DELETE FROM {s}.docs WHERE username = $1 RETURNING body"),
                &[&key],
            )
            .await
            .map_err(pg)?
        else {
            return Err(StoreError::NotFound);
        };
        let doc: Document = decode(&row.get::<_, String>(0), key)?;
        for table in ["changelog", "changelog_base"] {
            tx.execute(
                &format!("DELETE FROM {s}.{table} WHERE username = $1"),
                &[&key],
            )
            .await
            .map_err(pg)?;
        }
        tx.execute(
            &format!("DELETE FROM {s}.blob_mentions WHERE doc = $1"),
            &[&key],
        )
        .await
        .map_err(pg)?;
        super::sharing::reindex(tx, s, key, None).await?;
        super::sharing::notify(tx, &self.channel, key, &share_changes(Some(&doc), None)).await?;
        self.notify(tx, json!({ "d": key })).await
    }
}

//! Every write other than an update (accounts, sessions, revocations, flags, blob
//! references): rare and short, one transaction each on the pool. Revocations and flags
//! `NOTIFY` the other nodes inside their transaction, as commits do.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use deadpool_postgres::Transaction;
use serde_json::json;

use super::{PgBackend, decode, encode, flag_name, int, pg, uint};
use crate::names::named_range;
use crate::store::backend::{BlobAdd, Committed, Write};
use crate::store::error::StoreError;
use crate::store::model::{BlobRecord, SessionRecord, UserRecord};

impl PgBackend {
    /// Every write other than an update: one short transaction each.
    pub(super) async fn other(&self, write: Write) -> Result<Option<Arc<Committed>>, StoreError> {
        let s = &self.s;
        let mut client = self.pool.get().await.map_err(pg)?;
        let tx = client.transaction().await.map_err(pg)?;
        let mut created = None;
        match &write {
            Write::Update(..) => {
                return Err(StoreError::unavailable("updates go through update()"));
            }
            Write::CreateUser { user, doc, session } => {
                let inserted = tx
                    .execute(
                        &format!(
                            "INSERT INTO {s}.users (username, record) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                        ),
                        &[&user.username, &encode(user)?],
                    )
                    .await
                    .map_err(pg)?;
                if inserted == 0 {
                    return Err(StoreError::UsernameTaken);
                }
                let body = encode(doc)?;
                tx.execute(
                    &format!("INSERT INTO {s}.docs (username, version, body) VALUES ($1, $2, $3)"),
                    &[&user.username, &int(doc.version()), &body],
                )
                .await
                .map_err(pg)?;
                // An imported document may come shared already.
                super::sharing::reindex(&tx, s, &user.username, Some(doc)).await?;
                tx.execute(
                    &format!("INSERT INTO {s}.changelog_base (username, body) VALUES ($1, $2)"),
                    &[&user.username, &body],
                )
                .await
                .map_err(pg)?;
                if let Some(session) = session {
                    self.put_session(&tx, session).await?;
                }
                created = Some(Arc::new(Committed {
                    doc: Arc::new(doc.clone()),
                    entry: None,
                    created: true,
                    shares: Vec::new(),
                }));
            }
            Write::CreateDoc { doc, max_docs } => {
                created = Some(self.create_doc(&tx, doc, *max_docs).await?);
            }
            Write::DeleteDoc { key } => self.delete_doc(&tx, key).await?,
            Write::Session(session) => self.put_session(&tx, session).await?,
            Write::Revoke {
                username,
                sid,
                expires,
            } => {
                tx.execute(
                    &format!(
                        "INSERT INTO {s}.revoked (sid, expires) VALUES ($1, $2)
                         ON CONFLICT (sid) DO UPDATE SET expires = EXCLUDED.expires"
                    ),
                    &[sid, &int(*expires)],
                )
                .await
                .map_err(pg)?;
                tx.execute(
                    &format!("DELETE FROM {s}.sessions WHERE username = $1 AND id = $2"),
                    &[username, sid],
                )
                .await
                .map_err(pg)?;
                self.notify(&tx, json!({"r": sid, "e": expires})).await?;
            }
            Write::SetFlag { username, flag, on } => {
                self.require_user(&tx, username).await?;
                let sql = if *on {
                    format!(
                        "INSERT INTO {s}.flags (flag, username) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                    )
                } else {
                    format!("DELETE FROM {s}.flags WHERE flag = $1 AND username = $2")
                };
                tx.execute(&sql, &[&flag_name(*flag), username])
                    .await
                    .map_err(pg)?;
                self.notify(&tx, json!({"f": flag_name(*flag), "u": username, "on": on}))
                    .await?;
            }
            Write::SetPassword { username, hash } => {
                let row = tx
                    .query_opt(
                        &format!("SELECT record FROM {s}.users WHERE username = $1 FOR UPDATE"),
                        &[username],
                    )
                    .await
                    .map_err(pg)?
                    .ok_or(StoreError::Unauthorized)?;
                let mut user: UserRecord = decode(&row.get::<_, String>(0), username)?;
                user.password_hash = Some(hash.clone());
                tx.execute(
                    &format!("UPDATE {s}.users SET record = $2 WHERE username = $1"),
                    &[username, &encode(&user)?],
                )
                .await
                .map_err(pg)?;
            }
            Write::DeleteUser { username } => self.delete_user(&tx, username).await?,
            Write::Webhook { id, record, expect } => {
                let (record, expect) = (record.as_deref(), expect.as_deref());
                super::feed::save_webhook(&tx, s, id, record, expect).await?;
            }
            Write::Audit(line) => {
                let line = String::from_utf8_lossy(line);
                tx.execute(
                    &format!("INSERT INTO {s}.audit (entry) VALUES ($1)"),
                    &[&line],
                )
                .await
                .map_err(pg)?;
            }
            Write::BlobMention { doc, sha256, by } => {
                let recorded = tx
                    .execute(
                        &format!(
                            "INSERT INTO {s}.blob_mentions (doc, sha256, by_user)
                             SELECT $1, $2, $3 WHERE EXISTS (
                                 SELECT 1 FROM {s}.blob_refs WHERE username = $3 AND sha256 = $2)
                             ON CONFLICT DO NOTHING"
                        ),
                        &[doc, sha256, by],
                    )
                    .await
                    .map_err(pg)?;
                if recorded == 0 {
                    let held = tx
                        .query_opt(
                            &format!(
                                "SELECT 1 FROM {s}.blob_refs WHERE username = $1 AND sha256 = $2"
                            ),
                            &[by, sha256],
                        )
                        .await
                        .map_err(pg)?;
                    if held.is_none() {
                        return Err(StoreError::NotFound);
                    }
                }
            }
            Write::BlobAdd(add) => self.blob_add(&tx, add).await?,
            Write::BlobRemove { username, sha256 } => {
                self.blob_remove(&tx, username, sha256).await?
            }
        }
        let committed = tx.commit().await;
        self.healthy.store(committed.is_ok(), Ordering::SeqCst);
        committed.map_err(pg)?;
        if let Some(c) = &created {
            self.metrics.commits.inc();
            self.commits.durable(c);
            self.commits.answered(c);
        }
        Ok(created)
    }

    /// Every row of `name`, in the deletion's transaction. Other nodes learn of it from
    /// their next read (the document's version is gone) and from the flag notifications.
    async fn delete_user(&self, tx: &Transaction<'_>, name: &String) -> Result<(), StoreError> {
        // Every node closes the account's sockets there (4004), as this one closed its own.
        self.notify(tx, json!({"f": "deleted", "u": name, "on": true}))
            .await?;
        let s = &self.s;
        let removed = tx
            .execute(
                &format!("DELETE FROM {s}.users WHERE username = $1"),
                &[name],
            )
            .await
            .map_err(pg)?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        // Its named documents first: their watchers, on every node, are told.
        let (from, to) = named_range(name);
        let named = tx
            .query(
                &format!("SELECT username FROM {s}.docs WHERE username > $1 AND username < $2"),
                &[&from, &to],
            )
            .await
            .map_err(pg)?;
        for row in named {
            self.delete_doc(tx, &row.get::<_, String>(0)).await?;
        }
        for table in ["docs", "changelog", "changelog_base", "sessions", "flags"] {
            tx.execute(
                &format!("DELETE FROM {s}.{table} WHERE username = $1"),
                &[name],
            )
            .await
            .map_err(pg)?;
        }
        // Rows sharing others' documents with it stay: those documents still list it until
        // `deletion::leave_access_lists` updates them, and finds them there.
        tx.execute(&format!("DELETE FROM {s}.shares WHERE doc = $1"), &[name])
            .await
            .map_err(pg)?;
        let held = tx
            .query(
                &format!("SELECT sha256 FROM {s}.blob_refs WHERE username = $1"),
                &[name],
            )
            .await
            .map_err(pg)?;
        for row in held {
            let sha256: String = row.get(0);
            self.blob_remove(tx, name, &sha256).await?;
        }
        tx.execute(
            &format!("DELETE FROM {s}.blob_usage WHERE username = $1"),
            &[name],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            &format!("DELETE FROM {s}.blob_mentions WHERE doc = $1 OR by_user = $1"),
            &[name],
        )
        .await
        .map_err(pg)?;
        for flag in ["disabled", "admin"] {
            self.notify(tx, json!({"f": flag, "u": name, "on": false}))
                .await?;
        }
        Ok(())
    }

    pub(super) async fn notify(
        &self,
        tx: &Transaction<'_>,
        payload: serde_json::Value,
    ) -> Result<(), StoreError> {
        let stmt = tx
            .prepare_cached("SELECT pg_notify($1, $2)")
            .await
            .map_err(pg)?;
        tx.execute(&stmt, &[&self.channel, &payload.to_string()])
            .await
            .map_err(pg)?;
        Ok(())
    }

    pub(super) async fn require_user(
        &self,
        tx: &Transaction<'_>,
        name: &str,
    ) -> Result<(), StoreError> {
        let s = &self.s;
        tx.query_opt(
            &format!("SELECT 1 FROM {s}.users WHERE username = $1"),
            &[&name],
        )
        .await
        .map_err(pg)?
        .map(|_| ())
        .ok_or(StoreError::Unauthorized)
    }

    async fn put_session(
        &self,
        tx: &Transaction<'_>,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        let s = &self.s;
        tx.execute(
            &format!(
                "INSERT INTO {s}.sessions (username, id, record, expires) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (username, id) DO UPDATE SET record = EXCLUDED.record, expires = EXCLUDED.expires"
            ),
            &[&session.username, &session.id, &encode(session)?, &int(session.expires)],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn blob_add(&self, tx: &Transaction<'_>, add: &BlobAdd) -> Result<(), StoreError> {
        let (username, sha256, size) = (add.username.as_str(), add.sha256.as_str(), add.size);
        let s = &self.s;
        self.require_user(tx, username).await?;
        tx.execute(
            &format!(
                "INSERT INTO {s}.blob_usage (username, bytes) VALUES ($1, 0) ON CONFLICT DO NOTHING"
            ),
            &[&username],
        )
        .await
        .map_err(pg)?;
        // Locks the account's usage row: its quota checks are serialized.
        let used = uint(
            tx.query_one(
                &format!("SELECT bytes FROM {s}.blob_usage WHERE username = $1 FOR UPDATE"),
                &[&username],
            )
            .await
            .map_err(pg)?
            .get(0),
        );
        let held = tx
            .query_opt(
                &format!("SELECT 1 FROM {s}.blob_refs WHERE username = $1 AND sha256 = $2"),
                &[&username, &sha256],
            )
            .await
            .map_err(pg)?
            .is_some();
        if held {
            return Ok(());
        }
        if used.saturating_add(size) > add.quota {
            return Err(StoreError::QuotaExceeded { quota: add.quota });
        }
        let record = tx
            .query_opt(
                &format!("SELECT record FROM {s}.blobs WHERE sha256 = $1 FOR UPDATE"),
                &[&sha256],
            )
            .await
            .map_err(pg)?;
        let record = match record {
            Some(row) => {
                let mut r: BlobRecord = decode(&row.get::<_, String>(0), sha256)?;
                r.refs += 1;
                r
            }
            None => BlobRecord {
                size,
                content_type: add.content_type.clone(),
                refs: 1,
                created_at: crate::sys::now_rfc3339(),
            },
        };
        tx.execute(
            &format!(
                "INSERT INTO {s}.blobs (sha256, record) VALUES ($1, $2)
                 ON CONFLICT (sha256) DO UPDATE SET record = EXCLUDED.record"
            ),
            &[&sha256, &encode(&record)?],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            &format!("INSERT INTO {s}.blob_refs (username, sha256, size) VALUES ($1, $2, $3)"),
            &[&username, &sha256, &int(size)],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            &format!("UPDATE {s}.blob_usage SET bytes = $2 WHERE username = $1"),
            &[&username, &int(used + size)],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn blob_remove(
        &self,
        tx: &Transaction<'_>,
        username: &str,
        sha256: &str,
    ) -> Result<(), StoreError> {
        let s = &self.s;
        let size: i64 = tx
            .query_opt(
                &format!(
                    "DELETE FROM {s}.blob_refs WHERE username = $1 AND sha256 = $2 RETURNING size"
                ),
                &[&username, &sha256],
            )
            .await
            .map_err(pg)?
            .ok_or(StoreError::NotFound)?
            .get(0);
        tx.execute(
            &format!(
                "UPDATE {s}.blob_usage SET bytes = greatest(bytes - $2, 0) WHERE username = $1"
            ),
            &[&username, &size],
        )
        .await
        .map_err(pg)?;
        let row = tx
            .query_opt(
                &format!("SELECT record FROM {s}.blobs WHERE sha256 = $1 FOR UPDATE"),
                &[&sha256],
            )
            .await
            .map_err(pg)?;
        match row.map(|r| decode::<BlobRecord>(&r.get::<_, String>(0), sha256)) {
            Some(Ok(mut record)) if record.refs > 1 => {
                record.refs -= 1;
                tx.execute(
                    &format!("UPDATE {s}.blobs SET record = $2 WHERE sha256 = $1"),
                    &[&sha256, &encode(&record)?],
                )
                .await
                .map_err(pg)?;
            }
            _ => {
                tx.execute(
                    &format!("DELETE FROM {s}.blobs WHERE sha256 = $1"),
                    &[&sha256],
                )
                .await
                .map_err(pg)?;
            }
        }
        Ok(())
    }
}

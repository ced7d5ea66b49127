//! The reads behind the `Backend` methods: one short query each (a read-only snapshot
//! for history), so that `mod.rs` holds connecting and the trait's wiring.

use super::{PgBackend, decode, flag_name, int, pg, uint};
use crate::store::backend::{History, Listed, StoreStats};
use crate::store::error::StoreError;
use crate::store::model::{Access, BlobRef, Document, Flag, SessionRecord, UserRecord, Version};

impl PgBackend {
    /// `Backend::audit`.
    pub(super) async fn select_audit(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let s = &self.s;
        let client = self.pool.get().await.map_err(pg)?;
        let before = before.map_or(i64::MAX, int);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT seq, entry FROM {s}.audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
                ),
                &[&before, &limit],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0).unsigned_abs(),
                    r.get::<_, String>(1).into_bytes(),
                )
            })
            .collect())
    }

    pub(super) async fn select_history(
        &self,
        username: &str,
        from: Version,
        to: Version,
        limit: usize,
        with_base: bool,
    ) -> Result<History, StoreError> {
        let s = &self.s;
        let mut client = self.pool.get().await.map_err(pg)?;
        // One snapshot: base and entries agree even while another node trims.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg)?;
        let (base, from) = if with_base {
            let base: Option<Document> = match tx
                .query_opt(
                    &format!("SELECT body FROM {s}.changelog_base WHERE username = $1"),
                    &[&username],
                )
                .await
                .map_err(pg)?
            {
                Some(row) => Some(decode(&row.get::<_, String>(0), username)?),
                None => None,
            };
            let start = base.as_ref().map_or(from, |b| b.version() + 1);
            (base, start)
        } else {
            (None, from)
        };
        let oldest: Option<i64> = tx
            .query_one(
                &format!("SELECT min(version) FROM {s}.changelog WHERE username = $1"),
                &[&username],
            )
            .await
            .map_err(pg)?
            .get(0);
        let mut entries = Vec::new();
        if from <= to {
            let stmt = tx
                .prepare_cached(&format!(
                    "SELECT entry FROM {s}.changelog WHERE username = $1 AND version >= $2 AND version <= $3 ORDER BY version LIMIT $4"
                ))
                .await
                .map_err(pg)?;
            let limit = bound(limit);
            for row in tx
                .query(
                    &stmt,
                    &[&username, &int(from), &int(to.min(i64::MAX as u64)), &limit],
                )
                .await
                .map_err(pg)?
            {
                entries.push(decode(&row.get::<_, String>(0), username)?);
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(History {
            base,
            oldest: oldest.map(uint),
            entries,
        })
    }

    pub(super) async fn select_flagged(&self, flag: Flag) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await.map_err(pg)?;
        let rows = client
            .query(
                &format!("SELECT username FROM {}.flags WHERE flag = $1", self.s),
                &[&flag_name(flag)],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(super) async fn select_holds_blob(
        &self,
        sha256: &str,
        users: Vec<String>,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(pg)?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT 1 FROM {}.blob_refs WHERE sha256 = $1 AND username = ANY($2) LIMIT 1",
                    self.s
                ),
                &[&sha256, &users],
            )
            .await
            .map_err(pg)?;
        Ok(row.is_some())
    }

    pub(super) async fn select_mentioned_by(
        &self,
        doc: &str,
        sha256: &str,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await.map_err(pg)?;
        let rows = client
            .query(
                &format!(
                    "SELECT by_user FROM {}.blob_mentions WHERE doc = $1 AND sha256 = $2",
                    self.s
                ),
                &[&doc, &sha256],
            )
            .await
            .map_err(pg)?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    pub(super) async fn select_user_blobs(
        &self,
        username: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<BlobRef>, u64), StoreError> {
        let s = &self.s;
        let client = self.pool.get().await.map_err(pg)?;
        let rows = client
            .query(
                &format!(
                    "SELECT sha256, size FROM {s}.blob_refs WHERE username = $1 ORDER BY sha256 OFFSET $2 LIMIT $3"
                ),
                &[
                    &username,
                    &bound(offset),
                    &bound(limit),
                ],
            )
            .await
            .map_err(pg)?;
        let used = client
            .query_opt(
                &format!("SELECT bytes FROM {s}.blob_usage WHERE username = $1"),
                &[&username],
            )
            .await
            .map_err(pg)?
            .map_or(0, |r| uint(r.get(0)));
        let refs = rows
            .iter()
            .map(|r| BlobRef {
                sha256: r.get(0),
                size: uint(r.get(1)),
            })
            .collect();
        Ok((refs, used))
    }

    pub(super) async fn select_users(
        &self,
        offset: usize,
        limit: usize,
        search: &str,
    ) -> Result<(Vec<UserRecord>, u64), StoreError> {
        let s = &self.s;
        let client = self.pool.get().await.map_err(pg)?;
        // `strpos`, not LIKE: a search for `_` or `%` means those characters.
        let rows = client
            .query(
                &format!(
                    "SELECT username, record FROM {s}.users WHERE strpos(username, $3) > 0
                      ORDER BY username OFFSET $1 LIMIT $2"
                ),
                &[&bound(offset), &bound(limit), &search],
            )
            .await
            .map_err(pg)?;
        let total: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {s}.users WHERE strpos(username, $1) > 0"),
                &[&search],
            )
            .await
            .map_err(pg)?
            .get(0);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.get(0);
            out.push(decode(&row.get::<_, String>(1), &name)?);
        }
        Ok((out, uint(total)))
    }

    pub(super) async fn select_documents(
        &self,
        owner: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Listed>, StoreError> {
        let s = &self.s;
        let (first, end) = crate::names::named_range(owner);
        let start = if after.is_empty() {
            first
        } else {
            format!("{owner}/{after}")
        };
        let client = self.pool.get().await.map_err(pg)?;
        let rows = client
            .query(
                &format!(
                    "SELECT username, body FROM {s}.docs WHERE username > $1 AND username < $2
                     ORDER BY username LIMIT $3"
                ),
                &[&start, &end, &bound(limit)],
            )
            .await
            .map_err(pg)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.get(0);
            let body: String = row.get(1);
            out.push(Listed::from_row(&key, body.as_bytes())?);
        }
        Ok(out)
    }

    pub(super) async fn select_shared_with(
        &self,
        user: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, Access)>, StoreError> {
        let s = &self.s;
        let client = self.pool.get().await.map_err(pg)?;
        let rows = client
            .query(
                &format!(
                    "SELECT doc, role FROM {s}.shares WHERE username = $1 AND doc > $2
                     ORDER BY doc LIMIT $3"
                ),
                &[&user, &after, &bound(limit)],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), super::sharing::role_of(r.get(1))))
            .collect())
    }

    pub(super) async fn select_stats(&self) -> Result<StoreStats, StoreError> {
        let s = &self.s;
        let client = self.pool.get().await.map_err(pg)?;
        let row = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {s}.users), (SELECT count(*) FROM {s}.docs),
                            (SELECT count(*) FROM {s}.changelog), (SELECT count(*) FROM {s}.blobs),
                            (SELECT coalesce(sum((record::json->>'size')::bigint), 0)::bigint FROM {s}.blobs),
                            (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                              WHERE n.nspname = '{s}' AND c.relkind = 'r')"
                ),
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(StoreStats {
            users: uint(row.get(0)),
            documents: uint(row.get(1)),
            log_entries: uint(row.get(2)),
            blobs: uint(row.get(3)),
            blob_bytes: uint(row.get(4)),
            data_bytes: uint(row.get(5)),
        })
    }

    pub(super) async fn select_sessions(
        &self,
        username: &str,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let client = self.pool.get().await.map_err(pg)?;
        let rows = client
            .query(
                &format!(
                    "SELECT record FROM {}.sessions WHERE username = $1 AND expires > $2 ORDER BY id",
                    self.s
                ),
                &[&username, &int(crate::sys::unix_now())],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| decode(&r.get::<_, String>(0), username))
            .collect()
    }

    pub(super) async fn select_revoked(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.pool.get().await.map_err(pg)?;
        let rows = client
            .query(
                &format!(
                    "SELECT sid, expires FROM {}.revoked WHERE expires > $1",
                    self.s
                ),
                &[&int(crate::sys::unix_now())],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), uint(r.get(1)))).collect())
    }
}

/// An offset or limit as PostgreSQL's `bigint`: `usize::MAX` (no limit) saturates instead
/// of wrapping negative, which `int` would do.
fn bound(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

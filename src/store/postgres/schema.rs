//! The PostgreSQL schema, created at start-up (embedded migrations), and the SQL the backend
//! runs, with table names qualified by the configured schema (`DATABASE_SCHEMA`), so several
//! Hearth clusters (or test runs) can share one database.
//!
//! Also the one value every node reads from the schema at start: the shared JWT secret.

/// Bumped when the layout changes; a newer schema is refused rather than misread.
/// 3: named documents (`owner/name` keys in `docs` and `changelog`) and `shares`.
/// 4: the audit log (`audit`).
/// 5: the change feed (`feed`) and webhooks (`webhooks`).
pub const SCHEMA_VERSION: i64 = 5;

/// Migrations in order; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`. `{s}`
/// is the schema name.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE IF NOT EXISTS {s}.users (username text PRIMARY KEY, record text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.docs (username text PRIMARY KEY, version bigint NOT NULL, body text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.changelog (
    username text NOT NULL, version bigint NOT NULL, entry text NOT NULL,
    PRIMARY KEY (username, version));
CREATE TABLE IF NOT EXISTS {s}.changelog_base (username text PRIMARY KEY, body text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.sessions (
    username text NOT NULL, id text NOT NULL, record text NOT NULL, expires bigint NOT NULL,
    PRIMARY KEY (username, id));
CREATE TABLE IF NOT EXISTS {s}.revoked (sid text PRIMARY KEY, expires bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.flags (flag text NOT NULL, username text NOT NULL, PRIMARY KEY (flag, username));
CREATE TABLE IF NOT EXISTS {s}.blobs (sha256 text PRIMARY KEY, record text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.blob_refs (
    username text NOT NULL, sha256 text NOT NULL, size bigint NOT NULL,
    PRIMARY KEY (username, sha256));
CREATE TABLE IF NOT EXISTS {s}.blob_usage (username text PRIMARY KEY, bytes bigint NOT NULL);
",
    r"
CREATE TABLE IF NOT EXISTS {s}.blob_mentions (
    doc text NOT NULL, sha256 text NOT NULL, by_user text NOT NULL,
    PRIMARY KEY (doc, sha256, by_user));
",
    // Who each document is shared with, both ways; built from the documents already there
    // (collaborators first, so a name on both lists is a collaborator).
    r"
CREATE TABLE IF NOT EXISTS {s}.shares (
    doc text NOT NULL, username text NOT NULL, role smallint NOT NULL,
    PRIMARY KEY (doc, username));
CREATE INDEX IF NOT EXISTS shares_by_user ON {s}.shares (username, doc);
INSERT INTO {s}.shares (doc, username, role)
    SELECT d.username, c, 2 FROM {s}.docs d,
        jsonb_array_elements_text((d.body::jsonb)->'metadata'->'collaborators') c
    WHERE c <> d.username ON CONFLICT DO NOTHING;
INSERT INTO {s}.shares (doc, username, role)
    SELECT d.username, r, 1 FROM {s}.docs d,
        jsonb_array_elements_text(COALESCE((d.body::jsonb)->'metadata'->'readers', '[]'::jsonb)) r
    WHERE r <> d.username ON CONFLICT DO NOTHING;
",
    // The audit log of admin actions (`store/audit.rs`).
    r"
CREATE TABLE IF NOT EXISTS {s}.audit (seq bigserial PRIMARY KEY, entry text NOT NULL);
",
    // The change feed: every committed version in one order for all nodes (`feed.rs`).
    r"
CREATE TABLE IF NOT EXISTS {s}.feed (seq bigint PRIMARY KEY, username text NOT NULL, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.webhooks (id text PRIMARY KEY, record text NOT NULL);
",
];

/// Longest wait for a pooled connection, or for a new one to connect.
const POOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The pool of `size` connections to `url`. An unreachable database must fail requests
/// (503), not hang them: connecting to a black-holed address would otherwise wait for TCP's
/// own minutes-long timeout.
///
/// # Errors
/// `Unavailable` for a URL the pool refuses.
pub fn pool(
    url: &str,
    size: usize,
) -> Result<deadpool_postgres::Pool, crate::store::error::StoreError> {
    let mut pool_cfg = deadpool_postgres::Config::new();
    pool_cfg.url = Some(url.to_owned());
    pool_cfg.manager = Some(deadpool_postgres::ManagerConfig {
        recycling_method: deadpool_postgres::RecyclingMethod::Fast,
    });
    let mut pool = deadpool_postgres::PoolConfig::new(size.max(1));
    pool.timeouts = deadpool_postgres::Timeouts {
        wait: Some(POOL_TIMEOUT),
        create: Some(POOL_TIMEOUT),
        recycle: Some(POOL_TIMEOUT),
    };
    pool_cfg.pool = Some(pool);
    pool_cfg
        .create_pool(
            Some(deadpool_postgres::Runtime::Tokio1),
            tokio_postgres::NoTls,
        )
        .map_err(super::pg)
}

/// A schema name we are willing to paste into SQL: a plain lowercase identifier.
pub fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Brings schema `s` up to [`SCHEMA_VERSION`] inside one transaction holding an advisory
/// lock, so nodes starting together do not race each other's `CREATE TABLE`.
///
/// # Errors
/// The database refuses, or holds a newer schema than this build knows.
pub async fn migrate(client: &mut tokio_postgres::Client, s: &str) -> Result<(), String> {
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock(hashtext('hearth-migrate-{s}'));
         CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);"
    ))
    .await
    .map_err(|e| e.to_string())?;
    let found: i64 = tx
        .query_opt(
            &format!("SELECT value FROM {s}.meta WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
        .and_then(|row| row.get::<_, String>(0).parse().ok())
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(format!(
            "schema {s} is at version {found}; this build knows up to {SCHEMA_VERSION}"
        ));
    }
    for step in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
        tx.batch_execute(&step.replace("{s}", s))
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.execute(
        &format!(
            "INSERT INTO {s}.meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ),
        &[&SCHEMA_VERSION.to_string()],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

impl super::PgBackend {
    /// The JWT secret every node of the cluster shares: generated once, kept in the database.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn shared_secret(&self) -> Result<String, crate::store::StoreError> {
        let client = self.pool.get().await.map_err(super::pg)?;
        let s = &self.s;
        let fresh = crate::auth::random_secret();
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.meta (key, value) VALUES ('jwt_secret', $1) ON CONFLICT (key) DO NOTHING"
                ),
                &[&fresh],
            )
            .await
            .map_err(super::pg)?;
        let row = client
            .query_one(
                &format!("SELECT value FROM {s}.meta WHERE key = 'jwt_secret'"),
                &[],
            )
            .await
            .map_err(super::pg)?;
        Ok(row.get(0))
    }
}

//! Every setting and limit in one place. Each comes from a flag, the environment, or a `.env`
//! file, and has a default that works with no configuration at all.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Server settings. Field docs become `--help` text, which names each env var.
#[derive(Args, Clone, Debug, serde::Serialize)]
pub struct Config {
    /// Address to listen on. 127.0.0.1 keeps a fresh install private; use 0.0.0.0 behind a proxy.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port for WebSocket (/ws) and HTTP.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Directory for the redb file and the generated JWT secret.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// HMAC secret for session tokens. Unset: generated at first start and kept in
    /// DATA_DIR/jwt_secret (mode 0600) so tokens survive restarts.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Token lifetime in seconds (default 30 days).
    #[arg(long, env = "TOKEN_TTL", default_value_t = default::TOKEN_TTL)]
    pub token_ttl: u64,

    /// personal-backend's `JWT_SECRET`: its tokens (which never expire) are accepted for
    /// accounts that exist, and `auth` with one answers with an ordinary token. Unset: off.
    #[arg(long, env = "LEGACY_JWT_SECRET", hide_env_values = true)]
    pub legacy_jwt_secret: Option<String>,

    /// Documents kept in the in-memory cache.
    #[arg(long, env = "CACHE_SIZE", default_value_t = default::CACHE_SIZE)]
    pub cache_size: u64,

    /// Milliseconds a cached document may stay unused before it is dropped.
    #[arg(long, env = "CACHE_MAX_AGE", default_value_t = default::CACHE_MAX_AGE)]
    pub cache_max_age: u64,

    /// MiB of the data file's pages kept in memory (redb's page cache), on top of the
    /// document cache: what reads that miss the document cache find without the disk.
    #[arg(long, env = "STORE_CACHE_MB", default_value_t = default::STORE_CACHE_MB)]
    pub store_cache_mb: usize,

    /// Largest stored document (metadata + userdata, serialized), in bytes.
    #[arg(long, env = "MAX_DATA_SIZE_JSON", default_value_t = default::MAX_DATA_SIZE_JSON)]
    pub max_data_size_json: usize,

    /// Largest inbound WebSocket message, in bytes; larger ones close the socket (1009).
    #[arg(long, env = "MAX_MESSAGE_SIZE", default_value_t = default::MAX_MESSAGE_SIZE)]
    pub max_message_size: usize,

    /// Deepest nesting of objects/arrays allowed in userdata.
    #[arg(long, env = "MAX_DEPTH", default_value_t = default::MAX_DEPTH)]
    pub max_depth: usize,

    /// Named documents one account may own (its default document not counted).
    #[arg(long, env = "MAX_DOCUMENTS_PER_ACCOUNT", default_value_t = default::MAX_DOCUMENTS_PER_ACCOUNT)]
    pub max_documents_per_account: usize,

    /// Bytes one account's documents may hold together (blobs have their own quota).
    #[arg(long, env = "MAX_ACCOUNT_BYTES", default_value_t = default::MAX_ACCOUNT_BYTES)]
    pub max_account_bytes: u64,

    /// Documents one connection may watch at once.
    #[arg(long, env = "MAX_WATCHES", default_value_t = default::MAX_WATCHES)]
    pub max_watches: usize,

    /// Bytes queued for one socket before senders wait (Centrifugo's figure). A watcher that
    /// cannot queue is coalesced to a resync; one stuck past SLOW_CONSUMER_TIMEOUT is closed.
    #[arg(long, env = "OUTBOUND_BUFFER", default_value_t = default::OUTBOUND_BUFFER)]
    pub outbound_buffer: usize,

    /// Connections one IP address may hold at once (the upgrade answers 429 beyond).
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = default::MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,

    /// Signed-in connections one user may hold at once (`too_many_connections` beyond).
    #[arg(long, env = "MAX_CONNECTIONS_PER_USER", default_value_t = default::MAX_CONNECTIONS_PER_USER)]
    pub max_connections_per_user: usize,

    /// Commands per second one connection may send (bursts of twice that); beyond, commands
    /// are answered `rate_limited` without running.
    #[arg(long, env = "MAX_REQUESTS_PER_SECOND", default_value_t = default::MAX_REQUESTS_PER_SECOND)]
    pub max_requests_per_second: u32,

    /// Signups per minute from one IP address.
    #[arg(long, env = "SIGNUPS_PER_IP", default_value_t = default::SIGNUPS_PER_IP)]
    pub signups_per_ip: u32,

    /// Logins per minute from one IP address.
    #[arg(long, env = "LOGINS_PER_IP", default_value_t = default::LOGINS_PER_IP)]
    pub logins_per_ip: u32,

    /// Logins per minute for one username from one address: the tight limit on guessing.
    #[arg(long, env = "LOGINS_PER_IP_USER", default_value_t = default::LOGINS_PER_IP_USER)]
    pub logins_per_ip_user: u32,

    /// Logins per minute for one username from all addresses together: loose, so that one
    /// address guessing (held to LOGINS_PER_IP_USER) cannot lock the owner out.
    #[arg(long, env = "LOGINS_PER_USER", default_value_t = default::LOGINS_PER_USER)]
    pub logins_per_user: u32,

    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client, as
    /// comma-separated addresses or CIDR ranges (`127.0.0.1,10.0.0.0/8`). Only requests from
    /// these peers have the headers read; unset, they are never read.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<crate::proxies::Cidr>,

    /// Milliseconds a client has to send a request's headers, and that a kept-alive HTTP
    /// connection may wait for its next request, before it is closed.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", default_value_t = default::HTTP_HEADER_TIMEOUT)]
    pub http_header_timeout: u64,

    /// Open connections in all (HTTP, WebSocket, SSE); past it new ones are closed at once.
    /// Lowered at start to fit the open-file limit (raised to its hard limit first).
    #[arg(long, env = "MAX_HTTP_CONNECTIONS", default_value_t = default::MAX_HTTP_CONNECTIONS)]
    pub max_http_connections: usize,

    /// Milliseconds between server pings on an otherwise quiet socket.
    #[arg(long, env = "PING_INTERVAL", default_value_t = default::PING_INTERVAL)]
    pub ping_interval: u64,

    /// Milliseconds without any frame from the client (pongs count) before the socket is
    /// closed (4009): reaps half-open connections.
    #[arg(long, env = "IDLE_TIMEOUT", default_value_t = default::IDLE_TIMEOUT)]
    pub idle_timeout: u64,

    /// Threads that write to sockets (writer loops and watch forwarders), apart from those
    /// that read sockets and run commands; 0 means half the cores, at least one.
    #[arg(long, env = "OUTPUT_THREADS", default_value_t = 0)]
    pub output_threads: usize,

    /// Changes a watcher may fall behind before it gets a resync snapshot instead. A change
    /// is kept only until every watcher of its document has taken it, so this costs memory
    /// only while someone lags: at most this many versions of that document.
    #[arg(long, env = "WATCH_BUFFER", default_value_t = default::WATCH_BUFFER)]
    pub watch_buffer: usize,

    /// Bytes of changes (their documents' serialized size) a watcher may fall behind by
    /// before it gets a resync instead, whatever WATCH_BUFFER says: what one stalled watcher
    /// of a large document can cost (default 16 MiB).
    #[arg(long, env = "WATCH_BUFFER_BYTES", default_value_t = default::WATCH_BUFFER_BYTES)]
    pub watch_buffer_bytes: usize,

    /// Milliseconds a socket's full queue is tolerated before it is closed (4008).
    #[arg(long, env = "SLOW_CONSUMER_TIMEOUT", default_value_t = default::SLOW_CONSUMER_TIMEOUT)]
    pub slow_consumer_timeout: u64,

    /// Most updates folded into one durable transaction (group commit).
    #[arg(long, env = "MAX_BATCH", default_value_t = default::MAX_BATCH)]
    pub max_batch: usize,

    /// Browser origins allowed to call the HTTP API and open the WebSocket, comma-separated
    /// (`https://app.example.com,http://localhost:5173`), or `*` for any. Unset: no CORS
    /// headers, and WebSocket upgrades are not checked for an Origin.
    #[arg(long, env = "CORS_ORIGINS")]
    pub cors_origins: Option<String>,

    /// Seconds between automatic snapshots into DATA_DIR/backups/ (0: none).
    #[arg(long, env = "BACKUP_INTERVAL", default_value_t = 0)]
    pub backup_interval: u64,

    /// Automatic snapshots kept; older ones are deleted.
    #[arg(long, env = "BACKUP_KEEP", default_value_t = 7)]
    pub backup_keep: usize,

    /// Usernames allowed on the admin API (/v1/admin), comma-separated.
    #[arg(long, env = "ADMIN_USERS")]
    pub admin_users: Option<String>,

    /// Another name for CORS_ORIGINS, used when that is unset.
    #[arg(long, env = "ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,

    /// Change-log entries kept per document: how far back a watcher can resume with `since`.
    #[arg(long, env = "CHANGELOG_RETAIN", default_value_t = default::CHANGELOG_RETAIN)]
    pub changelog_retain: u64,

    /// Seconds after which change-log entries are trimmed even if among the newest
    /// CHANGELOG_RETAIN (default 30 days); 0 keeps them regardless of age.
    #[arg(long, env = "CHANGELOG_MAX_AGE", default_value_t = default::CHANGELOG_MAX_AGE)]
    pub changelog_max_age: u64,

    /// This node may deliver webhooks; in a cluster one node at a time does (the holder of a
    /// PostgreSQL advisory lock; another takes over within a second when it goes).
    #[arg(long, env = "WEBHOOK_DELIVERY", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_delivery: bool,

    /// Let webhooks reach loopback, private, link-local and metadata addresses (refused by
    /// default: a webhook must not probe the server's own network).
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_allow_private: bool,

    /// Milliseconds before a failed webhook delivery is tried again; doubled after each
    /// further failure (at most 5 minutes apart). After 8 failures in a row it is paused.
    #[arg(long, env = "WEBHOOK_RETRY_MS", default_value_t = 1000)]
    pub webhook_retry_ms: u64,

    /// Events kept per stream (a stream's log is its data: CHANGELOG_RETAIN and
    /// CHANGELOG_MAX_AGE do not apply to it); older ones are dropped. 0 keeps every event.
    #[arg(long, env = "STREAM_RETAIN", default_value_t = default::STREAM_RETAIN)]
    pub stream_retain: u64,

    /// Serve a plain WebSocket echo at /echo, for protocol conformance runs (Autobahn). Off
    /// in production: it is not part of the API.
    #[arg(long, env = "WS_ECHO", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub ws_echo: bool,

    /// Start even if the write-ahead log is damaged, dropping what cannot be read. Set by
    /// `hearth recover --accept-loss` only: never for an ordinary start.
    #[arg(skip)]
    pub accept_wal_loss: bool,

    /// Simulated storage faults, for tests and drills. Not a flag.
    #[arg(skip)]
    #[serde(skip)]
    pub faults: Option<std::sync::Arc<crate::store::faults::Faults>>,

    /// Largest blob accepted by `PUT /v1/blobs`, in bytes (default 32 MiB).
    #[arg(long, env = "BLOB_MAX_SIZE", default_value_t = default::BLOB_MAX_SIZE)]
    pub blob_max_size: u64,

    /// Bytes of blobs each account may reference in all (default 256 MiB); identical content
    /// counts once per account.
    #[arg(long, env = "BLOB_QUOTA", default_value_t = default::BLOB_QUOTA)]
    pub blob_quota: u64,

    /// Where blob files live (default DATA_DIR/blobs).
    #[arg(long, env = "BLOB_DIR")]
    pub blob_dir: Option<PathBuf>,

    /// Where data lives: `redb` (one embedded file in DATA_DIR, the default) or `postgres`
    /// (cluster mode: several nodes share one PostgreSQL database, see DATABASE_URL).
    #[arg(long, env = "STORE", default_value = "redb")]
    pub store: StoreKind,

    /// PostgreSQL connection URL for STORE=postgres, e.g. postgres://hearth@127.0.0.1/hearth.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// PostgreSQL schema holding Hearth's tables (created at start); nodes of one cluster
    /// share it. A plain lowercase identifier.
    #[arg(long, env = "DATABASE_SCHEMA", default_value = "hearth")]
    pub database_schema: String,

    /// PostgreSQL connections per node.
    #[arg(long, env = "DATABASE_POOL", default_value_t = default::DATABASE_POOL)]
    pub database_pool: usize,

    /// Milliseconds shutdown waits for sockets to close before giving up on them.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value_t = default::SHUTDOWN_GRACE)]
    pub shutdown_grace: u64,
}

impl Config {
    /// The defaults, ignoring the environment: what tests build on.
    pub fn defaults(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            data_dir: data_dir.into(),
            jwt_secret: None,
            token_ttl: default::TOKEN_TTL,
            cache_size: default::CACHE_SIZE,
            cache_max_age: default::CACHE_MAX_AGE,
            store_cache_mb: default::STORE_CACHE_MB,
            legacy_jwt_secret: None,
            max_data_size_json: default::MAX_DATA_SIZE_JSON,
            max_message_size: default::MAX_MESSAGE_SIZE,
            max_depth: default::MAX_DEPTH,
            max_documents_per_account: default::MAX_DOCUMENTS_PER_ACCOUNT,
            max_account_bytes: default::MAX_ACCOUNT_BYTES,
            max_watches: default::MAX_WATCHES,
            outbound_buffer: default::OUTBOUND_BUFFER,
            max_connections_per_ip: default::MAX_CONNECTIONS_PER_IP,
            max_connections_per_user: default::MAX_CONNECTIONS_PER_USER,
            max_requests_per_second: default::MAX_REQUESTS_PER_SECOND,
            signups_per_ip: default::SIGNUPS_PER_IP,
            logins_per_ip: default::LOGINS_PER_IP,
            logins_per_ip_user: default::LOGINS_PER_IP_USER,
            logins_per_user: default::LOGINS_PER_USER,
            trusted_proxies: Vec::new(),
            ping_interval: default::PING_INTERVAL,
            http_header_timeout: default::HTTP_HEADER_TIMEOUT,
            max_http_connections: default::MAX_HTTP_CONNECTIONS,
            idle_timeout: default::IDLE_TIMEOUT,
            allowed_origins: None,
            output_threads: 0,
            watch_buffer: default::WATCH_BUFFER,
            watch_buffer_bytes: default::WATCH_BUFFER_BYTES,
            slow_consumer_timeout: default::SLOW_CONSUMER_TIMEOUT,
            max_batch: default::MAX_BATCH,
            shutdown_grace: default::SHUTDOWN_GRACE,
            changelog_retain: default::CHANGELOG_RETAIN,
            stream_retain: default::STREAM_RETAIN,
            webhook_delivery: true,
            webhook_allow_private: false,
            webhook_retry_ms: 1000,
            cors_origins: None,
            admin_users: None,
            backup_interval: 0,
            backup_keep: 7,
            faults: None,
            accept_wal_loss: false,
            ws_echo: false,
            changelog_max_age: default::CHANGELOG_MAX_AGE,
            blob_max_size: default::BLOB_MAX_SIZE,
            blob_quota: default::BLOB_QUOTA,
            blob_dir: None,
            store: StoreKind::Redb,
            database_url: None,
            database_schema: "hearth".into(),
            database_pool: default::DATABASE_POOL,
        }
    }

    /// The PostgreSQL settings when `STORE=postgres` (a missing URL falls back to a local
    /// server's `hearth` database).
    pub fn postgres(&self) -> Option<crate::store::PgSettings> {
        (self.store == StoreKind::Postgres).then(|| crate::store::PgSettings {
            url: self
                .database_url
                .clone()
                .unwrap_or_else(|| "postgres://127.0.0.1/hearth".into()),
            schema: self.database_schema.clone(),
            pool_size: self.database_pool.max(1),
        })
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.blob_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("blobs"))
    }

    pub fn cache_max_age(&self) -> Duration {
        Duration::from_millis(self.cache_max_age)
    }

    pub fn slow_consumer_timeout(&self) -> Duration {
        Duration::from_millis(self.slow_consumer_timeout)
    }

    pub fn changelog_max_age(&self) -> Option<Duration> {
        (self.changelog_max_age > 0).then(|| Duration::from_secs(self.changelog_max_age))
    }

    /// `None`: CORS off. `Some(vec![])`: any origin (`*`). Otherwise the listed origins.
    pub fn origins(&self) -> Option<Vec<String>> {
        let raw = self
            .cors_origins
            .as_deref()
            .or(self.allowed_origins.as_deref())?
            .trim();
        if raw.is_empty() {
            return None;
        }
        if raw == "*" {
            return Some(Vec::new());
        }
        Some(
            raw.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        )
    }

    pub fn admins(&self) -> Vec<String> {
        self.admin_users
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn http_header_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_timeout.max(1))
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout.max(1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace)
    }
}

/// Where documents live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Redb,
    Postgres,
}

/// Default values, shared by the flags and [`Config::defaults`].
pub mod default {
    pub const TOKEN_TTL: u64 = 30 * 24 * 3600;
    pub const CACHE_SIZE: u64 = 10_000;
    pub const CACHE_MAX_AGE: u64 = 900_000;
    /// redb's own default.
    pub const STORE_CACHE_MB: usize = 1024;
    pub const MAX_DATA_SIZE_JSON: usize = 512 * 1024;
    pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;
    pub const MAX_DEPTH: usize = 64;
    pub const MAX_WATCHES: usize = 100;
    pub const MAX_DOCUMENTS_PER_ACCOUNT: usize = 1000;
    pub const MAX_ACCOUNT_BYTES: u64 = 64 * 1024 * 1024;
    pub const OUTBOUND_BUFFER: usize = 1024 * 1024;
    pub const MAX_CONNECTIONS_PER_IP: usize = 256;
    pub const MAX_CONNECTIONS_PER_USER: usize = 64;
    pub const MAX_REQUESTS_PER_SECOND: u32 = 200;
    pub const SIGNUPS_PER_IP: u32 = 30;
    pub const LOGINS_PER_IP: u32 = 60;
    pub const LOGINS_PER_IP_USER: u32 = 10;
    pub const LOGINS_PER_USER: u32 = 100;
    pub const PING_INTERVAL: u64 = 30_000;
    pub const HTTP_HEADER_TIMEOUT: u64 = 10_000;
    pub const MAX_HTTP_CONNECTIONS: usize = 100_000;
    pub const IDLE_TIMEOUT: u64 = 75_000;
    pub const WATCH_BUFFER: usize = 1024;
    pub const WATCH_BUFFER_BYTES: usize = 16 * 1024 * 1024;
    pub const SLOW_CONSUMER_TIMEOUT: u64 = 10_000;
    pub const MAX_BATCH: usize = 1024;
    pub const SHUTDOWN_GRACE: u64 = 5_000;
    pub const CHANGELOG_RETAIN: u64 = 1000;
    pub const STREAM_RETAIN: u64 = 1_000_000;
    pub const CHANGELOG_MAX_AGE: u64 = 30 * 24 * 3600;
    pub const BLOB_MAX_SIZE: u64 = 32 * 1024 * 1024;
    pub const BLOB_QUOTA: u64 = 256 * 1024 * 1024;
    pub const DATABASE_POOL: usize = 16;
}

//! Shared state handed to every socket and handler. Cheap to clone: one `Arc`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::config::Config;
use crate::fanout::Hub;
use crate::limits::Limiters;
use crate::metrics::Metrics;
use crate::store::Store;

/// Per-connection limits, copied out of [`Config`] once.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    pub max_message_size: usize,
    pub max_watches: usize,
    /// Deepest nesting accepted in a written value (`MAX_DEPTH`), checked at the edge so deep
    /// input never reaches the store.
    pub max_depth: usize,
    pub outbound_buffer: usize,
    pub slow_consumer_timeout: Duration,
    pub max_requests_per_second: u32,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    /// Allowed browser origins (`CORS_ORIGINS`): `None` unchecked, empty = any.
    pub origins: Option<Vec<String>>,
    /// Serve `/echo` for conformance runs.
    pub ws_echo: bool,
    /// Peers whose forwarding headers name the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<crate::proxies::Cidr>,
}

/// Where snapshots go, and the secret that travels with them.
pub struct Backups {
    pub dir: std::path::PathBuf,
    pub secret: String,
}

impl Backups {
    /// The facts stored in every snapshot's `backup_info` table.
    pub fn info(&self) -> Vec<(String, String)> {
        vec![
            ("jwt_secret".into(), self.secret.clone()),
            ("created_at".into(), crate::sys::now_rfc3339()),
            ("hearth_version".into(), env!("CARGO_PKG_VERSION").into()),
        ]
    }

    /// A new, unused path in the backups directory.
    pub fn next_path(&self, prefix: &str) -> std::path::PathBuf {
        let stamp = crate::sys::now_rfc3339().replace([':', '.'], "-");
        let nonce: u32 = rand::random();
        self.dir.join(format!("{prefix}{stamp}-{nonce:08x}.redb"))
    }
}

/// What every handler gets: one `Arc` around the server's parts, so handing it to a request
/// (axum clones it per request) costs one reference count rather than one per part.
#[derive(Clone)]
pub struct AppState(Arc<ServerParts>);

impl std::ops::Deref for AppState {
    type Target = ServerParts;
    fn deref(&self) -> &ServerParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct ServerParts {
    pub store: Store,
    pub hub: Hub,
    pub auth: Arc<Auth>,
    pub limits: Arc<SessionLimits>,
    pub limiters: Arc<Limiters>,
    pub metrics: Arc<Metrics>,
    pub backups: Arc<Backups>,
    pub blobs: Arc<crate::blobs::Blobs>,
    /// Cancelled once shutdown starts; every socket loop selects on it.
    pub shutdown: CancellationToken,
    /// Tracks socket tasks so shutdown can wait for them to close cleanly.
    pub tracker: TaskTracker,
    /// Where writer loops and watch forwarders run (`output.rs`).
    pub output: crate::output::OutputThreads,
    /// Open socket.io connections.
    pub socketio: crate::socketio::Registry,
    /// Who is present on which document (`presence/`).
    pub presence: crate::presence::Presence,
    /// The settings in force, for the admin's view of them (secrets masked there).
    pub config: Arc<Config>,
    /// This node's metrics over the last hour, for the admin overview (`overview.rs`).
    pub overview: crate::overview::History,
    /// The webhooks delivering on this node (`webhooks/`).
    pub webhooks: crate::webhooks::running::Running,
    /// Stops the cluster's presence publisher, after the sockets have closed (its goodbye
    /// then covers every seat they held).
    pub presence_stop: CancellationToken,
    next_conn: AtomicU64,
}

impl AppState {
    // The shared parts a server is made of, each built by `server::start`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        store: Store,
        hub: Hub,
        auth: Auth,
        metrics: Arc<Metrics>,
        secret: String,
        blobs: crate::blobs::Blobs,
        output: crate::output::OutputThreads,
        presence: crate::presence::Presence,
    ) -> AppState {
        AppState(Arc::new(ServerParts {
            store,
            hub,
            auth: Arc::new(auth),
            limits: Arc::new(SessionLimits {
                max_message_size: config.max_message_size,
                max_watches: config.max_watches,
                max_depth: config.max_depth,
                outbound_buffer: config.outbound_buffer.max(1),
                slow_consumer_timeout: config.slow_consumer_timeout(),
                max_requests_per_second: config.max_requests_per_second,
                ping_interval: config.ping_interval(),
                idle_timeout: config.idle_timeout(),
                origins: config.origins(),
                ws_echo: config.ws_echo,
                trusted_proxies: config.trusted_proxies.clone(),
            }),
            limiters: Arc::new(Limiters::new(config)),
            metrics,
            backups: Arc::new(Backups {
                dir: config.data_dir.join("backups"),
                secret,
            }),
            blobs: Arc::new(blobs),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            output,
            socketio: crate::socketio::Registry::default(),
            presence,
            overview: crate::overview::History::default(),
            webhooks: crate::webhooks::running::Running::default(),
            config: Arc::new(config.clone()),
            presence_stop: CancellationToken::new(),
            next_conn: AtomicU64::new(1),
        }))
    }

    /// A process-unique id for a new connection.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

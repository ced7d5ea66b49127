//! Putting it together: open the store, wire commits to the hub, serve, and shut down in
//! order (stop accepting → close sockets with 1001 → finish queued commits → close the file).

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::{Auth, load_secret};
use crate::config::Config;
use crate::fanout::Hub;
use crate::http;
use crate::state::AppState;
use crate::store::{Flag, Limits, Store, StoreConfig};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error("blob directory: {0}")]
    Blobs(std::io::Error),
    #[error("output threads: {0}")]
    Output(std::io::Error),
}

/// A server that is accepting connections.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    serve: JoinHandle<()>,
    grace: std::time::Duration,
    /// The cluster's presence publisher, which says goodbye last.
    presence: Option<JoinHandle<()>>,
}

/// Where and how the store is opened, from the configuration.
pub fn store_config(
    config: &Config,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) -> StoreConfig {
    StoreConfig {
        path: config.data_dir.join("hearth.redb"),
        limits: Limits {
            max_doc_bytes: config.max_data_size_json,
            max_depth: config.max_depth,
        },
        max_documents: config.max_documents_per_account,
        max_account_bytes: config.max_account_bytes,
        max_batch: config.max_batch.max(1),
        cache_size: config.cache_size,
        cache_max_age: config.cache_max_age(),
        page_cache_bytes: config.store_cache_mb.saturating_mul(1024 * 1024),
        retention: crate::store::Retention {
            versions: config.changelog_retain,
            max_age: config.changelog_max_age(),
            stream_events: config.stream_retain,
        },
        faults: config.faults.clone(),
        metrics,
        postgres: config.postgres(),
        accept_wal_loss: config.accept_wal_loss,
    }
}

/// Opens the store and starts serving on `listener`. Returns once it accepts connections.
///
/// # Errors
/// The data dir cannot be created, the store cannot be opened (locked by another process,
/// from a newer version), or the listener is unusable.
pub async fn start(config: Config, listener: TcpListener) -> Result<Running, StartError> {
    let dir_err = |source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(dir_err)?;

    let hub = Hub::new(config.watch_buffer, config.watch_buffer_bytes);
    let sockets = std::sync::Arc::new(crate::auth::sockets::Sockets::default());
    // In a cluster, presence changes go to the other nodes through a publisher of their own.
    let (presence_bus, presence_rx) = match config.postgres() {
        Some(_) => {
            let (outbox, rx) = crate::presence::remote::Outbox::new();
            (Some(outbox), Some(rx))
        }
        None => (None, None),
    };
    let presence = crate::presence::Presence::new(presence_bus);
    let publisher = std::sync::Arc::new(crate::fanout::publisher::Publisher {
        hub: hub.clone(),
        sockets: sockets.clone(),
        presence: presence.clone(),
        share_pushes: config.postgres().is_none(),
    });
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let store_config = store_config(&config, metrics.clone());
    let (store, secret) = match store_config.postgres.clone() {
        None => {
            let path = store_config.path.clone();
            let store = tokio::task::spawn_blocking(move || {
                Store::open(&store_config, Some(publisher))
            })
            .await
            .map_err(|e| StartError::Store(crate::store::StoreError::unavailable(e)))?
            .inspect_err(
                |e| tracing::error!(path = %path.display(), error = %e, "cannot open store"),
            )?;
            let secret =
                load_secret(config.jwt_secret.as_deref(), &config.data_dir).map_err(dir_err)?;
            (store, secret)
        }
        Some(pg) => {
            let (store, shared) = Store::open_postgres(&store_config, &pg, Some(publisher))
                .await
                .inspect_err(|e| tracing::error!(error = %e, "cannot open the PostgreSQL store"))?;
            // Every node must sign and check tokens with the same key: unless configured,
            // it is the one kept in the database.
            let secret: std::sync::Arc<[u8]> = match config.jwt_secret.as_deref() {
                Some(s) if !s.is_empty() => s.as_bytes().into(),
                _ => shared.as_bytes().into(),
            };
            (store, secret)
        }
    };
    let mut auth = Auth::with_sockets(&secret, config.token_ttl, config.admins(), sockets);
    auth.legacy = config
        .legacy_jwt_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(crate::auth::legacy::Legacy::new);
    auth.sockets.restore_revoked(store.revoked().await?);
    auth.flags
        .restore_disabled(store.flagged(Flag::Disabled).await?);
    for admin in store.flagged(Flag::Admin).await? {
        auth.flags.set_granted_admin(&admin, true);
    }

    let secret_text = String::from_utf8_lossy(&secret).into_owned();
    let blobs =
        crate::blobs::Blobs::open(config.blob_dir(), config.blob_max_size, config.blob_quota)
            .map_err(StartError::Blobs)?;
    let threads = match config.output_threads {
        0 => crate::output::default_threads(),
        n => n,
    };
    let output = crate::output::OutputThreads::start(threads).map_err(StartError::Output)?;
    let state = AppState::new(
        &config,
        store,
        hub,
        auth,
        metrics,
        secret_text,
        blobs,
        output,
        presence,
    );
    if config.backup_interval > 0 && config.postgres().is_some() {
        tracing::warn!(
            "BACKUP_INTERVAL is ignored with STORE=postgres: back up the database with pg_dump"
        );
    } else if config.backup_interval > 0 {
        tokio::spawn(scheduled_backups(
            state.clone(),
            std::time::Duration::from_secs(config.backup_interval),
            config.backup_keep.max(1),
        ));
    }
    // reqwest is built without a default TLS provider: this process's is ring, which builds
    // without the C toolchain aws-lc needs (rustls now prefers aws-lc for its post-quantum
    // key exchange; classic ECDHE is what webhook receivers offer today). Installed whether
    // or not this node delivers: a client built without one panics.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    if config.webhook_delivery {
        tokio::spawn(crate::webhooks::deliver::supervise(
            state.clone(),
            config.postgres(),
        ));
    }
    let mut presence_publisher = None;
    if let Some(pg) = config.postgres() {
        let bus = crate::cluster::PgBus::new(&pg);
        if let Some(rx) = presence_rx {
            // Stopped after the sockets have closed, so that its goodbye comes last.
            presence_publisher = Some(tokio::spawn(crate::presence::remote::publish(
                pg.url.clone(),
                bus.channel.clone(),
                state.presence.clone(),
                rx,
                state.presence_stop.clone(),
            )));
        }
        tokio::spawn(crate::cluster::listen(state.clone(), bus));
    }
    let addr = listener.local_addr().map_err(StartError::Listener)?;
    let app = http::router(state.clone());
    let token = state.shutdown.clone();
    // TCP_NODELAY on every connection (`http/serve.rs`): without it, a push written while
    // the previous one is not yet acknowledged waits for the peer's ACK (Nagle): up to an RTT,
    // or a delayed ACK's 40 ms, added to the second change of a burst. On loopback it measured
    // neutral for latency and cost ≈ 15% of saturation throughput (BENCHMARKS.md, "Changes
    // measured"); realtime wins.
    let limits = http::serve::ServeLimits {
        header_timeout: config.http_header_timeout(),
        max_connections: connection_cap(config.max_http_connections),
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let serve = tokio::spawn(http::serve::serve(
        listener,
        app,
        limits,
        state.limiters.clone(),
        token,
    ));
    // Forget rate-limit state of addresses not seen lately, once a minute.
    let sweeper = {
        let limiters = state.limiters.clone();
        let stop = state.shutdown.clone();
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => limiters.sweep(),
                }
            }
        }
    };
    tokio::spawn(sweeper);
    // The admin overview's hour of samples, the first at start.
    let sampler = {
        let state = state.clone();
        async move {
            let mut every = tokio::time::interval(crate::overview::EVERY);
            loop {
                tokio::select! {
                    () = state.shutdown.cancelled() => return,
                    _ = every.tick() => {
                        // The stats' figure: the redb file's length, or (PostgreSQL) the
                        // tables' sizes, in the query that also counts their rows.
                        let disk = state.store.stats().await.ok().map(|s| s.data_bytes);
                        state.overview.sample(&state.metrics, state.hub.watchers(), disk);
                        state.auth.seen.sweep();
                    }
                }
            }
        }
    };
    tokio::spawn(sampler);
    // Samples the commit counter once a second for the admin stats' commits/s.
    let sampler = {
        let metrics = state.metrics.clone();
        let stop = state.shutdown.clone();
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => metrics.commit_rate.sample(metrics.commits.get()),
                }
            }
        }
    };
    tokio::spawn(sampler);
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "hearth is listening");
    Ok(Running {
        addr,
        state,
        serve,
        grace: config.shutdown_grace(),
        presence: presence_publisher,
    })
}

/// Takes a snapshot every `every` into DATA_DIR/backups/ and keeps the newest `keep`.
async fn scheduled_backups(state: AppState, every: std::time::Duration, keep: usize) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // not at start-up
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = tokio::fs::create_dir_all(&state.backups.dir).await {
            tracing::error!(error = %e, "cannot create the backups directory");
            continue;
        }
        let path = state.backups.next_path("scheduled-");
        match state.store.backup(path.clone(), state.backups.info()).await {
            Ok(rows) => tracing::info!(path = %path.display(), rows, "scheduled snapshot written"),
            Err(e) => tracing::error!(error = %e, "scheduled snapshot failed"),
        }
        // Names sort by time: drop all but the newest `keep`.
        if let Ok(mut dir) = tokio::fs::read_dir(&state.backups.dir).await {
            let mut old = Vec::new();
            while let Ok(Some(entry)) = dir.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("scheduled-") {
                    old.push(entry.path());
                }
            }
            old.sort();
            let excess = old.len().saturating_sub(keep);
            for path in old.into_iter().take(excess) {
                let _ = tokio::fs::remove_file(path).await;
            }
        }
    }
}

impl Running {
    /// Shuts down: stops accepting, closes every socket with 1001, waits for them (up to the
    /// grace period), lets the writer finish what it accepted, and closes the store.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        if let Err(e) = self.serve.await {
            tracing::error!(error = %e, "server task failed");
        }
        self.state.tracker.close();
        if tokio::time::timeout(self.grace, self.state.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.state.tracker.len(),
                "sockets still open after the grace period"
            );
        }
        self.state.presence_stop.cancel();
        if let Some(publisher) = self.presence {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), publisher).await;
        }
        self.state.store.close().await;
        tracing::info!("shutdown complete");
    }
}

/// Serves until `signal` resolves, then shuts down cleanly.
///
/// # Errors
/// See [`start`].
pub async fn run(
    config: Config,
    listener: TcpListener,
    signal: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let running = start(config, listener).await?;
    signal.await;
    running.shutdown().await;
    Ok(())
}

/// Descriptors kept for everything but connections: the data file and its log, blobs being
/// read or written, the database pool, logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// `MAX_HTTP_CONNECTIONS`, lowered to what the process's descriptor limit allows (raised to
/// its hard limit first): a cap the kernel would enforce first is no cap, and running out of
/// descriptors is what made `/healthz` and new sockets time out.
fn connection_cap(configured: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
            return configured;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    let allowed = usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX);
    if allowed < configured {
        tracing::info!(
            descriptors = soft,
            cap = allowed,
            "MAX_HTTP_CONNECTIONS lowered to fit the open-file limit"
        );
    }
    configured.min(allowed.max(1))
}

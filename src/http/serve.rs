//! Accepting connections: HTTP/1.1 (with upgrades to WebSocket) under limits a slow or silent
//! client cannot outlast.
//!
//! `axum::serve` has no timeouts and no cap: 1,000 connections dribbling a header line every
//! 5 s and 1,000 silent ones all stayed open, and enough idle connections ran the process out
//! of descriptors until `/healthz` and new WebSockets timed out. So connections are served
//! here, with hyper directly:
//! - a request's headers must arrive within `HTTP_HEADER_TIMEOUT`, and a kept-alive
//!   connection waiting for its next request is closed after as long (hyper times both);
//! - at most `MAX_CONNECTIONS_PER_IP` (plus `limits::TCP_HEADROOM` for plain requests)
//!   connections per address, counted at accept before anything is read, so one address
//!   cannot take the room others need;
//! - at most `MAX_HTTP_CONNECTIONS` in all; past it a new connection is closed at once rather
//!   than left in the backlog, so the server stays responsive to those it has.
//!
//! Upgraded WebSockets and SSE streams are no longer "HTTP" to hyper's timer: their own
//! idle rules apply (`session.rs`, `changes.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The limits of [`serve`].
#[derive(Clone, Debug)]
pub struct ServeLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// Reverse proxies (`TRUSTED_PROXIES`): every client behind one shares its address, so
    /// the per-address cap is not applied to them at accept (it is, per client, at upgrade).
    pub trusted_proxies: Vec<crate::proxies::Cidr>,
}

/// Serves `app` on `listener` until `stop` is cancelled; then stops accepting, lets open
/// requests finish, and returns once every connection has closed (upgraded ones are the
/// sessions' business by then).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    per_ip: Arc<crate::limits::Limiters>,
    stop: CancellationToken,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors, mostly: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            tracing::debug!(%peer, "connection refused: MAX_HTTP_CONNECTIONS reached");
            drop(tcp);
            continue;
        }
        let proxied = limits.trusted_proxies.iter().any(|c| c.contains(peer.ip()));
        let slot = if proxied {
            None
        } else if let Ok(slot) = per_ip.connect_tcp(peer.ip()) {
            Some(slot)
        } else {
            tracing::debug!(%peer, "connection refused: MAX_CONNECTIONS_PER_IP reached");
            drop(tcp);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let counted = Counted::new(open.clone());
        let service = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let stop = stop.clone();
        let header_timeout = limits.header_timeout;
        connections.spawn(async move {
            let _slot = slot;
            let _counted = counted;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = http
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_end(peer, result),
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    log_end(peer, conn.await);
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::trace!(%peer, error = %e, "connection ended");
    }
}

/// Counts an open connection for as long as it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(open: Arc<AtomicUsize>) -> Counted {
        open.fetch_add(1, Ordering::Relaxed);
        Counted(open)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

//! Whose turn it is to deliver webhooks. One node at a time: two would post every change
//! twice and write over each other's progress. A lone node always has the turn; in a
//! cluster it is the node holding a session advisory lock in PostgreSQL, on a connection of
//! its own, so the lock goes with the node: a clean stop, a crash and a lost connection all
//! release it, and another node takes the turn within [`TRY_EVERY`].
//!
//! A lock rather than a lease row: PostgreSQL already ends the session of a node that is
//! gone, and a lease would be one more clock to get wrong. "Gone" includes a node that went
//! quiet without closing its connection (frozen, or cut off by the network): the session is
//! told to end after [`IDLE_SESSION`] without a query, where the holder queries every
//! second, and to probe its TCP peer every few seconds. Such a holder has stopped delivering
//! by then, having had no answer to its check for [`CHECK_TIMEOUT`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::store::PgSettings;

/// How often a node without the turn asks for it, and the holder checks it still has it.
pub const TRY_EVERY: Duration = Duration::from_secs(1);
/// Longest the holder waits for PostgreSQL to answer the check before it stops delivering.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// What the session of a quiet node is given before PostgreSQL ends it, and its lock with it:
/// more than a check and its timeout, so the holder has stopped before another node starts.
const IDLE_SESSION: &str = "SET idle_session_timeout = '10s'";
const KEEPALIVES: &str =
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3";

/// This node's turn, held until dropped.
pub enum Turn {
    /// No other node could deliver.
    Alone,
    /// The lock, and the connection it lives on.
    Locked {
        client: tokio_postgres::Client,
        _connection: AbortOnDropHandle<()>,
    },
}

impl Turn {
    /// Waits for the turn; `None` at shutdown. A node without it asks again every
    /// [`TRY_EVERY`] on the one connection it keeps for asking.
    pub async fn take(pg: Option<&PgSettings>, stop: &CancellationToken) -> Option<Turn> {
        let Some(pg) = pg else {
            return Some(Turn::Alone);
        };
        let key = format!("hearth-webhooks-{}", pg.schema);
        let (mut asking, mut said) = (None, false);
        loop {
            if asking.is_none() {
                match connect(&pg.url).await {
                    Ok(c) => asking = Some(c),
                    Err(e) => tracing::warn!(error = %e, "webhooks: cannot ask whose turn it is"),
                }
            }
            if let Some((client, connection)) = asking.take() {
                match client
                    .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
                    .await
                    .map(|row| row.try_get::<_, bool>(0))
                {
                    Ok(Ok(true)) => {
                        tracing::info!("this node delivers the webhooks");
                        return Some(Turn::Locked {
                            client,
                            _connection: connection,
                        });
                    }
                    Ok(Ok(false)) => {
                        if !said {
                            tracing::info!(
                                "another node delivers the webhooks; this one stands by"
                            );
                            said = true;
                        }
                        asking = Some((client, connection));
                    }
                    Ok(Err(e)) | Err(e) => {
                        tracing::warn!(error = %e, "webhooks: cannot ask whose turn it is");
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(TRY_EVERY) => {}
            }
        }
    }

    /// Resolves once the turn is lost: the connection failed or stopped answering.
    pub async fn lost(&self) {
        let Turn::Locked { client, .. } = self else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(TRY_EVERY).await;
            match tokio::time::timeout(CHECK_TIMEOUT, client.simple_query("SELECT 1")).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "webhooks: lost the delivery turn");
                    return;
                }
                Err(_) => {
                    tracing::warn!("webhooks: PostgreSQL stopped answering; giving up the turn");
                    return;
                }
            }
        }
    }
}

/// A connection of its own, driven by a task that ends with it.
async fn connect(
    url: &str,
) -> Result<(tokio_postgres::Client, AbortOnDropHandle<()>), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let task = AbortOnDropHandle::new(tokio::spawn(async move {
        let _ = connection.await;
    }));
    // Each on its own: `idle_session_timeout` is PostgreSQL 14's; an older server keeps only
    // the keepalives (and a quiet holder's lock until TCP gives up on it).
    for setting in [IDLE_SESSION, KEEPALIVES] {
        if let Err(e) = client.batch_execute(setting).await {
            tracing::debug!(error = %e, setting, "webhooks: a session setting was refused");
        }
    }
    Ok((client, task))
}

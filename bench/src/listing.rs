//! h) Named documents at scale: one account with `n` named documents (and `accounts` more
//! accounts with 100 each, so the store holds many), then `list` timed: the first page (500)
//! alone, and the whole listing page by page.

use std::time::Instant;

use futures_util::future::join_all;
use serde_json::json;

use crate::client::Conn;
use crate::scenarios::{Metrics, metrics, url};
use crate::stats::Stats;

/// Sockets creating documents at once.
const PARALLEL: usize = 16;
/// Timed listings of each kind.
const ROUNDS: usize = 200;

/// Creates `count` named documents for a fresh account; its connection and name.
async fn account_with(addr: &str, count: usize) -> (Conn, String) {
    let (mut c, name, token) = Conn::signup(&url(addr)).await;
    let mut sockets = Vec::with_capacity(PARALLEL);
    for _ in 0..PARALLEL.min(count.max(1)) {
        let mut s = Conn::connect(&url(addr)).await;
        s.auth(&token).await;
        sockets.push(s);
    }
    let per = count.div_ceil(sockets.len());
    let work = sockets.into_iter().enumerate().map(|(i, mut s)| async move {
        for j in i * per..((i + 1) * per).min(count) {
            let r = s
                .request(json!({"type": "create", "name": format!("doc-{j:05}"), "userdata": {"n": j, "note": "a household list"}}))
                .await;
            assert_eq!(r["version"], 0, "{r}");
        }
    });
    join_all(work).await;
    let r = c.request(json!({"type": "list", "limit": 1})).await;
    assert!(
        r["documents"].as_array().is_some_and(|d| d.len() == 1),
        "{r}"
    );
    (c, name)
}

pub async fn list(addr: &str, n: usize, accounts: usize) -> Metrics {
    let started = Instant::now();
    for chunk in (0..accounts).collect::<Vec<_>>().chunks(8) {
        join_all(chunk.iter().map(|_| account_with(addr, 100))).await;
    }
    let (mut c, _) = account_with(addr, n).await;
    let populated = started.elapsed().as_secs_f64();
    let (mut page, mut whole) = (Stats::default(), Stats::default());
    let mut listed = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let r = c.request(json!({"type": "list"})).await;
        page.add(t.elapsed());
        let mut next = r["next"].as_str().map(str::to_owned);
        listed = r["documents"].as_array().map_or(0, Vec::len);
        while let Some(after) = next {
            let r = c.request(json!({"type": "list", "after": after})).await;
            listed += r["documents"].as_array().map_or(0, Vec::len);
            next = r["next"].as_str().map(str::to_owned);
        }
        whole.add(t.elapsed());
    }
    assert_eq!(listed, n, "every document listed");
    metrics(&[
        ("documents", n as f64),
        ("page_p50_ms", page.ms(50.0)),
        ("page_p99_ms", page.ms(99.0)),
        ("all_p50_ms", whole.ms(50.0)),
        ("all_p99_ms", whole.ms(99.0)),
        ("populate_s", populated),
    ])
}

//! h) Named documents at scale: one account with `n` named documents (and `accounts` more
//! accounts with 100 each, so the store holds many), then `list` timed: the first page (500)
//! alone, and the whole listing page by page.

use std::time::Instant;

use futures_util::future::join_all;
use serde_json::json;

use crate::client::Conn;
use crate::fanout::thread_cpu_ns;
use crate::scenarios::{Metrics, metrics, url};
use crate::stats::Stats;

/// One page of a `list` reply, parsed as a typed client would (`Conn::request_as`).
#[derive(serde::Deserialize)]
struct Page {
    documents: Vec<Entry>,
    next: Option<String>,
}

/// A `list` entry: every field a client shows.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // parsed, as an app would, and dropped
struct Entry {
    name: String,
    version: u64,
    size: u64,
    collaborators: Vec<String>,
    readers: Vec<String>,
    created_at: String,
    last_update: LastUpdate,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct LastUpdate {
    at: String,
    by: String,
}

/// Sockets creating documents at once.
const PARALLEL: usize = 16;
/// Timed listings of each kind.
const ROUNDS: usize = 200;

/// Creates `count` named documents for a fresh account; its connection and name.
async fn account_with(addr: &str, count: usize, filler: &str) -> (Conn, String) {
    let (mut c, name, token) = Conn::signup(&url(addr)).await;
    let mut sockets = Vec::with_capacity(PARALLEL);
    for _ in 0..PARALLEL.min(count.max(1)) {
        let mut s = Conn::connect(&url(addr)).await;
        s.auth(&token).await;
        sockets.push(s);
    }
    let per = count.div_ceil(sockets.len());
    let work = sockets
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| async move {
            for j in i * per..((i + 1) * per).min(count) {
                let r = s
                    .request(json!({"type": "create", "name": format!("doc-{j:05}"),
                    "userdata": {"n": j, "note": "a household list", "filler": filler}}))
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

pub async fn list(
    addr: &str,
    n: usize,
    accounts: usize,
    doc_bytes: usize,
    pid: Option<u32>,
) -> Metrics {
    let filler = "x".repeat(doc_bytes);
    let started = Instant::now();
    for chunk in (0..accounts).collect::<Vec<_>>().chunks(8) {
        join_all(chunk.iter().map(|_| account_with(addr, 100, ""))).await;
    }
    let (mut c, _) = account_with(addr, n, &filler).await;
    let populated = started.elapsed().as_secs_f64();
    // Past the store's idle fold (0.5 s), so the listings time the documents as they rest,
    // not 1,000 creates still in the journal (each then rebuilt from its log rows).
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let (mut page, mut whole) = (Stats::default(), Stats::default());
    let mut listed = 0;
    let (mut pages, cpu_before) = (0, thread_cpu_ns(pid, ""));
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let r: Page = c.request_as(json!({"type": "list"})).await;
        page.add(t.elapsed());
        pages += 1;
        let mut next = r.next;
        listed = r.documents.len();
        while let Some(after) = next {
            let r: Page = c.request_as(json!({"type": "list", "after": after})).await;
            pages += 1;
            listed += r.documents.len();
            next = r.next;
        }
        whole.add(t.elapsed());
    }
    assert_eq!(listed, n, "every document listed");
    // The server's own cost per page, apart from the generator's parsing and the network.
    let cpu_per_page = cpu_before
        .zip(thread_cpu_ns(pid, ""))
        .map_or(f64::NAN, |(a, b)| (b - a) as f64 / 1e3 / f64::from(pages));
    metrics(&[
        ("server_cpu_us_per_page", cpu_per_page),
        ("documents", n as f64),
        ("doc_bytes", doc_bytes as f64),
        ("page_p50_ms", page.ms(50.0)),
        ("page_p99_ms", page.ms(99.0)),
        ("all_p50_ms", whole.ms(50.0)),
        ("all_p99_ms", whole.ms(99.0)),
        ("populate_s", populated),
    ])
}

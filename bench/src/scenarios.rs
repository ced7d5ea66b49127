//! The scenarios. Each returns named metrics; units are in the names (`_ms`, `_per_s`, `_kib`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use serde_json::{Map, Value, json};

use crate::client::Conn;
use crate::stats::Stats;

pub(crate) type Metrics = Map<String, Value>;

pub(crate) fn metrics(pairs: &[(&str, f64)]) -> Metrics {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!((v * 1000.0).round() / 1000.0)))
        .collect()
}

/// Signs up a writer on a thread and runtime of its own and runs `body` with it once `go`
/// fires. The writers of `fanout` and `saturation` run there so the generator's own thousands
/// of reader tasks cannot delay them (their socket too, so its readiness does not wait for
/// the main runtime's I/O driver): the offered load and the ack latency are then the
/// server's, not the generator's scheduling.
pub(crate) async fn own_writer<T, F>(
    url: String,
    body: impl FnOnce(Conn) -> F + Send + 'static,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Receiver<T>,
)
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (writer, _, token) = Conn::signup(&url).await;
            let _ = token_tx.send(token);
            if go_rx.await.is_ok() {
                let _ = done_tx.send(body(writer).await);
            }
        });
    });
    (token_rx.await.expect("writer signed up"), go_tx, done_rx)
}

pub(crate) fn url(addr: &str) -> String {
    format!("ws://{addr}/ws")
}

/// With `named`, the updates go to a named document; with `append`, each is an append of
/// the same JSON to a stream instead.
pub async fn sequential(addr: &str, n: usize, (named, append): (bool, bool)) -> Metrics {
    let (mut c, name, _) = Conn::signup(&url(addr)).await;
    c.write_to(&name, named, append).await;
    let mut stats = Stats::default();
    let start = Instant::now();
    for v in 0..n as u64 {
        let t = Instant::now();
        c.update(v, json!({"counter": v, "note": "sequential"}))
            .await;
        stats.add(t.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    metrics(&[
        ("p50_ms", stats.ms(50.0)),
        ("p99_ms", stats.ms(99.0)),
        ("ops_per_s", n as f64 / secs),
    ])
}

/// `addr` may list several nodes (`a,b`): clients are spread over them in turn. With
/// `named`, each writes to a named document of its own instead of its default one; with
/// `append`, each appends to a stream of its own.
/// With `hook`, the first writer registers a webhook to that URL on its own document
/// (issue 32: what a webhook costs the document it is on).
pub async fn writers(
    addr: &str,
    n: usize,
    secs: u64,
    (named, op_ids, append): (bool, bool, bool),
    hook: Option<String>,
) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let nodes: Vec<&str> = addr.split(',').collect();
    let tasks = (0..n).map(|i| {
        let url = url(nodes[i % nodes.len()]);
        let http = format!("http://{}", nodes[i % nodes.len()]);
        let hook = hook.clone().filter(|_| i == 0);
        tokio::spawn(async move {
            let (mut c, name, token) = Conn::signup(&url).await;
            if let Some(hook) = hook {
                let status = reqwest::Client::new()
                    .post(format!("{http}/v1/me/webhooks"))
                    .bearer_auth(&token)
                    .json(&json!({"url": hook}))
                    .send()
                    .await
                    .expect("register a webhook")
                    .status();
                assert_eq!(status.as_u16(), 201, "webhook");
            }
            c.op_ids = op_ids;
            c.write_to(&name, named, append).await;
            let mut stats = Stats::default();
            let mut v = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                c.update(v, json!({"v": v})).await;
                stats.add(t.elapsed());
                v += 1;
            }
            stats
        })
    });
    let mut all = Stats::default();
    for s in join_all(tasks).await {
        all.merge(s.expect("writer"));
    }
    metrics(&[
        ("updates_per_s", all.len() as f64 / secs as f64),
        ("p50_ms", all.ms(50.0)),
        ("p99_ms", all.ms(99.0)),
    ])
}

/// `n` sockets of one account, each watching that account's document.
async fn watchers(addr: &str, token: &str, n: usize) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let batch = chunk.iter().map(|_| async {
            let mut c = Conn::connect(&url(addr)).await;
            c.auth(token).await;
            c.request(json!({"type": "watch"})).await;
            c
        });
        conns.extend(join_all(batch).await);
    }
    conns
}

/// With `pipeline` > 1 the writer keeps that many updates in flight (each at the version the
/// one before it will produce), as a client sending a burst does.
pub async fn saturation(addr: &str, n: usize, secs: u64, pipeline: usize) -> Metrics {
    let (token, go, writer_side) = own_writer(url(addr), move |mut writer| async move {
        let stop = Instant::now() + Duration::from_secs(secs);
        let mut v = 0;
        let mut inflight = std::collections::VecDeque::new();
        while Instant::now() < stop {
            while inflight.len() < pipeline.max(1) {
                inflight.push_back(writer.send_update(v, json!({"v": v})).await);
                v += 1;
            }
            if let Some(id) = inflight.pop_front() {
                writer.ack(id).await;
            }
        }
        while let Some(id) = inflight.pop_front() {
            writer.ack(id).await;
        }
        v
    })
    .await;
    let conns = watchers(addr, &token, n).await;
    let stop = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut count = 0u64;
                while c.next_frame_until(stop).await.is_some() {
                    count += 1;
                }
                count
            })
        })
        .collect();
    let start = Instant::now();
    let _ = go.send(());
    let v = writer_side.await.expect("writer");
    let delivered: u64 = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("watcher"))
        .sum();
    let secs = start.elapsed().as_secs_f64();
    metrics(&[
        ("deliveries_per_s", delivered as f64 / secs),
        ("updates_per_s", v as f64 / secs),
    ])
}

fn rss_kib(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return f64::NAN };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Opens `n` idle WebSockets (spread over `sources`) and reads the server's RSS at 0, 5k,
/// 10k and `n`.
pub async fn idle(addr: &str, n: usize, pid: Option<u32>, sources: &str) -> Metrics {
    let sources: Vec<&str> = sources.split(',').collect();
    let settle = || tokio::time::sleep(Duration::from_millis(1500));
    settle().await;
    let base = rss_kib(pid);
    let mut held = Vec::with_capacity(n);
    let mut out = vec![("rss0_kib", base)];
    let mut marks: Vec<usize> = [5_000usize, 10_000]
        .into_iter()
        .filter(|m| *m < n)
        .collect();
    marks.push(n);
    for mark in marks {
        while held.len() < mark {
            let batch: Vec<_> = (held.len()..mark.min(held.len() + 500))
                .map(|j| {
                    let source = sources[j % sources.len()].to_owned();
                    let addr = addr.to_owned();
                    async move { Conn::connect_from(&addr, &source).await }
                })
                .collect();
            for c in join_all(batch).await {
                match c {
                    Ok(c) => held.push(c),
                    Err(e) => {
                        eprintln!("idle: stopped at {} connections: {e}", held.len());
                        return finish_idle(out, held.len(), base, pid).await;
                    }
                }
            }
            eprintln!("idle: {} connections", held.len());
        }
        settle().await;
        let per = (rss_kib(pid) - base) / held.len() as f64;
        out.push((
            match mark {
                5_000 => "kib_per_conn_5k",
                10_000 => "kib_per_conn_10k",
                _ => "kib_per_conn_max",
            },
            per,
        ));
    }
    finish_idle(out, held.len(), base, pid).await
}

async fn finish_idle(
    mut out: Vec<(&'static str, f64)>,
    held: usize,
    base: f64,
    pid: Option<u32>,
) -> Metrics {
    let rss = rss_kib(pid);
    out.push(("connections_held", held as f64));
    out.push(("kib_per_conn_at_max", (rss - base) / held.max(1) as f64));
    metrics(&out)
}

/// Fills the store: `n` accounts, each with a document of about `size` bytes.
pub async fn populate(addr: &str, n: usize, size: usize) -> Metrics {
    let start = Instant::now();
    let workers = 50usize;
    let blob = "x".repeat(size);
    let tasks = (0..workers).map(|w| {
        let url = url(addr);
        let blob = blob.clone();
        tokio::spawn(async move {
            let mut c = Conn::connect(&url).await;
            let mut done = 0usize;
            for i in (w..n).step_by(workers) {
                c.request(json!({"type": "signup"})).await;
                c.update(0, json!({"blob": blob, "i": i})).await;
                done += 1;
                if w == 0 && done.is_multiple_of(1000) {
                    eprintln!("populate: ~{} documents", done * workers);
                }
            }
            done
        })
    });
    let total: usize = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("populate"))
        .sum();
    let secs = start.elapsed().as_secs_f64();
    metrics(&[
        ("documents", total as f64),
        ("documents_per_s", total as f64 / secs),
        ("megabytes", (total * size) as f64 / 1e6),
    ])
}

/// Polls `/readyz` until it answers 200; reports milliseconds since `since_ns`.
pub async fn ready(addr: &str, since_ns: u128) -> Metrics {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let _ = s
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut buf = [0u8; 16];
            if s.read_exact(&mut buf).await.is_ok() && buf.starts_with(b"HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server never became ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    metrics(&[("ready_ms", now.saturating_sub(since_ns) as f64 / 1e6)])
}

/// `n` HTTP clients: PUT on key paths for half the time, then GET.
pub async fn rest(addr: &str, n: usize, secs: u64) -> Metrics {
    let half = Duration::from_secs(secs.max(2) / 2);
    let base = format!("http://{addr}");
    let signups = (0..n).map(|_| {
        let base = base.clone();
        async move {
            let http = reqwest::Client::new();
            let r: Value = http
                .post(format!("{base}/v1/signup"))
                .send()
                .await
                .expect("signup")
                .json()
                .await
                .expect("json");
            (
                http,
                r["username"].as_str().expect("username").to_owned(),
                r["token"].as_str().expect("token").to_owned(),
            )
        }
    });
    let clients = join_all(signups).await;
    let phase = |method: reqwest::Method, clients: Vec<(reqwest::Client, String, String)>| {
        let base = base.clone();
        async move {
            let stop = Instant::now() + half;
            let tasks = clients.into_iter().map(|(http, user, token)| {
                let base = base.clone();
                let method = method.clone();
                tokio::spawn(async move {
                    let mut stats = Stats::default();
                    let mut i = 0u64;
                    while Instant::now() < stop {
                        let url = format!("{base}/v1/users/{user}/data/items/k{}", i % 100);
                        let mut req = http.request(method.clone(), url).bearer_auth(&token);
                        if method == reqwest::Method::PUT {
                            req = req.body(format!("{{\"n\":{i},\"note\":\"rest bench\"}}"));
                        }
                        let t = Instant::now();
                        let resp = req.send().await.expect("request");
                        assert!(resp.status().is_success(), "{}", resp.status());
                        let _ = resp.bytes().await;
                        stats.add(t.elapsed());
                        i += 1;
                    }
                    ((http, user, token), stats)
                })
            });
            let mut all = Stats::default();
            let mut back = Vec::new();
            for r in join_all(tasks).await {
                let (client, stats) = r.expect("rest client");
                all.merge(stats);
                back.push(client);
            }
            (all, back)
        }
    };
    let (mut puts, clients) = phase(reqwest::Method::PUT, clients).await;
    let (mut gets, _) = phase(reqwest::Method::GET, clients).await;
    let s = half.as_secs_f64();
    metrics(&[
        ("put_per_s", puts.len() as f64 / s),
        ("put_p50_ms", puts.ms(50.0)),
        ("put_p99_ms", puts.ms(99.0)),
        ("get_per_s", gets.len() as f64 / s),
        ("get_p50_ms", gets.ms(50.0)),
        ("get_p99_ms", gets.ms(99.0)),
    ])
}

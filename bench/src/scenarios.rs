//! The scenarios. Each returns named metrics; units are in the names (`_ms`, `_per_s`, `_kib`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use serde_json::{Map, Value, json};

use crate::client::Conn;
use crate::stats::Stats;

type Metrics = Map<String, Value>;

fn metrics(pairs: &[(&str, f64)]) -> Metrics {
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
async fn own_writer<T, F>(
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

fn url(addr: &str) -> String {
    format!("ws://{addr}/ws")
}

pub async fn sequential(addr: &str, n: usize) -> Metrics {
    let (mut c, _, _) = Conn::signup(&url(addr)).await;
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

/// `addr` may list several nodes (`a,b`): clients are spread over them in turn.
pub async fn writers(addr: &str, n: usize, secs: u64) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let nodes: Vec<&str> = addr.split(',').collect();
    let tasks = (0..n).map(|i| {
        let url = url(nodes[i % nodes.len()]);
        tokio::spawn(async move {
            let (mut c, _, _) = Conn::signup(&url).await;
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

/// `n` lean watchers of `token`'s document (see `watchers.rs`), connected by a few threads.
async fn lean_watchers(addr: &str, token: &str, n: usize) -> Vec<crate::watchers::Watcher> {
    let threads = 4.min(n.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (addr, token) = (addr.to_owned(), token.to_owned());
            let count = n / threads + usize::from(i < n % threads);
            tokio::task::spawn_blocking(move || {
                (0..count)
                    .map(|_| crate::watchers::connect(&addr, &token).expect("watcher"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for h in join_all(handles).await {
        all.extend(h.expect("connect watchers"));
    }
    all
}

/// How c) runs (the flags of the same names).
#[derive(Clone, Copy, Debug)]
pub struct FanoutOpts {
    pub interval: Duration,
    pub open_loop: bool,
    pub rounds: bool,
    pub nap: Duration,
    pub idle_reader: bool,
    pub warmup: u64,
    /// The watchers' server, to read its fanout thread's CPU time (`fanout_us_per_delivery`).
    pub pid: Option<u32>,
}

/// CPU time the server's threads named `name` have run, in ns, from the scheduler's own
/// accounting (`/proc/PID/task/*/schedstat`, exact where `stat`'s ticks are 10 ms steps);
/// `None` without a pid or when the process cannot be read.
fn thread_cpu_ns(pid: Option<u32>, name: &str) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", pid?)).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// With `addr` listing two nodes (`a,b`), the writer is on the first and the watchers on
/// the last: send→change then crosses nodes (cluster mode).
pub async fn fanout(addr: &str, n: usize, opts: FanoutOpts) -> Metrics {
    let FanoutOpts {
        interval,
        open_loop,
        rounds,
        nap,
        idle_reader: idle,
        warmup,
        pid,
    } = opts;
    let (first, last) = addr.split_once(',').unwrap_or((addr, addr));
    let unix_us = crate::watchers::unix_us;
    let updates = 100u64;
    let (token, go, writer_side) = own_writer(url(first), move |mut writer| async move {
    // Warm-up updates, closed loop, `interval` apart: `t` 0 tells the watchers they are
    // not measured (see `--warmup`).
    for v in 0..warmup {
        writer.update(v, json!({"t": 0})).await;
        tokio::time::sleep(interval).await;
    }
    let cpu_before = thread_cpu_ns(pid, "hearth-out");
    let mut acks = Stats::default();
    if open_loop {
        // Fixed schedule: update v leaves at v × interval whether or not v − 1 was answered
        // (the socket keeps them in order), so the offered load does not depend on how fast
        // acks come back.
        let start = Instant::now();
        let mut sent = Vec::with_capacity(updates as usize);
        let mut answered = 0;
        for v in 0..updates {
            let due = start + interval * v as u32;
            let version = warmup + v;
            // Read acks that arrive while waiting for the next slot.
            loop {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() || answered == v {
                    tokio::time::sleep_until(due.into()).await;
                    break;
                }
                match tokio::time::timeout(left, writer.next_frame()).await {
                    Ok(f) if f["type"] == "version" => {
                        acks.add(Instant::now() - sent[answered as usize]);
                        answered += 1;
                    }
                    Ok(f) => assert_ne!(f["type"], "error", "{f}"),
                    Err(_) => {}
                }
            }
            let t = unix_us();
            sent.push(Instant::now());
            writer
                .send(json!({"id": version + 1, "type": "update", "patch": true, "data": {"metadata": {"version": version}, "userdata": {"t": t}}}))
                .await;
        }
        while answered < updates {
            let f = writer.next_frame().await;
            assert_ne!(f["type"], "error", "{f}");
            if f["type"] == "version" {
                acks.add(Instant::now() - sent[answered as usize]);
                answered += 1;
            }
        }
    } else {
        // Closed loop: the next update leaves `interval` after the previous one's ack.
        for v in 0..updates {
            let t = Instant::now();
            writer.update(warmup + v, json!({"t": unix_us()})).await;
            acks.add(t.elapsed());
            tokio::time::sleep(interval).await;
        }
    }
    (acks, cpu_before)
    })
    .await;
    let conns = lean_watchers(last, &token, n).await;
    let updates = updates as usize;
    let receiver = crate::watchers::Receiver::new(conns);
    let receiver = std::thread::spawn(move || receiver.receive(updates, nap, idle));
    let _ = go.send(());
    let (mut acks, cpu_before) = writer_side.await.expect("writer");
    let seen = tokio::task::spawn_blocking(move || receiver.join())
        .await
        .expect("join")
        .expect("watchers");
    // Every measured change has reached its watcher, so the fanout thread is done with them.
    let cpu = cpu_before.zip(thread_cpu_ns(pid, "hearth-out"));
    let (mut arrived, mut read) = (Stats::default(), Stats::default());
    // Arrival latencies by update (keyed by its send time), for `--rounds`.
    let mut by_update: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    // Changes the kernel did not stamp count as arriving when read (the slow side), and are
    // reported, so a run whose stamps failed cannot pass for a kernel-timed one.
    let mut unstamped = 0u32;
    for d in seen {
        unstamped += u32::from(d.arrived_us.is_none());
        let latency = d.arrived_us.unwrap_or(d.read_us).saturating_sub(d.sent_us);
        arrived.add(Duration::from_micros(latency));
        read.add(Duration::from_micros(d.read_us.saturating_sub(d.sent_us)));
        by_update.entry(d.sent_us).or_default().push(latency);
    }
    if rounds {
        for (i, mut l) in by_update.into_values().enumerate() {
            l.sort_unstable();
            let at = |q: usize| l[(l.len() - 1) * q / 100];
            let ack = acks.in_order().get(i).map_or(0, |d| d.as_micros());
            eprintln!(
                "update {i}: ack {ack} min {} p10 {} p50 {} p90 {} max {} µs",
                at(0),
                at(10),
                at(50),
                at(90),
                at(100)
            );
        }
    }
    let mut out = metrics(&[
        ("change_p50_ms", arrived.ms(50.0)),
        ("change_p99_ms", arrived.ms(99.0)),
        ("change_max_ms", arrived.ms(100.0)),
        ("read_p50_ms", read.ms(50.0)),
        ("read_p99_ms", read.ms(99.0)),
        ("ack_p50_ms", acks.ms(50.0)),
        ("ack_p99_ms", acks.ms(99.0)),
        ("unstamped", f64::from(unstamped)),
    ]);
    // The server's CPU per delivery on its fanout thread: how fast this host runs the same
    // work, so tables from different hosts can be read side by side (BENCHMARKS.md, c)).
    if let Some((before, after)) = cpu {
        let deliveries = (updates * n).max(1) as f64;
        let us = after.saturating_sub(before) as f64 / 1000.0 / deliveries;
        out.extend(metrics(&[("fanout_us_per_delivery", us)]));
    }
    out
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::thread_cpu_ns;

    /// A thread that spins is seen to run, by name, and only by its name.
    #[test]
    fn a_named_threads_cpu_time_is_read_from_proc() {
        let pid = Some(std::process::id());
        let spinner = std::thread::Builder::new()
            .name("cpu-probe".into())
            .spawn(move || {
                let give_up = Instant::now() + Duration::from_secs(10);
                loop {
                    let ns = thread_cpu_ns(pid, "cpu-probe");
                    if ns.is_none_or(|ns| ns >= 10_000_000) || Instant::now() > give_up {
                        return ns;
                    }
                    for _ in 0..100_000 {
                        std::hint::spin_loop();
                    }
                }
            })
            .expect("thread");
        let ns = spinner
            .join()
            .expect("spinner")
            .expect("schedstat readable");
        assert!(ns >= 10_000_000, "a spinning thread ran {ns} ns in 10 s");
        assert_eq!(thread_cpu_ns(pid, "no-such-thread"), Some(0));
        assert_eq!(thread_cpu_ns(None, "cpu-probe"), None);
    }
}

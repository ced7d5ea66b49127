//! `hearth-bench`: drives a running Hearth over real WebSockets on loopback and prints one
//! markdown row per scenario. Run it from a separate process (bench/run.sh does).

mod client;
mod stats;

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::json;

use client::Conn;
use stats::Stats;

#[derive(Parser)]
struct Args {
    /// WebSocket URL of the server.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Updates for `sequential`, writers for `writers`, watchers for `fanout`/`saturation`.
    #[arg(long)]
    n: Option<usize>,
    /// Seconds for closed-loop scenarios.
    #[arg(long, default_value_t = 10)]
    secs: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    /// a) one client, sequential merge-patch updates.
    Sequential,
    /// b) many clients, each its own document, closed loop.
    Writers,
    /// c) one writer, many watchers, 100 updates 50 ms apart.
    Fanout,
    /// d) one writer as fast as it can, many watchers.
    Saturation,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match args.scenario {
        Scenario::Sequential => sequential(&args.url, args.n.unwrap_or(2000)).await,
        Scenario::Writers => writers(&args.url, args.n.unwrap_or(50), args.secs).await,
        Scenario::Fanout => fanout(&args.url, args.n.unwrap_or(1000)).await,
        Scenario::Saturation => saturation(&args.url, args.n.unwrap_or(1000), args.secs).await,
    }
}

async fn sequential(url: &str, n: usize) {
    let (mut c, _, _) = Conn::signup(url).await;
    let mut stats = Stats::default();
    let start = Instant::now();
    for v in 0..n as u64 {
        let t = Instant::now();
        c.update(v, json!({"counter": v, "note": "sequential"}))
            .await;
        stats.add(t.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| a) sequential | {n} updates | p50 {} ms | p99 {} ms | {:.0} ops/s |",
        stats.ms(50.0),
        stats.ms(99.0),
        n as f64 / secs
    );
}

async fn writers(url: &str, n: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
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
        }));
    }
    let mut all = Stats::default();
    for t in tasks {
        all.merge(t.await.expect("writer"));
    }
    println!(
        "| b) writers | {n} clients × {secs} s | p50 {} ms | p99 {} ms | {:.0} durable updates/s |",
        all.ms(50.0),
        all.ms(99.0),
        all.len() as f64 / secs as f64
    );
}

/// Connects `n` watchers of `owner`'s document (same account, many sockets).
async fn watchers(url: &str, token: &str, n: usize) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = Conn::connect(url).await;
        c.auth(token).await;
        c.request(json!({"type": "watch"})).await;
        conns.push(c);
    }
    conns
}

async fn fanout(url: &str, n: usize) {
    let (mut writer, _, token) = Conn::signup(url).await;
    let epoch = Instant::now();
    let conns = watchers(url, &token, n).await;
    let updates = 100u64;
    let mut tasks = Vec::new();
    for mut c in conns {
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            for _ in 0..updates {
                let change = c.next_change().await;
                let sent = change["data"]["userdata"]["t"].as_u64().expect("t");
                let now = epoch.elapsed().as_micros() as u64;
                stats.add(Duration::from_micros(now.saturating_sub(sent)));
            }
            stats
        }));
    }
    let mut acks = Stats::default();
    for v in 0..updates {
        let t = Instant::now();
        let sent = epoch.elapsed().as_micros() as u64;
        writer.update(v, json!({"t": sent})).await;
        acks.add(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut all = Stats::default();
    for t in tasks {
        all.merge(t.await.expect("watcher"));
    }
    println!(
        "| c) fanout | {n} watchers × {updates} updates | send→change p50 {} ms | p99 {} ms | max {} ms | writer ack p99 {} ms |",
        all.ms(50.0),
        all.ms(99.0),
        all.ms(100.0),
        acks.ms(99.0)
    );
}

async fn saturation(url: &str, n: usize, secs: u64) {
    let (mut writer, _, token) = Conn::signup(url).await;
    let conns = watchers(url, &token, n).await;
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for mut c in conns {
        tasks.push(tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(_frame) = c.next_frame_until(stop).await {
                count += 1;
            }
            count
        }));
    }
    let start = Instant::now();
    let mut v = 0;
    while Instant::now() < stop {
        writer.update(v, json!({"v": v})).await;
        v += 1;
    }
    let mut delivered = 0;
    for t in tasks {
        delivered += t.await.expect("watcher");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| d) saturation | {n} watchers, {v} updates | {:.0} deliveries/s | {:.0} updates/s |",
        delivered as f64 / secs,
        v as f64 / secs
    );
}

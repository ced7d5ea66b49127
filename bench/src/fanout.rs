//! c) fanout: one writer, `n` watchers of its document timed by the kernel's receive stamps
//! (`watchers.rs`), and the server's fanout-thread CPU per delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::scenarios::{Metrics, metrics, own_writer, url};
use crate::stats::Stats;

/// `n` lean watchers of `token`'s document (see `watchers.rs`), connected by a few threads.
async fn lean_watchers(
    addr: &str,
    token: &str,
    n: usize,
    target: Option<String>,
    presence: bool,
) -> Vec<crate::watchers::Watcher> {
    let threads = 4.min(n.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (addr, token, target) = (addr.to_owned(), token.to_owned(), target.clone());
            let count = n / threads + usize::from(i < n % threads);
            tokio::task::spawn_blocking(move || {
                (0..count)
                    .map(|_| {
                        crate::watchers::connect(&addr, &token, target.as_deref(), presence)
                            .expect("watcher")
                    })
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
    /// The reader leaves its sockets alone for this long after each send (`Duration::ZERO`:
    /// never; see `watchers::Receiver::receive`).
    pub hold: Duration,
    /// The watchers' server, to read its fanout thread's CPU time (`fanout_us_per_delivery`).
    pub pid: Option<u32>,
    /// Write and watch a named document of the writer's instead of its default one.
    pub named: bool,
    /// Every watcher also announces its presence on the document (issue 31): the server then
    /// holds a seat and a listener per watcher, and has pushed n² joins before the changes.
    pub presence: bool,
}

/// CPU time the server's threads named `name` (`""`: all of them) have run, in ns, from the
/// scheduler's own accounting (`/proc/PID/task/*/schedstat`, exact where `stat`'s ticks are
/// 10 ms steps); `None` without a pid or when the process cannot be read.
pub fn thread_cpu_ns(pid: Option<u32>, name: &str) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", pid?)).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.is_empty() && comm.trim_end() != name {
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
        rounds,
        nap,
        idle_reader: idle,
        hold,
        pid,
        ..
    } = opts;
    let (first, last) = addr.split_once(',').unwrap_or((addr, addr));
    let updates = 100u64;
    // When the writer last sent, for the reader's hold.
    let sent_at = Arc::new(AtomicU64::new(0));
    let sent = sent_at.clone();
    // The named document's key, known once it is created (after the writer signed up).
    let target: Arc<std::sync::OnceLock<String>> = Arc::default();
    let writer_target = target.clone();
    let (token, go, writer_side) = own_writer(url(first), move |mut writer| {
        writer.target = writer_target.get().cloned();
        write_updates(writer, updates, opts, sent)
    })
    .await;
    if opts.named {
        let mut c = crate::client::Conn::connect(&url(first)).await;
        c.auth(&token).await;
        let r = c
            .request(serde_json::json!({"type": "create", "name": "bench"}))
            .await;
        let key = format!("{}/bench", r["username"].as_str().expect("created"));
        let _ = target.set(key);
    }
    let conns = lean_watchers(last, &token, n, target.get().cloned(), opts.presence).await;
    let updates = updates as usize;
    let receiver = crate::watchers::Receiver::new(conns);
    let hold = (!hold.is_zero()).then_some((sent_at, hold));
    let receiver = std::thread::spawn(move || receiver.receive(updates, nap, idle, hold));
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

/// c)'s writer: `opts.warmup` unmeasured updates, then `updates` measured ones
/// `opts.interval` apart (closed loop, or on a fixed schedule with `opts.open_loop`). Returns their acks, and the
/// server's fanout-thread CPU time as the measured updates begin.
async fn write_updates(
    mut writer: crate::client::Conn,
    updates: u64,
    opts: FanoutOpts,
    sent_at: Arc<AtomicU64>,
) -> (Stats, Option<u64>) {
    let FanoutOpts {
        interval,
        open_loop,
        warmup,
        pid,
        ..
    } = opts;
    let unix_us = crate::watchers::unix_us;
    // Warm-up updates, closed loop, `interval` apart: `t` 0 tells the watchers they are
    // not measured (see `--warmup`).
    let sending = || sent_at.store(unix_us(), Ordering::Release);
    for v in 0..warmup {
        sending();
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
            sending();
            sent.push(Instant::now());
            writer
                .send(json!({
                    "id": version + 1,
                    "type": "update",
                    "patch": true,
                    "data": {"metadata": {"version": version}, "userdata": {"t": t}},
                }))
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
            sending();
            writer.update(warmup + v, json!({"t": unix_us()})).await;
            acks.add(t.elapsed());
            tokio::time::sleep(interval).await;
        }
    }
    (acks, cpu_before)
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

//! `hearth-bench`: drives a running Hearth over real WebSockets and HTTP on loopback and
//! prints one JSON line per scenario (`{"scenario", "metrics": {name: value}}`) for
//! bench/run.sh to aggregate. Run it from a separate process.

mod client;
mod disk;
mod fanout;
mod listing;
mod presence;
mod receiver;
mod scenarios;
mod stats;
mod watchers;

use clap::{Parser, ValueEnum};

#[derive(Parser)]
struct Args {
    /// Server address (host:port); `writers` and `fanout` take two nodes of a cluster as
    /// `a,b` (writers spread over both; fanout writes on a, watches on b).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Updates (sequential), clients (writers, rest), watchers (fanout, saturation),
    /// connections (idle), documents (populate), commits (disk).
    #[arg(long)]
    n: Option<usize>,
    /// Seconds for closed-loop scenarios.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Server process id: for RSS readings (idle), and for the CPU time of its fanout thread
    /// per delivery (fanout; of the watchers' node in a cluster).
    #[arg(long)]
    pid: Option<u32>,
    /// Bytes of userdata per document (populate).
    #[arg(long, default_value_t = 10_000)]
    size: usize,
    /// Source addresses to spread connections over (idle), e.g. 127.0.0.1,127.0.0.2.
    #[arg(long, default_value = "127.0.0.1")]
    sources: String,
    /// For `fanout`: milliseconds between updates; for `disk`, between commits.
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// For `fanout`: send on a fixed schedule instead of waiting for each ack first.
    #[arg(long)]
    open_loop: bool,
    /// For `fanout`: also print each update's delivery spread (min, p10, p50, p90, max in
    /// µs) to stderr, to tell a slow fanout from a late start (BENCHMARKS.md, c)).
    #[arg(long)]
    rounds: bool,
    /// For `fanout`: the watchers' reader looks at its sockets every this many µs instead
    /// of sleeping on them (0: sleep on them; see `watchers.rs`).
    #[arg(long, default_value_t = 0)]
    nap_us: u64,
    /// For `fanout`: run the watchers' reader at the lowest priority (`SCHED_IDLE`), so
    /// that it takes only CPU the server leaves (see `watchers.rs`).
    #[arg(long)]
    idle_reader: bool,
    /// For `fanout`: updates sent (closed loop, `--interval-ms` apart) before the 100 that
    /// are measured, so that these meet connections past their first messages.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// For `fanout`: the watchers' reader leaves its sockets alone for this many ms after
    /// each update is sent, reading in the quiet part of each interval (0: never holds; see
    /// `watchers.rs`).
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// For `saturation`: updates the writer keeps in flight (1: wait for each ack).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// For `ready`: the Unix time in nanoseconds the server was started.
    #[arg(long)]
    since_ns: Option<u128>,
    /// For `sequential` and `writers`: each writer updates a named document of its own; for
    /// `fanout`, the writer updates, and the watchers watch, a named document.
    #[arg(long)]
    named: bool,
    /// For `writers`: every update carries an `opId` (issue 30's cost of exactly-once).
    #[arg(long)]
    op_ids: bool,
    /// For `sequential` and `writers`: append each update's JSON to a stream of the
    /// client's own instead (issue 32: appends as fast as updates).
    #[arg(long)]
    append: bool,
    /// For `writers`: the first writer registers a webhook to this URL on its document.
    #[arg(long)]
    hook: Option<String>,
    /// For `fanout`: every watcher also announces its presence on the document.
    #[arg(long)]
    presence: bool,
    /// For `list`: accounts besides the measured one, with 100 named documents each.
    #[arg(long, default_value_t = 0)]
    accounts: usize,
    /// For `list`: bytes of filler in each measured document's userdata (0: a short note).
    #[arg(long, default_value_t = 0)]
    doc_bytes: usize,
    /// For `disk`: the directory to write in (the server's data directory, to measure its
    /// disk).
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Scenario {
    /// a) one client, sequential merge-patch updates.
    Sequential,
    /// b) many clients, each its own document, closed loop.
    Writers,
    /// c) one writer, many watchers, 100 updates 50 ms apart.
    Fanout,
    /// d) one writer as fast as it can, many watchers.
    Saturation,
    /// e) idle connections: server RSS per connection.
    Idle,
    /// f) helper: fill the store with documents.
    Populate,
    /// f) helper: wait until the server accepts connections; report time since start.
    Ready,
    /// g) REST: concurrent GET and PUT on key paths.
    Rest,
    /// The disk alone: quiet 4 KiB `O_DIRECT` writes + `fdatasync`, `--interval-ms` apart.
    Disk,
    /// h) named documents: one account with `--n` of them (and `--accounts` more with 100
    /// each), then `list` timed.
    List,
    /// i) presence: `--n` watchers of one document; changes, the join burst, changes again,
    /// presence updates, each timed.
    Presence,
    /// A webhook receiver on `--addr` answering 200 to everything, until killed
    /// (`bench/webhooks.sh`).
    Receive,
}

#[tokio::main]
async fn main() {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let metrics = match args.scenario {
        // On a worker, which polls the socket itself: `main`'s own thread is woken by a worker
        // for every reply, a thread hop per update that no real client pays.
        Scenario::Sequential => {
            let (addr, n) = (args.addr.clone(), args.n.unwrap_or(2000));
            let how = (args.named, args.append);
            tokio::spawn(async move { scenarios::sequential(&addr, n, how).await })
                .await
                .expect("sequential scenario")
        }
        Scenario::Writers => {
            scenarios::writers(
                &args.addr,
                args.n.unwrap_or(50),
                args.secs,
                (args.named, args.op_ids, args.append),
                args.hook.clone(),
            )
            .await
        }
        Scenario::List => {
            listing::list(
                &args.addr,
                args.n.unwrap_or(1000),
                args.accounts,
                args.doc_bytes,
                args.pid,
            )
            .await
        }
        Scenario::Fanout => {
            let opts = fanout::FanoutOpts {
                interval: std::time::Duration::from_millis(args.interval_ms),
                open_loop: args.open_loop,
                rounds: args.rounds,
                nap: std::time::Duration::from_micros(args.nap_us),
                idle_reader: args.idle_reader,
                warmup: args.warmup,
                hold: std::time::Duration::from_millis(args.hold_ms),
                pid: args.pid,
                named: args.named,
                presence: args.presence,
            };
            fanout::fanout(&args.addr, args.n.unwrap_or(1000), opts).await
        }
        Scenario::Saturation => {
            scenarios::saturation(&args.addr, args.n.unwrap_or(1000), args.secs, args.pipeline)
                .await
        }
        Scenario::Idle => {
            scenarios::idle(
                &args.addr,
                args.n.unwrap_or(10_000),
                args.pid,
                &args.sources,
            )
            .await
        }
        Scenario::Populate => {
            scenarios::populate(&args.addr, args.n.unwrap_or(100_000), args.size).await
        }
        Scenario::Ready => scenarios::ready(&args.addr, args.since_ns.unwrap_or(0)).await,
        Scenario::Presence => presence::presence(&args.addr, args.n.unwrap_or(1000)).await,
        Scenario::Rest => scenarios::rest(&args.addr, args.n.unwrap_or(50), args.secs).await,
        Scenario::Receive => receiver::receive(&args.addr).await,
        Scenario::Disk => {
            let interval = std::time::Duration::from_millis(args.interval_ms);
            let (dir, n) = (args.dir.clone(), args.n.unwrap_or(200));
            tokio::task::spawn_blocking(move || disk::quiet_commits(&dir, n, interval))
                .await
                .expect("disk scenario")
        }
    };
    let name = clap::ValueEnum::to_possible_value(&args.scenario)
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let line = serde_json::json!({"scenario": name, "n": args.n, "metrics": metrics});
    println!("{line}");
}

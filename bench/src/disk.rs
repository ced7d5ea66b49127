//! `disk`: the machine's own floor under c)'s ack. One 4 KiB block written with `O_DIRECT` and
//! made durable with `fdatasync`, `interval` apart, in the directory the server stores in:
//! what a quiet commit of the write-ahead log asks of the disk, with no server around it.
//!
//! Why in every table: on a virtual disk the cost of a quiet commit moves with the host
//! (0.4 to 1.2 ms at the p50 across sessions here), and c)'s ack p99 is mostly this. Read
//! side by side in one run, the two say how much the server adds.

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::scenarios::{Metrics, metrics};
use crate::stats::Stats;

const BLOCK: usize = 4096;
/// Blocks the commits cycle over: the log rewrites its tail block in place and moves on
/// every 4 KiB.
const BLOCKS: usize = 16;

/// `n` quiet commits in a scratch file in `dir`, which is removed afterwards. The file is
/// written out and made durable before the first timed commit, as the server's log is
/// zero-filled when created: a write that grows a file also commits its new size, which
/// the log's never do.
pub fn quiet_commits(dir: &Path, n: usize, interval: Duration) -> Metrics {
    let path = dir.join(format!("hearth-bench-disk-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .expect("open the scratch file with O_DIRECT");
    // O_DIRECT wants a block-aligned buffer: one block of a two-block allocation.
    let room = vec![0u8; 2 * BLOCK];
    let at = room.as_ptr().align_offset(BLOCK);
    let block = &room[at..at + BLOCK];
    for i in 0..BLOCKS {
        file.write_all_at(block, (i * BLOCK) as u64).expect("write");
    }
    file.sync_all().expect("fsync");
    let mut took = Stats::default();
    for i in 0..n {
        let offset = (i % BLOCKS * BLOCK) as u64;
        std::thread::sleep(interval);
        let t = Instant::now();
        file.write_all_at(block, offset).expect("write");
        file.sync_data().expect("fdatasync");
        took.add(t.elapsed());
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    metrics(&[
        ("commit_p50_ms", took.ms(50.0)),
        ("commit_p90_ms", took.ms(90.0)),
        ("commit_p99_ms", took.ms(99.0)),
        ("commit_max_ms", took.ms(100.0)),
    ])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::quiet_commits;

    /// Each commit is timed, the four figures come out in order, and the scratch file goes.
    /// (Written under the crate's own directory: `/tmp` may be a tmpfs, which refuses
    /// `O_DIRECT`.)
    #[test]
    fn commits_are_timed_and_the_scratch_file_is_removed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let m = quiet_commits(dir, 5, Duration::ZERO);
        let ms = |k: &str| m[k].as_f64().unwrap_or(-1.0);
        assert!(ms("commit_p50_ms") > 0.0, "{m:?}");
        assert!(ms("commit_p50_ms") <= ms("commit_p90_ms"));
        assert!(ms("commit_p90_ms") <= ms("commit_p99_ms"));
        assert!(ms("commit_p99_ms") <= ms("commit_max_ms"));
        let left = std::fs::read_dir(dir).expect("list").flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("hearth-bench-disk-")
        });
        assert!(!left, "the scratch file is removed");
    }
}

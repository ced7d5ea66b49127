//! The write-ahead log: one file beside the data file, where a batch of updates becomes
//! durable with a single fsync. [`super::durable::DurableLog`] is its only user.
//!
//! Contract: [`Wal::append`] returns only once the record is on disk; a record that fails its
//! check can only be the last one written, since each is fsynced before the next. A
//! *checkpoint* (a durable redb commit that bumps `wal_generation`: [`Wal::begin_checkpoint`],
//! [`Wal::checkpointed`]) makes every record before it redundant, and the next record is
//! written at offset 0.
//!
//! Why a log of our own: a durable redb commit of one update rewrites six or seven 4 KiB pages
//! scattered over the file (0.45 ms here), one record costs one page (0.14 ms). The file is
//! zero-filled to [`WAL_BYTES`] when created, so appends overwrite allocated blocks and
//! `fdatasync` never has to commit a size change (0.145 ms against 0.187 ms). Appends bypass
//! the page cache where the filesystem allows it (`direct.rs` says why).
//!
//! Record: `[payload length: u32][crc32: u32][file id: u64][generation: u64][payload]`, the
//! crc over id, generation and payload; payload: `([seq: u64][length: u32][journal row])*`.
//! The data file's `meta` table holds `wal_id` (which file this log belongs to; a backup gets
//! a fresh one), `wal_generation`, and `wal_clean` (1 only while the server is stopped
//! cleanly). At open, records are read from offset 0 while their crc holds and they carry
//! this file's id and current generation; whether what stops them is a torn tail or damage is
//! `recovery.rs`'s to decide, from what [`Wal::open`] reports.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};

use super::META;
use super::direct::Direct;
use super::journal::RowBytes;
use crate::store::error::StoreError;
use crate::store::faults::Faults;

/// Size of the log file. A batch whose record does not fit is folded with the journal in one
/// durable commit instead, which is also a checkpoint; in practice the journal's fold (every
/// `FOLD_AT` rows) checkpoints first.
pub const WAL_BYTES: u64 = 4 << 20;
const HEADER: usize = 24;
pub(super) const ID: &str = "wal_id";
pub(super) const GENERATION: &str = "wal_generation";
/// 1 while the data file's server is stopped cleanly (the log holds nothing it needs).
pub(super) const CLEAN: &str = "wal_clean";

/// What the log file looked like before anything touched it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileState {
    Missing,
    /// Shorter than [`WAL_BYTES`], which the log always is once made.
    Short(u64),
    Whole,
}

/// What reading the log found.
#[derive(Default)]
pub struct Scanned {
    /// The rows of the valid records, in order.
    pub rows: Vec<(u64, RowBytes)>,
    pub records: usize,
    /// Where the valid records end.
    pub end: u64,
    /// The record at `end` carries this log's id and generation but does not check out.
    pub torn: bool,
    /// Valid records of this generation found *after* `end`: damage, not a torn tail.
    pub later: Option<Later>,
}

/// Records past a damaged one: what accepting the loss drops.
pub struct Later {
    /// Where the first of them starts.
    pub offset: u64,
    pub records: usize,
    pub rows: Vec<(u64, RowBytes)>,
}

/// The log next to the data file at `db_path`.
pub fn path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

pub struct Wal {
    /// For reading at open, for erasing, and for every write when `direct` is `None`.
    file: File,
    /// The same file opened `O_DIRECT`, for appends.
    direct: Option<Direct>,
    id: u64,
    generation: u64,
    /// Where the next record goes; 0 when everything is checkpointed.
    pos: u64,
    /// Where the last record written starts (what `retract` erases).
    last: u64,
    faults: Option<Arc<Faults>>,
    buf: Vec<u8>,
}

impl Wal {
    /// Opens (or creates) the log of `db`, and with `scan` returns the rows of every record
    /// the last checkpoint lacks: the caller folds them (`recover`) before anything else is
    /// written. Without `scan` (after a clean stop, when nothing in the log is needed) the
    /// 4 MiB file is not read at all.
    ///
    /// # Errors
    /// `Unavailable` when the log or the data file cannot be read or written.
    pub fn open(
        db: &Database,
        path: &Path,
        faults: Option<Arc<Faults>>,
        scan: bool,
    ) -> Result<(Wal, Scanned), StoreError> {
        let io = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < WAL_BYTES {
            let missing =
                usize::try_from(WAL_BYTES - len).map_err(|e| io(std::io::Error::other(e)))?;
            file.write_all_at(&vec![0u8; missing], len).map_err(io)?;
            file.sync_all().map_err(io)?;
            // The file's name must survive a power cut too, before anything relies on it.
            if let Some(dir) = path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        let (id, generation) = ids(db)?;
        let wal = Wal {
            file,
            direct: Direct::open(path),
            id,
            generation,
            pos: 0,
            last: 0,
            faults,
            buf: Vec::new(),
        };
        let scanned = if scan {
            wal.scan().map_err(io)?
        } else {
            Scanned::default()
        };
        Ok((wal, scanned))
    }

    /// What the file at `path` is, looked at without changing it.
    pub fn inspect(path: &Path) -> std::io::Result<FileState> {
        match std::fs::metadata(path) {
            Ok(m) if m.len() < WAL_BYTES => Ok(FileState::Short(m.len())),
            Ok(_) => Ok(FileState::Whole),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileState::Missing),
            Err(e) => Err(e),
        }
    }

    /// Every valid record of this file and generation from offset 0, and whether what stops
    /// them is a torn tail or damage with valid records after it.
    fn scan(&self) -> std::io::Result<Scanned> {
        let mut log = vec![0u8; usize::try_from(WAL_BYTES).unwrap_or(0)];
        self.file.read_exact_at(&mut log, 0)?;
        let tag = self.tag();
        let mut scanned = Scanned::default();
        let mut at = 0usize;
        while let Some((len, rows)) = record_at(&log, at, &tag) {
            scanned.rows.extend(rows);
            scanned.records += 1;
            at += HEADER + len;
        }
        scanned.end = at as u64;
        scanned.torn = log.get(at + 8..at + HEADER).is_some_and(|t| t == tag);
        // A record of this generation anywhere after the stop means the stop is damage:
        // records are written in order, each fsynced before the next, so a torn record is
        // always the last one of its generation.
        let mut from = at + 1;
        while let Some(found) = find(&log, from, &tag) {
            let start = found - 8;
            if record_at(&log, start, &tag).is_some() {
                let mut later = Later {
                    offset: start as u64,
                    records: 0,
                    rows: Vec::new(),
                };
                let mut next = start;
                while let Some((len, rows)) = record_at(&log, next, &tag) {
                    later.rows.extend(rows);
                    later.records += 1;
                    next += HEADER + len;
                }
                scanned.later = Some(later);
                break;
            }
            from = found + 1;
        }
        Ok(scanned)
    }

    fn tag(&self) -> [u8; 16] {
        let mut tag = [0u8; 16];
        tag[..8].copy_from_slice(&self.id.to_le_bytes());
        tag[8..].copy_from_slice(&self.generation.to_le_bytes());
        tag
    }

    fn check(&self) -> std::io::Result<()> {
        self.faults.as_ref().map_or(Ok(()), |f| f.check())
    }

    /// Appends one record holding `rows` and fsyncs it. `Ok(false)`: it does not fit, so the
    /// caller must fold it durably instead.
    ///
    /// # Errors
    /// `Unavailable` on an I/O error; the record then counts as not written.
    pub fn append<'a>(
        &mut self,
        rows: impl Iterator<Item = (u64, &'a [u8])>,
    ) -> Result<bool, StoreError> {
        let tag = self.tag();
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; 8]);
        self.buf.extend_from_slice(&tag);
        for (seq, row) in rows {
            let len = u32::try_from(row.len()).map_err(|_| StoreError::unavailable("row"))?;
            self.buf.extend_from_slice(&seq.to_le_bytes());
            self.buf.extend_from_slice(&len.to_le_bytes());
            self.buf.extend_from_slice(row);
        }
        if self.pos + self.buf.len() as u64 > WAL_BYTES {
            return Ok(false);
        }
        let payload = u32::try_from(self.buf.len() - HEADER)
            .map_err(|_| StoreError::unavailable("record too large"))?;
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[..4].copy_from_slice(&payload.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let result = self
            .check()
            .and_then(|()| self.write_record())
            .and_then(|()| self.check())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = result {
            // Make sure a restart does not find it (best effort: the disk is failing).
            let _ = self.file.write_all_at(&[0u8; 4], self.pos);
            if let Some(direct) = &mut self.direct {
                direct.forget();
            }
            return Err(StoreError::Unavailable(format!("write-ahead log: {e}")));
        }
        self.last = self.pos;
        self.pos += self.buf.len() as u64;
        Ok(true)
    }

    /// Writes `buf` at `pos`: directly when the file allows it, else through the page cache.
    fn write_record(&mut self) -> std::io::Result<()> {
        if let Some(direct) = &mut self.direct {
            match direct.write(&self.file, self.pos, &self.buf) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // The filesystem takes O_DIRECT opens but not these writes: buffered it is.
                    tracing::warn!(error = %e, "write-ahead log: direct writes refused, buffering");
                    self.direct = None;
                }
                done => return done,
            }
        }
        self.file.write_all_at(&self.buf, self.pos)
    }

    /// The last record's batch failed to commit after all: erase it, so a restart does not
    /// apply what its callers were told failed.
    ///
    /// # Errors
    /// `Unavailable` when it cannot be erased durably.
    pub fn retract(&mut self) -> Result<(), StoreError> {
        self.file
            .write_all_at(&[0u8; 4], self.last)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| StoreError::Unavailable(format!("write-ahead log: {e}")))?;
        if let Some(direct) = &mut self.direct {
            direct.forget();
        }
        self.pos = self.last;
        Ok(())
    }

    /// Records not yet covered by a checkpoint.
    pub fn pending(&self) -> bool {
        self.pos > 0
    }

    /// Makes `txn` a checkpoint: it must commit durably, and bumps the generation. Returns
    /// the new generation, for [`Wal::checkpointed`] once the commit succeeded.
    ///
    /// # Errors
    /// `Unavailable`.
    pub fn begin_checkpoint(&self, txn: &WriteTransaction) -> Result<u64, StoreError> {
        let next = self.generation + 1;
        let mut meta = txn.open_table(META).map_err(StoreError::unavailable)?;
        meta.insert(GENERATION, next)
            .map_err(StoreError::unavailable)?;
        Ok(next)
    }

    /// A checkpoint committed: everything logged so far is in the data file.
    pub fn checkpointed(&mut self, generation: u64) {
        self.generation = generation;
        self.pos = 0;
    }
}

/// A checkpoint: a durable transaction holding what `write` adds (a fold), after which the
/// log starts over.
///
/// # Errors
/// `Unavailable`; the log is then kept.
pub fn checkpoint_with(
    db: &Database,
    wal: &mut Wal,
    write: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(StoreError::unavailable)?;
    txn.set_durability(Durability::Immediate)
        .map_err(StoreError::unavailable)?;
    write(&txn)?;
    let next = wal.begin_checkpoint(&txn)?;
    txn.commit().map_err(StoreError::unavailable)?;
    wal.checkpointed(next);
    Ok(())
}

/// This file's log id (made on first use) and current generation. A read, except the first
/// time: every start used to pay a durable commit here.
fn ids(db: &Database) -> Result<(u64, u64), StoreError> {
    let txn = db.begin_read().map_err(StoreError::unavailable)?;
    let meta = txn.open_table(META).map_err(StoreError::unavailable)?;
    let generation = meta_u64(&meta, GENERATION)?.unwrap_or(0);
    if let Some(id) = meta_u64(&meta, ID)? {
        return Ok((id, generation));
    }
    drop((meta, txn));
    let txn = db.begin_write().map_err(StoreError::unavailable)?;
    let id = rand::random();
    txn.open_table(META)
        .map_err(StoreError::unavailable)?
        .insert(ID, id)
        .map_err(StoreError::unavailable)?;
    txn.commit().map_err(StoreError::unavailable)?;
    Ok((id, generation))
}

pub(super) fn meta_u64(
    meta: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(meta
        .get(key)
        .map_err(StoreError::unavailable)?
        .map(|v| v.value()))
}

/// The record starting at `at` in `log`, if it carries `tag` and checks out: its payload
/// length and rows.
fn record_at(log: &[u8], at: usize, tag: &[u8; 16]) -> Option<(usize, Vec<(u64, RowBytes)>)> {
    let header = log.get(at..at + HEADER)?;
    let len = usize::try_from(u32::from_le_bytes(header[..4].try_into().ok()?)).ok()?;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len == 0 || header[8..] != tag[..] {
        return None;
    }
    let payload = log.get(at + HEADER..at + HEADER + len)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(tag);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return None;
    }
    Some((len, parse(payload)?))
}

/// Where `tag` next occurs in `log` from `from` on, as a record's tag would (8 bytes into
/// its header).
fn find(log: &[u8], from: usize, tag: &[u8; 16]) -> Option<usize> {
    let start = from.max(8);
    memchr::memmem::find(log.get(start..)?, tag).map(|p| start + p)
}

fn parse(mut payload: &[u8]) -> Option<Vec<(u64, RowBytes)>> {
    let mut rows = Vec::new();
    while !payload.is_empty() {
        let (seq, rest) = payload.split_first_chunk::<8>()?;
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let row = rest.get(..len)?;
        rows.push((u64::from_le_bytes(*seq), RowBytes::from(row)));
        payload = &rest[len..];
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data file in a fresh temp dir, with the table every Hearth file has (`init_schema`),
    /// and where its log goes.
    fn data_file() -> (tempfile::TempDir, Database, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap();
        txn.commit().unwrap();
        let log = dir.path().join("db.wal");
        (dir, db, log)
    }

    /// Opens the log and returns the seqs it would replay.
    fn reopen(db: &Database, path: &Path) -> (Wal, Vec<u64>) {
        let (wal, scanned) = Wal::open(db, path, None, true).unwrap();
        (wal, scanned.rows.into_iter().map(|(seq, _)| seq).collect())
    }

    /// What a restart replays: whole records of this generation, up to the first torn one;
    /// never records from before a checkpoint.
    #[test]
    fn replays_whole_records_of_the_current_generation_only() {
        let (_dir, db, log) = data_file();

        let (mut wal, replayed) = reopen(&db, &log);
        assert!(replayed.is_empty());
        assert!(
            wal.append([(1, &b"one"[..]), (2, b"two")].into_iter())
                .unwrap()
        );
        assert!(wal.append([(3, &b"three"[..])].into_iter()).unwrap());
        assert!(wal.append([(4, &b"four"[..])].into_iter()).unwrap());
        // Tear the last record: its payload's last byte never landed.
        let f = OpenOptions::new().write(true).open(&log).unwrap();
        f.write_all_at(b"X", wal.pos - 1).unwrap();
        drop(wal);

        let (mut wal, replayed) = reopen(&db, &log);
        assert_eq!(
            replayed,
            [1, 2, 3],
            "whole records replayed, the torn one not"
        );
        let (_, scanned) = Wal::open(&db, &log, None, true).unwrap();
        let rows = scanned.rows;
        assert_eq!(&*rows[2].1, b"three", "rows come back whole");

        // Records written before a checkpoint are never replayed again.
        checkpoint_with(&db, &mut wal, |_| Ok(())).unwrap();
        assert!(!wal.pending());
        assert!(wal.append([(5, &b"five"[..])].into_iter()).unwrap());
        checkpoint_with(&db, &mut wal, |_| Ok(())).unwrap();
        drop(wal);
        let (mut wal, replayed) = reopen(&db, &log);
        assert!(replayed.is_empty(), "{replayed:?}");

        // A record that does not fit is refused, so its batch is folded durably instead.
        let big = vec![0u8; usize::try_from(WAL_BYTES).unwrap()];
        assert!(!wal.append([(6, big.as_slice())].into_iter()).unwrap());
        assert!(!wal.pending());

        // A retracted record (its batch failed to commit) is not replayed; the one before it is.
        assert!(wal.append([(7, &b"seven"[..])].into_iter()).unwrap());
        assert!(wal.append([(8, &b"eight"[..])].into_iter()).unwrap());
        wal.retract().unwrap();
        drop(wal);
        let (_, replayed) = reopen(&db, &log);
        assert_eq!(replayed, [7]);
    }

    /// Direct appends rewrite the block a record starts in: every record, across block
    /// boundaries and after a retraction, comes back byte for byte.
    #[test]
    fn records_across_blocks_come_back_whole() {
        let (_dir, db, log) = data_file();
        let (mut wal, _) = reopen(&db, &log);
        if cfg!(target_os = "linux") && wal.direct.is_none() {
            eprintln!("note: this filesystem refuses O_DIRECT; testing buffered appends");
        }
        let mut kept = Vec::new();
        for seq in 1..=200u64 {
            // Sizes from 1 byte to well over a block, so records start and end anywhere.
            let len = usize::try_from(seq * 37 % 5000 + 1).unwrap();
            let row: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + seq) as u8).collect();
            assert!(wal.append([(seq, row.as_slice())].into_iter()).unwrap());
            if seq % 50 == 0 {
                wal.retract().unwrap();
            } else {
                kept.push((seq, row));
            }
        }
        drop(wal);
        let (_, scanned) = Wal::open(&db, &log, None, true).unwrap();
        let rows = scanned.rows;
        assert_eq!(rows.len(), kept.len());
        for ((seq, row), (want_seq, want)) in rows.iter().zip(&kept) {
            assert_eq!(seq, want_seq);
            assert_eq!(&**row, want.as_slice(), "row {seq}");
        }
    }
}

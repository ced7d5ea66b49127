//! Back to a data file that can commit, after storage failed (a full disk, a failing one).
//!
//! After an I/O error redb refuses every later write ("Previous I/O error occurred") until the
//! file is opened again, so a writer left alone stayed broken until a restart, while an update
//! that only touched the log made `/readyz` say 200. Now any failed batch makes the store
//! *suspect*: it reports unhealthy, and once a second the writer checks whether a write can
//! commit — a small durable redb transaction — and, when redb is the one refusing, opens the
//! file anew (first waiting for readers to let go of it, and only once the directory takes
//! writes again). Healthy again only when that commit succeeds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::Database;

use crate::store::error::StoreError;
use crate::store::faults::Faults;

/// How often a suspect store tries to commit again.
pub(super) const RETRY: Duration = Duration::from_secs(1);
/// How long a reopen waits for readers to let go of the old file.
const READERS: Duration = Duration::from_secs(2);

/// The open data file, shared by the writer and readers, replaceable by a reopen. `None`
/// while closed or between a failed file's release and its successor.
pub(super) type FileSlot = Arc<Mutex<Option<Arc<Database>>>>;

/// The current file, if open.
pub(super) fn current(slot: &FileSlot) -> Option<Arc<Database>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The data file and how to open it.
#[derive(Clone)]
pub struct DataFile {
    pub path: PathBuf,
    /// Simulated faults, through a fault-injecting backend (tests and drills).
    pub faults: Option<Arc<Faults>>,
    /// redb's page cache, bytes.
    pub page_cache: usize,
}

impl DataFile {
    /// Opens (or creates) the file.
    ///
    /// # Errors
    /// The file is in use, unreadable, or cannot be repaired.
    pub(super) fn open(&self) -> Result<Database, StoreError> {
        open(&self.path, self.faults.clone(), self.page_cache)
    }
}

fn open(path: &Path, faults: Option<Arc<Faults>>, cache: usize) -> Result<Database, StoreError> {
    let opened = match faults {
        None => redb::Builder::new().set_cache_size(cache).create(path),
        Some(faults) => std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(redb::DatabaseError::from)
            .and_then(|file| crate::store::faults::FaultyFile::new(file, faults))
            .and_then(|backend| {
                redb::Builder::new()
                    .set_cache_size(cache)
                    .create_with_backend(backend)
            }),
    };
    opened.map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            StoreError::Unavailable(format!("{} is in use by another process", path.display()))
        }
        other => StoreError::unavailable(other),
    })
}

/// The writer's state of health.
pub(super) struct Healing {
    pub file: DataFile,
    pub slot: FileSlot,
    /// A batch failed and no commit has succeeded since.
    pub suspect: bool,
    last_try: Instant,
}

impl Healing {
    pub(super) fn new(file: DataFile, slot: FileSlot) -> Healing {
        Healing {
            file,
            slot,
            suspect: false,
            last_try: Instant::now(),
        }
    }

    /// How long until the next try, when suspect.
    pub(super) fn due_in(&self) -> Option<Duration> {
        self.suspect
            .then(|| RETRY.saturating_sub(self.last_try.elapsed()))
    }

    /// When a try is due: a durable commit, and a reopen if redb refuses it. True when the
    /// store can commit again.
    pub(super) fn try_heal(&mut self) -> bool {
        if !self.suspect || self.last_try.elapsed() < RETRY {
            return !self.suspect;
        }
        self.last_try = Instant::now();
        if !self.directory_takes_writes() {
            return false;
        }
        if self.probe().is_ok() {
            tracing::warn!("storage commits again");
            self.suspect = false;
            return true;
        }
        if let Err(e) = self.reopen() {
            tracing::warn!(error = %e, "reopening the data file failed; trying again");
            return false;
        }
        match self.probe() {
            Ok(()) => {
                tracing::warn!(path = %self.file.path.display(), "storage commits again after reopening the data file");
                self.suspect = false;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "storage still refuses commits");
                false
            }
        }
    }

    /// A small file written and synced next to the data file: a full disk says no here first,
    /// before a reopen (which may need to write to repair the file) is tried.
    fn directory_takes_writes(&self) -> bool {
        if let Some(faults) = &self.file.faults
            && faults.check_data_file().is_err()
        {
            return false;
        }
        let probe = self.file.path.with_extension("probe");
        let ok = std::fs::write(&probe, b"probe")
            .and_then(|()| std::fs::File::open(&probe)?.sync_all())
            .is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    }

    /// A durable commit that changes nothing anyone reads.
    fn probe(&self) -> Result<(), StoreError> {
        let db = current(&self.slot).ok_or_else(|| StoreError::unavailable("no data file"))?;
        let txn = db.begin_write().map_err(StoreError::unavailable)?;
        txn.open_table(super::META)
            .map_err(StoreError::unavailable)?
            .insert("health_probe", 0)
            .map_err(StoreError::unavailable)?;
        txn.commit().map_err(StoreError::unavailable)
    }

    /// Lets go of the file (once readers have) and opens it again.
    fn reopen(&mut self) -> Result<(), StoreError> {
        let Some(old) = self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return self.open_into_slot();
        };
        let deadline = Instant::now() + READERS;
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if Arc::strong_count(&old) > 1 {
            // Someone still reads: put it back and try again later.
            *self
                .slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(old);
            return Err(StoreError::unavailable("readers still hold the data file"));
        }
        drop(old);
        self.open_into_slot()
    }

    fn open_into_slot(&mut self) -> Result<(), StoreError> {
        let db = self.file.open()?;
        *self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(db));
        Ok(())
    }
}

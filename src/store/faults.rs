//! Simulated storage faults, for tests and drills: a redb `StorageBackend` over the real file
//! whose writes and syncs fail on demand, the way a full disk or a dying one does. The whole
//! real commit path runs; only the bytes never land.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// The switch. Shared between a test and the store it opened.
#[derive(Debug, Default)]
pub struct Faults {
    fail_writes: AtomicBool,
    fail_data_file: AtomicBool,
}

impl Faults {
    /// While on, every write and sync fails with an I/O error.
    pub fn fail_writes(&self, on: bool) {
        self.fail_writes.store(on, Ordering::SeqCst);
    }

    /// While on, writes and syncs of the data file fail but the write-ahead log's succeed:
    /// a full disk as it looks to a server whose log was allocated in advance.
    pub fn fail_data_file(&self, on: bool) {
        self.fail_data_file.store(on, Ordering::SeqCst);
    }

    /// `Err` while writes are failing (also used by the write-ahead log).
    pub(crate) fn check(&self) -> io::Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            Err(io::Error::other("injected I/O failure"))
        } else {
            Ok(())
        }
    }

    /// `Err` while writes to the data file are failing.
    pub(crate) fn check_data_file(&self) -> io::Result<()> {
        self.check()?;
        if self.fail_data_file.load(Ordering::SeqCst) {
            Err(io::Error::other("injected I/O failure (data file)"))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
pub struct FaultyFile {
    inner: FileBackend,
    faults: Arc<Faults>,
}

impl FaultyFile {
    /// # Errors
    /// The file cannot be used by redb.
    pub fn new(file: File, faults: Arc<Faults>) -> Result<FaultyFile, redb::DatabaseError> {
        Ok(FaultyFile {
            inner: FileBackend::new(file)?,
            faults,
        })
    }
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.check_data_file()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.check_data_file()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults.check_data_file()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

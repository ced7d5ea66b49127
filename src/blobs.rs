//! Content-addressed blobs: bytes in files named by their SHA-256, references in the store.
//!
//! An upload streams into a temporary file while it is hashed, so memory stays flat however
//! big the blob; the file is fsynced and only then renamed to `ab/abcdef…` and referenced in
//! the store. Identical content lands on the same name, so it is stored once. The last
//! reference going removes the file.
//!
//! Placing a file and recording its reference, and dropping a reference and removing the
//! file, each happen under one lock: an upload and a delete of the same content can never
//! interleave so that a reference points at a removed file. Blob metadata changes are rare
//! next to document updates, so one lock costs nothing that matters.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::Error;
use crate::store::{BlobAdd, Store, StoreError};

/// An unfinished upload untouched this long is left over from a crash.
const STALE_UPLOAD: std::time::Duration = std::time::Duration::from_secs(3600);

/// Bytes buffered before each write to the temporary file.
const WRITE_BUFFER: usize = 256 * 1024;

pub struct Blobs {
    dir: PathBuf,
    /// Largest single blob (`BLOB_MAX_SIZE`).
    pub max_size: u64,
    /// Bytes each account may reference (`BLOB_QUOTA`).
    pub quota: u64,
    lock: tokio::sync::Mutex<()>,
}

/// An upload that is on disk, hashed and durable, but not yet referenced.
pub struct Received {
    temp: TempFile,
    pub sha256: String,
    pub size: u64,
}

/// Removes its file when dropped, unless it was renamed away.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `true` for a SHA-256 in the form we name blobs by: 64 lowercase hex digits.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn io_error(what: &str, e: &std::io::Error) -> Error {
    tracing::error!(error = %e, "{what}");
    Error::Unavailable
}

impl Blobs {
    /// Creates the directories and removes temporary files a crash may have left: those
    /// untouched for an hour (a directory shared by cluster nodes may hold uploads in
    /// progress on another node).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: PathBuf, max_size: u64, quota: u64) -> std::io::Result<Blobs> {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let stale = std::time::SystemTime::now() - STALE_UPLOAD;
        for entry in std::fs::read_dir(&tmp)?.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < stale);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Blobs {
            dir,
            max_size,
            quota,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Where the bytes of `sha256` live (a valid hash, see [`is_hash`]).
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2]).join(sha256)
    }

    /// Streams `body` into a temporary file, hashing as it goes; refuses past `limit` bytes
    /// (with `over`, the error to give) and, with `expect`, a body whose hash differs.
    ///
    /// # Errors
    /// `over` past the limit, `BadRequest` for a hash mismatch or a broken body,
    /// `Unavailable` when the disk fails.
    pub async fn receive<S, B, E>(
        &self,
        mut body: S,
        limit: u64,
        over: Error,
        expect: Option<&str>,
    ) -> Result<Received, Error>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let name = format!("{:016x}", rand::random::<u64>());
        let path = self.dir.join("tmp").join(name);
        let temp = TempFile(Some(path.clone()));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| io_error("creating a blob file", &e))?;
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
            let chunk = chunk.as_ref();
            size += chunk.len() as u64;
            if size > limit {
                return Err(over);
            }
            hasher.update(chunk);
            file.write_all(chunk)
                .await
                .map_err(|e| io_error("writing a blob file", &e))?;
        }
        file.flush()
            .await
            .map_err(|e| io_error("writing a blob file", &e))?;
        // Durable before any reference to it is.
        file.get_ref()
            .sync_all()
            .await
            .map_err(|e| io_error("syncing a blob file", &e))?;
        let sha256 = format!("{:x}", hasher.finalize());
        if let Some(expected) = expect
            && expected != sha256
        {
            return Err(Error::BadRequest(format!(
                "the body's SHA-256 is {sha256}, not {expected}"
            )));
        }
        Ok(Received { temp, sha256, size })
    }

    /// Moves `received` into place (unless the same content is there already) and records
    /// that `username` references it. Returns whether this account did not hold it before.
    ///
    /// # Errors
    /// `QuotaExceeded`, `Unavailable`.
    pub async fn commit(
        &self,
        store: &Store,
        username: &str,
        mut received: Received,
        content_type: &str,
    ) -> Result<bool, Error> {
        let _guard = self.lock.lock().await;
        let sha = received.sha256.clone();
        let held = store.holds_blob(&sha, vec![username.to_owned()]).await?;
        if held {
            return Ok(false);
        }
        let target = self.path(&sha);
        if !tokio::fs::try_exists(&target).await.unwrap_or(false) {
            let parent = target.parent().unwrap_or(&self.dir).to_owned();
            tokio::fs::create_dir_all(&parent)
                .await
                .map_err(|e| io_error("creating a blob directory", &e))?;
            let temp = received.temp.0.take().unwrap_or_default();
            tokio::fs::rename(&temp, &target)
                .await
                .map_err(|e| io_error("placing a blob file", &e))?;
            sync_dir(parent).await;
        }
        let added = store
            .blob_add(BlobAdd {
                username: username.to_owned(),
                sha256: sha.clone(),
                size: received.size,
                content_type: content_type.to_owned(),
                quota: self.quota,
            })
            .await;
        if let Err(e) = added {
            // Nobody references the bytes just placed: take them away again.
            if store.blob(&sha).await.ok().flatten().is_none() {
                let _ = tokio::fs::remove_file(&target).await;
            }
            return Err(e.into());
        }
        Ok(true)
    }

    /// Drops `username`'s reference to `sha256`, and the file with the last reference.
    ///
    /// # Errors
    /// `NotFound` if the account holds no reference to it, `Unavailable`.
    pub async fn remove(&self, store: &Store, username: &str, sha256: &str) -> Result<(), Error> {
        let _guard = self.lock.lock().await;
        store
            .blob_remove(username, sha256)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => Error::NotFound,
                other => other.into(),
            })?;
        if store.blob(sha256).await?.is_none() {
            match tokio::fs::remove_file(self.path(sha256)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // The reference is gone either way; a leftover file only costs space.
                Err(e) => tracing::warn!(error = %e, sha256, "removing a blob file failed"),
            }
        }
        Ok(())
    }
}

impl Blobs {
    /// Removes the files of those of `hashes` that nobody references any more (after an
    /// account and its references were deleted).
    pub async fn drop_unreferenced(&self, store: &Store, hashes: &[String]) {
        let _guard = self.lock.lock().await;
        for sha256 in hashes {
            if matches!(store.blob(sha256).await, Ok(None)) {
                match tokio::fs::remove_file(self.path(sha256)).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(error = %e, sha256, "removing a blob file failed"),
                }
            }
        }
    }
}

/// Makes a rename in `dir` durable. Best effort: some filesystems refuse to sync a directory.
async fn sync_dir(dir: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || {
        std::fs::File::open(Path::new(&dir)).and_then(|d| d.sync_all())
    })
    .await;
}

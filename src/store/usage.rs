//! Bytes per account across its documents (`MAX_ACCOUNT_BYTES`): what stops one account from
//! filling the disk with a thousand documents of the maximum size each.
//!
//! Kept in memory, per account with named documents, loaded from a listing the first time an
//! account's named document is written (or created) and kept current by every commit after
//! that (`Commits`). Sizes are the documents' serialized sizes, or for versions made by an
//! update the upper bound they carry (at most twice the size last measured), so the check
//! errs on the side of refusing. An account whose documents could not reach the quota even at
//! the maximum document size each is never summed. The check runs before an update is queued
//! and counts the update's own payload as growth; updates racing on several documents of one
//! account, or committed on other nodes in cluster mode, can each pass on the last room, so
//! the quota may be overshot by about one update per writer. The default document's own
//! updates are not checked (it has its size limit), but its size counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use moka::sync::Cache;

use super::backend::Listed;
use super::error::StoreError;
use super::model::Document;

/// Accounts whose usage is kept at once (the least recently written go first; they are
/// listed again when written next).
const ACCOUNTS: u64 = 10_000;

pub(super) struct AccountUsage {
    accounts: Cache<String, Arc<Mutex<Sizes>>>,
    quota: u64,
    per_doc: u64,
}

/// Each document's size, by key.
#[derive(Default)]
pub(super) struct Sizes {
    by_key: HashMap<String, u64>,
}

impl Sizes {
    fn total(&self) -> u64 {
        self.by_key.values().sum()
    }
}

impl AccountUsage {
    pub(super) fn new(quota: u64, per_doc: usize) -> AccountUsage {
        AccountUsage {
            accounts: Cache::new(ACCOUNTS),
            quota,
            per_doc: per_doc as u64,
        }
    }

    /// `None` if `owner` is not tracked; else whether its documents could reach the quota at
    /// all: with every one of them (and one more) at the maximum size, would they pass it?
    /// If not, no write needs measuring. One lookup, for the path every update takes.
    pub(super) fn could_fill(&self, owner: &str) -> Option<bool> {
        let sizes = self.accounts.get(owner)?;
        let sizes = sizes.lock().unwrap_or_else(|p| p.into_inner());
        Some(self.fillable(&sizes))
    }

    fn fillable(&self, sizes: &Sizes) -> bool {
        (sizes.by_key.len() as u64 + 1).saturating_mul(self.per_doc) > self.quota
    }

    /// Starts tracking `owner` from a listing of its named documents and the size of its
    /// default one.
    pub(super) fn load(&self, owner: &str, listed: &[Listed], default_size: u64) {
        let mut sizes = Sizes::default();
        sizes.by_key.insert(owner.to_owned(), default_size);
        for l in listed {
            sizes.by_key.insert(format!("{owner}/{}", l.name), l.size);
        }
        self.accounts
            .insert(owner.to_owned(), Arc::new(Mutex::new(sizes)));
    }

    /// Refuses a write to document `key` of `owner` that may add `growth` bytes (`replaces`:
    /// the document becomes about `growth` bytes, whatever it was) past the quota.
    ///
    /// # Errors
    /// `AccountFull`.
    pub(super) fn check(
        &self,
        owner: &str,
        key: &str,
        growth: u64,
        replaces: bool,
    ) -> Result<(), StoreError> {
        let Some(sizes) = self.accounts.get(owner) else {
            return Ok(());
        };
        let sizes = sizes.lock().unwrap_or_else(|p| p.into_inner());
        if !self.fillable(&sizes) {
            return Ok(());
        }
        let current = sizes.by_key.get(key).copied().unwrap_or(0);
        let after = sizes.total() - if replaces { current } else { 0 } + growth;
        if after > self.quota {
            return Err(StoreError::AccountFull { quota: self.quota });
        }
        Ok(())
    }

    /// A version of a document of a tracked account committed: its size is now this one's.
    /// Only accounts that could fill their quota keep sizes current: the others are listed
    /// again by the `create` that takes them past that point (`Store::create_doc`).
    pub(super) fn committed(&self, doc: &Document) {
        let Some(sizes) = self.accounts.get(doc.owner()) else {
            return;
        };
        let mut sizes = sizes.lock().unwrap_or_else(|p| p.into_inner());
        if !self.fillable(&sizes) {
            return;
        }
        let size = match doc.size_bound() {
            Some(bound) => bound as u64,
            None => super::apply::serialized_len(doc).map_or(0, |n| n as u64),
        };
        sizes.by_key.insert(doc.key().into_owned(), size);
    }

    /// A new document of a tracked account: counted whatever the account's size (the count
    /// is what decides whether sizes matter).
    pub(super) fn created(&self, doc: &Document) {
        if let Some(sizes) = self.accounts.get(doc.owner()) {
            let size = super::apply::serialized_len(doc).map_or(0, |n| n as u64);
            let mut sizes = sizes.lock().unwrap_or_else(|p| p.into_inner());
            sizes.by_key.insert(doc.key().into_owned(), size);
        }
    }

    /// Document `key` is gone.
    pub(super) fn deleted(&self, owner: &str, key: &str) {
        if let Some(sizes) = self.accounts.get(owner) {
            let mut sizes = sizes.lock().unwrap_or_else(|p| p.into_inner());
            sizes.by_key.remove(key);
        }
    }

    /// The account is gone.
    pub(super) fn forget(&self, owner: &str) {
        self.accounts.invalidate(owner);
    }
}

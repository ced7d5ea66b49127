//! One batch's writes applied against redb's tables, each checked against the state the
//! writes before it left. The writer thread (`writer.rs`) makes the result durable.

use std::collections::HashMap;
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, Table};

use super::blobs::BlobTables;
use super::durable::{DurableLog, UpdateRow};
use super::jobs::Outcome;
use super::journal;
use super::{DOCS, LOG, LOG_BASE, REVOKED, SESSIONS, USERS, decode, flag_table, sharing};
use crate::names::named_range;
use crate::store::apply::{Limits, apply};
use crate::store::backend::{Committed, Write};
use crate::store::error::StoreError;
use crate::store::model::{Document, Flag, UserRecord, share_changes};

/// The batch's tables, opened on first use: an update to a document with unfolded updates
/// (its newest version in memory) touches none of them, and opening all ten per batch cost
/// the writer more than the update itself.
pub(super) struct Tables<'t> {
    pub(super) db: &'t Database,
    /// The batch's write transaction: only batches with writes other than updates have one.
    pub(super) txn: Option<&'t redb::WriteTransaction>,
    /// For reading documents not in memory, when there is no write transaction.
    pub(super) read: Option<ReadTransaction>,
    pub(super) users: Option<Table<'t, &'static str, &'static [u8]>>,
    pub(super) docs: Option<Table<'t, &'static str, &'static [u8]>>,
    pub(super) log: Option<Table<'t, (&'static str, u64), &'static [u8]>>,
    /// Updates committed and not folded yet, and the newest version of their documents (the
    /// batch's own are in `updates` and `latest`).
    pub(super) durable: &'t DurableLog,
    /// This batch's updates, in order, for the log.
    pub(super) updates: Vec<UpdateRow>,
    pub(super) bases: Option<Table<'t, &'static str, &'static [u8]>>,
    pub(super) revoked: Option<Table<'t, &'static str, u64>>,
    pub(super) sessions: Option<Table<'t, (&'static str, &'static str), &'static [u8]>>,
    pub(super) blobs: Option<BlobTables<'t>>,
    /// Documents as left by earlier writes of this batch (saves re-parsing them).
    pub(super) latest: HashMap<String, Arc<Document>>,
    /// Accounts deleted by earlier writes of this batch: later updates to them must not
    /// find them anywhere.
    pub(super) deleted: std::collections::HashSet<String>,
    /// An update changed access lists: the batch is folded at once, which keeps the sharing
    /// index (written by folds) current for reads after the ack.
    pub(super) fold_now: bool,
    pub(super) now: String,
}

/// The batch's write transaction: every write but an update has one.
pub(super) fn write_txn(
    txn: Option<&redb::WriteTransaction>,
) -> Result<&redb::WriteTransaction, StoreError> {
    txn.ok_or_else(|| StoreError::unavailable("no write transaction"))
}

/// `slot`'s table, opened in `txn` on first use.
pub(super) fn open<'s, 't, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: Option<&'t redb::WriteTransaction>,
    slot: &'s mut Option<Table<'t, K, V>>,
    table: redb::TableDefinition<'static, K, V>,
) -> Result<&'s mut Table<'t, K, V>, StoreError> {
    if slot.is_none() {
        *slot = Some(
            write_txn(txn)?
                .open_table(table)
                .map_err(StoreError::unavailable)?,
        );
    }
    slot.as_mut()
        .ok_or_else(|| StoreError::unavailable("table not open"))
}

impl<'t> Tables<'t> {
    /// Applies one write. The outer `Err` is a storage failure (fails the batch); the inner
    /// one a refusal (this write only).
    pub(super) fn apply(
        &mut self,
        write: &mut Write,
        retired: &mut Option<Arc<Document>>,
        limits: &Limits,
    ) -> Result<Outcome, StoreError> {
        match write {
            Write::Update(update, prepared) => {
                let Some(current) = self.current(&update.target)? else {
                    return Ok(Err(StoreError::Unauthorized));
                };
                if let Some((op_id, after)) = crate::store::ops::lookup(update, &current) {
                    let by = &update.by;
                    if let Some(version) = self.committed_op(&update.target, by, op_id, after)? {
                        return Ok(Err(StoreError::AlreadyApplied { version }));
                    }
                }
                // `apply` is pure and writes nothing, so if a bug in it (or in a patch library)
                // panics, only this update fails: the writer thread, and every other writer's
                // update, must survive any input.
                let attempt = match prepared.take() {
                    Some(p) if Arc::ptr_eq(&p.base, &current) => Ok(Ok(p.applied)),
                    _ => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        apply(&current, update, limits, &self.now)
                    })),
                };
                let applied = match attempt {
                    Ok(Ok(applied)) => applied,
                    Ok(Err(refused)) => return Ok(Err(refused)),
                    Err(_) => {
                        tracing::error!(target = %update.target, "applying an update panicked");
                        return Ok(Err(StoreError::Invalid(
                            "this update cannot be applied".into(),
                        )));
                    }
                };
                // One row of the log's record; the document and its change-log entry are
                // written when it is folded (`durable.rs`).
                let doc = Arc::new(applied.doc);
                self.updates.push(UpdateRow {
                    name: update.target.clone(),
                    version: applied.entry.version,
                    entry: applied.entry_json,
                    doc: doc.clone(),
                });
                self.latest.insert(update.target.clone(), doc.clone());
                let sets_access = update.collaborators.is_some() || update.readers.is_some();
                self.fold_now |= sets_access;
                let shares = if sets_access {
                    share_changes(Some(&current), Some(&doc))
                } else {
                    Vec::new()
                };
                *retired = Some(current);
                Ok(Ok(Some(Arc::new(Committed {
                    doc,
                    entry: Some(applied.entry),
                    created: applied.created,
                    shares,
                }))))
            }
            Write::CreateUser { user, doc, session } => {
                let name = user.username.as_str();
                if self.user_exists(name)? {
                    return Ok(Err(StoreError::UsernameTaken));
                }
                let record = serde_json::to_vec(user).map_err(StoreError::unavailable)?;
                let bytes = serde_json::to_vec(doc).map_err(StoreError::unavailable)?;
                open(self.txn, &mut self.users, USERS)?
                    .insert(name, record.as_slice())
                    .map_err(StoreError::unavailable)?;
                open(self.txn, &mut self.docs, DOCS)?
                    .insert(name, bytes.as_slice())
                    .map_err(StoreError::unavailable)?;
                // Version 0 is where replaying the log starts.
                open(self.txn, &mut self.bases, LOG_BASE)?
                    .insert(name, bytes.as_slice())
                    .map_err(StoreError::unavailable)?;
                if let Some(session) = session {
                    self.put_session(session)?;
                }
                // An imported document may come shared already.
                if !doc.metadata.collaborators.is_empty() || !doc.metadata.readers.is_empty() {
                    sharing::reindex(write_txn(self.txn)?, name, Some(doc))?;
                }
                let doc = Arc::new(doc.clone());
                self.latest.insert(user.username.clone(), doc.clone());
                Ok(Ok(Some(Arc::new(Committed {
                    doc,
                    entry: None,
                    created: true,
                    shares: Vec::new(),
                }))))
            }
            Write::SetFlag { username, flag, on } => {
                if !self.user_exists(username)? {
                    return Ok(Err(StoreError::Unauthorized));
                }
                // Flags are rare writes: open their table only when one comes.
                let mut table = write_txn(self.txn)?
                    .open_table(flag_table(*flag))
                    .map_err(StoreError::unavailable)?;
                if *on {
                    table.insert(username.as_str(), ())
                } else {
                    table.remove(username.as_str()).map(|_| None)
                }
                .map_err(StoreError::unavailable)?;
                Ok(Ok(None))
            }
            Write::SetPassword { username, hash } => {
                let Some(mut user) = self.user(username)? else {
                    return Ok(Err(StoreError::Unauthorized));
                };
                user.password_hash = Some(hash.clone());
                let record = serde_json::to_vec(&user).map_err(StoreError::unavailable)?;
                open(self.txn, &mut self.users, USERS)?
                    .insert(username.as_str(), record.as_slice())
                    .map_err(StoreError::unavailable)?;
                Ok(Ok(None))
            }
            Write::BlobAdd(add) => {
                if !self.user_exists(&add.username)? {
                    return Ok(Err(StoreError::Unauthorized));
                }
                let now = self.now.clone();
                let added = self.blobs()?.add(add, &now)?;
                Ok(added.map(|()| None))
            }
            Write::BlobRemove { username, sha256 } => {
                Ok(self.blobs()?.remove(username, sha256)?.map(|()| None))
            }
            Write::Session(session) => {
                self.put_session(session)?;
                Ok(Ok(None))
            }
            Write::DeleteUser { username } => self.delete_user(username),
            Write::CreateDoc { doc, max_docs } => self.create_doc(doc, *max_docs),
            Write::DeleteDoc { key } => self.delete_doc(key),
            Write::BlobMention { doc, sha256, by } => {
                Ok(self.blobs()?.mention(doc, sha256, by)?.map(|()| None))
            }
            Write::Audit(line) => {
                self.audit(line)?;
                Ok(Ok(None))
            }
            Write::Webhook { id, record, expect } => Ok(self
                .webhook(id, record.as_deref(), expect.as_deref())?
                .map(|()| None)),
            Write::Revoke {
                username,
                sid,
                expires,
            } => {
                open(self.txn, &mut self.revoked, REVOKED)?
                    .insert(sid.as_str(), *expires)
                    .map_err(StoreError::unavailable)?;
                open(self.txn, &mut self.sessions, SESSIONS)?
                    .remove((username.as_str(), sid.as_str()))
                    .map_err(StoreError::unavailable)?;
                Ok(Ok(None))
            }
        }
    }

    /// Removes an account's every row. Its journal rows must have been folded first (the
    /// writer folds before a batch with a deletion): rows left in memory would otherwise
    /// replay onto a later account of the same name. This batch's own rows for it go.
    fn delete_user(&mut self, name: &str) -> Result<Outcome, StoreError> {
        if !self.user_exists(name)? {
            return Ok(Err(StoreError::NotFound));
        }
        if !self.durable.unfolded_entries(name)?.is_empty() {
            return Ok(Err(StoreError::unavailable(
                "the journal could not be folded before a deletion",
            )));
        }
        let (from, to) = named_range(name);
        let mut named = Vec::new();
        for row in open(self.txn, &mut self.docs, DOCS)?
            .range(from.as_str()..to.as_str())
            .map_err(StoreError::unavailable)?
        {
            named.push(row.map_err(StoreError::unavailable)?.0.value().to_owned());
        }
        for key in named.iter().map(String::as_str).chain([name]) {
            self.remove_doc(key)?;
        }
        // Its rows in `shared_with` stay: the documents still list it until
        // `deletion::leave_access_lists` updates them, and finds them there.
        let txn = write_txn(self.txn)?;
        open(self.txn, &mut self.users, USERS)?
            .remove(name)
            .map_err(StoreError::unavailable)?;
        open(self.txn, &mut self.sessions, SESSIONS)?
            .retain_in((name, "")..=(name, "\u{10ffff}"), |_, _| false)
            .map_err(StoreError::unavailable)?;
        for flag in [Flag::Disabled, Flag::Admin] {
            txn.open_table(flag_table(flag))
                .map_err(StoreError::unavailable)?
                .remove(name)
                .map_err(StoreError::unavailable)?;
        }
        let held = self.blobs()?.held_by(name)?;
        for sha256 in held {
            // Refused only if the reference vanished meanwhile, which is the goal anyway.
            let _ = self.blobs()?.remove(name, &sha256)?;
        }
        self.blobs()?.forget_usage(name)?;
        self.blobs()?.forget_mentions(name)?;
        Ok(Ok(None))
    }

    /// Creates a named document: its `docs` row, its log base (version 0) and its sharing
    /// rows, in the batch's transaction.
    fn create_doc(&mut self, doc: &Document, max_docs: usize) -> Result<Outcome, StoreError> {
        let key = doc.key().into_owned();
        if !self.user_exists(doc.owner())? {
            return Ok(Err(StoreError::Unauthorized));
        }
        if self.current(&key)?.is_some() {
            return Ok(Err(StoreError::AlreadyExists));
        }
        let docs = open(self.txn, &mut self.docs, DOCS)?;
        let (from, to) = named_range(doc.owner());
        let held = docs
            .range(from.as_str()..to.as_str())
            .map_err(StoreError::unavailable)?
            .count();
        if held >= max_docs {
            return Ok(Err(StoreError::TooManyDocuments { limit: max_docs }));
        }
        let bytes = serde_json::to_vec(doc).map_err(StoreError::unavailable)?;
        docs.insert(key.as_str(), bytes.as_slice())
            .map_err(StoreError::unavailable)?;
        open(self.txn, &mut self.bases, LOG_BASE)?
            .insert(key.as_str(), bytes.as_slice())
            .map_err(StoreError::unavailable)?;
        // A name deleted earlier in this batch: its old log went with it.
        self.deleted.remove(&key);
        sharing::reindex(write_txn(self.txn)?, &key, Some(doc))?;
        let doc = Arc::new(doc.clone());
        self.latest.insert(key, doc.clone());
        Ok(Ok(Some(Arc::new(Committed {
            shares: share_changes(None, Some(&doc)),
            doc,
            entry: None,
            created: true,
        }))))
    }

    /// Removes a named document's every row. As with accounts, its journal rows were folded
    /// first (the writer folds before a batch with a deletion).
    fn delete_doc(&mut self, key: &str) -> Result<Outcome, StoreError> {
        if self.current(key)?.is_none() {
            return Ok(Err(StoreError::NotFound));
        }
        if !self.durable.unfolded_entries(key)?.is_empty() {
            return Ok(Err(StoreError::unavailable(
                "the journal could not be folded before a deletion",
            )));
        }
        self.remove_doc(key)?;
        Ok(Ok(None))
    }

    /// Every row of document `key`: itself, its log, its blob mentions and sharing rows.
    fn remove_doc(&mut self, key: &str) -> Result<(), StoreError> {
        self.updates.retain(|u| u.name != key);
        self.latest.remove(key);
        self.deleted.insert(key.to_owned());
        open(self.txn, &mut self.docs, DOCS)?
            .remove(key)
            .map_err(StoreError::unavailable)?;
        open(self.txn, &mut self.bases, LOG_BASE)?
            .remove(key)
            .map_err(StoreError::unavailable)?;
        open(self.txn, &mut self.log, LOG)?
            .retain_in((key, 0)..=(key, u64::MAX), |_, _| false)
            .map_err(StoreError::unavailable)?;
        self.blobs()?.forget_mentions(key)?;
        sharing::reindex(write_txn(self.txn)?, key, None)
    }

    fn blobs(&mut self) -> Result<&mut BlobTables<'t>, StoreError> {
        if self.blobs.is_none() {
            self.blobs = Some(BlobTables::open(write_txn(self.txn)?)?);
        }
        self.blobs
            .as_mut()
            .ok_or_else(|| StoreError::unavailable("table not open"))
    }

    fn user_exists(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self.latest.contains_key(name)
            || open(self.txn, &mut self.users, USERS)?
                .get(name)
                .map_err(StoreError::unavailable)?
                .is_some())
    }

    fn user(&mut self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        match open(self.txn, &mut self.users, USERS)?
            .get(name)
            .map_err(StoreError::unavailable)?
        {
            Some(bytes) => Ok(Some(decode(bytes.value(), name)?)),
            None => Ok(None),
        }
    }

    fn put_session(
        &mut self,
        session: &crate::store::model::SessionRecord,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(session).map_err(StoreError::unavailable)?;
        open(self.txn, &mut self.sessions, SESSIONS)?
            .insert(
                (session.username.as_str(), session.id.as_str()),
                bytes.as_slice(),
            )
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    /// A read snapshot for a batch without a write transaction. Only the writer commits, so
    /// a snapshot taken now holds every commit so far.
    pub(super) fn snapshot(&mut self) -> Result<&ReadTransaction, StoreError> {
        if self.read.is_none() {
            self.read = Some(self.db.begin_read().map_err(StoreError::unavailable)?);
        }
        self.read
            .as_ref()
            .ok_or_else(|| StoreError::unavailable("no snapshot"))
    }

    fn current(&mut self, name: &str) -> Result<Option<Arc<Document>>, StoreError> {
        if self.deleted.contains(name) {
            return Ok(None);
        }
        if let Some(doc) = self.latest.get(name) {
            return Ok(Some(doc.clone()));
        }
        // A document with unfolded updates: the version the last of them made. Otherwise it
        // is exactly what `docs` and `changelog` hold, parsed once per fold at most.
        if let Some(doc) = self.durable.newest(name) {
            return Ok(Some(doc.clone()));
        }
        let unfolded = self.durable.unfolded_entries(name)?;
        let doc = if let Some(txn) = self.txn {
            let docs = open(Some(txn), &mut self.docs, DOCS)?;
            let log = open(Some(txn), &mut self.log, LOG)?;
            journal::document(&*docs, &*log, name, &unfolded)?
        } else {
            let read = self.snapshot()?;
            let docs = read.open_table(DOCS).map_err(StoreError::unavailable)?;
            let log = read.open_table(LOG).map_err(StoreError::unavailable)?;
            journal::document(&docs, &log, name, &unfolded)?
        };
        Ok(doc.map(Arc::new))
    }
}

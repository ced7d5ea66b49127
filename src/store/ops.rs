//! Operation ids: an update a client retries after losing the answer (its socket dropped
//! between the commit and the reply, an offline outbox resending) is answered with the
//! version it made the first time instead of being applied twice.
//!
//! Why no table of ids: the change log already records each version's `opId`, for as long as
//! it keeps the version (`CHANGELOG_RETAIN`, `CHANGELOG_MAX_AGE`), in both stores and on
//! every node; an index beside it would be a second truth to keep in step through folds,
//! trims, deletions and restores. And the log need be read only when a retry is possible:
//! an update based on the document's current version cannot have committed before (it
//! would have made that version older), so the common case, an update that applies, reads
//! nothing. Only an update that would otherwise be refused as stale, or one with no base
//! version at all (REST without `If-Match`), looks through the entries after its base.

use super::error::StoreError;
use super::model::{Access, Document, Update, Version};

/// Longest operation id, in bytes.
pub const MAX_OP_ID: usize = 64;

/// Checks a client's operation id: 1–64 of `A-Z a-z 0-9 - _ . :` (a UUID, a ULID, a
/// counter with a client prefix). No character JSON escapes, so an id is found in a stored
/// entry exactly as it was sent.
///
/// # Errors
/// Why it is refused, for the client.
pub fn validate(op_id: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if op_id.is_empty() || op_id.len() > MAX_OP_ID || !op_id.chars().all(ok) {
        return Err(format!(
            "an operation id is 1-{MAX_OP_ID} characters of A-Z, a-z, 0-9, '-', '_', '.', ':'"
        ));
    }
    Ok(())
}

/// Where a retry of `update` could be in `current`'s log: its `opId` and the version its
/// log entry would come after. `None` when it cannot be a retry of a committed update (no
/// id, based on the current version or on one not made yet), or when the caller may not
/// write (it is refused as a stranger first, learning nothing).
pub fn lookup<'u>(update: &'u Update, current: &Document) -> Option<(&'u str, Version)> {
    let op_id = update.op_id.as_deref()?;
    if update.access(current) < Access::Write {
        return None;
    }
    match update.base {
        Some(base) if base >= current.version() => None,
        Some(base) => Some((op_id, base)),
        None => Some((op_id, 0)),
    }
}

/// The version the stored log entry `entry` made, if it is `by`'s operation `op_id`. Most
/// entries are passed over on a byte search, without being parsed.
///
/// # Errors
/// `Unavailable` on an entry that holds the id but is not a log entry.
pub fn committed_as(entry: &[u8], by: &str, op_id: &str) -> Result<Option<Version>, StoreError> {
    /// The fields that identify an operation; the rest of the entry is skipped.
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ident<'a> {
        version: Version,
        #[serde(borrow)]
        by: std::borrow::Cow<'a, str>,
        op_id: Option<&'a str>,
    }
    let needle = format!("\"opId\":\"{op_id}\"");
    if memchr::memmem::find(entry, needle.as_bytes()).is_none() {
        return Ok(None);
    }
    let ident: Ident = serde_json::from_slice(entry)
        .map_err(|e| StoreError::Unavailable(format!("corrupt change-log entry: {e}")))?;
    Ok((ident.op_id == Some(op_id) && ident.by == by).then_some(ident.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{LogEntry, Op};

    fn entry(version: Version, by: &str, op_id: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&LogEntry {
            version,
            at: "2026-12-07T00:00:00Z".into(),
            by: by.into(),
            op: Op {
                // An id inside the data is not the entry's id.
                merge: serde_json::json!({"note": "\"opId\":\"a1\""})
                    .as_object()
                    .cloned(),
                ..Op::default()
            },
            op_id: op_id.map(str::to_owned),
        })
        .expect("an entry")
    }

    #[test]
    fn an_entry_is_found_by_its_id_and_author_only() {
        assert_eq!(
            committed_as(&entry(7, "ann", Some("a1")), "ann", "a1"),
            Ok(Some(7))
        );
        assert_eq!(
            committed_as(&entry(7, "ann", Some("a1")), "bob", "a1"),
            Ok(None)
        );
        assert_eq!(
            committed_as(&entry(7, "ann", Some("a12")), "ann", "a1"),
            Ok(None)
        );
        assert_eq!(committed_as(&entry(7, "ann", None), "ann", "a1"), Ok(None));
        assert!(committed_as(br#"{"opId":"a1"}"#, "ann", "a1").is_err());
    }

    #[test]
    fn ids_are_short_and_plain() {
        for good in ["a", "0c2f-11:x_y.z", &"x".repeat(64)] {
            assert!(validate(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a\"b", "a\\b", "é", &"x".repeat(65)] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_stale_or_unversioned_update_can_be_a_retry() {
        let mut doc = Document::new("ann", "t");
        doc.metadata.version = 5;
        let update = |base, op: Option<&str>, by: &str| Update {
            target: "ann".into(),
            by: by.into(),
            base,
            edit: None,
            collaborators: None,
            readers: None,
            op_id: op.map(str::to_owned),
            as_admin: false,
        };
        let u = update(Some(3), Some("a1"), "ann");
        assert_eq!(lookup(&u, &doc), Some(("a1", 3)));
        let u = update(None, Some("a1"), "ann");
        assert_eq!(lookup(&u, &doc), Some(("a1", 0)));
        for u in [
            update(Some(5), Some("a1"), "ann"),
            update(Some(6), Some("a1"), "ann"),
            update(Some(3), None, "ann"),
            update(Some(3), Some("a1"), "eve"),
        ] {
            assert_eq!(lookup(&u, &doc), None, "{u:?}");
        }
    }
}

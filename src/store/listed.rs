//! A named document as `list` shows it: its metadata exactly as `fetch` sends it, plus its
//! stored size, taken from the stored row without building the document.
//!
//! Why: decoding each row into a `Document`'s metadata and serializing an entry from it
//! allocated a dozen small strings per entry and parsed the whole row (`userdata` skipped but
//! scanned), ≈ 2.5 µs per entry on 200-byte documents and growing with their size
//! (BENCHMARKS.md, h)). A stored document starts with its metadata (`Document`'s field
//! order), so an entry is that prefix copied behind a `size`: the row after it is never read.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::StoreError;
use super::model::Metadata;

/// One entry of `list`: its name and stored size (for paging and quotas) and its JSON,
/// `{"size": …, <the metadata's fields>}`.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    json: Box<RawValue>,
}

impl Listed {
    /// The entry of the stored document `row` at `key` (`owner/name`).
    ///
    /// # Errors
    /// `Unavailable` on a row that is not a stored document.
    pub fn from_row(key: &str, row: &[u8]) -> Result<Self, StoreError> {
        /// A stored document whose metadata is not first (no build writes one).
        #[derive(Deserialize)]
        struct Stored<'a> {
            #[serde(borrow)]
            metadata: &'a RawValue,
        }
        const PREFIX: &[u8] = br#"{"metadata":"#;
        let corrupt = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("corrupt record {key}: {e}"))
        };
        let metadata = match row.strip_prefix(PREFIX) {
            // One value read; the rest, `userdata`, is left unread.
            Some(rest) => <&RawValue>::deserialize(&mut serde_json::Deserializer::from_slice(rest)),
            None => serde_json::from_slice::<Stored>(row).map(|s| s.metadata),
        }
        .map_err(|e| corrupt(&e))?;
        let fields = metadata
            .get()
            .strip_prefix('{')
            .filter(|f| f.len() > 1)
            .ok_or_else(|| corrupt(&"metadata is not an object with fields"))?;
        let size = row.len() as u64;
        let json = RawValue::from_string(format!("{{\"size\":{size},{fields}"))
            .map_err(|e| corrupt(&e))?;
        let name = key.split_once('/').map_or(key, |(_, name)| name).to_owned();
        Ok(Self { name, size, json })
    }

    /// The entry of a document in hand, `size` bytes serialized.
    ///
    /// # Errors
    /// `Unavailable` on a default document (it has no name).
    pub fn of(metadata: &Metadata, size: u64) -> Result<Self, StoreError> {
        #[derive(Serialize)]
        struct Entry<'a> {
            size: u64,
            #[serde(flatten)]
            metadata: &'a Metadata,
        }
        let name = metadata
            .name
            .clone()
            .ok_or_else(|| StoreError::unavailable("a listed document without a name"))?;
        let json = serde_json::value::to_raw_value(&Entry { size, metadata })
            .map_err(StoreError::unavailable)?;
        Ok(Self { name, size, json })
    }
}

impl Serialize for Listed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::Document;
    use serde_json::json;

    fn named() -> Document {
        serde_json::from_value(json!({
            "metadata": {"username": "ann", "name": "groceries", "incarnation": "x1",
                "version": 3, "collaborators": ["bob"], "readers": ["c\"d"],
                "createdAt": "2026-12-01T00:00:00Z",
                "lastUpdate": {"at": "2026-12-02T00:00:00Z", "by": "bob"}},
            "userdata": {"milk": {"deep": [1, 2, 3]}}
        }))
        .expect("a document")
    }

    #[test]
    fn an_entry_from_a_row_is_the_entry_from_the_document() {
        let doc = named();
        let row = serde_json::to_vec(&doc).expect("serialized");
        let from_row = Listed::from_row("ann/groceries", &row).expect("listed");
        let of = Listed::of(&doc.metadata, row.len() as u64).expect("listed");
        let mut expect = serde_json::to_value(&doc.metadata).expect("json");
        expect["size"] = json!(row.len());
        for l in [&from_row, &of] {
            assert_eq!(serde_json::to_value(l).expect("json"), expect);
            assert_eq!((l.name.as_str(), l.size), ("groceries", row.len() as u64));
        }
    }

    #[test]
    fn userdata_is_not_read_and_a_broken_metadata_is_an_error() {
        let row = serde_json::to_vec(&named()).expect("serialized");
        // Whatever follows the metadata is never parsed…
        let cut = row.len() - 10;
        assert!(Listed::from_row("ann/groceries", &row[..cut]).is_ok());
        // …but the metadata is, and must be an object with fields.
        for broken in [&row[..30], br#"{"metadata":{}}"#, br#"{"metadata":[1]}"#] {
            assert!(
                matches!(
                    Listed::from_row("ann/groceries", broken),
                    Err(StoreError::Unavailable(_))
                ),
                "{}",
                String::from_utf8_lossy(broken)
            );
        }
        // Metadata not first still lists.
        let reordered = br#"{"userdata":{},"metadata":{"name":"n","version":1}}"#;
        let l = Listed::from_row("ann/n", reordered).expect("listed");
        assert_eq!(
            serde_json::to_value(&l).expect("json"),
            json!({"size": reordered.len(), "name": "n", "version": 1})
        );
    }
}

//! Finding blob hashes in what an update writes, so that the writer's holding of a blob can
//! be recorded for the document it wrote the hash into ([`super::Write::BlobMention`]).
//!
//! A hash counts as written when a string holds a run of exactly 64 lowercase hex digits
//! (`"blob:9f86…"`, a URL ending in one, the bare hash). Longer runs count as no hash: the
//! rule fails closed, as it does for hashes past [`MAX_MENTIONS`] in one update.

use serde_json::Value;

use super::model::Edit;
use super::paths::PathEdit;

/// Distinct hashes looked at per update; a document that embeds more at once shares the
/// first ones only.
pub const MAX_MENTIONS: usize = 32;
const HASH_LEN: usize = 64;

/// The distinct blob hashes `edit` writes, at most [`MAX_MENTIONS`].
pub fn blob_hashes(edit: &Edit) -> Vec<String> {
    let mut found = Vec::new();
    match edit {
        Edit::Replace(map) | Edit::Merge(map) => map.values().for_each(|v| scan(v, &mut found)),
        Edit::Append(event) => scan(event, &mut found),
        Edit::JsonPatch(patch) => {
            if let Ok(value) = serde_json::to_value(patch) {
                scan(&value, &mut found);
            }
        }
        Edit::Paths(edits) => {
            for edit in edits {
                if let PathEdit::Put { value, .. } | PathEdit::Patch { patch: value, .. } = edit {
                    scan(value, &mut found);
                }
            }
        }
    }
    found
}

fn scan(value: &Value, found: &mut Vec<String>) {
    if found.len() >= MAX_MENTIONS {
        return;
    }
    match value {
        Value::String(s) if s.len() >= HASH_LEN => hex_runs(s, found),
        Value::Array(items) => items.iter().for_each(|v| scan(v, found)),
        Value::Object(map) => map.values().for_each(|v| scan(v, found)),
        _ => {}
    }
}

fn hex_runs(s: &str, found: &mut Vec<String>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let is_hex = |b: &u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
        let len = bytes[start..].iter().take_while(|b| is_hex(b)).count();
        if len == HASH_LEN {
            let hash = &s[start..start + HASH_LEN];
            if found.len() < MAX_MENTIONS && !found.iter().any(|f| f == hash) {
                found.push(hash.to_owned());
            }
        }
        start += len.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_are_found_where_a_document_would_mention_them() {
        let h = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let edit = Edit::Merge(
            json!({"avatar": format!("blob:{h}"), "list": [{"url": format!("/v1/blobs/{h}?doc=ann")}],
                   "long": format!("{h}{h}"), "upper": h.to_uppercase(), "short": &h[..63]})
            .as_object()
            .unwrap()
            .clone(),
        );
        assert_eq!(blob_hashes(&edit), vec![h.to_owned()]);
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/a", "value": h}])).unwrap();
        assert_eq!(blob_hashes(&Edit::JsonPatch(patch)), vec![h.to_owned()]);
    }
}

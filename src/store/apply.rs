//! Applying an update to a document, and projecting a document onto field paths.
//!
//! Pure functions over the model, so the writer can run them inside its transaction against
//! the state left by earlier updates of the same batch, and so they can be fuzzed alone.

use serde_json::{Map, Value};

pub use super::bounds::{Limits, depth, serialized_len, value_depth, within_bounds};
use super::bounds::{check_limits, patch_within};
use super::error::StoreError;
use super::model::{Access, Bounds, Document, Edit, LastUpdate, LogEntry, Op, Update};
use super::paths::apply_paths_to;
use super::streams;

/// A committed result: the new document and the change-log entry describing it, with the
/// entry already serialized (what every backend writes for an update, made once here, off the
/// writer thread when the update was prepared ahead).
pub struct Applied {
    pub doc: Document,
    pub entry: LogEntry,
    pub entry_json: Vec<u8>,
    /// A path edit created its key (REST answers 201).
    pub created: bool,
}

/// Checks `update` against `current` and produces the next version.
///
/// Order matters: access is checked before the version so a stranger learns nothing about a
/// document, not even its version.
pub fn apply(
    current: &Document,
    update: &Update,
    limits: &Limits,
    now: &str,
) -> Result<Applied, StoreError> {
    apply_to(current, None, update, limits, now)
}

/// [`apply`], editing `working` in place when given: a copy of `current.userdata` (equal to
/// it) that the caller owns, so the next version need not be copied from `current`'s tree.
/// It is consumed either way.
pub fn apply_to(
    current: &Document,
    working: Option<Map<String, Value>>,
    update: &Update,
    limits: &Limits,
    now: &str,
) -> Result<Applied, StoreError> {
    let userdata_copy = move || working.unwrap_or_else(|| current.userdata.clone());
    let access = update.access(current);
    if access < Access::Write {
        return Err(StoreError::Unauthorized);
    }
    let owner = current.owner();
    let collaborators = update
        .collaborators
        .as_deref()
        .map(|list| normalize(list, owner));
    let readers = update.readers.as_deref().map(|list| normalize(list, owner));
    let changes_access = collaborators
        .as_ref()
        .is_some_and(|c| *c != current.metadata.collaborators)
        || readers
            .as_ref()
            .is_some_and(|r| *r != current.metadata.readers);
    // Echoing back unchanged lists (as a client that sends the whole metadata does) is not a
    // change, so collaborators may do it.
    if changes_access && access != Access::Owner {
        return Err(StoreError::Unauthorized);
    }
    if update.base.is_some_and(|base| base != current.version()) {
        return Err(StoreError::VersionMismatch {
            current: current.version(),
        });
    }

    let mut op = Op::default();
    let mut created = false;
    let stream = streams::is_stream(&current.key());
    let userdata = match &update.edit {
        Some(Edit::Append(event)) if stream => {
            let seq = current.version() + 1;
            let bytes = check_event(event, limits)?;
            let id = streams::id_of(&bytes, seq);
            let summary = streams::summary(&id, seq);
            op.append = Some(streams::Appended {
                id,
                event: event.clone(),
            });
            summary
        }
        Some(Edit::Append(_)) => {
            return Err(StoreError::Invalid(
                "only a stream (a document named ~name) is appended to".into(),
            ));
        }
        Some(_) if stream => {
            return Err(StoreError::Invalid(
                "a stream is appended to, never rewritten".into(),
            ));
        }
        None => userdata_copy(),
        Some(Edit::Replace(map)) => {
            op.replace = Some(map.clone());
            map.clone()
        }
        Some(Edit::Merge(patch)) => {
            op.merge = Some(patch.clone());
            let mut value = Value::Object(userdata_copy());
            json_patch::merge(&mut value, &Value::Object(patch.clone()));
            into_object(value)?
        }
        Some(Edit::JsonPatch(patch)) => {
            op.json_patch = Some(patch.clone());
            let mut value = Value::Object(userdata_copy());
            patch_within(
                &mut value,
                patch,
                current.bounds.bytes(),
                limits.max_doc_bytes,
            )?;
            into_object(value)?
        }
        Some(Edit::Paths(edits)) => {
            let result = apply_paths_to(userdata_copy(), edits)?;
            let ops = serde_json::from_value(Value::Array(result.ops))
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            op.json_patch = Some(ops);
            created = result.created;
            result.userdata
        }
    };
    let mut metadata = current.metadata.clone();
    metadata.version += 1;
    metadata.last_update = LastUpdate {
        at: now.to_owned(),
        by: update.by.clone(),
    };
    if let Some(c) = collaborators {
        op.collaborators = Some(c.clone());
        metadata.collaborators = c;
    }
    if let Some(r) = readers {
        op.readers = Some(r.clone());
        metadata.readers = r;
    }
    let entry = LogEntry {
        version: metadata.version,
        at: now.to_owned(),
        by: update.by.clone(),
        op,
        op_id: update.op_id.clone(),
    };
    let entry_json = serde_json::to_vec(&entry).map_err(StoreError::unavailable)?;
    let mut doc = Document {
        metadata,
        userdata,
        bounds: Bounds::default(),
    };
    doc.bounds = check_limits(
        current,
        update.edit.as_ref(),
        &doc,
        entry_json.len(),
        limits,
    )?;
    Ok(Applied {
        doc,
        entry,
        entry_json,
        created,
    })
}

/// Re-applies a logged version to the document it was made from, giving exactly the
/// document that was committed (the same rules as [`apply`], minus the checks it passed then).
/// Used to rebuild past versions from the change log's base snapshot.
///
/// # Errors
/// `Invalid` if `entry` does not follow `doc` or its patch no longer applies, which would
/// mean a corrupt log.
pub fn replay(doc: &Document, entry: &LogEntry) -> Result<Document, StoreError> {
    let mut next = doc.clone();
    replay_into(&mut next, entry)?;
    Ok(next)
}

/// [`replay`] in place, for folding many entries into one document (trimming the log,
/// rebuilding a document from its checkpoint): no copy of the tree per entry, which on a
/// 100-key document made each trim round cost a clone and a free per dropped version.
///
/// # Errors
/// As [`replay`]; `doc` is then unusable (the caller drops it).
pub fn replay_into(doc: &mut Document, entry: &LogEntry) -> Result<(), StoreError> {
    if entry.version != doc.version() + 1 {
        return Err(StoreError::Invalid(format!(
            "log entry {} does not follow version {}",
            entry.version,
            doc.version()
        )));
    }
    // Rebuilt in place, so what the old version carried no longer holds.
    doc.bounds = Bounds::default();
    let op = &entry.op;
    if let Some(appended) = &op.append {
        doc.userdata = streams::summary(&appended.id, entry.version);
    } else if let Some(map) = &op.replace {
        doc.userdata.clone_from(map);
    } else if let Some(patch) = &op.merge {
        let mut value = Value::Object(std::mem::take(&mut doc.userdata));
        json_patch::merge(&mut value, &Value::Object(patch.clone()));
        doc.userdata = into_object(value)?;
    } else if let Some(patch) = &op.json_patch {
        let mut value = Value::Object(std::mem::take(&mut doc.userdata));
        json_patch::patch_unsafe(&mut value, patch)
            .map_err(|e| StoreError::Invalid(format!("replaying json patch: {e}")))?;
        doc.userdata = into_object(value)?;
    }
    let metadata = &mut doc.metadata;
    metadata.version = entry.version;
    metadata.last_update = LastUpdate {
        at: entry.at.clone(),
        by: entry.by.clone(),
    };
    if let Some(c) = &op.collaborators {
        metadata.collaborators.clone_from(c);
    }
    if let Some(r) = &op.readers {
        metadata.readers.clone_from(r);
    }
    Ok(())
}

/// An event is held to a document's limits: its size and its nesting. Returns its canonical
/// bytes (what its id hashes).
fn check_event(event: &Value, limits: &Limits) -> Result<Vec<u8>, StoreError> {
    let bytes = serde_json::to_vec(event).map_err(StoreError::unavailable)?;
    let size = bytes.len();
    if size > limits.max_doc_bytes {
        return Err(StoreError::TooLarge {
            size,
            limit: limits.max_doc_bytes,
        });
    }
    if value_depth(event) > limits.max_depth {
        return Err(StoreError::Invalid(format!(
            "the event nests deeper than {} levels",
            limits.max_depth
        )));
    }
    Ok(bytes)
}

fn into_object(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(StoreError::Invalid(
            "userdata must stay a JSON object".into(),
        )),
    }
}

/// Sorted, without duplicates and without the owner (who always has access).
fn normalize(list: &[String], owner: &str) -> Vec<String> {
    let mut out: Vec<String> = list.iter().filter(|n| *n != owner).cloned().collect();
    out.sort();
    out.dedup();
    out
}

/// A validated set of dotted field paths (`a.b.c`), sorted so equal sets compare equal and
/// watchers asking for the same view share one serialized frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fields(Vec<Vec<String>>);

impl Fields {
    /// Most paths one request may name.
    pub const MAX_PATHS: usize = 100;
    /// Longest single path, in bytes.
    pub const MAX_PATH_LEN: usize = 512;

    pub fn parse(paths: &[String]) -> Result<Fields, String> {
        if paths.len() > Self::MAX_PATHS {
            return Err(format!("at most {} fields", Self::MAX_PATHS));
        }
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            if path.len() > Self::MAX_PATH_LEN {
                return Err(format!("a field is at most {} bytes", Self::MAX_PATH_LEN));
            }
            let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
            if segments.iter().any(String::is_empty) {
                return Err(format!("field {path:?} has an empty segment"));
            }
            out.push(segments);
        }
        out.sort();
        out.dedup();
        Ok(Fields(out))
    }

    /// `userdata` holding only the named paths, in the same shape. Paths that do not exist
    /// (or pass through a non-object) are left out rather than reported as null, so a client
    /// can tell "absent" from "null".
    pub fn project(&self, userdata: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for path in &self.0 {
            let Some(value) = lookup(userdata, path) else {
                continue;
            };
            let (last, parents) = path.split_last().expect("paths are never empty");
            let mut node = &mut out;
            for seg in parents {
                let entry = node
                    .entry(seg.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                node = entry.as_object_mut().expect("made an object just above");
            }
            node.insert(last.clone(), value.clone());
        }
        out
    }
}

fn lookup<'a>(map: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = map.get(first)?;
    for seg in rest {
        value = value.as_object()?.get(seg)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::bounds::drift_limit;
    use crate::store::paths::PathEdit;
    use serde_json::json;

    const LIMITS: Limits = Limits {
        max_doc_bytes: 10_000,
        max_depth: 8,
    };

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn update(by: &str, base: u64, edit: Option<Edit>) -> Update {
        Update {
            target: "ann".into(),
            by: by.into(),
            base: Some(base),
            edit,
            collaborators: None,
            readers: None,
            op_id: None,
            as_admin: false,
        }
    }

    #[test]
    fn merge_is_deep_and_null_deletes() {
        let mut doc = Document::new("ann", "t0");
        doc.userdata = obj(json!({"a": {"b": 1, "c": 2}, "d": 3}));
        let u = update(
            "ann",
            0,
            Some(Edit::Merge(obj(json!({"a": {"b": 9, "c": null}})))),
        );
        let out = apply(&doc, &u, &LIMITS, "t1").unwrap();
        assert_eq!(
            Value::Object(out.doc.userdata),
            json!({"a": {"b": 9}, "d": 3})
        );
        assert_eq!(out.doc.metadata.version, 1);
        assert_eq!(out.doc.metadata.last_update.at, "t1");
    }

    #[test]
    fn stale_version_and_strangers_are_refused_in_that_order() {
        let doc = Document::new("ann", "t0");
        let stale = update("ann", 5, Some(Edit::Replace(Map::new())));
        assert_eq!(
            apply(&doc, &stale, &LIMITS, "t").err(),
            Some(StoreError::VersionMismatch { current: 0 })
        );
        let stranger = update("eve", 5, None);
        assert_eq!(
            apply(&doc, &stranger, &LIMITS, "t").err(),
            Some(StoreError::Unauthorized)
        );
    }

    #[test]
    fn collaborators_may_echo_but_not_change_access_lists() {
        let mut doc = Document::new("ann", "t0");
        doc.metadata.collaborators = vec!["bob".into()];
        let mut echo = update("bob", 0, Some(Edit::Replace(Map::new())));
        echo.collaborators = Some(vec!["bob".into(), "ann".into()]);
        assert!(apply(&doc, &echo, &LIMITS, "t").is_ok());
        echo.collaborators = Some(vec!["bob".into(), "eve".into()]);
        assert_eq!(
            apply(&doc, &echo, &LIMITS, "t").err(),
            Some(StoreError::Unauthorized)
        );
    }

    #[test]
    fn too_deep_and_too_large_are_refused() {
        let doc = Document::new("ann", "t0");
        let deep = json!({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}});
        let u = update("ann", 0, Some(Edit::Replace(obj(deep))));
        assert!(matches!(
            apply(&doc, &u, &LIMITS, "t"),
            Err(StoreError::Invalid(_))
        ));
        let big = json!({"s": "x".repeat(20_000)});
        let u = update("ann", 0, Some(Edit::Replace(obj(big))));
        assert!(matches!(
            apply(&doc, &u, &LIMITS, "t"),
            Err(StoreError::TooLarge { .. })
        ));
    }

    #[test]
    fn replaying_the_log_reproduces_every_version() {
        let v0 = Document::new("ann", "t0");
        let mut docs = vec![v0.clone()];
        let mut entries = Vec::new();
        let edits = [
            Edit::Replace(obj(json!({"a": 1, "b": {"c": 2}}))),
            Edit::Merge(obj(json!({"b": {"c": null, "d": 3}}))),
            Edit::JsonPatch(
                serde_json::from_value(json!([{"op": "add", "path": "/e", "value": [1]}])).unwrap(),
            ),
        ];
        for (i, edit) in edits.into_iter().enumerate() {
            let mut u = update("ann", i as u64, Some(edit));
            u.readers = Some(vec!["bob".into()]);
            let out = apply(docs.last().unwrap(), &u, &LIMITS, &format!("t{}", i + 1)).unwrap();
            docs.push(out.doc);
            entries.push(out.entry);
        }
        let mut doc = v0;
        for (entry, expected) in entries.iter().zip(&docs[1..]) {
            doc = replay(&doc, entry).unwrap();
            assert_eq!(&doc, expected);
        }
        assert!(
            replay(&doc, &entries[0]).is_err(),
            "out of order is refused"
        );
    }

    /// The bounds each version carries stay at or above the truth through merges that add,
    /// deepen and delete, path edits, access changes and a replacement; and a bound past the
    /// limit falls back to measuring, so a document that truly fits is still accepted.
    #[test]
    fn carried_bounds_never_undershoot_and_fall_back_to_measuring() {
        let limits = Limits {
            max_doc_bytes: 2_000,
            max_depth: 6,
        };
        let mut doc = Document::new("ann", "t0");
        let edits = [
            Edit::Merge(obj(json!({"a": {"b": {"c": "x".repeat(50)}}, "n": 1}))),
            Edit::Merge(obj(json!({"a": {"b": null, "d": [1, [2, [3]]]}}))),
            Edit::Paths(vec![PathEdit::Put {
                path: vec!["p".into(), "q".into(), "r".into()],
                value: json!({"s": "y".repeat(30)}),
            }]),
            Edit::Paths(vec![PathEdit::Patch {
                path: vec!["p".into(), "q".into()],
                patch: json!({"r": null, "t": 2}),
            }]),
            Edit::Paths(vec![PathEdit::Delete {
                path: vec!["a".into()],
            }]),
            Edit::Replace(obj(json!({"fresh": true}))),
            Edit::Merge(obj(json!({"k\"/~": "escaped keys"}))),
        ];
        for (i, edit) in edits.into_iter().enumerate() {
            let mut u = update("ann", i as u64, Some(edit));
            if i == 2 {
                u.readers = Some(vec!["bob".into(), "carol".into()]);
            }
            doc = apply(&doc, &u, &limits, &format!("t{}", i + 1))
                .unwrap()
                .doc;
            assert!(doc.bounds.bytes().is_some() && doc.bounds.depth().is_some());
            assert!(within_bounds(&doc), "version {}: {:?}", i + 1, doc.bounds);
        }

        // Many small merges: the carried size bound grows past the limit long before the
        // document does, and each time it does the document is measured and accepted.
        for i in 0..200u64 {
            let v = doc.version();
            let u = update("ann", v, Some(Edit::Merge(obj(json!({"i": i})))));
            doc = apply(&doc, &u, &limits, "t").unwrap().doc;
            assert!(within_bounds(&doc));
            let bytes = doc.bounds.bytes().unwrap();
            assert!(
                bytes <= drift_limit(doc.bounds.measured()),
                "the bound drifts"
            );
        }
        assert!(serialized_len(&doc).unwrap() < 300);

        // Measured, not guessed, when it matters: one edit past the limit is refused.
        let big = update(
            "ann",
            doc.version(),
            Some(Edit::Merge(obj(json!({"big": "z".repeat(2_000)})))),
        );
        assert!(matches!(
            apply(&doc, &big, &limits, "t"),
            Err(StoreError::TooLarge { .. })
        ));
        let deep = update(
            "ann",
            doc.version(),
            Some(Edit::Merge(obj(
                json!({"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}),
            ))),
        );
        assert!(matches!(
            apply(&doc, &deep, &limits, "t"),
            Err(StoreError::Invalid(_))
        ));
    }

    /// Found by fuzzing: json-patch's rolling-back `patch` panics when undoing this. We patch
    /// a copy and throw it away on error, so we use `patch_unsafe` and get a clean error.
    #[test]
    fn a_json_patch_whose_undo_would_panic_is_a_clean_error() {
        let doc = Document::new("ann", "t0");
        let ops = serde_json::from_value(json!([
            {"op": "add", "path": "/x", "value": 1},
            {"op": "move", "from": "/x", "path": "//"},
        ]))
        .unwrap();
        let u = update("ann", 0, Some(Edit::JsonPatch(ops)));
        assert!(matches!(
            apply(&doc, &u, &LIMITS, "t"),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn projection_keeps_shape_and_skips_missing() {
        let data = obj(json!({"a": {"b": {"c": 1}, "x": 2}, "c": "foo", "n": 5}));
        let fields =
            Fields::parse(&["a.b.c".into(), "c".into(), "missing.q".into(), "n.z".into()]).unwrap();
        assert_eq!(
            Value::Object(fields.project(&data)),
            json!({"a": {"b": {"c": 1}}, "c": "foo"})
        );
        assert!(Fields::parse(&["a..b".into()]).is_err());
    }
}

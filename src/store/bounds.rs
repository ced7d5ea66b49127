//! Upper bounds on a document's size and nesting depth, carried with each version so that the
//! limits are checked without measuring every version; and JSON Patch applied within the size
//! limit as it goes.
//!
//! Contract: a version's carried bounds are never below its true serialized size and depth
//! ([`within_bounds`]; the fuzz target checks it on every commit), so a document within its
//! bounds is within the limits they were checked against.

use serde_json::{Map, Value};

use super::error::StoreError;
use super::model::{Bounds, Document, Edit};
use super::paths::PathEdit;

/// Limits that an update's result must respect.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest serialized document, in bytes (`MAX_DATA_SIZE_JSON`).
    pub max_doc_bytes: usize,
    /// Deepest nesting of arrays and objects inside `userdata` (`MAX_DEPTH`).
    pub max_depth: usize,
}

/// Applies a JSON Patch one operation at a time, refusing it (`TooLarge`) as soon as the
/// document would outgrow `limit`, not after. Why: each `copy` of `/a` into `/a/k{i}` doubles
/// the document, so a dozen operations in a 600-byte frame asked for hundreds of megabytes and
/// most of a second before the size check at the end. Here a running upper bound grows by
/// each operation's value (a `copy`: the value it copies, measured); only when the bound passes
/// `limit` is the document measured, and refused if it really is over. So work and memory stay
/// within a few times `limit` per operation, whatever the patch. `start`: a bound on the size
/// before the patch, if the document carries one.
pub(super) fn patch_within(
    value: &mut Value,
    patch: &json_patch::Patch,
    start: Option<usize>,
    limit: usize,
) -> Result<(), StoreError> {
    use json_patch::PatchOperation as P;
    let too_large = |size| StoreError::TooLarge { size, limit };
    let mut bound = match start {
        Some(b) => b,
        None => serialized_len(&*value)?,
    };
    for (i, operation) in patch.iter().enumerate() {
        let grows = match operation {
            P::Add(o) => serialized_len(&o.value)?,
            P::Replace(o) => serialized_len(&o.value)?,
            P::Copy(o) => value
                .pointer(o.from.as_str())
                .map_or(Ok(0), serialized_len)?,
            P::Remove(_) | P::Move(_) | P::Test(_) => 0,
        };
        if bound.saturating_add(grows) > limit {
            // Measure before growing: a copy that would pass the limit is refused unmade.
            bound = serialized_len(&*value)?;
            if bound.saturating_add(grows) > limit {
                return Err(too_large(bound.saturating_add(grows)));
            }
        }
        bound += grows;
        json_patch::patch_unsafe(value, std::slice::from_ref(operation))
            .map_err(|e| StoreError::Invalid(format!("json patch failed at operation {i}: {e}")))?;
    }
    Ok(())
}

/// Checks `doc`, the next version of `current` made by `edit`, against the limits: from the
/// bounds `current` carries where `edit` allows ([`next_bounds`]), by measuring otherwise.
/// Returns the bounds `doc` carries on.
pub(super) fn check_limits(
    current: &Document,
    edit: Option<&Edit>,
    doc: &Document,
    entry_len: usize,
    limits: &Limits,
) -> Result<Bounds, StoreError> {
    let (depth_bound, bytes_bound) = next_bounds(current, edit, entry_len);
    let depth = match depth_bound {
        Some(d) if d <= limits.max_depth => d,
        _ => {
            let exact = depth(&doc.userdata);
            if exact > limits.max_depth {
                return Err(StoreError::Invalid(format!(
                    "userdata nests deeper than {} levels",
                    limits.max_depth
                )));
            }
            exact
        }
    };
    let measured = current.bounds.measured();
    let (bytes, measured) = match bytes_bound {
        Some(b) if b <= limits.max_doc_bytes && b <= drift_limit(measured) => (b, measured),
        _ => {
            let size = serialized_len(doc)?;
            if size > limits.max_doc_bytes {
                return Err(StoreError::TooLarge {
                    size,
                    limit: limits.max_doc_bytes,
                });
            }
            (size, size)
        }
    };
    Ok(Bounds::new(bytes, depth, measured))
}

/// How far a size bound may grow past the size last measured before the document is
/// measured again. The bound only grows, so left to reach the limit it would soon say
/// nothing about a document that stays small, and recycling (`redb/recycle.rs`) sizes
/// documents by it. Measuring again at twice the size plus 4 KiB costs one serialization
/// per doubling: every ≈ 16 small edits of a 4 KB document.
pub(super) fn drift_limit(measured: usize) -> usize {
    measured.saturating_mul(2).saturating_add(4096)
}

/// Bounds (depth, bytes) on the next version of `current` made by `edit`, whose log entry
/// serializes to `entry_len` bytes. `None` where `current`'s own are unknown, or the edit
/// gives no bound: a whole replacement, or a JSON Patch (whose `copy` can double a document).
///
/// Why they hold: a merge patch or a path edit writes only what its log entry holds
/// verbatim. Every key and value it adds is spelled out there (in the patch, or in the
/// operation's path and value), so `userdata` grows by less than the entry's length plus a
/// comma per key (under a quarter of it); the metadata changes by a digit of the version,
/// `at`, `by` and any access lists, all of them in the entry too. Hence `3 × entry + 64`, a
/// generous margin. And nothing ends up deeper than the deeper of the old document and what
/// the edit writes at its place (a merge keeps no level the patch or the target lacks).
fn next_bounds(
    current: &Document,
    edit: Option<&Edit>,
    entry_len: usize,
) -> (Option<usize>, Option<usize>) {
    let added_depth = match edit {
        None => Some(0),
        Some(Edit::Merge(patch)) => Some(depth(patch)),
        Some(Edit::Paths(edits)) => Some(
            edits
                .iter()
                .map(|edit| match edit {
                    PathEdit::Put { path, value } | PathEdit::Patch { path, patch: value } => {
                        path.len() + value_depth(value)
                    }
                    PathEdit::Delete { .. } => 0,
                })
                .max()
                .unwrap_or(0),
        ),
        Some(Edit::Replace(_) | Edit::JsonPatch(_) | Edit::Append(_)) => None,
    };
    let Some(added_depth) = added_depth else {
        return (None, None);
    };
    let bounds = current.bounds;
    (
        bounds.depth().map(|d| d.max(added_depth)),
        bounds.bytes().map(|b| {
            b.saturating_add(entry_len.saturating_mul(3))
                .saturating_add(64)
        }),
    )
}

/// Whether `doc`'s true size and depth are within the bounds it carries (unknown bounds
/// hold trivially). For tests and the fuzz targets: a bound below the truth would let a
/// document past the limits.
pub fn within_bounds(doc: &Document) -> bool {
    let bytes = doc
        .bounds
        .bytes()
        .is_none_or(|b| serialized_len(doc).is_ok_and(|n| n <= b));
    let deep = doc.bounds.depth().is_none_or(|d| depth(&doc.userdata) <= d);
    bytes && deep
}

/// The length of `value` as JSON, without building the bytes: the size limit is all redb
/// needs the whole document's JSON for on an update.
pub fn serialized_len(value: &impl serde::Serialize) -> Result<usize, StoreError> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_err(StoreError::unavailable)?;
    Ok(count.0)
}

/// Nesting depth of objects and arrays below `map` (a flat object has depth 1).
pub fn depth(map: &Map<String, Value>) -> usize {
    1 + map.values().map(value_depth).max().unwrap_or(0)
}

/// Nesting depth of a JSON value (a scalar has depth 0, `{}` and `[]` depth 1).
pub fn value_depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(value_depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

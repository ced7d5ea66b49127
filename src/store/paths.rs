//! Edits at key paths (the REST view): put, merge-patch or delete one place in `userdata`.
//!
//! Each edit is turned into RFC 6902 operations against the document as it is at that moment
//! (creating missing parent objects first), applied, and kept: the change log records those
//! operations, so replaying the log reproduces exactly what was committed.

use serde_json::{Map, Value, json};

use super::error::StoreError;

/// One edit at a key path; the empty path is the whole `userdata`.
#[derive(Clone, Debug, PartialEq)]
pub enum PathEdit {
    Put { path: Vec<String>, value: Value },
    Patch { path: Vec<String>, patch: Value },
    Delete { path: Vec<String> },
}

/// What applying path edits did.
pub struct PathResult {
    pub userdata: Map<String, Value>,
    /// The JSON Patch equivalent, for the change log.
    pub ops: Vec<Value>,
    /// The first edit created its key (it was absent before): REST answers 201.
    pub created: bool,
}

/// Applies `edits` in order, all or none.
///
/// # Errors
/// `NotFound` when deleting an absent key; `Invalid` when a path runs through a value that is
/// not an object, or the result is not an object.
pub fn apply_paths(
    userdata: &Map<String, Value>,
    edits: &[PathEdit],
) -> Result<PathResult, StoreError> {
    apply_paths_to(userdata.clone(), edits)
}

/// [`apply_paths`] on a `userdata` the caller owns, edited in place.
///
/// # Errors
/// As [`apply_paths`].
pub fn apply_paths_to(
    userdata: Map<String, Value>,
    edits: &[PathEdit],
) -> Result<PathResult, StoreError> {
    let mut doc = Value::Object(userdata);
    let mut ops = Vec::new();
    let mut created = false;
    for (i, edit) in edits.iter().enumerate() {
        let path = match edit {
            PathEdit::Put { path, .. }
            | PathEdit::Patch { path, .. }
            | PathEdit::Delete { path } => path,
        };
        let exists = lookup(&doc, path).is_some();
        if i == 0 {
            created = !exists;
        }
        let mut step = Vec::new();
        match edit {
            PathEdit::Delete { path } if path.is_empty() => {
                step.push(json!({"op": "replace", "path": "", "value": {}}));
            }
            PathEdit::Delete { path } => {
                if !exists {
                    return Err(StoreError::NotFound);
                }
                step.push(json!({"op": "remove", "path": pointer(path)}));
            }
            PathEdit::Put { path, value } => set(&doc, path, value.clone(), &mut step)?,
            PathEdit::Patch { path, patch } => {
                // Only a merge needs the old subtree; puts and deletes never copy it.
                let mut merged = lookup(&doc, path).cloned().unwrap_or(Value::Null);
                json_patch::merge(&mut merged, patch);
                set(&doc, path, merged, &mut step)?;
            }
        }
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(step.clone()))
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        json_patch::patch_unsafe(&mut doc, &patch)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        ops.extend(step);
    }
    match doc {
        Value::Object(userdata) => Ok(PathResult {
            userdata,
            ops,
            created,
        }),
        _ => Err(StoreError::Invalid(
            "userdata must stay a JSON object".into(),
        )),
    }
}

/// Operations that make `path` hold `value`, creating missing parent objects.
fn set(doc: &Value, path: &[String], value: Value, ops: &mut Vec<Value>) -> Result<(), StoreError> {
    if path.is_empty() {
        if !value.is_object() {
            return Err(StoreError::Invalid(
                "the whole of userdata must be a JSON object".into(),
            ));
        }
        ops.push(json!({"op": "replace", "path": "", "value": value}));
        return Ok(());
    }
    let mut node = doc;
    for (depth, seg) in path[..path.len() - 1].iter().enumerate() {
        match node {
            Value::Object(map) => match map.get(seg) {
                Some(child) => node = child,
                None => {
                    // Create the rest of the parents in one go.
                    let mut nested = value;
                    for s in path[depth + 1..].iter().rev() {
                        let mut m = Map::new();
                        m.insert(s.clone(), nested);
                        nested = Value::Object(m);
                    }
                    ops.push(
                        json!({"op": "add", "path": pointer(&path[..=depth]), "value": nested}),
                    );
                    return Ok(());
                }
            },
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(child) => node = child,
                None => return Err(not_container(&path[..=depth])),
            },
            _ => return Err(not_container(&path[..depth])),
        }
    }
    match node {
        Value::Object(_) => {}
        Value::Array(items)
            if path
                .last()
                .and_then(|s| s.parse::<usize>().ok())
                .is_some_and(|i| i < items.len()) =>
        {
            ops.push(json!({"op": "replace", "path": pointer(path), "value": value}));
            return Ok(());
        }
        _ => return Err(not_container(&path[..path.len() - 1])),
    }
    ops.push(json!({"op": "add", "path": pointer(path), "value": value}));
    Ok(())
}

fn not_container(path: &[String]) -> StoreError {
    StoreError::Invalid(format!("{:?} is not an object", path.join("/")))
}

/// The value at `path`, through objects and array indices.
pub fn lookup<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |node, seg| match node {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The value at a non-empty `path` inside `userdata`, without copying anything.
pub fn lookup_in<'a>(userdata: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    lookup(userdata.get(first)?, rest)
}

/// RFC 6901 JSON Pointer for `path`.
pub fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        if s.is_empty() {
            vec![]
        } else {
            s.split('/').map(str::to_owned).collect()
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn put_creates_parents_and_reports_creation() {
        let start = obj(json!({"profile": {"name": "ann"}}));
        let r = apply_paths(
            &start,
            &[PathEdit::Put {
                path: p("profile/address/billing"),
                value: json!("x"),
            }],
        )
        .unwrap();
        assert!(r.created);
        assert_eq!(
            Value::Object(r.userdata.clone()),
            json!({"profile": {"name": "ann", "address": {"billing": "x"}}})
        );
        let again = apply_paths(
            &r.userdata,
            &[PathEdit::Put {
                path: p("profile/name"),
                value: json!("bo"),
            }],
        )
        .unwrap();
        assert!(!again.created);
        // Replaying the recorded ops gives the same result.
        let mut replay = Value::Object(start);
        json_patch::patch_unsafe(
            &mut replay,
            &serde_json::from_value::<json_patch::Patch>(Value::Array(r.ops)).unwrap(),
        )
        .unwrap();
        assert_eq!(replay, Value::Object(r.userdata));
    }

    #[test]
    fn patch_delete_and_errors() {
        let start = obj(json!({"a": {"b": 1, "c": 2}, "n": 5, "list": [1, 2]}));
        let r = apply_paths(
            &start,
            &[
                PathEdit::Patch {
                    path: p("a"),
                    patch: json!({"c": null, "d": 4}),
                },
                PathEdit::Delete { path: p("n") },
                PathEdit::Put {
                    path: p("list/1"),
                    value: json!(9),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            Value::Object(r.userdata),
            json!({"a": {"b": 1, "d": 4}, "list": [1, 9]})
        );
        assert_eq!(
            apply_paths(&start, &[PathEdit::Delete { path: p("nope") }]).err(),
            Some(StoreError::NotFound)
        );
        assert!(matches!(
            apply_paths(
                &start,
                &[PathEdit::Put {
                    path: p("n/x"),
                    value: json!(1)
                }]
            ),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            apply_paths(
                &start,
                &[PathEdit::Put {
                    path: p(""),
                    value: json!(1)
                }]
            ),
            Err(StoreError::Invalid(_))
        ));
        // All or none: a failing second edit leaves nothing applied (the caller keeps `start`).
        assert!(
            apply_paths(
                &start,
                &[
                    PathEdit::Delete { path: p("n") },
                    PathEdit::Delete { path: p("n") }
                ]
            )
            .is_err()
        );
        assert_eq!(pointer(&["a~b".to_owned(), "c/d".to_owned()]), "/a~0b/c~1d");
    }
}

//! Entry points shared by the `cargo fuzz` targets (fuzz/) and the stable test that replays
//! their corpus (tests/fuzz_corpus.rs): each must return, never panic, for any input.

use serde_json::Value;

use crate::cmd::Command;
use crate::frame::Frame;
use crate::store::apply::{Limits, apply, within_bounds};
use crate::store::model::{Document, Edit, Update};
use crate::store::paths::{PathEdit, apply_paths};
use crate::store::{Fields, apply::replay};

const LIMITS: Limits = Limits {
    max_doc_bytes: 64 * 1024,
    max_depth: 64,
};

/// Frame decoding and command parsing.
pub fn frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = Frame::parse(text) {
        let _ = Command::from_frame(frame);
    }
}

/// The input is JSON `[userdata, patch, mode]`; applies it through the update rules and, on
/// success, checks that replaying the logged op reproduces the committed document.
pub fn patch(data: &[u8]) {
    let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (Some(Value::Object(userdata)), Some(patch)) = (parts.first(), parts.get(1)) else {
        return;
    };
    let mut doc = Document::new("fuzz", "t0");
    doc.userdata = userdata.clone();
    let edit = match parts.get(2).and_then(Value::as_str) {
        Some("json-patch") => match serde_json::from_value(patch.clone()) {
            Ok(p) => Edit::JsonPatch(p),
            Err(_) => return,
        },
        Some("path") => {
            let path: Vec<String> = ["a", "b"].iter().map(|s| (*s).to_owned()).collect();
            let _ = apply_paths(
                userdata,
                &[PathEdit::Patch {
                    path: path.clone(),
                    patch: patch.clone(),
                }],
            );
            Edit::Paths(vec![PathEdit::Put {
                path,
                value: patch.clone(),
            }])
        }
        _ => match patch {
            Value::Object(map) => Edit::Merge(map.clone()),
            _ => return,
        },
    };
    let update = Update {
        target: "fuzz".into(),
        by: "fuzz".into(),
        base: Some(0),
        edit: Some(edit),
        collaborators: None,
        readers: None,
        op_id: None,
        as_admin: false,
    };
    if let Ok(applied) = apply(&doc, &update, &LIMITS, "t1") {
        let replayed = replay(&doc, &applied.entry);
        assert_eq!(
            replayed.ok().as_ref(),
            Some(&applied.doc),
            "replay must reproduce the commit"
        );
        // The same edit again, now from a version that carries bounds: they must hold.
        let again = Update {
            base: Some(1),
            ..update
        };
        if let Ok(next) = apply(&applied.doc, &again, &LIMITS, "t2") {
            assert!(
                within_bounds(&next.doc),
                "carried bounds undershoot: {:?}",
                next.doc
            );
        }
    }
}

/// The input is JSON `[userdata, [field, ...]]`.
pub fn project(data: &[u8]) {
    let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (Some(Value::Object(userdata)), Some(fields)) = (parts.first(), parts.get(1)) else {
        return;
    };
    let Ok(fields) = serde_json::from_value::<Vec<String>>(fields.clone()) else {
        return;
    };
    if let Ok(fields) = Fields::parse(&fields) {
        let out = fields.project(userdata);
        // Projection only ever removes: never more keys at the top than the input had.
        assert!(out.len() <= userdata.len());
    }
}

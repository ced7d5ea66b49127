//! What the store's unit tests share.

use std::sync::Arc;

use serde_json::Value;

use super::apply::{Limits, apply};
use super::backend::Committed;
use super::model::{Document, Edit, Update};

pub const LIMITS: Limits = Limits {
    max_doc_bytes: 10_000,
    max_depth: 8,
};

/// The version after `doc` with `patch` merged in by its owner, committed as the writer
/// would commit it.
pub fn merged(doc: &Document, patch: &Value) -> Arc<Committed> {
    let update = Update {
        target: doc.key().into_owned(),
        by: doc.owner().into(),
        base: Some(doc.version()),
        edit: Some(Edit::Merge(patch.as_object().cloned().unwrap_or_default())),
        collaborators: None,
        readers: None,
        op_id: None,
        as_admin: false,
    };
    let applied = apply(doc, &update, &LIMITS, "t").expect("applies");
    Arc::new(Committed {
        doc: Arc::new(applied.doc),
        entry: Some(applied.entry),
        created: false,
        shares: Vec::new(),
    })
}

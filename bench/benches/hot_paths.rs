//! Micro-benchmarks of what every update and delivery costs the server, one function each:
//! decoding a client frame into a command, applying a merge patch to a 1 KB document and a
//! key-path PUT to a 100-key one (parse-free: the writer keeps documents in memory, and
//! applies to a committed version, which carries its size and depth bounds), projecting
//! `fields`, serializing a `change` frame, and verifying a session token.
//! `cargo bench -p hearth-bench`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hearth::auth::Auth;
use hearth::cmd::Command;
use hearth::fanout::{Mode, change_frame};
use hearth::frame::Frame;
use hearth::store::apply::apply;
use hearth::store::paths::PathEdit;
use hearth::store::{Document, Edit, Fields, Limits, Scope, Update};
use serde_json::{Map, Value, json};

const UPDATE_FRAME: &str = r#"{"id":42,"type":"update","patch":true,"data":{"metadata":{"version":17},"userdata":{"groceries":{"milk":2,"eggs":12},"note":"buy bread"}}}"#;

/// A document of about 1 KB: a household's lists.
fn document() -> Document {
    let mut doc = Document::new("ann", "2026-11-23T10:00:00.000Z");
    doc.metadata.version = 17;
    doc.metadata.collaborators = vec!["bob".into()];
    let userdata = json!({
        "groceries": {"milk": 1, "eggs": 6, "bread": 1, "apples": 4, "coffee": "the good one"},
        "todo": ["water plants", "call the plumber", "book train tickets", "return library books"],
        "notes": "x".repeat(400),
        "rooms": {"kitchen": {"temp": 20.5, "light": true}, "hall": {"temp": 18.0, "light": false}},
        "members": [{"name": "ann", "age": 34}, {"name": "bob", "age": 36}],
    });
    doc.userdata = match userdata {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    doc
}

/// `doc` as the store holds it after a commit: the result of an `apply` (one that changes
/// nothing but the version).
fn committed(doc: Document, limits: &Limits) -> Document {
    let touch = Update {
        target: doc.owner().to_owned(),
        by: doc.owner().to_owned(),
        base: None,
        edit: None,
        collaborators: None,
        readers: None,
        op_id: None,
        as_admin: false,
    };
    let mut next = apply(&doc, &touch, limits, "2026-11-23T10:00:00.500Z")
        .expect("applies")
        .doc;
    next.metadata.version = doc.version();
    next
}

fn merge_update() -> Update {
    let patch = json!({"groceries": {"milk": 2, "eggs": null}, "note": "buy bread"});
    let Value::Object(patch) = patch else {
        unreachable!("an object literal")
    };
    Update {
        target: "ann".into(),
        by: "bob".into(),
        base: Some(17),
        edit: Some(Edit::Merge(patch)),
        collaborators: None,
        readers: None,
        op_id: None,
        as_admin: false,
    }
}

fn benches(c: &mut Criterion) {
    c.bench_function("frame decode: update frame to command", |b| {
        b.iter(|| {
            let frame = Frame::parse(black_box(UPDATE_FRAME)).expect("frame");
            Command::from_frame(frame).expect("command")
        });
    });

    let limits = Limits {
        max_doc_bytes: 512 * 1024,
        max_depth: 64,
    };
    // As the store holds it: a committed version (made by `apply`), not one read from disk.
    let doc = committed(document(), &limits);
    let update = merge_update();
    c.bench_function("merge patch: apply to a 1 KB document, serialize", |b| {
        b.iter(|| {
            apply(
                black_box(&doc),
                black_box(&update),
                &limits,
                "2026-11-23T10:00:01.000Z",
            )
        });
    });

    // g)'s REST PUT: one key of a document of 100 small objects.
    let mut items = Map::new();
    for i in 0..100 {
        items.insert(format!("k{i}"), json!({"n": i, "note": "rest bench"}));
    }
    let mut big = Document::new("ann", "2026-11-23T10:00:00.000Z");
    big.metadata.version = 17;
    big.userdata.insert("items".into(), Value::Object(items));
    let big = committed(big, &limits);
    let put = Update {
        target: "ann".into(),
        by: "ann".into(),
        base: None,
        edit: Some(Edit::Paths(vec![PathEdit::Put {
            path: vec!["items".into(), "k42".into()],
            value: json!({"n": 4242, "note": "rest bench"}),
        }])),
        collaborators: None,
        readers: None,
        op_id: None,
        as_admin: false,
    };
    c.bench_function("path edit: PUT one key of a 100-key document", |b| {
        b.iter(|| {
            apply(
                black_box(&big),
                black_box(&put),
                &limits,
                "2026-11-23T10:00:01.000Z",
            )
        });
    });

    let fields = Fields::parse(&["groceries/milk".into(), "rooms/kitchen".into()]).expect("fields");
    c.bench_function("projection: two fields of a 1 KB document", |b| {
        b.iter(|| fields.project(black_box(&doc.userdata)));
    });

    let applied = apply(&doc, &update, &limits, "2026-11-23T10:00:01.000Z").expect("applied");
    let next = Arc::new(applied.doc);
    c.bench_function("change serialization: full 1 KB change frame", |b| {
        b.iter(|| change_frame(black_box(&next), Some(&applied.entry), None, Mode::Full));
    });
    c.bench_function("change serialization: projected change frame", |b| {
        b.iter(|| change_frame(black_box(&next), None, Some(&fields), Mode::Full));
    });

    let auth = Auth::new(b"a benchmark secret of some length", 3600, Vec::new());
    let (token, _) = auth.tokens.issue("ann", Scope::Full).expect("token");
    c.bench_function("token check: verify an HS256 session token", |b| {
        b.iter(|| auth.verify(black_box(&token)).expect("valid"));
    });
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);

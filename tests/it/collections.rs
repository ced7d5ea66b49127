//! Named documents: many per account, each with its own version, log, watchers and sharing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Client, TestServer, assert_error};

async fn create(c: &mut Client, name: &str, extra: Value) -> Value {
    let mut frame = json!({"type": "create", "name": name});
    if let (Value::Object(f), Value::Object(e)) = (&mut frame, extra) {
        f.extend(e);
    }
    c.request(frame).await
}

async fn merge(c: &mut Client, target: &str, version: u64, userdata: Value) -> Value {
    c.request(json!({"type": "update", "target": target, "patch": true,
        "data": {"metadata": {"version": version}, "userdata": userdata}}))
        .await
}

/// Pushes until one of each of `kinds` arrived (in any order; others, such as changes, are
/// skipped): access notices and watch ends travel different paths.
async fn pushes_of(c: &mut Client, kinds: &[&str]) -> Vec<Value> {
    let mut found: Vec<Value> = Vec::new();
    for _ in 0..20 {
        if kinds.iter().all(|k| found.iter().any(|p| p["type"] == *k)) {
            return found;
        }
        let v = c.next_push().await;
        if kinds.contains(&v["type"].as_str().unwrap_or("")) {
            found.push(v);
        }
    }
    panic!("not all of {kinds:?} pushed: {found:?}");
}

/// A pushed frame of `kind`, skipping others (changes of other watches).
async fn push_of(c: &mut Client, kind: &str) -> Value {
    for _ in 0..20 {
        let v = c.next_push().await;
        if v["type"] == kind {
            return v;
        }
    }
    panic!("no {kind} push");
}

#[tokio::test]
async fn a_named_document_lives_beside_the_default_one() {
    let server = TestServer::start().await;
    let (mut ann, name, token) = server.user().await;
    let target = format!("{name}/groceries");

    let created = create(&mut ann, "groceries", json!({"userdata": {"milk": 1}})).await;
    assert_eq!(created["type"], "data", "{created}");
    assert_eq!(created["username"], name.as_str());
    assert_eq!(created["name"], "groceries");
    assert_eq!(created["version"], 0);
    let meta = &created["data"]["metadata"];
    assert_eq!(meta["name"], "groceries");
    assert!(
        meta["incarnation"].as_str().is_some_and(|i| i.len() == 16),
        "{meta}"
    );
    assert_eq!(created["data"]["userdata"], json!({"milk": 1}));
    assert_error(
        &create(&mut ann, "groceries", json!({})).await,
        "already_exists",
    );

    // Its own version and watchers; the default document does not move.
    let watch = ann
        .request(json!({"type": "watch", "target": target}))
        .await;
    assert_eq!(watch["name"], "groceries", "{watch}");
    let v = merge(&mut ann, &target, 0, json!({"eggs": 6})).await;
    assert_eq!(
        v,
        json!({"id": v["id"], "type": "version", "username": name, "name": "groceries", "version": 1})
    );
    let change = ann.next_push().await;
    assert_eq!(
        (change["type"].as_str(), change["name"].as_str()),
        (Some("change"), Some("groceries"))
    );
    assert_eq!(change["data"]["userdata"], json!({"milk": 1, "eggs": 6}));
    let default = ann.request(json!({"type": "fetch"})).await;
    assert_eq!(default["version"], 0);
    assert!(
        default.get("name").is_none(),
        "the default document's frames are as before: {default}"
    );
    assert!(default["data"]["metadata"].get("name").is_none());
    let stale = merge(&mut ann, &target, 0, json!({"x": 1})).await;
    assert_error(&stale, "version_mismatch");
    assert_eq!(stale["version"], 1);

    // Fields, and the list.
    let fetched = ann
        .request(json!({"type": "fetch", "target": target, "fields": ["eggs"]}))
        .await;
    assert_eq!(fetched["data"]["userdata"], json!({"eggs": 6}));
    create(&mut ann, "budget", json!({})).await;
    let list = ann.request(json!({"type": "list"})).await;
    let names: Vec<&str> = list["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["budget", "groceries"], "{list}");
    let g = &list["documents"][1];
    assert_eq!(g["version"], 1);
    assert!(g["size"].as_u64().unwrap() > 20);
    assert_eq!(g["lastUpdate"]["by"], name.as_str());
    // An entry is the metadata `fetch` shows, plus the size.
    let whole = ann
        .request(json!({"type": "fetch", "target": target}))
        .await;
    let mut entry = g.clone();
    entry.as_object_mut().unwrap().remove("size");
    assert_eq!(entry, whole["data"]["metadata"], "{list}");
    assert_eq!(list["shared"], json!([]));
    let page = ann.request(json!({"type": "list", "limit": 1})).await;
    assert_eq!(page["documents"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], "budget");
    let rest = ann
        .request(json!({"type": "list", "after": "budget"}))
        .await;
    assert_eq!(rest["documents"][0]["name"], "groceries");
    assert!(rest.get("next").is_none());

    // It survives a restart, log and all.
    drop(ann);
    let server = server.restart().await;
    let mut again = server.client().await;
    again.request(json!({"type": "auth", "token": token})).await;
    let replay = again
        .request(json!({"type": "watch", "target": target, "since": 0,
        "incarnation": meta["incarnation"]}))
        .await;
    assert_eq!(replay["type"], "watching", "{replay}");
    assert_eq!(again.next_push().await["op"], json!({"merge": {"eggs": 6}}));
    assert_eq!(
        again.request(json!({"type": "list"})).await["documents"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn names_and_spaces_are_checked() {
    let server = TestServer::start().await;
    let (mut ann, name, _) = server.user().await;
    let (mut bob, bob_name, _) = server.user().await;
    for bad in ["..", ".x", "a/b", "Ünïcode", "UPPER", "", &"n".repeat(65)] {
        let r = create(&mut ann, bad, json!({})).await;
        assert_error(&r, "bad_request");
    }
    assert_eq!(
        create(&mut ann, &"n".repeat(64), json!({})).await["type"],
        "data"
    );
    // Nobody creates or deletes in someone else's space.
    let theirs = format!("{name}/mine");
    assert_error(
        &bob.request(json!({"type": "create", "target": theirs}))
            .await,
        "unauthorized",
    );
    create(&mut ann, "mine", json!({})).await;
    assert_error(
        &bob.request(json!({"type": "delete", "target": theirs}))
            .await,
        "unauthorized",
    );
    assert_error(
        &bob.request(json!({"type": "fetch", "target": theirs}))
            .await,
        "unauthorized",
    );
    assert_error(
        &bob.request(json!({"type": "watch", "target": theirs}))
            .await,
        "unauthorized",
    );
    // A name nobody created, and junk targets, look like any other stranger's document.
    for target in [
        format!("{name}/nothing"),
        format!("{name}/.."),
        format!("{name}/a/b"),
        "x/y".into(),
    ] {
        assert_error(
            &ann.request(json!({"type": "fetch", "target": target}))
                .await,
            "unauthorized",
        );
    }
    assert_error(
        &ann.request(json!({"type": "delete", "name": "nothing"}))
            .await,
        "not_found",
    );
    // Access lists name existing accounts only.
    let r = create(
        &mut ann,
        "shared",
        json!({"collaborators": [bob_name, "no-such-user"]}),
    )
    .await;
    assert_error(&r, "unknown_users");
    assert_eq!(r["users"], json!(["no-such-user"]));
    // The default document cannot be created or deleted this way.
    assert_error(
        &ann.request(json!({"type": "delete", "target": name})).await,
        "bad_request",
    );
}

#[tokio::test]
async fn sharing_one_document_is_pushed_live_and_listed() {
    let server = TestServer::start().await;
    let (mut ann, name, _) = server.user().await;
    let (mut bob, bob_name, _) = server.user().await;
    let target = format!("{name}/groceries");
    create(&mut ann, "secret", json!({"userdata": {"gift": "bike"}})).await;
    create(&mut ann, "groceries", json!({})).await;
    // Bob's socket lists, so it hears about sharing from now on.
    let mine = bob.request(json!({"type": "list"})).await;
    assert_eq!(mine["shared"], json!([]));

    let shared = ann
        .request(json!({"type": "update", "target": target,
        "data": {"metadata": {"version": 0, "collaborators": [bob_name]}}}))
        .await;
    assert_eq!(shared["version"], 1, "{shared}");
    let push = push_of(&mut bob, "shared").await;
    assert_eq!(
        push,
        json!({"type": "shared", "owner": name, "name": "groceries", "role": "write"})
    );
    let list = bob.request(json!({"type": "list"})).await;
    assert_eq!(
        list["shared"],
        json!([{"owner": name, "name": "groceries", "role": "write", "version": 1,
        "lastUpdate": list["shared"][0]["lastUpdate"]}]),
        "{list}"
    );
    // Only that document: the other stays private.
    assert_error(
        &bob.request(json!({"type": "fetch", "target": format!("{name}/secret")}))
            .await,
        "unauthorized",
    );
    assert_error(
        &bob.request(json!({"type": "fetch", "target": name})).await,
        "unauthorized",
    );

    // Bob edits; Ann's watch sees it.
    ann.request(json!({"type": "watch", "target": target}))
        .await;
    assert_eq!(
        merge(&mut bob, &target, 1, json!({"milk": 2})).await["version"],
        2
    );
    let change = push_of(&mut ann, "change").await;
    assert_eq!(change["by"], bob_name.as_str());

    // Ann turns Bob into a reader, then takes it away: pushed both times; his watch ends.
    bob.request(json!({"type": "watch", "target": target}))
        .await;
    ann.request(json!({"type": "update", "target": target,
        "data": {"metadata": {"version": 2, "collaborators": [], "readers": [bob_name]}}}))
        .await;
    assert_eq!(push_of(&mut bob, "shared").await["role"], "read");
    assert_error(
        &merge(&mut bob, &target, 3, json!({"x": 1})).await,
        "unauthorized",
    );
    ann.request(json!({"type": "update", "target": target,
        "data": {"metadata": {"version": 3, "readers": []}}}))
        .await;
    // Two pushes, in either order: the watch's end and the access notice.
    let two = pushes_of(&mut bob, &["error", "unshared"]).await;
    let ended = two
        .iter()
        .find(|p| p["type"] == "error")
        .expect("error push");
    assert_eq!(
        (ended["code"].as_str(), ended["detail"].as_str()),
        (Some("unauthorized"), Some("access revoked"))
    );
    let unshared = two
        .iter()
        .find(|p| p["type"] == "unshared")
        .expect("unshared");
    assert_eq!(
        *unshared,
        json!({"type": "unshared", "owner": name, "name": "groceries"})
    );
    assert_eq!(
        bob.request(json!({"type": "list"})).await["shared"],
        json!([])
    );

    // A socket that never listed hears nothing of this (clients written before named documents).
    let (mut quiet, quiet_name, token) = server.user().await;
    let _ = token;
    ann.request(json!({"type": "update", "target": target,
        "data": {"metadata": {"version": 4, "readers": [quiet_name]}}}))
        .await;
    assert!(quiet.quiet_for(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn deleting_ends_watches_and_a_new_incarnation_never_resumes_the_old_one() {
    let server = TestServer::start().await;
    let (mut ann, name, _) = server.user().await;
    let (mut bob, bob_name, _) = server.user().await;
    let target = format!("{name}/notes");
    let first = create(
        &mut ann,
        "notes",
        json!({"userdata": {"n": 0}, "readers": [bob_name]}),
    )
    .await;
    let old = first["data"]["metadata"]["incarnation"].clone();
    for v in 0..3 {
        merge(&mut ann, &target, v, json!({"n": v + 1})).await;
    }
    bob.request(json!({"type": "list"})).await;
    let w = bob
        .request(json!({"type": "watch", "target": target}))
        .await;
    assert_eq!(w["version"], 3);

    let deleted = ann
        .request(json!({"type": "delete", "name": "notes"}))
        .await;
    assert_eq!(
        deleted,
        json!({"id": deleted["id"], "type": "deleted", "username": name, "name": "notes"})
    );
    let two = pushes_of(&mut bob, &["error", "unshared"]).await;
    let ended = two
        .iter()
        .find(|p| p["type"] == "error")
        .expect("error push");
    assert_eq!(ended["code"], "not_found", "{ended}");
    assert_eq!(ended["detail"], "deleted");
    assert_eq!(ended["target"], target.as_str());
    let unshared = two
        .iter()
        .find(|p| p["type"] == "unshared")
        .expect("unshared");
    assert_eq!(unshared["name"], "notes");
    assert_error(
        &ann.request(json!({"type": "fetch", "target": target}))
            .await,
        "unauthorized",
    );
    assert_eq!(
        ann.request(json!({"type": "list"})).await["documents"],
        json!([])
    );

    // Created again: version 0, another incarnation; a resume from the old life resyncs.
    let again = create(&mut ann, "notes", json!({"readers": [bob_name]})).await;
    assert_eq!(again["version"], 0);
    assert_ne!(again["data"]["metadata"]["incarnation"], old);
    assert!(push_of(&mut bob, "shared").await["name"] == "notes");
    merge(&mut ann, &target, 0, json!({"fresh": true})).await;
    let resumed = bob
        .request(json!({"type": "watch", "target": target, "since": 0, "incarnation": old}))
        .await;
    assert_eq!(resumed["type"], "data", "{resumed}");
    assert_eq!(resumed["resync"], true);
    assert_eq!(resumed["data"]["userdata"], json!({"fresh": true}));
    // With the right incarnation it replays as usual.
    let inc = again["data"]["metadata"]["incarnation"].clone();
    let replay = bob
        .request(json!({"type": "watch", "target": target, "since": 0, "incarnation": inc}))
        .await;
    assert_eq!(replay["type"], "watching", "{replay}");
    let v1 = bob.next_push().await;
    assert_eq!(
        (v1["version"].as_u64(), v1["op"]["merge"].clone()),
        (Some(1), json!({"fresh": true}))
    );
}

#[tokio::test]
async fn documents_per_account_are_limited_and_deleting_frees_room() {
    let server = TestServer::start_with(|c| c.max_documents_per_account = 2).await;
    let (mut ann, _, _) = server.user().await;
    create(&mut ann, "a", json!({})).await;
    create(&mut ann, "b", json!({})).await;
    let full = create(&mut ann, "c", json!({})).await;
    assert_error(&full, "too_many_documents");
    ann.request(json!({"type": "delete", "name": "a"})).await;
    assert_eq!(create(&mut ann, "c", json!({})).await["type"], "data");
    // So does the nesting limit (checked by the store, for REST PUT as for this).
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!({"d": deep});
    }
    let r = create(&mut ann, "deep", json!({"userdata": {"x": deep.clone()}})).await;
    assert_error(&r, "bad_request");
    assert!(r["message"].as_str().unwrap().contains("deeper"), "{r}");
    // The document size limit applies from creation on.
    let big = "x".repeat(600 * 1024);
    let r = ann.request(json!({"type": "delete", "name": "b"})).await;
    assert_eq!(r["type"], "deleted");
    let too_big = create(&mut ann, "big", json!({"userdata": {"x": big}})).await;
    assert_error(&too_big, "too_large");
}

#[tokio::test]
async fn named_documents_and_sharing_survive_a_restart_and_go_with_their_account() {
    let server = TestServer::start().await;
    let (mut ann, name, ann_token) = server.user().await;
    let (_bob, bob_name, bob_token) = server.user().await;
    let target = format!("{name}/list");
    create(&mut ann, "list", json!({"collaborators": [bob_name]})).await;
    merge(&mut ann, &target, 0, json!({"a": 1})).await;
    drop(ann);
    let server = server.restart().await;
    let mut bob = server.client().await;
    bob.request(json!({"type": "auth", "token": bob_token}))
        .await;
    let list = bob.request(json!({"type": "list"})).await;
    assert_eq!(list["shared"][0]["name"], "list", "{list}");
    assert_eq!(list["shared"][0]["version"], 1);
    let fetched = bob
        .request(json!({"type": "fetch", "target": target}))
        .await;
    assert_eq!(fetched["data"]["userdata"], json!({"a": 1}));

    // The account goes, and its documents with it: not listed, not readable.
    let (status, _) = crate::common::http(
        reqwest::Method::DELETE,
        &format!("http://{}/v1/me", server.addr),
        Some(&ann_token),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        bob.request(json!({"type": "list"})).await["shared"],
        json!([])
    );
    assert_error(
        &bob.request(json!({"type": "fetch", "target": target}))
            .await,
        "unauthorized",
    );
    // The name can be signed up for again and starts with nothing.
    let mut fresh = server.client().await;
    let again = fresh
        .request(json!({"type": "signup", "username": name, "password": "correct horse"}))
        .await;
    if again["type"] == "auth" {
        assert_eq!(
            fresh.request(json!({"type": "list"})).await["documents"],
            json!([])
        );
    }
}

/// A data file written before named documents (schema 3: no sharing index) opens, is
/// upgraded in place, and indexes what its documents already shared: the sharee's list shows
/// it, the owner's token still works, and its change log still replays.
#[tokio::test]
async fn a_data_file_from_before_named_documents_is_upgraded_in_place() {
    use redb::{ReadableDatabase, TableDefinition, TableHandle};
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    if std::env::var("TEST_STORE").is_ok_and(|s| s == "postgres") {
        return; // a redb file; PostgreSQL's migration runs in every cluster test
    }
    let mut server = TestServer::start().await;
    let (mut ann, name, ann_token) = server.user().await;
    let (_, bob_name, bob_token) = server.user().await;
    ann.request(
        json!({"type": "update", "data": {"metadata": {"version": 0, "readers": [bob_name]}}}),
    )
    .await;
    merge(&mut ann, &name, 1, json!({"a": 1})).await;
    server.shutdown().await;
    let path = server.dir.path().join("hearth.redb");
    {
        let db = redb::Database::open(&path).expect("open");
        let txn = db.begin_write().expect("write");
        for table in ["shares", "shared_with"] {
            let handle = txn
                .list_tables()
                .expect("tables")
                .find(|t| t.name() == table);
            assert!(handle.is_some(), "{table} exists in today's files");
            assert!(txn.delete_table(handle.expect("table")).expect("delete"));
        }
        txn.open_table(META)
            .expect("meta")
            .insert("schema_version", 3)
            .expect("version");
        txn.commit().expect("commit");
        let read = db.begin_read().expect("read");
        assert!(
            !read
                .list_tables()
                .expect("tables")
                .any(|t| t.name() == "shares")
        );
    }
    let server = server.restart().await;
    let mut bob = server.client().await;
    bob.request(json!({"type": "auth", "token": bob_token}))
        .await;
    let list = bob.request(json!({"type": "list"})).await;
    assert_eq!(
        list["shared"],
        json!([{"owner": name, "role": "read", "version": 2, "lastUpdate": list["shared"][0]["lastUpdate"]}]),
        "{list}"
    );
    let mut ann = server.client().await;
    assert_eq!(
        ann.request(json!({"type": "auth", "token": ann_token}))
            .await["type"],
        "auth"
    );
    let replay = ann.request(json!({"type": "watch", "since": 0})).await;
    assert_eq!(replay["type"], "watching", "{replay}");
    assert_eq!(ann.next_push().await["version"], 1);
    assert_eq!(ann.next_push().await["op"], json!({"merge": {"a": 1}}));
}

/// The REST view: create with PUT, then every default-document route under the named one,
/// listing, "shared with me", and delete; SSE ids carry the incarnation.
#[tokio::test]
async fn named_documents_over_http() {
    use crate::common::{Sse, http, http_get};
    use reqwest::Method;
    let server = TestServer::start().await;
    let (_ann, name, token) = server.user().await;
    let (_bob, bob_name, bob_token) = server.user().await;
    let base = format!("http://{}/v1/users/{name}/docs", server.addr);
    let doc = format!("{base}/groceries");

    let (status, body) = http(Method::PUT, &doc, Some(&token), Some(json!({"milk": 1}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"username": name, "name": "groceries", "version": 0})
    );
    let (status, body) = http(Method::PUT, &doc, Some(&token), Some(json!({"milk": 2}))).await;
    assert_eq!(
        (status, body["version"].as_u64()),
        (200, Some(1)),
        "replaced"
    );
    let (status, body) = http(
        Method::PUT,
        &format!("{doc}/data/eggs"),
        Some(&token),
        Some(json!(6)),
    )
    .await;
    assert_eq!((status, body["version"].as_u64()), (201, Some(2)), "{body}");
    let (_, eggs) = http_get(&format!("{doc}/data/eggs"), &token).await;
    assert_eq!(eggs, json!(6));
    let (_, keys) = http_get(&format!("{doc}/keys"), &token).await;
    assert_eq!(keys["keys"], json!(["eggs", "milk"]), "{keys}");
    let (status, _) = http(
        Method::POST,
        &format!("{doc}/batch"),
        Some(&token),
        Some(
            json!([{"op": "delete", "path": "eggs"}, {"op": "put", "path": "tea", "value": true}]),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (_, whole) = http_get(&doc, &token).await;
    assert_eq!(whole["userdata"], json!({"milk": 2, "tea": true}));
    let incarnation = whole["metadata"]["incarnation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, log) = http_get(&format!("{doc}/changes?from=1"), &token).await;
    assert_eq!(log["name"], "groceries", "{log}");
    assert_eq!(log["incarnation"], incarnation.as_str());
    assert_eq!(log["changes"].as_array().map(Vec::len), Some(3));
    // The default document is untouched, and its change log looks as it always did.
    let (_, mine) = http_get(
        &format!("http://{}/v1/users/{name}/changes", server.addr),
        &token,
    )
    .await;
    assert!(mine.get("name").is_none() && mine["version"] == 0, "{mine}");

    // Strangers: nothing to see, nothing to create or delete in someone else's space.
    let (status, _) = http_get(&doc, &bob_token).await;
    assert_eq!(status, 404);
    let (status, _) = http(
        Method::PUT,
        &format!("{base}/theirs"),
        Some(&bob_token),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = http(Method::DELETE, &doc, Some(&bob_token), None).await;
    assert_eq!(status, 404);
    let (status, _) = http_get(&base, &bob_token).await;
    assert_eq!(status, 404, "only the owner lists");
    for bad in ["..", ".x", "A", &"n".repeat(65)] {
        let (status, _) = http(
            Method::PUT,
            &format!("{base}/{bad}"),
            Some(&token),
            Some(json!({})),
        )
        .await;
        assert!(status == 404 || status == 400, "{bad}: {status}");
    }

    // Listing, and sharing seen from the other side.
    let (_, list) = http_get(&base, &token).await;
    assert_eq!(list["documents"][0]["name"], "groceries", "{list}");
    let mut ws = server.client().await;
    ws.request(json!({"type": "auth", "token": token})).await;
    ws.request(
        json!({"type": "update", "target": format!("{name}/groceries"),
        "data": {"metadata": {"version": 3, "readers": [bob_name]}}}),
    )
    .await;
    let (_, shared) = http_get(&format!("http://{}/v1/me/shared", server.addr), &bob_token).await;
    assert_eq!(shared["shared"][0]["role"], "read", "{shared}");

    // SSE: ids are `version:incarnation`; a resume into another incarnation resyncs.
    let mut sse = Sse::open(&format!("{doc}/events"), &token, None).await;
    let first = sse.next().await.expect("snapshot");
    assert_eq!(
        first.id.as_deref(),
        Some(format!("4:{incarnation}").as_str())
    );
    let (status, _) = http(Method::DELETE, &doc, Some(&token), None).await;
    assert_eq!(status, 200);
    let ended = sse.next().await.expect("end");
    assert_eq!(ended.data["detail"], "deleted", "{:?}", ended.data);
    let (status, _) = http(Method::DELETE, &doc, Some(&token), None).await;
    assert_eq!(status, 404, "deleted once");
    let (status, _) = http(Method::PUT, &doc, Some(&token), Some(json!({"new": 1}))).await;
    assert_eq!(status, 201);
    let mut resumed = Sse::open(
        &format!("{doc}/events"),
        &token,
        Some(&format!("4:{incarnation}")),
    )
    .await;
    let snapshot = resumed.next().await.expect("resync");
    assert_eq!(snapshot.data["resync"], true, "{:?}", snapshot.data);
    assert_eq!(snapshot.data["data"]["userdata"], json!({"new": 1}));
}

/// `MAX_ACCOUNT_BYTES`: an account's documents together stay within it, across creates and
/// updates; deleting frees room. Blobs are not counted here (they have their own quota).
#[tokio::test]
async fn bytes_per_account_are_limited_across_documents() {
    let server = TestServer::start_with(|c| {
        c.max_data_size_json = 2048;
        c.max_account_bytes = 6000;
    })
    .await;
    let (mut ann, name, _) = server.user().await;
    let filler = |n: usize| json!({"pad": "x".repeat(n)});
    for doc in ["a", "b", "c"] {
        let r = create(&mut ann, doc, json!({"userdata": filler(1500)})).await;
        assert_eq!(r["type"], "data", "{doc}: {r}");
    }
    let full = create(&mut ann, "d", json!({"userdata": filler(1500)})).await;
    assert_error(&full, "account_full");
    assert!(full["message"].as_str().unwrap().contains("6000"), "{full}");
    // An update that would grow past the quota is refused; one that fits goes through.
    let grow = merge(
        &mut ann,
        &format!("{name}/a"),
        0,
        json!({"more": "y".repeat(1400)}),
    )
    .await;
    assert_error(&grow, "account_full");
    let small = merge(&mut ann, &format!("{name}/a"), 0, json!({"n": 1})).await;
    assert_eq!(small["version"], 1, "{small}");
    // Deleting a document makes room again.
    ann.request(json!({"type": "delete", "name": "b"})).await;
    let fits = create(&mut ann, "d", json!({"userdata": filler(1500)})).await;
    assert_eq!(fits["type"], "data", "{fits}");
}

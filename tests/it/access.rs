//! Collaborators, readers, strangers, and revocation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Client, TestServer, assert_error};

async fn share(
    owner: &mut Client,
    version: u64,
    collaborators: &[&str],
    readers: &[&str],
) -> Value {
    owner
        .request(json!({
            "type": "update",
            "data": {"metadata": {"version": version, "collaborators": collaborators, "readers": readers}},
        }))
        .await
}

#[tokio::test]
async fn collaborators_write_readers_read_strangers_see_nothing() {
    let server = TestServer::start().await;
    let (mut owner, ann, _) = server.user().await;
    let (mut collab, bob, _) = server.user().await;
    let (mut reader, cat, _) = server.user().await;
    let (mut stranger, _, _) = server.user().await;

    assert_eq!(share(&mut owner, 0, &[&bob], &[&cat]).await["version"], 1);
    let meta = owner.request(json!({"type": "fetch"})).await["data"]["metadata"].clone();
    assert_eq!(meta["collaborators"], json!([bob]));
    assert_eq!(meta["readers"], json!([cat]));

    // The collaborator reads and writes userdata...
    let data = collab
        .request(json!({"type": "fetch", "target": ann}))
        .await;
    assert_eq!(data["username"], ann.as_str());
    let wrote = collab
        .request(json!({"type": "update", "target": ann, "data": {"metadata": {"version": 1}, "userdata": {"by": "bob"}}}))
        .await;
    assert_eq!(wrote["version"], 2, "{wrote}");
    let fetched = owner.request(json!({"type": "fetch"})).await;
    assert_eq!(
        fetched["data"]["metadata"]["lastUpdate"]["by"],
        bob.as_str()
    );
    // ...but may not change who has access.
    let grab = collab
        .request(json!({"type": "update", "target": ann, "data": {"metadata": {"version": 2, "collaborators": [bob, "mallory"]}}}))
        .await;
    assert_error(&grab, "unauthorized");
    assert_eq!(grab["message"], "unauthorized");

    // The reader reads but never writes.
    assert_eq!(
        reader
            .request(json!({"type": "fetch", "target": ann}))
            .await["type"],
        "data"
    );
    let write = reader
        .request(json!({"type": "update", "target": ann, "data": {"metadata": {"version": 2}, "userdata": {}}}))
        .await;
    assert_error(&write, "unauthorized");

    // A stranger and an unknown user get the same answer.
    for target in [ann.as_str(), "no-such-user", "../../etc"] {
        assert_error(
            &stranger
                .request(json!({"type": "fetch", "target": target}))
                .await,
            "unauthorized",
        );
        assert_error(
            &stranger
                .request(json!({"type": "watch", "target": target}))
                .await,
            "unauthorized",
        );
        let u = stranger
            .request(json!({"type": "update", "target": target, "data": {"metadata": {"version": 2}, "userdata": {}}}))
            .await;
        assert_error(&u, "unauthorized");
        assert!(
            u.get("version").is_none(),
            "no version leaks to strangers: {u}"
        );
    }
    assert_eq!(owner.request(json!({"type": "fetch"})).await["version"], 2);
}

#[tokio::test]
async fn removing_a_collaborator_ends_their_watch_at_once() {
    let server = TestServer::start().await;
    let (mut owner, ann, _) = server.user().await;
    let (mut collab, bob, _) = server.user().await;
    let (mut reader, cat, _) = server.user().await;
    share(&mut owner, 0, &[&bob], &[&cat]).await;

    let w = collab
        .request(json!({"type": "watch", "target": ann}))
        .await;
    assert_eq!(w["watching"], true);
    reader
        .request(json!({"type": "watch", "target": ann}))
        .await;

    // Remove bob only.
    assert_eq!(share(&mut owner, 1, &[], &[&cat]).await["version"], 2);
    let ended = collab.next_push().await;
    assert_error(&ended, "unauthorized");
    assert_eq!(ended["target"], ann.as_str());
    assert_eq!(ended["detail"], "access revoked");
    assert_error(
        &collab
            .request(json!({"type": "fetch", "target": ann}))
            .await,
        "unauthorized",
    );

    // The reader still sees the change, and later ones.
    let change = reader.next_push().await;
    assert_eq!(change["type"], "change");
    assert_eq!(change["version"], 2);
    assert_eq!(change["data"]["metadata"]["collaborators"], json!([]));

    // Then the reader is removed too.
    share(&mut owner, 2, &[], &[]).await;
    let ended = reader.next_push().await;
    assert_error(&ended, "unauthorized");
    assert!(
        collab
            .quiet_for(std::time::Duration::from_millis(100))
            .await,
        "bob hears nothing more"
    );
    crate::common::eventually("watches dropped", || server.state().hub.watchers() == 0).await;
}

/// Changes committed back to back reach a watcher as one batch; a revocation inside that
/// batch still ends the watch exactly there: every version before it, then the error, then
/// nothing (not the versions after it that were already taken with the batch).
#[tokio::test]
async fn a_revocation_inside_a_burst_ends_the_watch_exactly_there() {
    let server = TestServer::start().await;
    let (mut owner, ann, _) = server.user().await;
    let (mut collab, bob, _) = server.user().await;
    share(&mut owner, 0, &[&bob], &[]).await;
    let w = collab
        .request(json!({"type": "watch", "target": ann}))
        .await;
    assert_eq!(w["version"], 1);

    // Pipelined: sent without waiting, applied in order (versions 2..=6, the revocation at
    // 7, then 8..=10).
    for base in 1..=9u64 {
        let data = if base == 6 {
            json!({"metadata": {"version": base, "collaborators": [], "readers": []}})
        } else {
            json!({"metadata": {"version": base}, "userdata": {"n": base}})
        };
        owner
            .send(json!({"type": "update", "id": base, "patch": true, "data": data}))
            .await;
    }
    for base in 1..=9u64 {
        let reply = owner.recv().await;
        assert_eq!(reply["version"], base + 1, "{reply}");
    }

    for version in 2..=6u64 {
        let change = collab.next_push().await;
        assert_eq!(change["type"], "change", "{change}");
        assert_eq!(change["version"], version);
    }
    let ended = collab.next_push().await;
    assert_error(&ended, "unauthorized");
    assert_eq!(ended["detail"], "access revoked");
    assert!(
        collab.quiet_for(Duration::from_millis(200)).await,
        "nothing after the revocation"
    );
}

//! Bounded work and memory against hostile input (issue 26, points 6–9): what a client can ask
//! of the server is proportional to the limits, whatever it sends.

use serde_json::json;

use crate::common::{TestServer, assert_error};

/// A JSON Patch whose `copy` operations each double the document: forty of them would ask
/// for a terabyte. The size limit is checked as the patch applies, so it is refused at once,
/// nothing changes, and another writer's update goes through meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_patch_copy_bomb_is_refused_as_it_grows() {
    let server = TestServer::start().await;
    let (mut eve, _) = server.named_user("eve").await;
    let (mut ann, _) = server.named_user("ann").await;
    let mut ops = vec![json!({"op": "add", "path": "/a", "value": {"s": "x".repeat(1000)}})];
    for i in 0..40 {
        ops.push(json!({"op": "copy", "from": "/a", "path": format!("/a/k{i}")}));
    }
    let frame = json!({"type": "update", "patch": "json-patch",
        "data": {"metadata": {"version": 0}, "userdata": ops}});
    let bomb = eve.request(frame);
    let other = ann.request(json!({"type": "update", "patch": true,
        "data": {"metadata": {"version": 0}, "userdata": {"fine": true}}}));
    let (bomb, other) = tokio::join!(bomb, other);
    assert_error(&bomb, "too_large");
    assert_eq!(other["type"], "version", "{other}");
    let doc = eve.request(json!({"type": "fetch"})).await;
    assert_eq!(doc["version"], 0);
    assert_eq!(doc["data"]["userdata"], json!({}));

    // A patch that copies within the limit still applies.
    let ok = eve
        .request(json!({"type": "update", "patch": "json-patch",
            "data": {"metadata": {"version": 0}, "userdata": [
                {"op": "add", "path": "/a", "value": {"s": "y"}},
                {"op": "copy", "from": "/a", "path": "/b"},
                {"op": "copy", "from": "/b", "path": "/a/c"}]}}))
        .await;
    assert_eq!(ok["type"], "version", "{ok}");
    let doc = eve.request(json!({"type": "fetch"})).await;
    assert_eq!(
        doc["data"]["userdata"],
        json!({"a": {"s": "y", "c": {"s": "y"}}, "b": {"s": "y"}})
    );
}

/// An oversize message is closed with 1009, and the client sees that code rather than a reset
/// (closing with unread bytes makes the kernel reset the connection, and a reset loses the
/// close frame). With tokio-tungstenite clients this held before issue 26 too; Node's `ws`
/// client saw 1006 in 45 of 50 runs, which client-js's test "hostile sockets" reproduces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_sending_an_oversize_message_sees_1009() {
    let server = TestServer::start_with(|c| c.max_message_size = 64 * 1024).await;
    let mut clients = Vec::new();
    for _ in 0..30 {
        clients.push(server.client().await);
    }
    let big = json!({"type": "fetch", "pad": "x".repeat(3 * 1024 * 1024)}).to_string();
    let results = futures_util::future::join_all(clients.into_iter().map(|mut c| {
        let big = big.clone();
        async move {
            c.try_send_raw(tokio_tungstenite::tungstenite::Message::text(big))
                .await;
            c.close_code().await
        }
    }))
    .await;
    assert!(results.iter().all(|code| *code == Ok(1009)), "{results:?}");
}

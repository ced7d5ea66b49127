//! socket.io's Engine.IO WebSocket transport spoken by hand, where a Node client cannot go:
//! across the nodes of a cluster.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket.io connection on `node`, joined to the default namespace and signed in.
async fn sio(node: &TestServer, token: &str) -> Ws {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", node.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let open = text(&mut ws).await;
    assert!(open.starts_with("0{"), "{open}");
    ws.send(Message::text("40")).await.unwrap();
    assert!(text(&mut ws).await.starts_with("40{"));
    emit(&mut ws, json!(["auth", token])).await;
    assert_eq!(event(&mut ws).await[0], "auth");
    ws
}

async fn text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a packet in time")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = msg {
            // Engine.IO pings are answered, as a client would.
            if t.as_str() == "2" {
                ws.send(Message::text("3")).await.unwrap();
                continue;
            }
            return t.as_str().to_owned();
        }
    }
}

async fn emit(ws: &mut Ws, args: Value) {
    ws.send(Message::text(format!("42{args}"))).await.unwrap();
}

/// The next event's arguments, its name first.
async fn event(ws: &mut Ws) -> Value {
    let packet = text(ws).await;
    let body = packet.strip_prefix("42").expect("an event");
    serde_json::from_str(body).expect("JSON")
}

/// A socket.io watcher on one node sees writes made on the other over `/ws`, and a
/// socket.io write on that node reaches a `/ws` watcher on the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_watchers_see_every_nodes_writes() {
    let Some(nodes) = TestServer::cluster(2, |_| {}).await else {
        return;
    };
    let (mut ann, token) = nodes[0].named_user("ann").await;
    let mut watcher = sio(&nodes[1], &token).await;
    emit(&mut watcher, json!(["watch"])).await;
    // `watch` has no answer in the seed's protocol: a fetch after it shows it was taken.
    emit(&mut watcher, json!(["fetch"])).await;
    assert_eq!(event(&mut watcher).await[0], "data");

    let w = ann
        .request(json!({"type": "update", "patch": true,
            "data": {"metadata": {"version": 0}, "userdata": {"from": "node 0"}}}))
        .await;
    assert_eq!(w["version"], 1, "{w}");
    let change = event(&mut watcher).await;
    assert_eq!(change[0], "change", "{change}");
    assert_eq!(change[1], "ann");
    assert_eq!(change[2]["metadata"]["version"], 1);
    assert_eq!(change[2]["userdata"]["from"], "node 0");

    // The other way: socket.io on node 1 writes, /ws on node 0 watches.
    let watch = ann.request(json!({"type": "watch"})).await;
    assert_eq!(watch["type"], "data", "{watch}");
    emit(
        &mut watcher,
        json!(["update", {"metadata": {"version": 1}, "userdata": {"back": true}}, null, true]),
    )
    .await;
    let mut version = None;
    for _ in 0..3 {
        let e = event(&mut watcher).await;
        if e[0] == "version" {
            version = Some(e[2].clone());
            break;
        }
    }
    assert_eq!(version, Some(json!(2)));
    let pushed = ann.next_push().await;
    assert_eq!(pushed["version"], 2, "{pushed}");
    assert_eq!(
        pushed["data"]["userdata"],
        json!({"from": "node 0", "back": true})
    );
}

//! A minimal raw-JSON Hearth client for load generation.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub struct Conn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Conn {
    pub async fn connect(url: &str) -> Conn {
        let (ws, _) = connect_async(url).await.expect("connect");
        Conn { ws, next_id: 1 }
    }

    /// A connection whose TCP side comes from `source` (another 127.0.0.x), so more
    /// connections fit than one address has ports.
    pub async fn connect_from(addr: &str, source: &str) -> Result<Conn, String> {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        let bind: std::net::SocketAddr =
            format!("{source}:0").parse().map_err(|e| format!("{e}"))?;
        socket.bind(bind).map_err(|e| e.to_string())?;
        let target: std::net::SocketAddr = addr.parse().map_err(|e| format!("{e}"))?;
        let stream = socket.connect(target).await.map_err(|e| e.to_string())?;
        let (ws, _) = tokio_tungstenite::client_async(
            format!("ws://{addr}/ws"),
            MaybeTlsStream::Plain(stream),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Conn { ws, next_id: 1 })
    }

    /// A new connection signed up with a generated name: (conn, username, token).
    pub async fn signup(url: &str) -> (Conn, String, String) {
        let mut c = Conn::connect(url).await;
        let r = c.request(json!({"type": "signup"})).await;
        let name = r["username"].as_str().expect("username").to_owned();
        let token = r["token"].as_str().expect("token").to_owned();
        (c, name, token)
    }

    pub async fn auth(&mut self, token: &str) {
        let r = self.request(json!({"type": "auth", "token": token})).await;
        assert_eq!(r["type"], "auth", "{r}");
    }

    pub async fn update(&mut self, version: u64, patch: Value) {
        let r = self
            .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": version}, "userdata": patch}}))
            .await;
        assert_eq!(r["type"], "version", "{r}");
    }

    /// Sends a frame and waits for the reply with its id, skipping pushes.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        frame["id"] = json!(id);
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
        loop {
            let v = self.next_frame().await;
            if v["id"] == json!(id) {
                return v;
            }
        }
    }

    pub async fn next_frame(&mut self) -> Value {
        loop {
            match self.ws.next().await.expect("open").expect("ok") {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json"),
                Message::Close(f) => panic!("closed: {f:?}"),
                _ => {}
            }
        }
    }

    pub async fn next_change(&mut self) -> Value {
        loop {
            let v = self.next_frame().await;
            if v["type"] == "change" {
                return v;
            }
        }
    }

    /// Sends a frame without waiting for its reply.
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }

    /// Counts frames without parsing them; `None` once `until` passes.
    pub async fn next_frame_until(&mut self, until: Instant) -> Option<()> {
        let left = until.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, self.ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => Some(()),
            Ok(Some(Ok(_))) => Some(()),
            _ => None,
        }
    }
}

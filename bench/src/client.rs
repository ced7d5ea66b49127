//! A minimal raw-JSON Hearth client for load generation.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

/// tungstenite zero-fills its read buffer up to capacity before every read: with the
/// default 128 KiB, that memset was 15% of the whole machine's CPU in c) (perf, 1000
/// watchers), taken from the server the generator shares the cores with. 8 KiB still reads
/// dozens of change frames at once. (1 KiB was tried: it halved the memset in c), but in d)
/// the server writes batches of up to 64 KiB, and reading them 1 KiB at a time made the
/// generator the limit, 2.1–2.8M → 1.5–1.6M deliveries/s.)
fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024)
}

pub struct Conn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// The document updates go to (`owner/name`); `None`: the account's default document.
    pub target: Option<String>,
    /// Each update carries an `opId` (`op-<request id>`), as an offline-capable client's do.
    pub op_ids: bool,
    /// Updates become appends of the patch, as an event, to this stream (`owner/~name`).
    pub stream: Option<String>,
}

impl Conn {
    pub async fn connect(url: &str) -> Conn {
        let (ws, _) = connect_async_with_config(url, Some(config()), false)
            .await
            .expect("connect");
        Conn {
            ws,
            next_id: 1,
            target: None,
            op_ids: false,
            stream: None,
        }
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
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            format!("ws://{addr}/ws"),
            MaybeTlsStream::Plain(stream),
            Some(config()),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Conn {
            ws,
            next_id: 1,
            target: None,
            op_ids: false,
            stream: None,
        })
    }

    /// A new connection signed up with a generated name: (conn, username, token).
    pub async fn signup(url: &str) -> (Conn, String, String) {
        let mut c = Conn::connect(url).await;
        let r = c.request(json!({"type": "signup"})).await;
        let name = r["username"].as_str().expect("username").to_owned();
        let token = r["token"].as_str().expect("token").to_owned();
        (c, name, token)
    }

    /// Makes `name`'s writes go to a named document of its own (`named`, created here) or
    /// be appends to a stream of its own (`append`) instead of its default document.
    pub async fn write_to(&mut self, name: &str, named: bool, append: bool) {
        if append {
            self.stream = Some(format!("{name}/~bench"));
        }
        if named {
            let r = self
                .request(json!({"type": "create", "name": "bench"}))
                .await;
            assert_eq!(r["version"], 0, "{r}");
            self.target = Some(format!("{name}/bench"));
        }
    }

    pub async fn auth(&mut self, token: &str) {
        let r = self.request(json!({"type": "auth", "token": token})).await;
        assert_eq!(r["type"], "auth", "{r}");
    }

    /// An update at `version`, waiting for its ack. Lean on purpose: the generator shares
    /// the cores with the server, so the frame is formatted directly and the reply is read
    /// for its id and type only (no `Value` trees), leaving the CPU to the server.
    pub async fn update(&mut self, version: u64, patch: Value) {
        let id = self.send_update(version, patch).await;
        self.ack(id).await;
    }

    /// Sends an update at `version` without waiting; returns its id.
    pub async fn send_update(&mut self, version: u64, patch: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let op = if self.op_ids {
            format!(r#""opId":"op-{id}","#)
        } else {
            String::new()
        };
        if let Some(stream) = &self.stream {
            let frame =
                format!(r#"{{"id":{id},"type":"append",{op}"target":"{stream}","event":{patch}}}"#);
            self.ws.send(Message::text(frame)).await.expect("send");
            return id;
        }
        let frame = match &self.target {
            None => format!(
                r#"{{"id":{id},"type":"update",{op}"patch":true,"data":{{"metadata":{{"version":{version}}},"userdata":{patch}}}}}"#
            ),
            Some(target) => format!(
                r#"{{"id":{id},"type":"update",{op}"target":"{target}","patch":true,"data":{{"metadata":{{"version":{version}}},"userdata":{patch}}}}}"#
            ),
        };
        self.ws.send(Message::text(frame)).await.expect("send");
        id
    }

    /// Waits for the ack of the update with `id` (acks come in the order sent).
    pub async fn ack(&mut self, id: u64) {
        loop {
            let text = self.next_text().await;
            let head: Head<'_> = serde_json::from_str(text.as_str()).expect("json");
            if head.id == Some(id) {
                assert!(
                    head.kind == "version" || head.kind == "appended",
                    "{}",
                    text.as_str()
                );
                return;
            }
        }
    }

    async fn next_text(&mut self) -> tokio_tungstenite::tungstenite::Utf8Bytes {
        loop {
            match self.ws.next().await.expect("open").expect("ok") {
                Message::Text(t) => return t,
                Message::Close(f) => panic!("closed: {f:?}"),
                _ => {}
            }
        }
    }

    /// Sends a frame and parses the reply with its id as a `T`, skipping pushes: for
    /// replies large enough that building a `Value` tree would time the generator rather
    /// than the server (a `list` page: 500 entries).
    pub async fn request_as<T: serde::de::DeserializeOwned>(&mut self, mut frame: Value) -> T {
        #[derive(serde::Deserialize)]
        struct Id {
            id: Option<u64>,
        }
        let id = self.next_id;
        self.next_id += 1;
        frame["id"] = json!(id);
        self.send(frame).await;
        loop {
            let text = self.next_text().await;
            let got: Id = serde_json::from_str(text.as_str()).expect("json");
            if got.id == Some(id) {
                return serde_json::from_str(text.as_str()).expect("the reply's shape");
            }
        }
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
        serde_json::from_str(self.next_text().await.as_str()).expect("json")
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

/// The two fields every reply is matched on.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default)]
    id: Option<u64>,
    #[serde(rename = "type", borrow)]
    kind: &'a str,
}

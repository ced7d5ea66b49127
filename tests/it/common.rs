//! Test harness: the real server on 127.0.0.1:0 with a temp data dir, and a raw-JSON client.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth::{Config, Running};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    running: Option<Running>,
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub config: Config,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::defaults(dir.path());
        // Tests hammer one server from one address; the limit tests set their own values.
        config.signups_per_ip = 1_000_000;
        config.logins_per_ip = 1_000_000;
        config.logins_per_user = 1_000_000;
        config.max_requests_per_second = 1_000_000;
        config.max_connections_per_ip = 100_000;
        config.max_connections_per_user = 100_000;
        if std::env::var("TEST_STORE").is_ok_and(|s| s == "postgres") {
            let url = database_url().expect("TEST_STORE=postgres needs TEST_DATABASE_URL");
            use_postgres(&mut config, &url, &fresh_schema());
        }
        tweak(&mut config);
        Self::start_in(dir, config).await
    }

    /// `n` nodes sharing one fresh PostgreSQL schema: a cluster. `None` (after saying so
    /// loudly) when `TEST_DATABASE_URL` is unset.
    pub async fn cluster(n: usize, tweak: impl Fn(&mut Config)) -> Option<Vec<TestServer>> {
        let Some(url) = database_url() else {
            eprintln!(
                "\n*** SKIPPED: cluster test needs PostgreSQL; set TEST_DATABASE_URL (scripts/test does) ***\n"
            );
            return None;
        };
        let schema = fresh_schema();
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(
                Self::start_with(|c| {
                    use_postgres(c, &url, &schema);
                    tweak(c);
                })
                .await,
            );
        }
        Some(nodes)
    }

    /// Starts on an existing data dir (a restart).
    pub async fn start_in(dir: TempDir, config: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let running = hearth::start(config.clone(), listener)
            .await
            .expect("start");
        TestServer {
            addr: running.addr,
            running: Some(running),
            dir,
            config,
        }
    }

    pub fn state(&self) -> &hearth::state::AppState {
        &self.running.as_ref().expect("running").state
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url()).await
    }

    /// A client signed up with a generated name.
    pub async fn user(&self) -> (Client, String, String) {
        let mut c = self.client().await;
        let reply = c.request(json!({"type": "signup"})).await;
        assert_eq!(reply["type"], "auth", "{reply}");
        let name = reply["username"].as_str().expect("username").to_owned();
        let token = reply["token"].as_str().expect("token").to_owned();
        (c, name, token)
    }

    /// A client signed up as `name` (password "correct horse"), and its token.
    /// A name in `ADMIN_USERS` cannot be signed up for; it is created as an operator would
    /// (`hearth user create`), then signed in.
    pub async fn named_user(&self, name: &str) -> (Client, String) {
        let mut c = self.client().await;
        let reply = if self.config.admins().iter().any(|a| a == name) {
            let state = self.state();
            hearth::accounts::create(&state.store, &state.auth, name, "correct horse".into())
                .await
                .expect("create an admin account");
            c.request(json!({"type": "login", "username": name, "password": "correct horse"}))
                .await
        } else {
            c.request(json!({"type": "signup", "username": name, "password": "correct horse"}))
                .await
        };
        assert_eq!(reply["type"], "auth", "{reply}");
        let token = reply["token"].as_str().expect("token").to_owned();
        (c, token)
    }

    pub async fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Stops the server and starts a new one on the same data dir and config.
    pub async fn restart(mut self) -> TestServer {
        self.shutdown().await;
        let TestServer { dir, config, .. } = self;
        Self::start_in(dir, config).await
    }
}

/// The real `hearth` binary in its own process (so it can be killed), on a free port of
/// 127.0.0.1 with `data_dir` and `envs`; returns it and the address it logged.
pub async fn spawn_hearth(
    data_dir: &std::path::Path,
    envs: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("DATA_DIR", data_dir)
        .env("RUST_LOG", "info")
        .env("SIGNUPS_PER_IP", "100000")
        .env("MAX_REQUESTS_PER_SECOND", "100000")
        .env_remove("JWT_SECRET")
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hearth");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(at) = line.find("addr=") {
                return line[at + 5..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned();
            }
        }
        panic!("hearth exited before listening");
    })
    .await
    .expect("hearth starts");
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// One HTTP request with an optional bearer token and JSON body: the status and the JSON
/// answer (`null` when there is none).
pub async fn http(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET url` with `token`: the status and the JSON answer.
pub async fn http_get(url: &str, token: &str) -> (u16, Value) {
    http(reqwest::Method::GET, url, Some(token), None).await
}

/// What a run of the `hearth` binary printed.
pub struct Cli {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `hearth args…` on `data_dir` with `stdin` fed in, with no connection or admin
/// settings inherited from the environment.
pub async fn hearth_cli(args: &[&str], data_dir: &std::path::Path, stdin: &str) -> Cli {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("DATA_DIR", data_dir)
        .env_remove("JWT_SECRET")
        .env_remove("HEARTH_URL")
        .env_remove("HEARTH_TOKEN")
        .env_remove("ADMIN_USERS")
        .env_remove("STORE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hearth");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("stdin");
    drop(input);
    let out = child.wait_with_output().await.expect("hearth");
    Cli {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The PostgreSQL database for store-parameterised and cluster tests, if any.
pub fn database_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A schema no other test uses: each test (or cluster) gets its own tables and channel.
pub fn fresh_schema() -> String {
    format!("t_{:016x}", rand::random::<u64>())
}

pub fn use_postgres(config: &mut Config, url: &str, schema: &str) {
    config.store = hearth::config::StoreKind::Postgres;
    config.database_url = Some(url.to_owned());
    config.database_schema = schema.to_owned();
    config.database_pool = 4;
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Frames that arrived while waiting for a reply (pushed changes, errors without id).
    pushed: VecDeque<Value>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = connect_async(url).await.expect("connect");
        Client {
            ws,
            next_id: 1,
            pushed: VecDeque::new(),
        }
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// Sends, and says whether the send went through (the server may close mid-message).
    pub async fn try_send_raw(&mut self, msg: Message) -> bool {
        self.ws.send(msg).await.is_ok()
    }

    /// The close code the server sent, or what went wrong instead (a reset, an end without
    /// a close frame).
    pub async fn close_code(&mut self) -> Result<u16, String> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => return Err("timed out".into()),
                Ok(Some(Ok(Message::Close(Some(frame))))) => return Ok(u16::from(frame.code)),
                Ok(Some(Ok(Message::Close(None)))) => return Ok(1005),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(None) => return Err("ended without a close frame".into()),
            }
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_raw(Message::text(frame.to_string())).await;
    }

    /// The next frame from the socket, whatever it is. Panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("socket closed")
                .expect("socket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json"),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The next text frame, or `None` once the socket is closed or broken.
    pub async fn recv_or_close(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.ok()?? {
                Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                _ => return None,
            }
        }
    }

    /// The next pushed frame, or `None` once the socket is closed (what a dead server's
    /// clients get).
    pub async fn next_push_or_close(&mut self) -> Option<Value> {
        match self.pushed.pop_front() {
            Some(v) => Some(v),
            None => self.recv_or_close().await,
        }
    }

    /// The next frame without a request id (a pushed change or error).
    /// Forgets the pushes read so far (a test that only needs the socket kept reading).
    pub fn drain_pushes(&mut self) {
        self.pushed.clear();
    }

    pub async fn next_push(&mut self) -> Value {
        match self.pushed.pop_front() {
            Some(v) => v,
            None => self.recv().await,
        }
    }

    /// True if nothing arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        if !self.pushed.is_empty() {
            return false;
        }
        match tokio::time::timeout(wait, self.ws.next()).await {
            Err(_) => true,
            Ok(Some(Ok(Message::Text(t)))) => {
                self.pushed
                    .push_back(serde_json::from_str(t.as_str()).expect("json"));
                false
            }
            Ok(_) => false,
        }
    }

    /// Keeps reading (so pings get answered) for `wait`; true if nothing but pings and pongs
    /// arrived and the socket stayed open.
    pub async fn idle_for(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(_) => return false,
            }
        }
    }

    /// Sends `frame` with a fresh id and returns the reply carrying that id; frames without
    /// it are kept for [`Client::next_push`].
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        frame["id"] = json!(id);
        self.send(frame).await;
        loop {
            let v = self.recv().await;
            if v["id"] == json!(id) {
                return v;
            }
            self.pushed.push_back(v);
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn closed_with(&mut self) -> u16 {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("socket error before close frame: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Asserts `reply` is an error with `code`.
#[track_caller]
pub fn assert_error(reply: &Value, code: &str) {
    assert_eq!(reply["type"], "error", "expected error {code}, got {reply}");
    assert_eq!(reply["code"], code, "{reply}");
    assert!(reply["message"].is_string(), "{reply}");
}

/// Polls `f` until it is true or the wait runs out.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One parsed Server-Sent Event.
#[derive(Debug, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: Value,
}

/// A Server-Sent Events stream read over real HTTP.
pub struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    pub async fn open(url: &str, token: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = reqwest::Client::new().get(url).bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        Sse::from_response(req.send().await.expect("request")).await
    }

    /// The stream a response carries (it must be a 200).
    pub async fn from_response(resp: reqwest::Response) -> Sse {
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        Sse {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event with data (comments are skipped); `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut data = String::new();
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if !data.is_empty() {
                    event.data = serde_json::from_str(&data).expect("json data");
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("timed out waiting for an event")?
                .expect("body");
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("utf8"));
        }
    }
}

/// A WebSocket client whose TCP connection comes from `source` (e.g. 127.0.0.2), for
/// per-address limits. `Err` carries the refusal (e.g. an HTTP 429 at upgrade).
pub async fn client_from(server: &TestServer, source: &str) -> Result<Client, String> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("addr"))
        .expect("bind source address");
    let stream = socket.connect(server.addr).await.expect("tcp connect");
    match tokio_tungstenite::client_async(server.url(), MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => Ok(Client::from_stream(ws)),
        Err(e) => Err(e.to_string()),
    }
}

impl Client {
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client {
            ws,
            next_id: 1,
            pushed: VecDeque::new(),
        }
    }
}

/// A WebSocket spoken by hand over TCP: never answers pings, sends any bytes it is given.
pub struct RawWs {
    pub stream: TcpStream,
}

impl RawWs {
    pub async fn connect(server: &TestServer) -> RawWs {
        Self::connect_with(server, None).await
    }

    /// With `recv_buffer`: the kernel keeps at most about that many unread bytes for it, so
    /// a client that never reads backs the server up quickly.
    pub async fn connect_with(server: &TestServer, recv_buffer: Option<u32>) -> RawWs {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(bytes) = recv_buffer {
            socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        }
        let mut stream = socket.connect(server.addr).await.expect("tcp");
        let request = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.expect("handshake");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        RawWs { stream }
    }

    /// From here on, a client that reads (whatever the server queued meanwhile comes first).
    pub async fn into_client(self) -> Client {
        let role = tokio_tungstenite::tungstenite::protocol::Role::Client;
        let ws =
            WebSocketStream::from_raw_socket(MaybeTlsStream::Plain(self.stream), role, None).await;
        Client::from_stream(ws)
    }

    /// Sends one masked frame with `opcode` and `payload` (FIN set).
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mut frame = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        // The server may have closed already; the caller checks what came back.
        let _ = self.stream.write_all(&frame).await;
    }

    /// Reads frames until the server closes; returns the close code it sent, if any.
    pub async fn close_code(&mut self) -> Option<u16> {
        use tokio::io::AsyncReadExt;
        let mut data = Vec::new();
        let _ = tokio::time::timeout(WAIT, self.stream.read_to_end(&mut data)).await;
        let mut i = 0;
        while i + 2 <= data.len() {
            let opcode = data[i] & 0x0F;
            let mut len = usize::from(data[i + 1] & 0x7F);
            let mut at = i + 2;
            if len == 126 {
                len = usize::from(u16::from_be_bytes([data[at], data[at + 1]]));
                at += 2;
            } else if len == 127 {
                len = u64::from_be_bytes(data[at..at + 8].try_into().unwrap()) as usize;
                at += 8;
            }
            if opcode == 0x8 && len >= 2 {
                return Some(u16::from_be_bytes([data[at], data[at + 1]]));
            }
            i = at + len;
        }
        None
    }
}

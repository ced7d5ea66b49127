//! Slow and idle HTTP connections are reaped, one address cannot take every connection, and
//! SSE streams count like sockets (issue 26, point 7).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::TestServer;

async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source");
    socket.connect(to).await.expect("connect")
}

/// Whether the server has closed `tcp` (reads end) within `wait`.
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

async fn healthz(server: &TestServer) -> u16 {
    reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_dribbling_and_idle_keepalive_connections_are_closed() {
    let server = TestServer::start_with(|c| c.http_header_timeout = 600).await;
    let mut silent = Vec::new();
    let mut dribbling = Vec::new();
    for _ in 0..50 {
        silent.push(connect_from([127, 0, 0, 1], server.addr).await);
        let mut d = connect_from([127, 0, 0, 1], server.addr).await;
        d.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        dribbling.push(d);
    }
    // A header line every 150 ms: never a whole request, always something.
    let dribbler = tokio::spawn(async move {
        for i in 0..12 {
            for d in &mut dribbling {
                let _ = d.write_all(format!("x-slow-{i}: 1\r\n").as_bytes()).await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        dribbling
    });
    // A kept-alive connection after one whole request.
    let mut kept = connect_from([127, 0, 0, 1], server.addr).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    let n = kept.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(
        healthz(&server).await,
        200,
        "real clients are served meanwhile"
    );

    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(3)).await,
            "a silent connection stayed"
        );
    }
    let mut dribbling = dribbler.await.unwrap();
    for d in &mut dribbling {
        assert!(
            closed_within(d, Duration::from_secs(3)).await,
            "a dribbling connection stayed"
        );
    }
    assert!(
        closed_within(&mut kept, Duration::from_secs(3)).await,
        "an idle keep-alive stayed"
    );
    assert_eq!(healthz(&server).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_the_connections_others_need() {
    let server = TestServer::start_with(|c| c.max_connections_per_ip = 4).await;
    let room = 4 + hearth::limits::TCP_HEADROOM;
    let mut held = Vec::new();
    for _ in 0..room {
        held.push(connect_from([127, 0, 0, 2], server.addr).await);
    }
    let mut one_more = connect_from([127, 0, 0, 2], server.addr).await;
    assert!(
        closed_within(&mut one_more, Duration::from_secs(2)).await,
        "past its share, an address's connection is closed at once"
    );
    assert!(
        !closed_within(&mut held[0], Duration::from_millis(200)).await,
        "the ones it holds stay (until the header timeout)"
    );
    assert_eq!(healthz(&server).await, 200, "another address is served");
}

#[tokio::test]
async fn sse_streams_count_against_the_per_user_limit() {
    let server = TestServer::start_with(|c| c.max_connections_per_user = 1).await;
    let (_socket, token) = server.named_user("ann").await;
    // The signed-in socket holds ann's one slot: a stream is refused.
    let url = format!("http://{}/v1/users/ann/events", server.addr);
    let http = reqwest::Client::new();
    let open = || async { http.get(&url).bearer_auth(&token).send().await.unwrap() };
    assert_eq!(open().await.status(), 429);
    drop(_socket);
    let mut opened = None;
    for _ in 0..50 {
        let r = open().await;
        if r.status() == 200 {
            opened = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(opened.is_some(), "with the socket gone, a stream opens");
    let second = open().await;
    assert_eq!(second.status(), 429, "and counts like one");
}

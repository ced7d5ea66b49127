//! c)'s watchers: thousands of sockets read by one thread with one epoll set, as lean as a
//! client can be, so the generator takes as little as possible of the cores it shares with
//! the server.
//!
//! Why not a tokio task per watcher (as before): every change then cost the generator a
//! task wakeup, a poll through tungstenite (which zero-fills its read buffer before each
//! read), a `Utf8Bytes` and a JSON parse, ≈ 5.7 µs of CPU per delivery against the server's
//! ≈ 7 µs to send it (BENCHMARKS.md, c)), CPU taken from the server on a 2-core machine.
//! Here a delivery costs one `recv` (often several frames in one) and a scan for `"t":`;
//! what is left is the kernel's loopback receive. (Where the kernel places this thread is
//! another matter: see c)'s topology in bench/run.sh.)
//!
//! The handshake, `auth` and `watch` go through tungstenite on a blocking socket; after the
//! `watch` reply the server sends nothing but changes (and, every `PING_INTERVAL`, a ping,
//! answered here), so the socket is then read raw: unmasked server frames, RFC 6455 §5.2.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::{Value, json};
use tungstenite::Message;

/// A watcher's socket after its `watch` was answered.
pub struct Watcher {
    stream: TcpStream,
}

/// Connects, signs in with `token` and watches that account's document; blocking.
pub fn connect(addr: &str, token: &str) -> Result<Watcher, String> {
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut ws, _) =
        tungstenite::client(format!("ws://{addr}/ws"), stream).map_err(|e| e.to_string())?;
    for (id, frame) in [
        (1, json!({"id": 1, "type": "auth", "token": token})),
        (2, json!({"id": 2, "type": "watch"})),
    ] {
        ws.send(Message::text(frame.to_string()))
            .map_err(|e| e.to_string())?;
        loop {
            let Message::Text(text) = ws.read().map_err(|e| e.to_string())? else {
                continue;
            };
            let reply: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
            if reply["id"] == json!(id) {
                if reply["type"] == "error" {
                    return Err(reply.to_string());
                }
                break;
            }
        }
    }
    // tungstenite's read buffer goes with it: it holds nothing, as no change is sent before
    // the writer starts, after every watcher is connected.
    Ok(Watcher {
        stream: ws.into_inner(),
    })
}

/// Every watcher registered with one epoll set, ready to read changes.
pub struct Receiver {
    poll: Poll,
    conns: Vec<Conn>,
}

impl Receiver {
    /// Registers every watcher. Done before the writer starts: registering 1000 sockets takes
    /// milliseconds, which the first update's deliveries would otherwise wait for.
    pub fn new(watchers: Vec<Watcher>) -> Receiver {
        let poll = Poll::new().expect("poll");
        let conns = watchers
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                w.stream.set_nonblocking(true).expect("nonblocking");
                let mut stream = MioStream::from_std(w.stream);
                poll.registry()
                    .register(&mut stream, Token(i), Interest::READABLE)
                    .expect("register");
                Conn {
                    stream,
                    buf: Vec::with_capacity(4096),
                    seen: 0,
                }
            })
            .collect();
        Receiver { poll, conns }
    }

    /// Reads `updates` changes on every watcher; returns each delivery's (send time,
    /// latency) in µs, the send time being the change's `t` (µs since `epoch`, set by the
    /// writer).
    ///
    /// With `spin` above zero the thread does not sleep while changes keep coming: it looks
    /// again at once until `spin` has passed without one. Why: on loopback, a write to the
    /// socket of a sleeping reader runs the reader's wakeup on the *server's* thread (the
    /// spin-unlock that ends a wakeup, `_raw_spin_unlock_irqrestore`, held 11% of the fanout
    /// thread's samples in c)), a cost clients on other machines never put on it. With the generator on a core of its own (bench/run.sh),
    /// spinning there takes nothing from the server.
    ///
    /// # Panics
    /// On a socket error, a close, or a frame that is not a change: the run is void then.
    pub fn receive(mut self, updates: usize, epoch: Instant, spin: Duration) -> Vec<(u64, u64)> {
        let mut out = Vec::with_capacity(self.conns.len() * updates);
        let mut pending = self.conns.len();
        let mut events = Events::with_capacity(1024);
        let mut chunk = vec![0u8; 16 * 1024];
        let mut last = Instant::now();
        while pending > 0 {
            // Spinning: look without sleeping while changes came less than `spin` ago.
            let spinning = last.elapsed() < spin;
            let timeout = if spinning {
                Duration::ZERO
            } else {
                Duration::from_secs(60)
            };
            self.poll.poll(&mut events, Some(timeout)).expect("poll");
            if events.is_empty() {
                assert!(spinning, "no change for 60 s");
                continue;
            }
            last = Instant::now();
            for event in &events {
                let conn = &mut self.conns[event.token().0];
                let before = conn.seen;
                conn.drain(&mut chunk, epoch, &mut out);
                if before < updates && conn.seen >= updates {
                    pending -= 1;
                }
            }
        }
        // The sockets close here, once every watcher has every change (closed earlier, a
        // watcher's close would reach the server while it is still sending to the others).
        out
    }
}

struct Conn {
    stream: MioStream,
    /// Bytes of a frame not complete yet.
    buf: Vec<u8>,
    seen: usize,
}

impl Conn {
    /// Reads until the socket has nothing more (mio's readiness is edge-triggered).
    fn drain(&mut self, chunk: &mut [u8], epoch: Instant, out: &mut Vec<(u64, u64)>) {
        loop {
            match self.stream.read(chunk) {
                Ok(0) => panic!("server closed a watcher"),
                Ok(n) => {
                    let now = epoch.elapsed().as_micros() as u64;
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.frames(now, out);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("watcher read: {e}"),
            }
        }
    }

    /// Handles every whole frame in `buf`: a change is recorded, a ping answered.
    fn frames(&mut self, now: u64, out: &mut Vec<(u64, u64)>) {
        let (stream, seen) = (&mut self.stream, &mut self.seen);
        take_frames(&mut self.buf, |opcode, payload| match opcode {
            0x1 => {
                let sent = change_t(payload).expect("a change frame with data.userdata.t");
                out.push((sent, now.saturating_sub(sent)));
                *seen += 1;
            }
            0x9 => {
                // Ping: answer with a pong carrying the same payload (masked with a zero key,
                // as a client must mask; ping payloads are at most 125 bytes).
                let mut pong = vec![0x8A, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                pong.extend_from_slice(payload);
                let _ = stream.write_all(&pong);
            }
            0x8 => panic!(
                "server closed a watcher: {:?}",
                String::from_utf8_lossy(payload)
            ),
            _ => {}
        });
    }
}

/// Calls `each(opcode, payload)` for every whole frame at the front of `buf`, in order, and
/// removes them; an incomplete last frame stays for the next read.
fn take_frames(buf: &mut Vec<u8>, mut each: impl FnMut(u8, &[u8])) {
    let mut at = 0;
    while let Some((opcode, start, end)) = frame_at(&buf[at..]) {
        each(opcode, &buf[at + start..at + end]);
        at += end;
    }
    buf.drain(..at);
}

/// The frame at the start of `buf`, if whole: (opcode, payload start, payload end).
fn frame_at(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    assert_eq!(b0 & 0x80, 0x80, "fragmented frames are not sent by Hearth");
    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
    let (len, start) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    (buf.len() >= start + len).then_some((b0 & 0x0f, start, start + len))
}

/// The `t` of a change's `data.userdata` (the only number named `t` a change carries here).
fn change_t(payload: &[u8]) -> Option<u64> {
    const KEY: &[u8] = br#""t":"#;
    let at = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = &payload[at..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    digits[..len].iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::{change_t, frame_at, take_frames};

    #[test]
    fn frames_and_send_times_are_read() {
        let body = br#"{"type":"change","data":{"userdata":{"t":12345}}}"#;
        let mut frame = vec![0x81, body.len() as u8];
        frame.extend_from_slice(body);
        assert_eq!(frame_at(&frame), Some((1, 2, 2 + body.len())));
        assert_eq!(frame_at(&frame[..frame.len() - 1]), None, "not whole yet");
        assert_eq!(change_t(body), Some(12345));
        assert_eq!(change_t(br#"{"t":"x"}"#), None);
        assert_eq!(change_t(br#"{"t":"#), None, "nothing after the key");
        let long = vec![0x81, 126, 0x01, 0x00];
        assert_eq!(frame_at(&long), None, "256 bytes announced, none here");
    }

    /// Several frames in one read, one cut across two reads, and a 16-bit length: each is
    /// handed over once, whole, in order, and only the incomplete tail is kept.
    #[test]
    fn frames_split_across_reads_come_out_whole_and_in_order() {
        let text = |t: u64| {
            let body = format!(r#"{{"type":"change","data":{{"userdata":{{"t":{t}}}}}}}"#);
            let mut f = vec![0x81, body.len() as u8];
            f.extend_from_slice(body.as_bytes());
            f
        };
        let big = vec![b'x'; 300];
        let mut wire = text(1);
        wire.extend([0x89, 2, b'h', b'i']); // a ping
        wire.extend([0x81, 126, 1, 44]); // 300 bytes of text
        wire.extend(&big);
        wire.extend(text(2));
        let cut = wire.len() - 5;
        let mut got = Vec::new();
        let mut buf = wire[..cut].to_vec();
        take_frames(&mut buf, |op, p| got.push((op, p.to_vec())));
        assert_eq!(got.len(), 3, "the last frame is not whole yet");
        assert_eq!(
            buf.len(),
            cut - (wire.len() - text(2).len()),
            "its start is kept"
        );
        buf.extend_from_slice(&wire[cut..]);
        take_frames(&mut buf, |op, p| got.push((op, p.to_vec())));
        assert!(buf.is_empty());
        let ops: Vec<u8> = got.iter().map(|(op, _)| *op).collect();
        assert_eq!(ops, [1, 9, 1, 1]);
        assert_eq!(change_t(&got[0].1), Some(1));
        assert_eq!(got[1].1, b"hi");
        assert_eq!(got[2].1, big);
        assert_eq!(change_t(&got[3].1), Some(2));
    }
}

//! c)'s watchers: thousands of sockets read by one thread with one epoll set, as lean as a
//! client can be, so the generator takes as little as possible of the cores it shares with
//! the server.
//!
//! Why not a tokio task per watcher (as before): every change then cost the generator a
//! task wakeup, a poll through tungstenite (which zero-fills its read buffer before each
//! read), a `Utf8Bytes` and a JSON parse, ≈ 5.7 µs of CPU per delivery against the server's
//! ≈ 7 µs to send it (BENCHMARKS.md, c)), CPU taken from the server on a 2-core machine.
//! Here a delivery costs one `recv` (often several frames in one) and a scan for `"t":`;
//! what is left is the kernel's loopback receive. When a change arrived is the kernel's
//! receive timestamp, so when this thread runs does not change what it measures
//! ([`Receiver::receive`]).
//!
//! The handshake, `auth` and `watch` go through tungstenite on a blocking socket; after the
//! `watch` reply the server sends nothing but changes (and, every `PING_INTERVAL`, a ping,
//! answered here), so the socket is then read raw: unmasked server frames, RFC 6455 §5.2.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::{Value, json};
use tungstenite::Message;

/// A watcher's socket after its `watch` was answered.
pub struct Watcher {
    stream: TcpStream,
}

/// Connects, signs in with `token` and watches that account's document (and, with
/// `presence`, announces itself on it); blocking.
pub fn connect(
    addr: &str,
    token: &str,
    target: Option<&str>,
    presence: bool,
) -> Result<Watcher, String> {
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut ws, _) =
        tungstenite::client(format!("ws://{addr}/ws"), stream).map_err(|e| e.to_string())?;
    let mut frames = vec![
        (1, json!({"id": 1, "type": "auth", "token": token})),
        (
            2,
            match target {
                None => json!({"id": 2, "type": "watch"}),
                Some(t) => json!({"id": 2, "type": "watch", "target": t}),
            },
        ),
    ];
    if presence {
        let mut join = json!({"id": 3, "type": "presence", "action": "join", "state": {}});
        if let Some(t) = target {
            join["target"] = json!(t);
        }
        frames.push((3, join));
    }
    for (id, frame) in frames {
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
                stamp_arrivals(w.stream.as_raw_fd()).expect("SO_TIMESTAMPNS");
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
        // The kernel turns receive timestamps on a moment after the first socket asks (it
        // defers the switch); a change arriving before then would be timed when read.
        std::thread::sleep(Duration::from_millis(50));
        Receiver { poll, conns }
    }

    /// Reads `updates` changes on every watcher; returns one [`Delivery`] per change.
    ///
    /// A change's arrival is the kernel's receive timestamp (`SO_TIMESTAMPNS`: taken when
    /// the segment reached the watcher's socket), not the moment this thread got to read
    /// it. Why: one thread reads thousands of sockets, and on this 2-core machine it shares
    /// the cores with the server; timed in user space, c) measured this reader's place in
    /// the CPU queue as much as the server (BENCHMARKS.md, c)). The time the frame was read
    /// is kept too (`read_us`, reported as `read_p50_ms` and `read_p99_ms`).
    ///
    /// With `nap` above zero the thread never sleeps on the sockets: it looks at them, then
    /// naps that long. Why: on loopback, a write to the socket of a sleeping reader runs the
    /// reader's wakeup on the *server's* thread, a cost clients on other machines never put
    /// on it; with arrival times from the kernel, reading a little later changes nothing
    /// measured. With `nap` zero it sleeps on the sockets (each change wakes it at once).
    ///
    /// With `idle` the thread runs at the lowest priority there is (`SCHED_IDLE`): it gets
    /// only CPU time nothing else wants, so it never delays the server's threads (or the
    /// writer's), as clients on other machines would not. Its reading may lag then; what it
    /// measures does not.
    ///
    /// With `hold`, the thread does not look at its sockets until `hold.1` after the writer's
    /// latest send (`hold.0`, µs since the Unix epoch): it reads in the quiet part of each
    /// interval, not while the server is sending. Why: on this machine the scheduler keeps
    /// the thread's wakeups on the core where it last ran, often the server's fanout thread's,
    /// and even at `SCHED_IDLE` it was then given that core for 2–3 ms at a time, reading a
    /// whole round's changes while the fanout waited (`perf sched`: 1 round in 10 of c) 1000
    /// stalled so, and those rounds made the p99). Clients on other machines take nothing
    /// from the server's cores at any time; this comes closer to that.
    ///
    /// # Panics
    /// On a socket error, a close, or a frame that is not a change: the run is void then.
    pub fn receive(
        mut self,
        updates: usize,
        nap: Duration,
        idle: bool,
        hold: Option<(Arc<AtomicU64>, Duration)>,
    ) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(self.conns.len() * updates);
        let mut pending = self.conns.len();
        let mut events = Events::with_capacity(1024);
        let mut chunk = vec![0u8; 16 * 1024];
        let mut last = Instant::now();
        if idle {
            lowest_priority().expect("SCHED_IDLE");
        }
        while pending > 0 {
            if let Some((sent, hold)) = &hold
                && let Some(left) = hold_left(sent.load(Ordering::Acquire), unix_us(), *hold)
            {
                std::thread::sleep(left);
                continue;
            }
            let timeout = if nap.is_zero() {
                Duration::from_secs(60)
            } else {
                Duration::ZERO
            };
            self.poll.poll(&mut events, Some(timeout)).expect("poll");
            if events.is_empty() {
                assert!(
                    last.elapsed() < Duration::from_secs(60),
                    "no change for 60 s"
                );
                std::thread::sleep(nap);
                continue;
            }
            last = Instant::now();
            for event in &events {
                let conn = &mut self.conns[event.token().0];
                let before = conn.seen;
                conn.drain(&mut chunk, &mut out);
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

/// How much longer the reader leaves its sockets alone: `hold` after the writer's latest send
/// (`sent_us`, 0 before the first), as of `now_us`; `None` once it is over.
fn hold_left(sent_us: u64, now_us: u64, hold: Duration) -> Option<Duration> {
    let since = now_us.saturating_sub(sent_us);
    let hold = u64::try_from(hold.as_micros()).unwrap_or(u64::MAX);
    (since < hold).then(|| Duration::from_micros(hold - since))
}

/// One change seen by one watcher; times in µs since the Unix epoch.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// When the writer sent the update (its `t`).
    pub sent_us: u64,
    /// When the change reached the watcher's socket (kernel receive timestamp); `None` if
    /// the kernel gave none (it should once stamping is on: counted as `unstamped`).
    pub arrived_us: Option<u64>,
    /// When this thread read it.
    pub read_us: u64,
}

/// Now, in µs since the Unix epoch: the clock of `t` and of the kernel's timestamps.
pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

struct Conn {
    stream: MioStream,
    /// Bytes of a frame not complete yet.
    buf: Vec<u8>,
    seen: usize,
}

impl Conn {
    /// Reads until the socket has nothing more (mio's readiness is edge-triggered).
    fn drain(&mut self, chunk: &mut [u8], out: &mut Vec<Delivery>) {
        loop {
            match recv_stamped(self.stream.as_raw_fd(), chunk) {
                Ok((0, _)) => panic!("server closed a watcher"),
                Ok((n, stamp)) => {
                    let read = unix_us();
                    self.buf.extend_from_slice(&chunk[..n]);
                    // A read that brings several frames carries the newest one's timestamp:
                    // the older ones are counted as arriving then, which errs on the slow
                    // side.
                    self.frames(stamp, read, out);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("watcher read: {e}"),
            }
        }
    }

    /// Handles every whole frame in `buf`: a change is recorded, a ping answered.
    fn frames(&mut self, arrived: Option<u64>, read: u64, out: &mut Vec<Delivery>) {
        let (stream, seen) = (&mut self.stream, &mut self.seen);
        take_frames(&mut self.buf, |opcode, payload| match opcode {
            // Presence pushes (watchers that announced themselves) are not measured.
            0x1 if payload.starts_with(br#"{"type":"presence""#) => {}
            0x1 => {
                let sent = change_t(payload).expect("a change frame with data.userdata.t");
                if sent == 0 {
                    return; // a warm-up change: not measured
                }
                out.push(Delivery {
                    sent_us: sent,
                    arrived_us: arrived,
                    read_us: read,
                });
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

/// Moves the calling thread to `SCHED_IDLE`.
fn lowest_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a live sched_param.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Asks the kernel to timestamp every segment `fd` receives (`SO_TIMESTAMPNS`).
fn stamp_arrivals(fd: RawFd) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open socket; the option value is a live c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One non-blocking `recvmsg`: the bytes read, and the kernel's receive time (µs since the
/// Unix epoch) of the newest segment among them, if it gave one.
fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<u64>)> {
    // Room for one SCM_TIMESTAMPNS (a timespec) with its header, u64-aligned.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no buffers), filled in below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (over `buf`) and `control`, both alive for the call.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_DONTWAIT) };
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    let mut stamp = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel just filled, bounded by
    // `msg_controllen`; a timestamp's data is a timespec (read unaligned).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000);
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok((n, stamp))
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
    use super::{
        change_t, frame_at, hold_left, recv_stamped, stamp_arrivals, take_frames, unix_us,
    };
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// The reader's hold: none before the first send, the rest of it after one, none once
    /// it has passed.
    #[test]
    fn the_hold_runs_from_the_latest_send() {
        let ms = std::time::Duration::from_millis;
        let now = 1_000_000_000;
        assert_eq!(hold_left(0, now, ms(20)), None, "nothing sent yet");
        assert_eq!(hold_left(now - 5_000, now, ms(20)), Some(ms(15)));
        assert_eq!(hold_left(now - 20_000, now, ms(20)), None, "just over");
        assert_eq!(hold_left(now - 25_000, now, ms(20)), None);
        assert_eq!(hold_left(now, now, ms(0)), None, "no hold");
    }

    /// A segment's arrival time comes from the kernel: stamped when it reached the socket,
    /// so a read 30 ms later still reports the earlier time; without `SO_TIMESTAMPNS` there
    /// is no stamp. Real sockets on loopback.
    #[test]
    fn arrival_times_are_the_kernels_not_the_readers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        let fd = server.as_raw_fd();
        let mut buf = [0u8; 64];
        client.write_all(b"before").expect("write");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (n, stamp) = recv_stamped(fd, &mut buf).expect("read");
        assert_eq!(
            (&buf[..n], stamp),
            (&b"before"[..], None),
            "not asked for stamps"
        );

        stamp_arrivals(fd).expect("SO_TIMESTAMPNS");
        // The kernel turns stamping on a moment later (net_enable_timestamp defers it when no
        // socket had asked before).
        std::thread::sleep(std::time::Duration::from_millis(50));
        let sent = unix_us();
        client.write_all(b"hello").expect("write");
        std::thread::sleep(std::time::Duration::from_millis(30));
        let (n, stamp) = recv_stamped(fd, &mut buf).expect("read");
        let read = unix_us();
        assert_eq!(&buf[..n], b"hello");
        let stamp = stamp.expect("a receive timestamp");
        assert!(stamp >= sent && stamp < sent + 20_000, "stamped on arrival");
        assert!(read >= stamp + 30_000, "read 30 ms after it arrived");
        let err = recv_stamped(fd, &mut buf).expect_err("nothing left");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }

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

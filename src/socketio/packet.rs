//! The two packet layers of socket.io, parsed and written here and nowhere else: Engine.IO
//! v4 packets (one per WebSocket message, or several per long-polling body, separated by
//! `\x1e`) and the Socket.IO v5 packets that Engine.IO `message` packets carry.
//! <https://socket.io/docs/v4/engine-io-protocol/>, <https://socket.io/docs/v4/socket-io-protocol/>

use serde_json::Value;

/// Separates packets in a long-polling body.
pub const SEPARATOR: char = '\u{1e}';

/// An Engine.IO packet from the client.
#[derive(Debug, PartialEq)]
pub enum EnginePacket<'a> {
    Close,
    Ping(&'a str),
    Pong(&'a str),
    Message(&'a str),
    Upgrade,
    Noop,
}

/// Why a packet was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PacketError {
    #[error("unknown packet type")]
    Unknown,
    #[error("binary packets are not supported")]
    Binary,
    #[error("malformed packet")]
    Malformed,
}

impl<'a> EnginePacket<'a> {
    pub fn parse(text: &'a str) -> Result<Self, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(PacketError::Malformed)?;
        let data = chars.as_str();
        Ok(match kind {
            '1' => EnginePacket::Close,
            '2' => EnginePacket::Ping(data),
            '3' => EnginePacket::Pong(data),
            '4' => EnginePacket::Message(data),
            '5' => EnginePacket::Upgrade,
            '6' => EnginePacket::Noop,
            // Base64 binary in a polling body.
            'b' => return Err(PacketError::Binary),
            _ => return Err(PacketError::Unknown),
        })
    }
}

/// Engine.IO `open`, the handshake's answer.
pub fn open(
    sid: &str,
    upgrades: &[&str],
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    max_payload: usize,
) -> String {
    let body = serde_json::json!({
        "sid": sid,
        "upgrades": upgrades,
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    });
    format!("0{body}")
}

pub const CLOSE: &str = "1";
pub const PING: &str = "2";
pub const PROBE_PONG: &str = "3probe";
pub const NOOP: &str = "6";

/// A Socket.IO packet from the client, on the default namespace unless `nsp` says otherwise.
#[derive(Debug, PartialEq)]
pub enum SioPacket {
    Connect {
        nsp: String,
    },
    Disconnect {
        nsp: String,
    },
    Event {
        nsp: String,
        ack: Option<u64>,
        args: Vec<Value>,
    },
    /// An acknowledgement from the client: the server never asks for one.
    Ack,
    /// `BINARY_EVENT` / `BINARY_ACK`: refused (every seed event is JSON).
    Binary,
}

impl SioPacket {
    /// Parses `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`.
    pub fn parse(text: &str) -> Result<Self, PacketError> {
        let mut rest = text;
        let kind = rest.chars().next().ok_or(PacketError::Malformed)?;
        rest = &rest[1..];
        if matches!(kind, '5' | '6') {
            return Ok(SioPacket::Binary);
        }
        let nsp = if rest.starts_with('/') {
            let end = rest.find(',').unwrap_or(rest.len());
            let nsp = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or("");
            nsp.to_owned()
        } else {
            "/".to_owned()
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let ack = if digits > 0 {
            Some(rest[..digits].parse().map_err(|_| PacketError::Malformed)?)
        } else {
            None
        };
        rest = &rest[digits..];
        match kind {
            '0' => Ok(SioPacket::Connect { nsp }),
            '1' => Ok(SioPacket::Disconnect { nsp }),
            '2' => match serde_json::from_str(rest) {
                Ok(Value::Array(args)) if args.first().is_some_and(Value::is_string) => {
                    Ok(SioPacket::Event { nsp, ack, args })
                }
                _ => Err(PacketError::Malformed),
            },
            '3' => Ok(SioPacket::Ack),
            _ => Err(PacketError::Unknown),
        }
    }
}

/// `CONNECT` answered, Engine.IO framing included.
pub fn connected(sid: &str) -> String {
    format!("40{}", serde_json::json!({ "sid": sid }))
}

/// `CONNECT_ERROR` for a namespace this server does not have.
pub fn connect_error(nsp: &str, message: &str) -> String {
    let body = serde_json::json!({ "message": message });
    if nsp == "/" {
        format!("44{body}")
    } else {
        format!("44{nsp},{body}")
    }
}

/// An event on the default namespace, Engine.IO framing included: `42["name",args…]`.
pub fn event(args: &[&dyn erased::Arg]) -> String {
    let mut out = String::from("42[");
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        arg.write(&mut out);
    }
    out.push(']');
    out
}

/// Event arguments: JSON values, or JSON text already written (a watched document's change,
/// copied as the fanout serialized it).
pub mod erased {
    pub trait Arg {
        fn write(&self, out: &mut String);
    }

    impl Arg for &str {
        fn write(&self, out: &mut String) {
            // A string's JSON cannot fail to serialize.
            out.push_str(&serde_json::to_string(self).unwrap_or_default());
        }
    }

    impl Arg for u64 {
        fn write(&self, out: &mut String) {
            out.push_str(&self.to_string());
        }
    }

    /// JSON text, written as it is.
    pub struct Raw<'a>(pub &'a str);

    impl Arg for Raw<'_> {
        fn write(&self, out: &mut String) {
            out.push_str(self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::erased::Raw;
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_packets() {
        assert_eq!(
            EnginePacket::parse("2probe"),
            Ok(EnginePacket::Ping("probe"))
        );
        assert_eq!(EnginePacket::parse("3"), Ok(EnginePacket::Pong("")));
        assert_eq!(
            EnginePacket::parse("42[\"a\"]"),
            Ok(EnginePacket::Message("2[\"a\"]"))
        );
        assert_eq!(EnginePacket::parse("5"), Ok(EnginePacket::Upgrade));
        assert_eq!(EnginePacket::parse("bAQID"), Err(PacketError::Binary));
        assert_eq!(EnginePacket::parse("9"), Err(PacketError::Unknown));
        assert_eq!(EnginePacket::parse(""), Err(PacketError::Malformed));
        let open = open("abc", &["websocket"], 25000, 20000, 1_000_000);
        let body: Value = serde_json::from_str(&open[1..]).unwrap();
        assert_eq!(body["sid"], "abc");
        assert_eq!(body["pingInterval"], 25000);
    }

    #[test]
    fn socketio_packets() {
        assert_eq!(
            SioPacket::parse("0"),
            Ok(SioPacket::Connect { nsp: "/".into() })
        );
        assert_eq!(
            SioPacket::parse("0/admin,{\"token\":1}"),
            Ok(SioPacket::Connect {
                nsp: "/admin".into()
            })
        );
        assert_eq!(
            SioPacket::parse("2[\"fetch\",\"ann\",[\"a.b\"]]"),
            Ok(SioPacket::Event {
                nsp: "/".into(),
                ack: None,
                args: vec![json!("fetch"), json!("ann"), json!(["a.b"])]
            })
        );
        assert_eq!(
            SioPacket::parse("2/x,12[\"signup\"]"),
            Ok(SioPacket::Event {
                nsp: "/x".into(),
                ack: Some(12),
                args: vec![json!("signup")]
            })
        );
        assert_eq!(
            SioPacket::parse("51-[\"a\",{\"_placeholder\":true,\"num\":0}]"),
            Ok(SioPacket::Binary)
        );
        for bad in ["2", "2{}", "2[1]", "2[\"a\"", "9", ""] {
            assert!(SioPacket::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_are_written_with_their_framing() {
        assert_eq!(
            event(&[&"auth", &"ann", &"t\"k"]),
            r#"42["auth","ann","t\"k"]"#
        );
        assert_eq!(
            event(&[&"version", &"ann", &5u64]),
            r#"42["version","ann",5]"#
        );
        assert_eq!(
            event(&[&"change", &"ann", &Raw(r#"{"a":1}"#)]),
            r#"42["change","ann",{"a":1}]"#
        );
        assert_eq!(connected("s1"), r#"40{"sid":"s1"}"#);
        assert_eq!(
            connect_error("/x", "Invalid namespace"),
            r#"44/x,{"message":"Invalid namespace"}"#
        );
    }
}

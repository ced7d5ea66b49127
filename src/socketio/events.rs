//! personal-backend's socket.io events, as its `index.js` (0.1.0) has them, turned into
//! Hearth frames and back. Stateless both ways: each frame sent on an event's behalf carries
//! the event's name as its `id`, and the reply's `id` says which event to answer with.
//!
//! In: `signup`, `auth(token)`, `update(newData, target, patch)`, `fetch(target, fields)`,
//! `watch(target, fields)`, `unwatch(target)`. Out: `auth(username, token)`,
//! `version(target, version)`, `data(target, data)`, `change(target, data)`, and errors as
//! the seed's code emits them: `issue(message)`, except `unwatch`'s, which go to `error`.
//! Where the seed is silent (a bad token gets no answer) Hearth answers (PROTOCOL.md).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::packet::erased::Raw;
use super::packet::event;

/// What an incoming event becomes.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// Hearth frames for the session, in order.
    Frames(Vec<String>),
    /// Answered here, without the session: an event the seed does not have, or bad arguments.
    Answer(String),
}

/// The Hearth frame for a seed event (`args[0]` is its name).
pub fn inbound(args: &[Value]) -> Inbound {
    let name = args.first().and_then(Value::as_str).unwrap_or_default();
    let arg = |i: usize| args.get(i).unwrap_or(&Value::Null);
    // The seed takes any falsy target as "my own document".
    let target = |i: usize| match arg(i) {
        Value::String(s) if !s.is_empty() => json!(s),
        _ => Value::Null,
    };
    let fields = |i: usize| match arg(i) {
        Value::Array(a) if !a.is_empty() => json!(a),
        _ => Value::Null,
    };
    let frame = match name {
        "signup" => json!({"type": "signup", "id": "auth"}),
        "auth" => match arg(1) {
            Value::String(token) => json!({"type": "auth", "id": "auth", "token": token}),
            _ => return Inbound::Answer(issue("issue", "invalid token")),
        },
        "update" => {
            let (data, patch) = update_data(arg(1), arg(3));
            json!({"type": "update", "id": "update", "target": target(2), "data": data, "patch": patch})
        }
        "fetch" => {
            json!({"type": "fetch", "id": "fetch", "target": target(1), "fields": fields(2)})
        }
        "watch" => {
            json!({"type": "watch", "id": "watch", "target": target(1), "fields": fields(2)})
        }
        // The seed checks access before unwatching (Hearth's `unwatch` of a document it does
        // not watch does nothing): a fetch of no fields checks it, answered only if refused.
        "unwatch" => {
            return Inbound::Frames(vec![
                json!({"type": "fetch", "id": "unwatch", "target": target(1), "fields": []})
                    .to_string(),
                json!({"type": "unwatch", "id": "unwatch", "target": target(1)}).to_string(),
            ]);
        }
        other => {
            return Inbound::Answer(issue(
                "issue",
                &format!("unknown event {other:?}: this endpoint speaks personal-backend's events"),
            ));
        }
    };
    Inbound::Frames(vec![frame.to_string()])
}

/// An update's `data` and `patch` for Hearth. The seed's patch is `Object.assign` on the
/// top level (a key set to `null` stays, as `null`), not a JSON merge patch (which would
/// delete it and merge nested objects), so it is sent as JSON Patch `add`s, one per key.
fn update_data(changes: &Value, patch: &Value) -> (Value, Value) {
    let truthy = !matches!(patch, Value::Null | Value::Bool(false))
        && patch != &json!(0)
        && patch != &json!("");
    let Value::Object(changes) = changes else {
        // Hearth refuses it as a bad request, as the seed fails on it.
        return (changes.clone(), json!(truthy));
    };
    let mut data = Map::new();
    data.insert(
        "metadata".into(),
        changes.get("metadata").cloned().unwrap_or(Value::Null),
    );
    if !truthy {
        if let Some(userdata) = changes.get("userdata") {
            data.insert("userdata".into(), userdata.clone());
        }
        return (Value::Object(data), json!(false));
    }
    if let Some(Value::Object(userdata)) = changes.get("userdata") {
        let ops: Vec<Value> = userdata
            .iter()
            .map(|(k, v)| json!({"op": "add", "path": format!("/{}", escape(k)), "value": v}))
            .collect();
        data.insert("userdata".into(), Value::Array(ops));
    }
    (Value::Object(data), json!("json-patch"))
}

/// A key as one JSON Pointer segment (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The frames Hearth sends, as far as the seed's events need them.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: Option<&'a str>,
    username: Option<&'a str>,
    name: Option<&'a str>,
    token: Option<&'a str>,
    version: Option<u64>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    /// Owned when it has escapes (a quote in a message): a borrowed `&str` would fail to
    /// parse, and the error would never reach the client.
    #[serde(borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
    code: Option<&'a str>,
}

/// The socket.io packet (Engine.IO framing included) for a Hearth frame, if the seed has an
/// event for it.
pub fn outbound(text: &str) -> Option<String> {
    let f: Frame = serde_json::from_str(text).ok()?;
    let target = || match (f.username, f.name) {
        (Some(u), Some(n)) => format!("{u}/{n}"),
        (Some(u), None) => u.to_owned(),
        _ => String::new(),
    };
    match (f.kind, f.id) {
        ("auth", _) => Some(event(&[&"auth", &f.username?, &f.token?])),
        ("version", _) => Some(event(&[&"version", &target().as_str(), &f.version?])),
        ("data", Some("fetch")) => Some(event(&[&"data", &target().as_str(), &Raw(f.data?.get())])),
        // The seed answers `watch` and `unwatch` with nothing.
        ("data" | "watching" | "unwatch", _) => None,
        ("change", _) => Some(event(&[&"change", &target().as_str(), &Raw(f.data?.get())])),
        ("error", id) => {
            let on = if id == Some("unwatch") {
                "error"
            } else {
                "issue"
            };
            Some(issue(
                on,
                seed_message(f.code?, f.message.as_deref().unwrap_or_default()),
            ))
        }
        _ => None,
    }
}

/// The seed's wording for the errors it has; Hearth's message for the rest.
fn seed_message<'a>(code: &str, message: &'a str) -> &'a str {
    match code {
        "invalid_token" => "invalid token",
        "version_mismatch" => "version mismatch",
        "unauthorized" | "auth_required" => "unauthorized",
        _ => message,
    }
}

fn issue(on: &str, message: &str) -> String {
    event(&[&on, &message])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(args: Value) -> Value {
        match inbound(args.as_array().unwrap()) {
            Inbound::Frames(f) => serde_json::from_str(&f[0]).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seed_events_become_frames() {
        assert_eq!(
            frame(json!(["signup"])),
            json!({"type": "signup", "id": "auth"})
        );
        assert_eq!(frame(json!(["auth", "t"]))["token"], "t");
        assert_eq!(
            inbound(&[json!("auth")]),
            Inbound::Answer(r#"42["issue","invalid token"]"#.into())
        );
        let f = frame(json!(["fetch", "", ["a.b"]]));
        assert_eq!(
            (f["target"].clone(), f["fields"].clone()),
            (Value::Null, json!(["a.b"]))
        );
        let f = frame(json!(["watch", "ann/x", []]));
        assert_eq!(
            (f["target"].clone(), f["fields"].clone()),
            (json!("ann/x"), Value::Null)
        );
        let replace = frame(
            json!(["update", {"metadata": {"version": 2}, "userdata": {"a": {"b": 1}}}, "ann"]),
        );
        assert_eq!(replace["patch"], false);
        assert_eq!(replace["data"]["userdata"], json!({"a": {"b": 1}}));
        let patch = frame(
            json!(["update", {"metadata": {"version": 2, "collaborators": ["bob"]},
            "userdata": {"a/b": null, "c": {"d": 1}}}, null, true]),
        );
        assert_eq!(patch["patch"], "json-patch");
        assert_eq!(patch["data"]["metadata"]["collaborators"], json!(["bob"]));
        assert_eq!(
            patch["data"]["userdata"],
            json!([{"op": "add", "path": "/a~1b", "value": null}, {"op": "add", "path": "/c", "value": {"d": 1}}])
        );
        assert!(matches!(inbound(&[json!("hack")]), Inbound::Answer(_)));
    }

    #[test]
    fn replies_become_seed_events() {
        let out = |v: Value| outbound(&v.to_string());
        assert_eq!(
            out(json!({"type": "auth", "id": "auth", "username": "ann", "token": "t"})).unwrap(),
            r#"42["auth","ann","t"]"#
        );
        assert_eq!(
            out(json!({"type": "version", "id": "update", "username": "ann", "name": "x", "version": 3})).unwrap(),
            r#"42["version","ann/x",3]"#
        );
        assert_eq!(
            out(json!({"type": "data", "id": "fetch", "username": "ann", "version": 3, "data": {"a": 1}})).unwrap(),
            r#"42["data","ann",{"a":1}]"#
        );
        assert_eq!(
            out(
                json!({"type": "data", "id": "watch", "username": "ann", "version": 3, "data": {}})
            ),
            None
        );
        assert_eq!(
            out(json!({"type": "change", "username": "ann", "version": 4, "op": {}, "data": {"b": 2}})).unwrap(),
            r#"42["change","ann",{"b":2}]"#
        );
        assert_eq!(
            out(
                json!({"type": "error", "id": "update", "code": "version_mismatch", "message": "x"})
            )
            .unwrap(),
            r#"42["issue","version mismatch"]"#
        );
        assert_eq!(
            out(json!({"type": "error", "id": "unwatch", "code": "unauthorized", "message": "x"}))
                .unwrap(),
            r#"42["error","unauthorized"]"#
        );
        assert_eq!(
            out(json!({"type": "error", "code": "too_large", "message": "document too large"}))
                .unwrap(),
            r#"42["issue","document too large"]"#
        );
        // A message with escapes still reaches the client.
        assert_eq!(
            out(json!({"type": "error", "code": "bad_request", "message": "a \"quoted\" name"}))
                .unwrap(),
            r#"42["issue","a \"quoted\" name"]"#
        );
        assert_eq!(
            out(json!({"type": "shared", "owner": "a", "role": "read"})),
            None
        );
    }
}

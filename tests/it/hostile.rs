//! Hostile input, at least 200 distinct cases against one live server. For each: the exact
//! error code (or close code); afterwards the server still serves others and the victim's
//! stored document is exactly as it was.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Client, RawWs, TestServer};

const SECRET: &str = "hostile-suite-secret";

/// Sends raw text and returns the error code of the reply (asserting it is an error).
async fn code_of(c: &mut Client, text: &str) -> String {
    c.send_raw(Message::text(text)).await;
    let reply = c.recv().await;
    assert_eq!(reply["type"], "error", "{text} → {reply}");
    reply["code"].as_str().unwrap().to_owned()
}

fn token(claims: Value, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn two_hundred_hostile_inputs_change_nothing() {
    let server = TestServer::start_with(|c| {
        c.jwt_secret = Some(SECRET.into());
        c.max_message_size = 64 * 1024;
        c.max_depth = 64;
    })
    .await;
    // The victim: a document at version 3 that nobody else may touch.
    let (mut ann, _) = server.named_user("ann").await;
    for v in 0..3u64 {
        ann.request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": v}, "userdata": {"n": v, "secret": "s3cr3t"}}})).await;
    }
    let before = ann.request(json!({"type": "fetch"})).await["data"].clone();

    let mut cases = 0usize;
    let mut anon = server.client().await;
    let (mut eve, _, _) = server.user().await;

    // -- Malformed frames (anonymous socket; stays open) --------------------------------
    let malformed = [
        "",
        " ",
        "{",
        "}",
        "[",
        "]",
        "null",
        "true",
        "1",
        "-0",
        "\"fetch\"",
        "{'type':'fetch'}",
        "{\"type\":}",
        "{\"type\":\"fetch\",}",
        "{\"type\":\"fetch\"} trailing",
        "{\"type\" \"fetch\"}",
        "{\"type\":\"fetch\"",
        "[{\"type\":\"fetch\"}]",
        "{\"type\":NaN}",
        "{\"type\":Infinity}",
        "// comment\n{\"type\":\"fetch\"}",
        "{\"type\":\"fetch\"}\u{0}",
        "\u{feff}{\"type\":\"fetch\"}",
        "{\"a\":1}",
        "{\"id\":1}",
        "{\"type\":null}",
        "{\"type\":1}",
        "{\"type\":[\"fetch\"]}",
        "{\"type\":{\"x\":1}}",
        "{\"type\":true}",
        "{\"type\":\"fetch\",\"id\":{}}",
        "{\"type\":\"fetch\",\"id\":[1]}",
        "{\"type\":\"fetch\",\"id\":true}",
        "{\"type\":\"Fetch\"}",
        "{\"type\":\"FETCH\"}",
        "{\"type\":\"fetch \"}",
        "{\"type\":\"\"}",
        "{\"type\":\"updat\"}",
        "{\"type\":\"fétch\"}",
        "{\"type\":\"fetch\\u0000\"}",
        "{\"type\":\"__proto__\"}",
        "{\"type\":\"constructor\"}",
        "{\"type\":\"fetch\",\"type\":\"signup\",\"x\":1}",
    ];
    for text in malformed {
        assert_eq!(code_of(&mut anon, text).await, "bad_request", "{text:?}");
        cases += 1;
    }
    let long_type = format!("{{\"type\":\"{}\"}}", "x".repeat(10_000));
    assert_eq!(code_of(&mut anon, &long_type).await, "bad_request");
    let nested = format!("{}{}", "[".repeat(500), "]".repeat(500));
    assert_eq!(code_of(&mut anon, &nested).await, "bad_request");
    let huge_number = format!("{{\"type\":\"fetch\",\"id\":1{}}}", "0".repeat(400));
    assert_eq!(code_of(&mut anon, &huge_number).await, "bad_request");
    cases += 3;

    // -- Wrong field types and unknown fields (parsed before auth) -----------------------
    let wrong_fields = [
        json!({"type": "fetch", "fields": 1}),
        json!({"type": "fetch", "fields": "a"}),
        json!({"type": "fetch", "fields": [1]}),
        json!({"type": "fetch", "fields": [null]}),
        json!({"type": "fetch", "fields": {"a": 1}}),
        json!({"type": "fetch", "target": 1}),
        json!({"type": "fetch", "target": []}),
        json!({"type": "fetch", "target": {}}),
        json!({"type": "fetch", "target": true}),
        json!({"type": "fetch", "feilds": ["a"]}),
        json!({"type": "watch", "since": -1}),
        json!({"type": "watch", "since": "1"}),
        json!({"type": "watch", "since": 1.5}),
        json!({"type": "watch", "since": 1e30}),
        json!({"type": "watch", "mode": "xml"}),
        json!({"type": "watch", "mode": 1}),
        json!({"type": "unwatch", "target": 5}),
        json!({"type": "logout", "all": true}),
        json!({"type": "auth"}),
        json!({"type": "auth", "token": 5}),
        json!({"type": "auth", "token": null}),
        json!({"type": "auth", "token": ["a"]}),
        json!({"type": "login"}),
        json!({"type": "login", "username": "ann"}),
        json!({"type": "login", "username": 1, "password": "correct horse"}),
        json!({"type": "login", "username": "ann", "password": ["x"]}),
        json!({"type": "signup", "username": "zed"}),
        json!({"type": "signup", "password": "correct horse"}),
        json!({"type": "signup", "username": 7, "password": "correct horse"}),
        json!({"type": "signup", "username": "zed", "password": "correct horse", "scope": "admin"}),
        json!({"type": "update"}),
        json!({"type": "update", "data": null}),
        json!({"type": "update", "data": []}),
        json!({"type": "update", "data": {}}),
        json!({"type": "update", "data": {"metadata": {}}}),
        json!({"type": "update", "data": {"metadata": {"version": -1}, "userdata": {}}}),
        json!({"type": "update", "data": {"metadata": {"version": "0"}, "userdata": {}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0.5}, "userdata": {}}}),
        json!({"type": "update", "data": {"metadata": {"version": null}, "userdata": {}}}),
        json!({"type": "update", "data": {"metadata": {"version": 1e100}, "userdata": {}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {}}, "patch": 2}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {}}, "patch": "yes"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {}}, "patch": []}),
        json!({"type": "update", "data": {"metadata": {"version": 0, "collaborators": "bob"}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0, "readers": [1]}}}),
    ];
    for frame in &wrong_fields {
        assert_eq!(
            code_of(&mut anon, &frame.to_string()).await,
            "bad_request",
            "{frame}"
        );
        cases += 1;
    }
    let too_big_version =
        r#"{"type":"update","data":{"metadata":{"version":18446744073709551616},"userdata":{}}}"#;
    assert_eq!(code_of(&mut anon, too_big_version).await, "bad_request");
    cases += 1;

    // -- Commands that need a session -----------------------------------------------------
    for frame in [
        json!({"type": "fetch"}),
        json!({"type": "watch"}),
        json!({"type": "unwatch"}),
        json!({"type": "logout"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {}}}),
    ] {
        assert_eq!(
            code_of(&mut anon, &frame.to_string()).await,
            "auth_required"
        );
        cases += 1;
    }

    // -- Usernames with tricks: signup refuses them ---------------------------------------
    let bad_names = [
        "ann\u{200b}",
        "\u{0430}nn",
        "ａｎｎ",
        "ann ",
        " ann",
        "ANN",
        "Ann",
        "ann\n",
        "ann\u{0}",
        "../ann",
        "ann/..",
        "ann/x",
        "ann%2fx",
        "ann.x",
        "ann@x",
        "ann:x",
        "ann?x",
        "ann#x",
        "an",
        "a",
        "",
        "admin",
        "root",
        "me",
        "null",
        "undefined",
        "ann\\x",
        "ann'",
        "ann\"",
        "🔥ann",
        "ｒｏｏｔ",
        "ann\t",
        "x".repeat(33).leak(),
    ];
    for name in bad_names {
        let frame = json!({"type": "signup", "username": name, "password": "correct horse"});
        assert_eq!(
            code_of(&mut anon, &frame.to_string()).await,
            "bad_request",
            "{name:?}"
        );
        cases += 1;
    }
    for password in ["", "short", "1234567", &"p".repeat(2000)] {
        let frame = json!({"type": "signup", "username": "zed", "password": password});
        assert_eq!(code_of(&mut anon, &frame.to_string()).await, "bad_request");
        cases += 1;
    }
    for (user, pass) in [
        ("ann", "wrong horse"),
        ("nobody", "correct horse"),
        ("ANN", "correct horse"),
        ("\u{0430}nn", "correct horse"),
        ("ann", ""),
    ] {
        let frame = json!({"type": "login", "username": user, "password": pass});
        assert_eq!(
            code_of(&mut anon, &frame.to_string()).await,
            "invalid_credentials",
            "{user:?}"
        );
        cases += 1;
    }

    // -- Forged, expired and foreign tokens ------------------------------------------------
    let now = jsonwebtoken::get_current_timestamp();
    let ok_claims = |sub: &str| json!({"sub": sub, "sid": "forged", "iat": now, "exp": now + 3600});
    let forged = [
        "".to_owned(),
        "x".to_owned(),
        "a.b.c".to_owned(),
        "a.b".to_owned(),
        ".".repeat(2),
        "x".repeat(10_000),
        token(ok_claims("ann"), Algorithm::HS256, "wrong-secret"),
        token(ok_claims("ann"), Algorithm::HS512, SECRET),
        token(ok_claims("ann"), Algorithm::HS384, SECRET),
        token(
            json!({"sub": "ann", "sid": "s", "iat": now - 7200, "exp": now - 3600}),
            Algorithm::HS256,
            SECRET,
        ),
        token(
            json!({"sub": "ann", "sid": "s", "iat": now}),
            Algorithm::HS256,
            SECRET,
        ),
        token(
            json!({"sid": "s", "iat": now, "exp": now + 60}),
            Algorithm::HS256,
            SECRET,
        ),
        token(
            json!({"sub": 5, "sid": "s", "iat": now, "exp": now + 60}),
            Algorithm::HS256,
            SECRET,
        ),
        token(
            ok_claims("ghost-user-that-never-was"),
            Algorithm::HS256,
            SECRET,
        ),
        format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            token(ok_claims("ann"), Algorithm::HS256, SECRET)
                .split('.')
                .nth(1)
                .unwrap()
        ),
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            token(ok_claims("ann"), Algorithm::HS256, SECRET)
                .split('.')
                .nth(1)
                .unwrap()
        ),
    ];
    for bad in &forged {
        assert_eq!(
            code_of(
                &mut anon,
                &json!({"type": "auth", "token": bad}).to_string()
            )
            .await,
            "invalid_token"
        );
        cases += 1;
    }

    // -- Targets that are not yours, or not anyone's (signed in as eve) --------------------
    let targets = [
        "ann",
        "no-such-user",
        "../ann",
        "ann/../eve",
        "ANN",
        "\u{0430}nn",
        "",
        "a",
        " ann",
        "ann\n",
        "ｒｏｏｔ",
        "admin",
    ];
    for target in targets {
        for frame in [
            json!({"type": "fetch", "target": target}),
            json!({"type": "watch", "target": target}),
            json!({"type": "update", "target": target, "data": {"metadata": {"version": 3}, "userdata": {"pwned": true}}}),
        ] {
            let code = code_of(&mut eve, &frame.to_string()).await;
            assert_eq!(code, "unauthorized", "{frame}");
            cases += 1;
        }
    }

    // -- Updates that are well-formed JSON but invalid ------------------------------------
    let deep: Value = (0..70).fold(json!(1), |v, _| json!({"d": v}));
    let invalid_updates = [
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": [1]}}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": "x"}}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": 1}, "patch": true}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"op": "add"}}, "patch": "json-patch"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": [{"op": "move"}]}, "patch": "json-patch"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": [{"op": "remove", "path": "/nope"}]}, "patch": "json-patch"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": [{"op": "replace", "path": "", "value": 1}]}, "patch": "json-patch"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": [{"op": "test", "path": "/x", "value": 1}]}, "patch": "json-patch"}),
        // Found by fuzzing: made json-patch's rollback panic.
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": [{"op": "add", "path": "/x", "value": 1}, {"op": "move", "from": "/x", "path": "//"}]}, "patch": "json-patch"}),
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"deep": deep}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0, "collaborators": ["a"]}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0, "collaborators": ["UPPER"]}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0, "readers": ["../ann"]}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0, "readers": (0..300).map(|i| format!("user{i}")).collect::<Vec<_>>()}}}),
        json!({"type": "update", "data": {"metadata": {"version": 0}}}),
        json!({"type": "fetch", "fields": ["a..b"]}),
        json!({"type": "fetch", "fields": [".a"]}),
        json!({"type": "fetch", "fields": ["a."]}),
        json!({"type": "fetch", "fields": [""]}),
        json!({"type": "fetch", "fields": ["x".repeat(600)]}),
        json!({"type": "fetch", "fields": (0..101).map(|i| format!("f{i}")).collect::<Vec<_>>()}),
        json!({"type": "watch", "fields": ["a"], "mode": "ops"}),
    ];
    for frame in &invalid_updates {
        assert_eq!(
            code_of(&mut eve, &frame.to_string()).await,
            "bad_request",
            "{frame}"
        );
        cases += 1;
    }
    let stale = json!({"type": "update", "data": {"metadata": {"version": 99}, "userdata": {}}});
    assert_eq!(
        code_of(&mut eve, &stale.to_string()).await,
        "version_mismatch"
    );
    cases += 1;

    // -- Frames at the WebSocket level ------------------------------------------------------
    eve.send_raw(Message::binary(vec![0u8, 159, 146, 150]))
        .await;
    assert_eq!(eve.recv().await["code"], "bad_request");
    cases += 1;
    let socket_cases: [(&str, Vec<u8>, u16); 8] = [
        ("invalid UTF-8 text", vec![0x81], 1007),
        ("reserved opcode", vec![0x83], 1002),
        ("unmasked frame", vec![], 1002),
        ("RSV1 without extension", vec![0xC1], 1002),
        ("continuation without start", vec![0x80], 1002),
        ("fragmented ping", vec![0x09], 1002),
        ("ping over 125 bytes", vec![0x89], 1002),
        ("oversize message", vec![0x81], 1009),
    ];
    for (name, head, expected) in socket_cases {
        let mut raw = RawWs::connect(&server).await;
        match name {
            "invalid UTF-8 text" => raw.send_frame(0x1, &[0xff, 0xfe, 0xfd]).await,
            "unmasked frame" => {
                use tokio::io::AsyncWriteExt;
                let _ = raw.stream.write_all(&[0x81, 0x02, b'{', b'}']).await;
            }
            "ping over 125 bytes" => raw.send_frame(0x9, &[0u8; 200]).await,
            "oversize message" => raw.send_frame(0x1, &vec![b' '; 100 * 1024]).await,
            "fragmented ping" => {
                use tokio::io::AsyncWriteExt;
                let _ = raw.stream.write_all(&[0x09, 0x80, 1, 2, 3, 4]).await;
            }
            _ => {
                use tokio::io::AsyncWriteExt;
                let _ = raw.stream.write_all(&[head[0], 0x80, 1, 2, 3, 4]).await;
            }
        }
        assert_eq!(raw.close_code().await, Some(expected), "{name}");
        cases += 1;
    }

    // -- Key paths over HTTP ---------------------------------------------------------------
    let http = reqwest::Client::new();
    // Eve's socket took every abuse above and still works.
    assert_eq!(eve.request(json!({"type": "fetch"})).await["type"], "data");
    let (_mallory, eve_tok) = server.named_user("mallory").await;
    let base = format!("http://{}", server.addr);
    let deep_body = format!("{}1{}", "[".repeat(70), "]".repeat(70));
    let http_cases: Vec<(reqwest::Method, String, Option<&str>, u16, &str)> = vec![
        (
            reqwest::Method::PUT,
            "/v1/users/mallory/data/deep".into(),
            Some(deep_body.as_str()),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::PATCH,
            "/v1/users/mallory/data/deep".into(),
            Some(deep_body.as_str()),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::GET,
            "/v1/users/ann/data".into(),
            None,
            404,
            "unauthorized",
        ),
        // The client normalises this to /v1/data: an unknown route, answered in JSON too.
        (
            reqwest::Method::GET,
            "/v1/users/%2e%2e/data".into(),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            "/v1/users/..%2F..%2Fetc/data".into(),
            None,
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::GET,
            "/v1/users/ann%2Fsecret/data".into(),
            None,
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::GET,
            "/v1/users/%D0%B0nn/data".into(),
            None,
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::GET,
            "/v1/users/ANN/data".into(),
            None,
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::GET,
            "/v1/users/mallory/data/%2e%2e/ann".into(),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            "/v1/users/mallory/data/a//b".into(),
            None,
            400,
            "bad_request",
        ),
        (
            reqwest::Method::PUT,
            "/v1/users/ann/data/pwned".into(),
            Some("true"),
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::PUT,
            "/v1/users/mallory/data/x".into(),
            Some("{nope"),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::PUT,
            "/v1/users/mallory/data".into(),
            Some("[1,2]"),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/users/ann/data/secret".into(),
            None,
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::POST,
            "/v1/users/ann/batch".into(),
            Some(r#"[{"op":"delete","path":"n"}]"#),
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::POST,
            "/v1/users/mallory/batch".into(),
            Some(r#"{"op":"put"}"#),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::GET,
            "/v1/users/ann/changes".into(),
            None,
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::GET,
            "/v1/users/ann/keys".into(),
            None,
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::GET,
            "/store/ann/secret".into(),
            None,
            404,
            "unauthorized",
        ),
        (
            reqwest::Method::PUT,
            "/store/ann/secret".into(),
            Some("mine"),
            404,
            "unauthorized",
        ),
    ];
    for (method, path, body, status, code) in http_cases {
        let mut req = http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(&eve_tok);
        if let Some(b) = body {
            req = req.body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        let text = resp.text().await.unwrap();
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: {text:?}"));
        assert_eq!(body["code"], code, "{method} {path}");
        cases += 1;
    }
    for bad in ["Bearer", "Bearer x", "Basic !!!", "Bearer a.b.c"] {
        let resp = http
            .get(format!("{base}/v1/me"))
            .header("authorization", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{bad}");
        cases += 1;
    }

    // -- Nothing changed, and the server still serves ---------------------------------------
    eprintln!("hostile cases: {cases}");
    assert!(cases >= 200, "only {cases} hostile cases");
    let after = ann.request(json!({"type": "fetch"})).await["data"].clone();
    assert_eq!(after, before, "the victim's document is untouched");
    let mut fresh = server.client().await;
    assert_eq!(
        fresh.request(json!({"type": "signup"})).await["type"],
        "auth"
    );
    assert_eq!(
        anon.request(json!({"type": "signup"})).await["type"],
        "auth",
        "the abused socket still works"
    );
}

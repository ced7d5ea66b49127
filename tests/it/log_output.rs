//! Logging never takes the server down (issue 26, point 5): with its output on a full disk,
//! lines are dropped and counted, and everything else works.

use std::time::Duration;

use serde_json::json;

use crate::common::Client;

#[tokio::test]
async fn a_full_log_output_drops_lines_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("DATA_DIR", dir.path())
        .env("RUST_LOG", "debug")
        .env_remove("JWT_SECRET")
        .stdout(full())
        .stderr(full())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hearth");
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            up = true;
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "hearth exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "hearth never answered");

    // The writer keeps committing while every log line fails.
    let mut c = Client::connect(&format!("ws://127.0.0.1:{port}/ws")).await;
    assert_eq!(c.request(json!({"type": "signup"})).await["type"], "auth");
    for v in 0..20 {
        let r = c
            .request(json!({"type": "update", "patch": true,
                "data": {"metadata": {"version": v}, "userdata": {"n": v}}}))
            .await;
        assert_eq!(r["version"], v + 1, "{r}");
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hearth_log_lines_dropped_total "))
        .expect("the counter is exported")
        .parse()
        .unwrap();
    assert!(dropped > 0.0, "lines were dropped and counted");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    child.kill().await.unwrap();
}

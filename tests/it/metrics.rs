//! `/metrics` parsed by a real Prometheus text parser; the counters move as frames flow.

use serde_json::json;

use crate::common::TestServer;

/// The value of `metric` (optionally with `label=value`), or 0 when absent.
async fn scrape(server: &TestServer) -> prometheus_parse::Scrape {
    let resp = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("valid exposition")
}

fn value(s: &prometheus_parse::Scrape, metric: &str, label: Option<(&str, &str)>) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => h.last().map_or(0.0, |b| b.count),
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn counters_move_as_frames_flow() {
    let server = TestServer::start().await;
    let before = scrape(&server).await;
    assert_eq!(value(&before, "hearth_connections", None), 0.0);

    let (mut owner, _, token) = server.user().await;
    let mut watcher = server.client().await;
    watcher
        .request(json!({"type": "auth", "token": token}))
        .await;
    watcher.request(json!({"type": "watch"})).await;
    owner
        .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": 0}, "userdata": {"a": 1}}}))
        .await;
    assert_eq!(watcher.next_push().await["version"], 1);
    owner
        .request(json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {}}}))
        .await; // stale
    owner.request(json!({"type": "nonsense"})).await;
    owner.request(json!({"type": "fetch"})).await;
    let _ = reqwest::get(format!("http://{}/v1/me", server.addr))
        .await
        .unwrap(); // 401

    let after = scrape(&server).await;
    assert_eq!(value(&after, "hearth_connections", None), 2.0);
    assert_eq!(value(&after, "hearth_sessions", None), 2.0);
    assert_eq!(value(&after, "hearth_watches", None), 1.0);
    assert_eq!(
        value(&after, "hearth_frames_in_total", Some(("type", "update"))),
        2.0
    );
    assert_eq!(
        value(&after, "hearth_frames_in_total", Some(("type", "invalid"))),
        1.0
    );
    assert_eq!(
        value(&after, "hearth_frames_out_total", Some(("type", "version"))),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "hearth_errors_total",
            Some(("code", "version_mismatch"))
        ),
        1.0
    );
    assert_eq!(
        value(&after, "hearth_errors_total", Some(("code", "bad_request"))),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "hearth_errors_total",
            Some(("code", "auth_required"))
        ),
        1.0,
        "HTTP errors count too"
    );
    assert!(
        value(&after, "hearth_commits_total", None) >= 2.0,
        "signup and update"
    );
    assert!(
        value(&after, "hearth_commit_batch_size", None) >= 2.0,
        "histogram observed batches"
    );
    assert!(value(&after, "hearth_commit_seconds", None) >= 2.0);
    assert_eq!(value(&after, "hearth_fanout_deliveries_total", None), 1.0);
    assert!(value(&after, "hearth_cache_hits_total", None) >= 1.0);

    watcher.close().await;
    owner.close().await;
    let mut settled = false;
    for _ in 0..100 {
        let s = scrape(&server).await;
        if value(&s, "hearth_connections", None) == 0.0 && value(&s, "hearth_sessions", None) == 0.0
        {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(settled, "gauges return to zero when sockets close");

    // The update went to the write-ahead log; an idle writer checkpoints it within a second.
    let mut checkpointed = false;
    for _ in 0..100 {
        if value(&scrape(&server).await, "hearth_checkpoint_seconds", None) >= 1.0 {
            checkpointed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(checkpointed, "the idle writer checkpointed the log");
}

//! The change feed (issue 32): every committed change of every document and stream, in
//! commit order, under cursors that survive a restart and a backup; a consumer killed again
//! and again resumes from its stored cursor and sees each change exactly once.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Client, Sse, TestServer, hearth_cli, http};

async fn merge(c: &mut Client, target: &str, version: u64, n: u64) -> u64 {
    let r = c
        .request(json!({"type": "update", "target": target, "patch": true, "data": {"metadata": {"version": version}, "userdata": {"n": n}}}))
        .await;
    r["version"].as_u64().unwrap_or_else(|| panic!("{r}"))
}

/// Every change after `after`, paged `limit` at a time: `(cursor, key, version)`.
async fn drain(base: &str, token: &str, after: u64, limit: usize) -> Vec<(u64, String, u64)> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let (status, page) = http(
            Method::GET,
            &format!("{base}/v1/admin/feed?after={after}&limit={limit}"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let changes = page["changes"].as_array().unwrap();
        if changes.is_empty() {
            return out;
        }
        let newest = page["newest"].as_u64().expect("the newest cursor");
        for c in changes {
            out.push(key_of(c));
            assert!(c["cursor"].as_u64().unwrap() <= newest, "{page}");
        }
        after = page["next"].as_u64().unwrap();
    }
}

fn key_of(c: &Value) -> (u64, String, u64) {
    let key = match c["name"].as_str() {
        Some(name) => format!("{}/{name}", c["username"].as_str().unwrap()),
        None => c["username"].as_str().unwrap().to_owned(),
    };
    (
        c["cursor"].as_u64().unwrap(),
        key,
        c["version"].as_u64().unwrap(),
    )
}

fn ordered(items: &[(u64, String, u64)]) {
    assert!(
        items.windows(2).all(|w| w[0].0 < w[1].0),
        "cursors increase: {items:?}"
    );
    let unique: HashSet<_> = items.iter().map(|(_, k, v)| (k.clone(), *v)).collect();
    assert_eq!(unique.len(), items.len(), "each version once: {items:?}");
}

#[tokio::test]
async fn every_change_comes_once_in_commit_order_and_cursors_survive_a_restart() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, token) = server.named_user("boss").await;
    let (mut ann, ann_token) = server.named_user("ann").await;
    let (mut bob, _) = server.named_user("bob").await;
    let base = format!("http://{}", server.addr);
    let (status, _) = http(
        Method::GET,
        &format!("{base}/v1/admin/feed"),
        Some(&ann_token),
        None,
    )
    .await;
    assert_eq!(status, 403, "admins only");

    ann.request(json!({"type": "create", "target": "ann/notes", "userdata": {}}))
        .await;
    let mut expected = Vec::new();
    for i in 0..5 {
        expected.push(("ann".to_owned(), merge(&mut ann, "ann", i, i).await));
        expected.push(("bob".to_owned(), merge(&mut bob, "bob", i, i).await));
        expected.push((
            "ann/notes".to_owned(),
            merge(&mut ann, "ann/notes", i, i).await,
        ));
        let r = ann
            .request(json!({"type": "append", "target": "ann/~log", "event": {"i": i}}))
            .await;
        expected.push(("ann/~log".to_owned(), r["seq"].as_u64().unwrap()));
    }
    let got = drain(&base, &token, 0, 3).await;
    ordered(&got);
    let places: Vec<(String, u64)> = got.iter().map(|(_, k, v)| (k.clone(), *v)).collect();
    assert_eq!(places, expected, "in the order they committed");
    let (_, first) = http(
        Method::GET,
        &format!("{base}/v1/admin/feed?limit=1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        first["changes"][0]["op"],
        json!({"merge": {"n": 0}}),
        "{first}"
    );
    assert_eq!(first["changes"][0]["by"], "ann");
    assert_eq!(first["resync"], false);
    let stored = got.last().unwrap().0;

    // A restart: the cursor stored goes on from where it was, and new changes come after.
    let server = server.restart().await;
    let base = format!("http://{}", server.addr);
    let mut ann = server.client().await;
    ann.request(json!({"type": "login", "username": "ann", "password": "correct horse"}))
        .await;
    let v = merge(&mut ann, "ann", 5, 99).await;
    let (_, token) = {
        let (status, r) = http(
            Method::POST,
            &format!("{base}/v1/login"),
            None,
            Some(json!({"username": "boss", "password": "correct horse"})),
        )
        .await;
        assert_eq!(status, 200);
        (status, r["token"].as_str().unwrap().to_owned())
    };
    let after = drain(&base, &token, stored, 100).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0].0 > stored);
    assert_eq!((after[0].1.as_str(), after[0].2), ("ann", v));
    // And the whole feed reads the same as before, plus that one.
    let all = drain(&base, &token, 0, 7).await;
    assert_eq!(&all[..got.len()], &got[..]);
}

/// A consumer that stores its cursor with what it handled, killed 20 times at random
/// points while changes keep committing, ends with every change exactly once.
#[tokio::test]
async fn a_consumer_killed_twenty_times_sees_every_change_exactly_once() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, token) = server.named_user("boss").await;
    let base = format!("http://{}", server.addr);
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let server_url = server.url();
            tokio::spawn(async move {
                let mut c = Client::connect(&server_url).await;
                let r = c
                    .request(json!({"type": "signup", "username": format!("writer-{w}"), "password": "correct horse"}))
                    .await;
                assert_eq!(r["type"], "auth", "{r}");
                let me = format!("writer-{w}");
                for v in 0..60 {
                    merge(&mut c, &me, v, v).await;
                    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                }
            })
        })
        .collect();
    let mut handled: Vec<(u64, String, u64)> = Vec::new();
    let mut cursor: Option<String> = None;
    // A small, fixed pseudo-random sequence: how many events each life handles.
    let mut seed = 0x2545_f491_u64;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let take = 1 + (seed % 12) as usize;
        let resp = reqwest::Client::new()
            .get(format!("{base}/v1/admin/feed"))
            .bearer_auth(&token)
            .header("Accept", "text/event-stream");
        let resp = match &cursor {
            Some(c) => resp.header("Last-Event-ID", c),
            None => resp,
        };
        let mut sse = Sse::from_response(resp.send().await.unwrap()).await;
        for _ in 0..take {
            let Some(event) = sse.next().await else { break };
            assert_ne!(event.data["type"], "resync");
            // Handled and stored together, as a consumer's transaction would.
            handled.push(key_of(&event.data));
            cursor = event.id.clone();
        }
        drop(sse); // killed
    }
    for w in writers {
        w.await.unwrap();
    }
    // The rest, once the writers are done.
    let after: u64 = cursor.as_deref().unwrap().parse().unwrap();
    handled.extend(drain(&base, &token, after, 50).await);
    ordered(&handled);
    let everything = drain(&base, &token, 0, 1000).await;
    assert_eq!(handled, everything, "exactly once, in order");
    let writes = everything
        .iter()
        .filter(|(_, k, _)| k.starts_with("writer-"))
        .count();
    assert_eq!(writes, 180);
}

/// A version the change log no longer holds is sent as a marker to re-read the document,
/// never skipped; cursors in a backup restore as they were.
#[tokio::test]
async fn trimmed_versions_are_marked_and_a_backup_keeps_the_cursors() {
    let server = TestServer::start_with(|c| {
        c.admin_users = Some("boss".into());
        c.changelog_retain = 2;
    })
    .await;
    let (_boss, token) = server.named_user("boss").await;
    let (mut ann, _) = server.named_user("ann").await;
    for v in 0..12 {
        merge(&mut ann, "ann", v, v).await;
    }
    let base = format!("http://{}", server.addr);
    let mut page = Value::Null;
    for _ in 0..40 {
        page = http(
            Method::GET,
            &format!("{base}/v1/admin/feed?limit=100"),
            Some(&token),
            None,
        )
        .await
        .1;
        if page["changes"][0]["resync"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 12, "{page}");
    assert_eq!(changes[0]["resync"], true, "{page}");
    assert!(changes[0].get("op").is_none());
    assert!(
        changes[11]["op"].is_object(),
        "the newest is still in the log"
    );

    // A backup through the CLI, restored into a fresh directory: the same cursors. (In
    // cluster mode backups are PostgreSQL's: pg_dump keeps the `feed` table as it is.)
    if std::env::var("TEST_STORE").is_ok_and(|s| s == "postgres") {
        return;
    }
    let before = drain(&base, &token, 0, 100).await;
    let file = server.dir.path().join("feed-backup.redb");
    let out = hearth_cli(
        &[
            "backup",
            "--url",
            &base,
            "--token",
            &token,
            "--to",
            file.to_str().unwrap(),
        ],
        server.dir.path(),
        "",
    )
    .await;
    assert!(out.ok, "{} {}", out.stdout, out.stderr);
    let fresh = tempfile::tempdir().unwrap();
    let out = hearth_cli(
        &["restore", "--from", file.to_str().unwrap()],
        fresh.path(),
        "",
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    let mut config = hearth::Config::defaults(fresh.path());
    config.admin_users = Some("boss".into());
    let restored = TestServer::start_in(fresh, config).await;
    let rbase = format!("http://{}", restored.addr);
    let (_, r) = http(
        Method::POST,
        &format!("{rbase}/v1/login"),
        None,
        Some(json!({"username": "boss", "password": "correct horse"})),
    )
    .await;
    let rtoken = r["token"].as_str().unwrap().to_owned();
    let after = drain(&rbase, &rtoken, 0, 100).await;
    assert_eq!(after, before);
}

/// Two nodes on one database: one order for both, whichever node each change went to.
#[tokio::test]
async fn a_cluster_has_one_order_on_every_node() {
    let Some(nodes) = TestServer::cluster(2, |c| c.admin_users = Some("boss".into())).await else {
        return;
    };
    let (_b, token_a) = nodes[0].named_user("boss").await;
    let (mut ann, _) = nodes[0].named_user("ann").await;
    let mut bob = nodes[1].client().await;
    bob.request(json!({"type": "signup", "username": "bob", "password": "correct horse"}))
        .await;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(async move {
        for v in 0..40 {
            merge(&mut ann, "ann", v, v).await;
        }
    }));
    tasks.push(tokio::spawn(async move {
        for v in 0..40 {
            merge(&mut bob, "bob", v, v).await;
        }
    }));
    for t in tasks {
        t.await.unwrap();
    }
    let a = drain(&format!("http://{}", nodes[0].addr), &token_a, 0, 25).await;
    let (_, r) = http(
        Method::POST,
        &format!("http://{}/v1/login", nodes[1].addr),
        None,
        Some(json!({"username": "boss", "password": "correct horse"})),
    )
    .await;
    let token_b = r["token"].as_str().unwrap().to_owned();
    let b = drain(&format!("http://{}", nodes[1].addr), &token_b, 0, 25).await;
    assert_eq!(a, b, "the same order on both nodes");
    assert_eq!(a.len(), 80);
    ordered(&a);
    // Each document's versions in order within the one order.
    for who in ["ann", "bob"] {
        let versions: Vec<u64> = a
            .iter()
            .filter(|(_, k, _)| k == who)
            .map(|(_, _, v)| *v)
            .collect();
        assert_eq!(versions, (1..=40).collect::<Vec<_>>());
    }
}

/// `kill -9` with changes only in the write-ahead log: after the restart they are in the
/// feed with the cursors they had, in order, and new changes come after them.
#[tokio::test]
async fn cursors_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let out = hearth_cli(
        &["user", "create", "boss", "--password-stdin"],
        dir.path(),
        "correct horse\n",
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    let envs = [("ADMIN_USERS", "boss")];
    let (mut child, addr) = crate::common::spawn_hearth(dir.path(), &envs).await;
    let base = format!("http://{addr}");
    let login = |base: String| async move {
        let (_, r) = http(
            Method::POST,
            &format!("{base}/v1/login"),
            None,
            Some(json!({"username": "boss", "password": "correct horse"})),
        )
        .await;
        r["token"].as_str().unwrap().to_owned()
    };
    let token = login(base.clone()).await;
    let mut c = Client::connect(&format!("ws://{addr}/ws")).await;
    c.request(json!({"type": "signup", "username": "ann", "password": "correct horse"}))
        .await;
    for v in 0..30 {
        merge(&mut c, "ann", v, v).await;
    }
    let before = drain(&base, &token, 0, 100).await;
    assert_eq!(before.len(), 30);
    child.kill().await.unwrap(); // SIGKILL: no fold, no clean stop
    let (_child, addr) = crate::common::spawn_hearth(dir.path(), &envs).await;
    let base = format!("http://{addr}");
    let token = login(base.clone()).await;
    let after = drain(&base, &token, 0, 100).await;
    assert_eq!(after, before, "the same changes under the same cursors");
    let mut c = Client::connect(&format!("ws://{addr}/ws")).await;
    c.request(json!({"type": "login", "username": "ann", "password": "correct horse"}))
        .await;
    merge(&mut c, "ann", 30, 30).await;
    let new = drain(&base, &token, before.last().unwrap().0, 100).await;
    assert_eq!(new.len(), 1);
    assert!(new[0].0 > before.last().unwrap().0);
}

/// An integration's token (`scope: "feed"`) reads the feed and nothing else; the same
/// scope on a non-admin's account reads nothing.
#[tokio::test]
async fn a_feed_token_reads_the_feed_and_nothing_else() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    server.named_user("boss").await;
    let (mut ann, _) = server.named_user("ann").await;
    merge(&mut ann, "ann", 0, 1).await;
    let base = format!("http://{}", server.addr);
    let login = |user: &'static str| {
        let base = base.clone();
        async move {
            let (status, r) = http(
                Method::POST,
                &format!("{base}/v1/login"),
                None,
                Some(json!({"username": user, "password": "correct horse", "scope": "feed"})),
            )
            .await;
            assert_eq!(status, 200, "{r}");
            r["token"].as_str().unwrap().to_owned()
        }
    };
    let feed_token = login("boss").await;
    let got = drain(&base, &feed_token, 0, 10).await;
    assert_eq!(got.len(), 1);
    for path in [
        "/v1/me",
        "/v1/users/ann",
        "/v1/admin/users",
        "/v1/admin/stats",
        "/v1/users/boss/data",
    ] {
        let (status, body) = http(
            Method::GET,
            &format!("{base}{path}"),
            Some(&feed_token),
            None,
        )
        .await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _) = http(
        Method::PUT,
        &format!("{base}/v1/users/boss/data/x"),
        Some(&feed_token),
        Some(json!(1)),
    )
    .await;
    assert_eq!(status, 403);
    let mut ws = Client::connect(&server.url()).await;
    let r = ws
        .request(json!({"type": "auth", "token": feed_token}))
        .await;
    assert_eq!(r["code"], "forbidden", "{r}");
    let not_admin = login("ann").await;
    let (status, _) = http(
        Method::GET,
        &format!("{base}/v1/admin/feed"),
        Some(&not_admin),
        None,
    )
    .await;
    assert_eq!(status, 403);
}

/// The feed on an admin's socket: the changes after a cursor, then each new one; unwatch
/// stops it; not for others.
#[tokio::test]
async fn an_admin_socket_follows_the_feed() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (mut boss, _) = server.named_user("boss").await;
    let (mut ann, _) = server.named_user("ann").await;
    let r = ann.request(json!({"type": "feed"})).await;
    assert_eq!(r["code"], "forbidden", "{r}");
    for v in 0..3 {
        merge(&mut ann, "ann", v, v).await;
    }
    let r = boss.request(json!({"type": "feed", "after": 1})).await;
    assert_eq!(r["type"], "feeding", "{r}");
    let mut cursors = Vec::new();
    for _ in 0..2 {
        let push = boss.next_push().await;
        assert_eq!(push["type"], "feed", "{push}");
        cursors.push(push["cursor"].as_u64().unwrap());
    }
    merge(&mut ann, "ann", 3, 3).await;
    let live = boss.next_push().await;
    assert_eq!(
        (live["username"].as_str(), live["version"].as_u64()),
        (Some("ann"), Some(4))
    );
    cursors.push(live["cursor"].as_u64().unwrap());
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]) && cursors[0] > 1,
        "{cursors:?}"
    );
    let r = boss
        .request(json!({"type": "unwatch", "target": "~feed"}))
        .await;
    assert_eq!(r["type"], "unwatch", "{r}");
    merge(&mut ann, "ann", 4, 4).await;
    assert!(
        boss.quiet_for(std::time::Duration::from_millis(400)).await,
        "stopped"
    );
}

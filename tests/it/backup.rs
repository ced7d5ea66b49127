//! Backups: taken online under concurrent writes through the real CLI, restored into a new
//! data dir, and everything acknowledged before the backup began is there; tokens survive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::json;

use crate::common::{Client, TestServer, http_get};

/// Runs the CLI; (success, what it reported on stderr).
async fn hearth(args: &[&str], data_dir: &std::path::Path) -> (bool, String) {
    let run = crate::common::hearth_cli(args, data_dir, "").await;
    (run.ok, run.stderr)
}

/// Backs `server` up through the CLI (as admin `token`) and restores that file into a fresh
/// data dir, returned.
async fn backup_and_restore(server: &TestServer, token: &str) -> tempfile::TempDir {
    let base = format!("http://{}", server.addr);
    let backup_dir = tempfile::tempdir().unwrap();
    let file = backup_dir.path().join("b.redb");
    let args = [
        "backup",
        "--to",
        file.to_str().unwrap(),
        "--url",
        &base,
        "--token",
        token,
    ];
    let (ok, out) = hearth(&args, server.dir.path()).await;
    assert!(ok, "{out}");
    let fresh = tempfile::tempdir().unwrap();
    let (ok, out) = hearth(&["restore", "--from", file.to_str().unwrap()], fresh.path()).await;
    assert!(ok, "{out}");
    fresh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_under_writes_restores_everything_acknowledged_before_it() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, boss_token) = server.named_user("boss").await;

    // Three writers commit continuously; each remembers the last acknowledged version.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..3 {
        let (mut c, name, token) = server.user().await;
        let acked = Arc::new(AtomicU64::new(0));
        let (stop, acked2) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut v = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = c.request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": v}, "userdata": {"v": v + 1}}})).await;
                v = r["version"].as_u64().expect("committed");
                acked2.store(v, Ordering::SeqCst);
            }
        });
        writers.push((name, token, acked, task));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before: Vec<u64> = writers.iter().map(|w| w.2.load(Ordering::SeqCst)).collect();
    let backup_dir = tempfile::tempdir().unwrap();
    let file = backup_dir.path().join("hearth-backup.redb");
    let url = format!("http://{}", server.addr);
    let (ok, out) = hearth(
        &[
            "backup",
            "--to",
            file.to_str().unwrap(),
            "--url",
            &url,
            "--token",
            &boss_token,
        ],
        server.dir.path(),
    )
    .await;
    assert!(ok, "backup failed: {out}");
    assert!(out.contains("bytes written"), "{out}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);

    // Restoring over the running server's data dir is refused.
    let (ok, out) = hearth(
        &["restore", "--from", file.to_str().unwrap()],
        server.dir.path(),
    )
    .await;
    assert!(!ok && out.contains("in use"), "{out}");
    // So is a file that is not a backup.
    let junk = backup_dir.path().join("junk.redb");
    std::fs::write(&junk, b"not a database").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let (ok, out) = hearth(&["restore", "--from", junk.to_str().unwrap()], fresh.path()).await;
    assert!(!ok, "{out}");

    // Restore into a fresh data dir and serve it.
    let (ok, out) = hearth(&["restore", "--from", file.to_str().unwrap()], fresh.path()).await;
    assert!(ok, "restore failed: {out}");
    let mut config = hearth::Config::defaults(fresh.path());
    config.admin_users = Some("boss".into());
    let restored = TestServer::start_in(fresh, config).await;
    for (i, (name, token, _, task)) in writers.into_iter().enumerate() {
        task.await.unwrap();
        let mut c: Client = restored.client().await;
        let authed = c.request(json!({"type": "auth", "token": token})).await;
        assert_eq!(
            authed["username"],
            name.as_str(),
            "tokens survive a restore: {authed}"
        );
        let data = c.request(json!({"type": "fetch"})).await;
        let version = data["version"].as_u64().unwrap();
        assert!(
            version >= before[i],
            "{name}: acknowledged {} before the backup, restored {version}",
            before[i]
        );
        assert_eq!(
            data["data"]["userdata"],
            json!({"v": version}),
            "no half commit"
        );
        let url = format!(
            "http://{}/v1/users/{name}/changes?limit=1000",
            restored.addr
        );
        let (_, changes) = http_get(&url, &token).await;
        assert_eq!(
            changes["changes"].as_array().unwrap().len() as u64,
            version.min(1000),
            "the log came along"
        );
    }
    // Admin API: snapshot into the server's own backups dir.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/admin/backup", restored.addr))
        .bearer_auth(&boss_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let made: serde_json::Value = resp.json().await.unwrap();
    assert!(std::path::Path::new(made["file"].as_str().unwrap()).exists());

    // An offline backup of a stopped server works from the data dir alone.
    let mut restored = restored;
    restored.shutdown().await;
    let offline = backup_dir.path().join("offline.redb");
    let (ok, out) = hearth(
        &["backup", "--to", offline.to_str().unwrap()],
        restored.dir.path(),
    )
    .await;
    assert!(ok && out.contains("rows written"), "{out}");
}

#[tokio::test]
async fn scheduled_snapshots_rotate() {
    let server = TestServer::start_with(|c| {
        c.backup_interval = 1;
        c.backup_keep = 2;
    })
    .await;
    let (_c, _, _) = server.user().await;
    let dir = server.dir.path().join("backups");
    let count = || {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("scheduled-"))
                })
                .count()
            })
            .unwrap_or(0)
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled snapshots"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    // Stop first, so no snapshot is being written or rotated while we look.
    let mut server = server;
    server.shutdown().await;
    assert_eq!(count(), 2, "older snapshots are removed");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            hearth::store::redb::backup::verify(&path).is_ok(),
            "{} is a valid backup",
            path.display()
        );
    }
}

#[tokio::test]
async fn blob_references_and_admin_grants_travel_with_a_backup() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, boss_token) = server.named_user("boss").await;
    let (_ann, ann_token) = server.named_user("ann").await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let up: serde_json::Value = http
        .put(format!("{base}/v1/blobs"))
        .bearer_auth(&ann_token)
        .body(vec![7u8; 4096])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hash = up["sha256"].as_str().unwrap().to_owned();
    let grant = format!("{base}/v1/admin/users/ann/admin");
    let (status, _) =
        crate::common::http(reqwest::Method::POST, &grant, Some(&boss_token), None).await;
    assert_eq!(status, 204);

    // Restore the database and copy the blob files, as README says.
    let fresh = backup_and_restore(&server, &boss_token).await;
    let src = server.dir.path().join("blobs").join(&hash[..2]);
    let dst = fresh.path().join("blobs").join(&hash[..2]);
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(src.join(&hash), dst.join(&hash)).unwrap();
    let config = hearth::Config::defaults(fresh.path());
    let restored = TestServer::start_in(fresh, config).await;
    let base = format!("http://{}", restored.addr);
    let blob = http
        .get(format!("{base}/v1/blobs/{hash}"))
        .bearer_auth(&ann_token)
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().await.unwrap().len(), 4096);
    let (_, list) = http_get(&format!("{base}/v1/blobs"), &ann_token).await;
    assert_eq!(list["used"], 4096);
    let (status, _) = http_get(&format!("{base}/v1/admin/stats"), &ann_token).await;
    assert_eq!(status, 200, "the admin grant came along");
}

/// Named documents, their change logs and who they are shared with travel with a backup: the
/// restored server lists them, shows "shared with me", and resumes their watches.
#[tokio::test]
async fn named_documents_and_sharing_travel_with_a_backup() {
    let server = TestServer::start_with(|c| c.admin_users = Some("boss".into())).await;
    let (_boss, boss_token) = server.named_user("boss").await;
    let (mut ann, _) = server.named_user("ann").await;
    let (_bob, bob_token) = server.named_user("bob").await;
    let created = ann
        .request(json!({"type": "create", "name": "groceries", "readers": ["bob"], "userdata": {"milk": 1}}))
        .await;
    let incarnation = created["data"]["metadata"]["incarnation"].clone();
    let r = ann
        .request(
            json!({"type": "update", "target": "ann/groceries", "patch": true,
            "data": {"metadata": {"version": 0}, "userdata": {"eggs": 6}}}),
        )
        .await;
    assert_eq!(r["version"], 1, "{r}");
    let fresh = backup_and_restore(&server, &boss_token).await;
    let config = hearth::Config::defaults(fresh.path());
    let restored = TestServer::start_in(fresh, config).await;
    let mut bob: Client = restored.client().await;
    bob.request(json!({"type": "auth", "token": bob_token}))
        .await;
    let list = bob.request(json!({"type": "list"})).await;
    assert_eq!(list["shared"][0]["name"], "groceries", "{list}");
    assert_eq!(list["shared"][0]["version"], 1);
    let replay = bob
        .request(json!({"type": "watch", "target": "ann/groceries", "since": 0, "incarnation": incarnation}))
        .await;
    assert_eq!(replay["type"], "watching", "{replay}");
    assert_eq!(bob.next_push().await["op"], json!({"merge": {"eggs": 6}}));
}

/// An operator who installs a new build and backs up offline before starting it: the data
/// file lacks the tables that build added (here the audit log, the sharing index and blob
/// mentions), and the backup still works; the tables come with the next start.
#[tokio::test]
async fn an_offline_backup_of_a_file_from_an_older_build_works() {
    let mut server = TestServer::start().await;
    let (mut c, _, _) = server.user().await;
    c.request(
        json!({"type": "update", "data": {"metadata": {"version": 0}, "userdata": {"kept": true}}}),
    )
    .await;
    server.shutdown().await;
    let path = server.dir.path().join("hearth.redb");
    {
        use redb::TableHandle;
        let db = redb::Database::open(&path).expect("open");
        let txn = db.begin_write().expect("write");
        for table in ["audit", "shares", "shared_with", "blob_mentions"] {
            let handle = txn
                .list_tables()
                .expect("tables")
                .find(|t| t.name() == table);
            assert!(
                txn.delete_table(handle.expect(table)).expect("delete"),
                "{table}"
            );
        }
        txn.commit().expect("commit");
    }
    let offline = server.dir.path().join("older.redb");
    let (ok, out) = hearth(
        &["backup", "--to", offline.to_str().unwrap()],
        server.dir.path(),
    )
    .await;
    assert!(ok && out.contains("rows written"), "{out}");
    assert!(hearth::store::redb::backup::verify(&offline).is_ok());
}

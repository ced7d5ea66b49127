//! Blobs over real HTTP: upload, download with ranges, dedup, delete, hash checks, size and
//! quota limits, and the access rule (uploaders, or readers of a document that mentions the
//! blob when one of its writers uploaded it).

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{TestServer, eventually};

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn new(server: &TestServer) -> Http {
        Http {
            base: format!("http://{}", server.addr),
            client: reqwest::Client::new(),
        }
    }

    async fn put(&self, token: &str, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .client
            .put(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "image/png")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn delete(&self, token: &str, path: &str) -> StatusCode {
        self.client
            .delete(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// Blob files on disk (not counting unfinished uploads).
fn files(server: &TestServer) -> Vec<String> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(server.dir.path().join("blobs")).unwrap() {
        let dir = dir.unwrap();
        if dir.file_name() == "tmp" {
            continue;
        }
        for f in std::fs::read_dir(dir.path()).unwrap() {
            out.push(f.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    out
}

fn tmp_files(server: &TestServer) -> usize {
    std::fs::read_dir(server.dir.path().join("blobs/tmp"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn upload_download_ranges_dedup_and_delete() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let (_a, ann) = server.named_user("ann").await;
    let (_b, bob) = server.named_user("bob").await;
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hash = sha(&bytes);
    let path = format!("/v1/blobs/{hash}");

    let (status, body) = http.put(&ann, "/v1/blobs", bytes.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sha256"], hash.as_str());
    assert_eq!(body["size"], bytes.len());
    assert_eq!(files(&server), vec![hash.clone()]);

    let resp = http.get(&ann, &path).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["etag"], format!("\"{hash}\"").as_str());
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // Ranges: a middle slice, an open end, a suffix; and one past the end.
    for (range, from, to) in [
        ("bytes=1000-1999", 1000, 2000),
        ("bytes=199990-", 199_990, 200_000),
        ("bytes=-5", 199_995, 200_000),
    ] {
        let resp = http
            .client
            .get(format!("{}{path}", http.base))
            .bearer_auth(&ann)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {from}-{}/200000", to - 1).as_str()
        );
        assert_eq!(resp.bytes().await.unwrap().as_ref(), &bytes[from..to]);
    }
    let resp = http
        .client
        .get(format!("{}{path}", http.base))
        .bearer_auth(&ann)
        .header("range", "bytes=200000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */200000");
    let resp = http
        .client
        .get(format!("{}{path}", http.base))
        .bearer_auth(&ann)
        .header("if-none-match", format!("\"{hash}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);

    // The same bytes again: nothing new for ann; bob gets his own reference to one file.
    let (status, _) = http.put(&ann, "/v1/blobs", bytes.clone()).await;
    assert_eq!(status, 200);
    let (status, _) = http.put(&bob, "/v1/blobs", bytes.clone()).await;
    assert_eq!(status, 201);
    assert_eq!(files(&server), vec![hash.clone()]);
    assert_eq!(tmp_files(&server), 0);
    let list: Value = http.get(&bob, "/v1/blobs").await.json().await.unwrap();
    assert_eq!(list["used"], bytes.len());
    assert_eq!(list["blobs"][0]["sha256"], hash.as_str());

    // Ann lets go: bob still has it, ann can no longer read it.
    assert_eq!(http.delete(&ann, &path).await, 204);
    assert_eq!(http.delete(&ann, &path).await, 404);
    assert_eq!(http.get(&ann, &path).await.status(), 404);
    assert_eq!(http.get(&bob, &path).await.status(), 200);
    assert_eq!(files(&server), vec![hash.clone()]);
    // The last reference takes the bytes with it.
    assert_eq!(http.delete(&bob, &path).await, 204);
    assert!(files(&server).is_empty());
    assert_eq!(http.get(&bob, &path).await.status(), 404);
    let list: Value = http.get(&bob, "/v1/blobs").await.json().await.unwrap();
    assert_eq!(list["used"], 0);
}

#[tokio::test]
async fn hashes_are_verified_and_bad_names_refused() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let (_a, ann) = server.named_user("ann").await;
    let bytes = b"hello, blobs".to_vec();
    let hash = sha(&bytes);

    let wrong = sha(b"something else");
    let (status, body) = http
        .put(&ann, &format!("/v1/blobs/{wrong}"), bytes.clone())
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "bad_request");
    assert!(files(&server).is_empty());
    assert_eq!(tmp_files(&server), 0, "the refused upload is cleaned up");

    let (status, body) = http
        .put(&ann, &format!("/v1/blobs/{hash}"), bytes.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    // Upload-if-absent: held already, so the body is not even needed.
    let (status, body) = http
        .put(&ann, &format!("/v1/blobs/{hash}"), b"ignored".to_vec())
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["size"], bytes.len());

    for bad in ["abc", &hash.to_uppercase(), "../../jwt_secret"] {
        let resp = http.get(&ann, &format!("/v1/blobs/{bad}")).await;
        assert!(
            resp.status() == 400 || resp.status() == 404,
            "{bad}: {}",
            resp.status()
        );
    }
    // No token, a read-only token.
    let resp = reqwest::get(format!("{}/v1/blobs/{hash}", http.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (_, login) = crate::common::http(
        reqwest::Method::POST,
        &format!("{}/v1/login", http.base),
        None,
        Some(json!({"username": "ann", "password": "correct horse", "scope": "read"})),
    )
    .await;
    let read_only = login["token"].as_str().unwrap();
    let (status, body) = http.put(read_only, "/v1/blobs", b"x".to_vec()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        http.delete(read_only, &format!("/v1/blobs/{hash}")).await,
        403
    );
    assert_eq!(
        http.get(read_only, &format!("/v1/blobs/{hash}"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn size_and_quota_limits_give_413_and_leave_nothing_behind() {
    let server = TestServer::start_with(|c| {
        c.blob_max_size = 1000;
        c.blob_quota = 2500;
    })
    .await;
    let http = Http::new(&server);
    let (_a, ann) = server.named_user("ann").await;

    let (status, body) = http.put(&ann, "/v1/blobs", vec![1u8; 1001]).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "too_large");
    // Streamed without a Content-Length, the limit holds as the bytes arrive.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![2u8; 100])).collect();
    let resp = http
        .client
        .put(format!("{}/v1/blobs", http.base))
        .bearer_auth(&ann)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(resp) = resp {
        // The server may also close the connection mid-upload; either way nothing is kept.
        assert_eq!(resp.status(), 413);
    }
    assert!(files(&server).is_empty());
    eventually("no temporary file is left", || tmp_files(&server) == 0).await;

    for fill in 1..=2u8 {
        let (status, _) = http.put(&ann, "/v1/blobs", vec![fill; 1000]).await;
        assert_eq!(status, 201);
    }
    let (status, body) = http.put(&ann, "/v1/blobs", vec![3u8; 1000]).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "quota_exceeded");
    // Small enough to fit the room left.
    let (status, _) = http.put(&ann, "/v1/blobs", vec![4u8; 500]).await;
    assert_eq!(status, 201);
    // Deleting frees quota.
    let first = sha(&[1u8; 1000]);
    assert_eq!(http.delete(&ann, &format!("/v1/blobs/{first}")).await, 204);
    let (status, _) = http.put(&ann, "/v1/blobs", vec![3u8; 1000]).await;
    assert_eq!(status, 201);
    let list: Value = http.get(&ann, "/v1/blobs").await.json().await.unwrap();
    assert_eq!(list["used"], 2500);
    assert_eq!(files(&server).len(), 3);
}

#[tokio::test]
async fn readers_of_a_document_that_mentions_a_writers_blob_may_read_it() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let (mut ann_ws, ann) = server.named_user("ann").await;
    let (_b, bob) = server.named_user("bob").await;
    let (mut carol_ws, carol) = server.named_user("carol").await;
    let (_d, dave) = server.named_user("dave").await;

    let photo = b"ann's photo".to_vec();
    let hash = sha(&photo);
    assert_eq!(http.put(&ann, "/v1/blobs", photo).await.0, 201);
    let via_ann = format!("/v1/blobs/{hash}?doc=ann");

    // Shared with bob, but the document does not mention the blob yet.
    let r = ann_ws.request(json!({"type": "update", "data": {"metadata": {"version": 0, "readers": ["bob"]}, "userdata": {}}})).await;
    assert_eq!(r["version"], 1, "{r}");
    assert_eq!(http.get(&bob, &via_ann).await.status(), 404);
    let r = ann_ws
        .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": 1}, "userdata": {"album": [{"src": format!("blob:{hash}")}]}}}))
        .await;
    assert_eq!(r["version"], 2, "{r}");
    assert_eq!(http.get(&bob, &via_ann).await.status(), 200);
    // Not without naming the document, and not for someone it is not shared with.
    assert_eq!(
        http.get(&bob, &format!("/v1/blobs/{hash}")).await.status(),
        404
    );
    assert_eq!(http.get(&carol, &via_ann).await.status(), 404);

    // Carol learns the hash and puts it in her own document, shared with dave: neither may
    // read it, because nobody who can write carol's document holds the blob.
    let r = carol_ws
        .request(json!({"type": "update", "data": {"metadata": {"version": 0, "readers": ["dave"]}, "userdata": {"x": hash}}}))
        .await;
    assert_eq!(r["version"], 1, "{r}");
    let via_carol = format!("/v1/blobs/{hash}?doc=carol");
    assert_eq!(http.get(&dave, &via_carol).await.status(), 404);
    assert_eq!(http.get(&carol, &via_carol).await.status(), 404);

    // Unshared again: bob loses access.
    let r = ann_ws
        .request(json!({"type": "update", "patch": true, "data": {"metadata": {"version": 2, "readers": []}}}))
        .await;
    assert_eq!(r["version"], 3, "{r}");
    assert_eq!(http.get(&bob, &via_ann).await.status(), 404);
}

/// The laundering case of issue 25: eve lists ann as a collaborator of eve's own document
/// (no consent needed) and writes the hash of ann's private blob into it. Being listed as a
/// writer is not ann's act, so eve gets nothing; a collaborator who writes their own blob
/// into someone's document does share it with that document's readers.
#[tokio::test]
async fn a_blob_is_shared_only_by_its_holders_own_act() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let (mut ann_ws, ann) = server.named_user("ann").await;
    let (mut eve_ws, eve) = server.named_user("eve").await;
    let (_r, reader) = server.named_user("reader").await;

    let private = b"ann's private scan".to_vec();
    let hash = sha(&private);
    assert_eq!(http.put(&ann, "/v1/blobs", private).await.0, 201);

    let r = eve_ws
        .request(json!({"type": "update", "data": {"metadata": {"version": 0,
            "collaborators": ["ann"], "readers": ["reader"]}, "userdata": {"loot": format!("blob:{hash}")}}}))
        .await;
    assert_eq!(r["version"], 1, "{r}");
    let via_eve = format!("/v1/blobs/{hash}?doc=eve");
    assert_eq!(http.get(&eve, &via_eve).await.status(), 404, "laundered");
    assert_eq!(http.get(&reader, &via_eve).await.status(), 404);

    // ann, a collaborator of eve's document, writes her own blob into it herself: that is
    // her act, and eve's readers (and eve) may read it now.
    let mine = b"ann's shared photo".to_vec();
    let shared = sha(&mine);
    assert_eq!(http.put(&ann, "/v1/blobs", mine).await.0, 201);
    let r = ann_ws
        .request(json!({"type": "update", "target": "eve", "patch": true,
            "data": {"metadata": {"version": 1}, "userdata": {"photo": format!("blob:{shared}")}}}))
        .await;
    assert_eq!(r["version"], 2, "{r}");
    let via_eve_shared = format!("/v1/blobs/{shared}?doc=eve");
    assert_eq!(http.get(&reader, &via_eve_shared).await.status(), 200);
    assert_eq!(http.get(&eve, &via_eve_shared).await.status(), 200);
    // Still nothing for the private one, though ann has now written to eve's document.
    assert_eq!(http.get(&eve, &via_eve).await.status(), 404);
    // ann drops her reference: the share ends with it.
    assert_eq!(
        http.delete(&ann, &format!("/v1/blobs/{shared}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(http.get(&reader, &via_eve_shared).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_and_deletes_never_leave_a_reference_without_its_bytes() {
    let server = TestServer::start().await;
    let mut tokens = Vec::new();
    for name in ["ann", "bob", "cid", "dee"] {
        tokens.push(server.named_user(name).await.1);
    }
    let ann = tokens[0].clone();
    let bytes = vec![9u8; 50_000];
    let hash = sha(&bytes);
    let mut tasks = Vec::new();
    for token in tokens {
        let http = Http::new(&server);
        let (bytes, hash) = (bytes.clone(), hash.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                let (status, _) = http.put(&token, "/v1/blobs", bytes.clone()).await;
                assert_eq!(status, 201);
                // Held, so readable in full, whatever the other account just did.
                let resp = http.get(&token, &format!("/v1/blobs/{hash}")).await;
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.bytes().await.unwrap().len(), bytes.len());
                let status = http.delete(&token, &format!("/v1/blobs/{hash}")).await;
                assert_eq!(status, 204);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(files(&server).is_empty());
    let http = Http::new(&server);
    assert_eq!(http.put(&ann, "/v1/blobs", bytes.clone()).await.0, 201);
    let resp = http.get(&ann, &format!("/v1/blobs/{hash}")).await;
    assert_eq!(resp.bytes().await.unwrap().len(), bytes.len());
    assert_eq!(tmp_files(&server), 0);
}

/// Hex strings in updates cost the writer nothing extra: a hash the writer does not hold, or
/// one already recorded, is a read, never a durable commit (each would be an fsync). Counted
/// by the writer's batches (`hearth_commit_seconds_count`).
#[tokio::test]
async fn hashes_in_updates_do_not_make_the_writer_commit_more() {
    if std::env::var("TEST_STORE").is_ok_and(|s| s == "postgres") {
        return; // The batches counted are the redb writer's.
    }
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let (mut ws, ann) = server.named_user("ann").await;
    let batches = || async {
        let text = reqwest::get(format!("http://{}/metrics", server.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("hearth_commit_seconds_count "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let held = b"ann's photo".to_vec();
    let hash = sha(&held);
    assert_eq!(http.put(&ann, "/v1/blobs", held).await.0, 201);
    let strangers: Vec<String> = (0..32u32).map(|i| sha(&i.to_le_bytes())).collect();
    let first = ws
        .request(
            json!({"type": "update", "data": {"metadata": {"version": 0},
            "userdata": {"photo": format!("blob:{hash}"), "noise": strangers}}}),
        )
        .await;
    assert_eq!(first["version"], 1, "{first}");
    let before = batches().await;
    for v in 1..4 {
        let r = ws
            .request(
                json!({"type": "update", "data": {"metadata": {"version": v},
                "userdata": {"photo": format!("blob:{hash}"), "noise": strangers, "v": v}}}),
            )
            .await;
        assert_eq!(r["version"], v + 1, "{r}");
    }
    assert_eq!(
        batches().await - before,
        3.0,
        "one batch per update, none for the hashes in it"
    );
}

//! `hearth import personal-backend DIR`: a personal-backend `.data/` directory (one
//! `<username>.json` per user, seed `003`) into Hearth, on a stopped server's data dir or
//! through a running one (`POST /v1/admin/import/personal-backend`).
//!
//! Each file becomes an account (no password: its holders sign in with their old token under
//! `LEGACY_JWT_SECRET`, which `auth` trades for an ordinary one) and its default document,
//! kept as it was: username, version, collaborators, `createdAt`, `lastUpdate`, userdata. The
//! document's history starts at its version, so a client resuming from before gets a resync.
//! Decided where the seed left room:
//! - a name Hearth does not accept as a username is reported and skipped, never renamed;
//! - a name already here is left alone (running the import twice changes nothing);
//! - a collaborator that is neither here nor imported is dropped and reported: Hearth's access
//!   lists name existing accounts only, and a name kept would let whoever signs up under it
//!   later inherit access;
//! - a document over `MAX_DATA_SIZE_JSON` (or whose `userdata` is not an object) is skipped.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use crate::store::{Document, LastUpdate, Metadata, Store, StoreError, UserRecord};

/// One user file as personal-backend wrote it.
#[derive(Deserialize)]
struct SeedFile {
    metadata: SeedMeta,
    userdata: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeedMeta {
    username: String,
    version: u64,
    #[serde(default)]
    collaborators: Vec<String>,
    created_at: Option<String>,
    last_update: Option<SeedUpdate>,
}

#[derive(Deserialize)]
struct SeedUpdate {
    at: String,
    by: String,
}

/// Files that cannot be imported: `(file, why)`.
pub type Skipped = Vec<(String, String)>;

/// A user file ready to import.
pub struct Account {
    pub user: UserRecord,
    pub doc: Document,
}

/// What an import did.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
pub struct Report {
    pub imported: Vec<String>,
    /// Already here: left as they are.
    pub present: Vec<String>,
    /// `(file or user, why)`.
    pub skipped: Vec<(String, String)>,
    /// `(user, collaborator)` dropped from an access list.
    pub dropped: Vec<(String, String)>,
}

impl Report {
    /// A summary for people.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "imported {}, already present {}, skipped {}, collaborators dropped {}",
            self.imported.len(),
            self.present.len(),
            self.skipped.len(),
            self.dropped.len()
        );
        for (what, why) in &self.skipped {
            out.push_str(&format!("\nskipped {what}: {why}"));
        }
        for (user, collaborator) in &self.dropped {
            out.push_str(&format!(
                "\n{user}: dropped collaborator {collaborator:?} (no such account)"
            ));
        }
        out
    }
}

/// Reads one user file (`name`: for messages). `max_size`: `MAX_DATA_SIZE_JSON`.
///
/// # Errors
/// Why the file cannot be imported.
pub fn parse(name: &str, bytes: &[u8], max_size: usize) -> Result<Account, String> {
    let seed: SeedFile = serde_json::from_slice(bytes).map_err(|e| format!("{name}: {e}"))?;
    let m = seed.metadata;
    crate::names::validate(&m.username).map_err(|e| format!("{:?}: {e}", m.username))?;
    let Value::Object(userdata) = seed.userdata else {
        return Err(format!("{}: userdata is not an object", m.username));
    };
    let created_at = m.created_at.unwrap_or_else(crate::sys::now_rfc3339);
    // Never updated: the seed wrote no `lastUpdate`.
    let last_update = m.last_update.map_or_else(
        || LastUpdate {
            at: created_at.clone(),
            by: m.username.clone(),
        },
        |u| LastUpdate { at: u.at, by: u.by },
    );
    let mut collaborators: Vec<String> = Vec::new();
    for c in m.collaborators {
        if c != m.username && !collaborators.contains(&c) {
            collaborators.push(c);
        }
    }
    let doc = Document::imported(
        Metadata {
            username: m.username.clone(),
            name: None,
            incarnation: None,
            version: m.version,
            collaborators,
            readers: Vec::new(),
            created_at: created_at.clone(),
            last_update,
        },
        userdata,
    );
    let size = serde_json::to_vec(&doc).map_err(|e| e.to_string())?.len();
    if size > max_size {
        return Err(format!(
            "{}: {size} bytes, over MAX_DATA_SIZE_JSON ({max_size})",
            m.username
        ));
    }
    Ok(Account {
        user: UserRecord {
            username: m.username,
            password_hash: None,
            created_at,
        },
        doc,
    })
}

/// Imports `accounts`, calling `progress(done, total)` after each.
///
/// # Errors
/// `Unavailable`: the store failed (what was imported before stays).
pub async fn import(
    store: &Store,
    accounts: Vec<Account>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let incoming: HashSet<String> = accounts.iter().map(|a| a.user.username.clone()).collect();
    let total = accounts.len();
    for (i, Account { user, mut doc }) in accounts.into_iter().enumerate() {
        let name = user.username.clone();
        if store.user(&name).await?.is_some() {
            report.present.push(name);
            progress(i + 1, total);
            continue;
        }
        let mut kept = Vec::new();
        for c in std::mem::take(&mut doc.metadata.collaborators) {
            if incoming.contains(&c) || store.user(&c).await?.is_some() {
                kept.push(c);
            } else {
                report.dropped.push((name.clone(), c));
            }
        }
        doc.metadata.collaborators = kept;
        match store.import_user(user, doc).await {
            Ok(()) => report.imported.push(name),
            Err(StoreError::UsernameTaken) => report.present.push(name),
            Err(e) => return Err(e),
        }
        progress(i + 1, total);
    }
    Ok(report)
}

/// Reads every `*.json` of `dir`, in name order: the accounts to import and the files that
/// cannot be (`(file, why)`).
///
/// # Errors
/// The directory cannot be read.
pub fn read_dir(
    dir: &std::path::Path,
    max_size: usize,
) -> std::io::Result<(Vec<Account>, Skipped)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut accounts, mut skipped) = (Vec::new(), Vec::new());
    for path in files {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| parse(&file, &b, max_size))
        {
            Ok(account) => accounts.push(account),
            Err(why) => skipped.push((file, why)),
        }
    }
    Ok((accounts, skipped))
}

/// Request bodies of an online import stay under this (the server takes `MAX_MESSAGE_SIZE`,
/// 1 MiB by default); a larger file goes alone.
const BATCH_BYTES: usize = 512 * 1024;

/// `hearth import personal-backend DIR`: into the running server at `target`, or a stopped
/// one's data dir. Progress goes to stderr; the summary is returned.
///
/// # Errors
/// A message for people.
pub async fn run(
    dir: &std::path::Path,
    target: super::users::Target<'_>,
) -> Result<String, String> {
    use super::users::Target;
    let say = |done: usize, total: usize| {
        if done == total || done.is_multiple_of(100) {
            eprintln!("import: {done}/{total}");
        }
    };
    match target {
        Target::DataDir(config) => {
            let (accounts, skipped) = read_dir(dir, config.max_data_size_json)
                .map_err(|e| format!("reading {}: {e}", dir.display()))?;
            let (store, _) = super::users::open_offline(config).await?;
            let result = import(&store, accounts, say).await;
            store.close().await;
            let mut report = result.map_err(|e| e.to_string())?;
            report.skipped.extend(skipped);
            Ok(report.summary())
        }
        Target::Server { url, token } => {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| format!("reading {}: {e}", dir.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            let total = files.len();
            let mut report = Report::default();
            let mut batch = Vec::new();
            let mut bytes = 0;
            for (i, path) in files.iter().enumerate() {
                let name = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let content = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
                bytes += content.len();
                batch.push(serde_json::json!({"name": name, "content": content}));
                if bytes >= BATCH_BYTES || i + 1 == total {
                    let body = serde_json::json!({ "files": std::mem::take(&mut batch) });
                    bytes = 0;
                    let answer = super::users::request(
                        url,
                        token,
                        "POST",
                        "/v1/admin/import/personal-backend".into(),
                        Some(body),
                    )
                    .await?;
                    let part: Report = serde_json::from_value(answer)
                        .map_err(|e| format!("the server's answer: {e}"))?;
                    report.imported.extend(part.imported);
                    report.present.extend(part.present);
                    report.skipped.extend(part.skipped);
                    report.dropped.extend(part.dropped);
                    say(i + 1, total);
                }
            }
            Ok(report.summary())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_files_are_read_as_they_were_and_bad_ones_refused() {
        let ann = br#"{"metadata":{"username":"ann","version":7,"collaborators":["bob","bob","ann"],
            "createdAt":"2017-01-30T10:00:00.000Z","lastUpdate":{"at":"2017-02-01T10:00:00.000Z","by":"bob"}},
            "userdata":{"list":["milk"]}}"#;
        let a = parse("ann.json", ann, 65536).expect("imported");
        let m = &a.doc.metadata;
        assert_eq!(
            (m.version, m.collaborators.clone()),
            (7, vec!["bob".to_owned()])
        );
        assert_eq!(m.last_update.by, "bob");
        assert_eq!(a.user.created_at, "2017-01-30T10:00:00.000Z");
        // Never updated: no lastUpdate in the seed's file.
        let fresh = br#"{"metadata":{"username":"cat","version":0,"collaborators":[],"createdAt":"2017-01-30T10:00:00.000Z"},"userdata":{}}"#;
        let c = parse("cat.json", fresh, 65536).expect("imported");
        assert_eq!(c.doc.metadata.last_update.at, "2017-01-30T10:00:00.000Z");
        for (bad, why) in [
            (
                &br#"{"metadata":{"username":"Bad Name","version":0},"userdata":{}}"#[..],
                "lowercase",
            ),
            (
                br#"{"metadata":{"username":"dan","version":0},"userdata":[1]}"#,
                "not an object",
            ),
            (br#"not json"#, "expected"),
        ] {
            let e = parse("x.json", bad, 65536).err().expect("refused");
            assert!(e.contains(why), "{e}");
        }
        let e = parse("ann.json", ann, 100).err().expect("too large");
        assert!(e.contains("MAX_DATA_SIZE_JSON"), "{e}");
    }
}

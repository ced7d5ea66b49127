//! Deleting an account: everything it owns goes, its sockets close, and its name leaves
//! every access list, so that whoever signs up under the name later inherits nothing.

use crate::auth::Auth;
use crate::error::Error;
use crate::names;
use crate::store::{Store, StoreError};

/// What deleting an account removed.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Deleted {
    /// Sessions revoked (their sockets and streams were told and closed).
    pub sessions: usize,
    /// Blob references dropped.
    pub blobs: usize,
    /// Documents whose access lists named the account.
    pub unshared: usize,
}

/// Close code for the sockets of a deleted account.
pub const CLOSE_DELETED: u16 = 4004;

/// Deletes account `name` (`DELETE /v1/me`, `hearth user delete`, the admin API): its
/// sessions are revoked and its sockets closed (4004), then its document, change log,
/// sessions, flags and blob references go (files nobody else holds with them), and its name
/// leaves every access list, so a later account of that name inherits nothing.
///
/// # Errors
/// `NotFound` for an unknown user, `Unavailable`.
pub async fn delete_account(
    store: &Store,
    auth: &Auth,
    blobs: Option<&crate::blobs::Blobs>,
    name: &str,
) -> Result<Deleted, Error> {
    if !names::plausible(name) || store.user(name).await?.is_none() {
        return Err(Error::NotFound);
    }
    let mut report = Deleted::default();
    // Closed before the revocations, which would sign the sockets out (and out of the
    // registry this finds them in) without closing them. Other nodes of a cluster close
    // theirs when the deletion's notification reaches them, which is why the sessions are
    // revoked only after it (a token of an account that no longer exists is refused anyway).
    auth.sockets.tell(
        name,
        &crate::auth::Control::Close(CLOSE_DELETED, "account deleted"),
    );
    let sessions = store.sessions(name).await?;
    let mut held = Vec::new();
    loop {
        let (page, _) = store.user_blobs(name, held.len(), 1000).await?;
        if page.is_empty() {
            break;
        }
        held.extend(page.into_iter().map(|b| b.sha256));
    }
    report.blobs = held.len();
    store.delete_user(name).await.map_err(|e| match e {
        StoreError::NotFound => Error::NotFound,
        other => other.into(),
    })?;
    for session in sessions {
        let until = auth.tokens.revoked_until(session.expires);
        auth.sockets.revoke(&session.id, until, 0);
        store.revoke(name, &session.id, until).await?;
        report.sessions += 1;
    }
    auth.flags.forget_account(name);
    if let Some(blobs) = blobs {
        blobs.drop_unreferenced(store, &held).await;
    }
    report.unshared = leave_access_lists(store, name).await?;
    tracing::info!(user = name, ?report, "account deleted");
    Ok(report)
}

/// Takes `name` out of every access list, as an update by each document's owner (watchers
/// see the lists change). The documents are found through the sharing index, which still
/// lists them: deleting the account leaves those rows to these updates, which rewrite them.
async fn leave_access_lists(store: &Store, name: &str) -> Result<usize, Error> {
    let mut unshared = 0;
    let mut after = String::new();
    loop {
        let (page, next) = store.shared_with(name, &after, 500).await?;
        for shared in page {
            let doc = shared.doc;
            let meta = &doc.metadata;
            let without = |list: &Vec<String>| -> Option<Vec<String>> {
                list.iter()
                    .any(|n| n == name)
                    .then(|| list.iter().filter(|n| *n != name).cloned().collect())
            };
            let update = crate::store::Update {
                target: doc.key().into_owned(),
                by: meta.username.clone(),
                base: None,
                edit: None,
                collaborators: without(&meta.collaborators),
                readers: without(&meta.readers),
                op_id: None,
                as_admin: false,
            };
            if update.collaborators.is_none() && update.readers.is_none() {
                continue;
            }
            match store.commit(update).await {
                Ok(_) => unshared += 1,
                // Deleted meanwhile itself: nothing left to share.
                Err(StoreError::Unauthorized | StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match next {
            Some(next) => after = next,
            None => return Ok(unshared),
        }
    }
}

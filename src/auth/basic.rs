//! HTTP Basic credentials (Apie's clients send them on every request), checked without
//! paying argon2 each time: a credential that verified is remembered briefly, in memory
//! only, keyed by a salted SHA-256 of the pair (never the password itself). A remembered
//! credential still holds only while the account's password hash is the one it was checked
//! against, so a reset or a deletion ends it at once, not after the cache forgets.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How long a verified credential is remembered.
pub const REMEMBER: Duration = Duration::from_secs(60);
/// Most credentials remembered at once.
const CAPACITY: u64 = 10_000;

pub struct BasicCache {
    /// Per process, so a key means nothing outside it.
    salt: [u8; 16],
    verified: moka::sync::Cache<[u8; 32], Arc<Verified>>,
}

/// Whose credential it was, and the password hash it was checked against.
#[derive(Debug)]
pub struct Verified {
    pub username: String,
    pub hash: Option<String>,
}

impl Default for BasicCache {
    fn default() -> Self {
        BasicCache {
            salt: rand::random(),
            verified: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(REMEMBER)
                .build(),
        }
    }
}

impl BasicCache {
    /// The key of the pair `username`/`password`.
    pub fn key(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(username.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Verified>> {
        self.verified.get(key)
    }

    pub fn remember(&self, key: [u8; 32], verified: Verified) {
        self.verified.insert(key, Arc::new(verified));
    }

    pub fn forget(&self, key: &[u8; 32]) {
        self.verified.invalidate(key);
    }
}

/// `Authorization: Basic …` decoded into `(username, password)`; `None` if it is not one.
pub fn parse(header: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keys_credentials() {
        assert_eq!(
            parse("Basic YW5uOmNvcnJlY3QgaG9yc2U="),
            Some(("ann".into(), "correct horse".into()))
        );
        assert_eq!(parse("Bearer x"), None);
        assert_eq!(parse("Basic !!!"), None);
        assert_eq!(parse("Basic YW5u"), None, "no colon");
        let cache = BasicCache::default();
        assert_ne!(cache.key("ann", "a:b"), cache.key("ann:a", "b"));
        assert_eq!(cache.key("ann", "x"), cache.key("ann", "x"));
        assert_ne!(BasicCache::default().key("ann", "x"), cache.key("ann", "x"));
    }
}

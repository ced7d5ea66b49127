//! Password hashing (Argon2id), kept off the async workers and bounded in how many run at
//! once.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use tokio::sync::Semaphore;

use crate::error::Error;

/// Password rules: long enough to matter, short enough that hashing cannot be abused.
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;

pub struct Passwords {
    /// Argon2 costs ~20 MiB and tens of ms per hash: at most this many run at once, on the
    /// blocking pool, so a login flood queues instead of starving the runtime.
    hashing: Semaphore,
    /// Verified against when a login names an unknown user, so timing does not reveal which
    /// users exist. Made on first use: start-up stays fast.
    dummy_hash: Arc<OnceLock<String>>,
}

impl Default for Passwords {
    fn default() -> Passwords {
        Passwords {
            hashing: Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            ),
            dummy_hash: Arc::new(OnceLock::new()),
        }
    }
}

impl Passwords {
    /// # Errors
    /// `Internal` if hashing fails or the blocking pool is gone.
    pub async fn hash_password(&self, password: String) -> Result<String, Error> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| Error::Unavailable)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|_| Error::Internal)?
    }

    /// True if `password` matches `hash`. With no hash (unknown user, or an account without
    /// a password) a dummy hash is checked anyway so both paths take the same time.
    pub async fn verify_password(&self, hash: Option<String>, password: String) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        let real = hash.is_some();
        let dummy = self.dummy_hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let hash = hash.unwrap_or_else(|| {
                dummy
                    .get_or_init(|| hash_blocking("not-a-real-password").unwrap_or_default())
                    .clone()
            });
            PasswordHash::new(&hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        ok && real
    }
}

/// Argon2id with the crate's defaults, which are OWASP's recommendation (m=19 MiB, t=2, p=1).
fn hash_blocking(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| Error::Internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| {
            tracing::error!(error = %e, "hashing a password failed");
            Error::Internal
        })
}

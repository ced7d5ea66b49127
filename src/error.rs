//! The protocol's errors: one variant, one stable wire `code`.
//!
//! `message` keeps the seed's words where the seed had them (`invalid token`,
//! `version mismatch`, `unauthorized`) so old clients matching on text keep working.
//! Internal causes are logged where they happen and never sent.

use crate::store::{StoreError, Version};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed JSON, unknown `type`, missing or mistyped fields, invalid values.
    #[error("{0}")]
    BadRequest(String),
    /// The token is malformed, forged, expired or revoked.
    #[error("invalid token")]
    InvalidToken,
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The command needs a signed-in socket.
    #[error("authentication required")]
    AuthRequired,
    #[error("username taken")]
    UsernameTaken,
    /// An access list names accounts that do not exist (listed, so the client can say which).
    #[error("no such users: {}", .0.join(", "))]
    UnknownUsers(Vec<String>),
    /// No such user, or not allowed: deliberately the same so existence is never revealed.
    #[error("unauthorized")]
    Unauthorized,
    /// A read-only token tried to write.
    #[error("forbidden: this token is read-only")]
    Forbidden,
    /// The key path does not exist (REST reads and deletes).
    #[error("not found")]
    NotFound,
    #[error("version mismatch")]
    VersionMismatch { current: Version },
    #[error("too large: the limit is {limit} bytes")]
    TooLarge { limit: usize },
    /// The account's blobs would exceed its `BLOB_QUOTA`.
    #[error("blob quota exceeded: the quota is {quota} bytes")]
    QuotaExceeded { quota: u64 },
    /// `create` of a named document that exists.
    #[error("already exists")]
    AlreadyExists,
    /// The account's documents would hold more than `MAX_ACCOUNT_BYTES` together.
    #[error("account full: its documents may hold {quota} bytes together")]
    AccountFull { quota: u64 },
    /// The account holds as many named documents as it may.
    #[error("too many documents: the limit is {limit} per account")]
    TooManyDocuments { limit: usize },
    #[error("too many watches on this connection (limit {0})")]
    TooManyWatches(usize),
    #[error("too many connections")]
    TooManyConnections,
    /// The HTTP route exists, but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Slow down; retrying after `retry_after` seconds will work.
    #[error("rate limited: retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// Storage failed or the server is shutting down; retrying later may succeed.
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl Error {
    /// The stable identifier clients match on. Listed in PROTOCOL.md.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::InvalidToken => "invalid_token",
            Error::InvalidCredentials => "invalid_credentials",
            Error::AuthRequired => "auth_required",
            Error::UsernameTaken => "username_taken",
            Error::UnknownUsers(_) => "unknown_users",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden => "forbidden",
            Error::NotFound => "not_found",
            Error::VersionMismatch { .. } => "version_mismatch",
            Error::TooLarge { .. } => "too_large",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::AlreadyExists => "already_exists",
            Error::AccountFull { .. } => "account_full",
            Error::TooManyDocuments { .. } => "too_many_documents",
            Error::TooManyWatches(_) => "too_many_watches",
            Error::TooManyConnections => "too_many_connections",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable => "unavailable",
            Error::Internal => "internal",
        }
    }
}

/// # Errors
/// `BadRequest` when `value` nests deeper than `max`.
pub fn check_depth(value: &serde_json::Value, max: usize) -> Result<(), Error> {
    if crate::store::apply::value_depth(value) > max {
        return Err(Error::BadRequest(format!(
            "nesting deeper than {max} levels"
        )));
    }
    Ok(())
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unauthorized => Error::Unauthorized,
            StoreError::VersionMismatch { current } => Error::VersionMismatch { current },
            StoreError::TooLarge { size, limit } => {
                tracing::debug!(size, limit, "update refused as too large");
                Error::TooLarge { limit }
            }
            StoreError::Invalid(why) => Error::BadRequest(why),
            StoreError::UsernameTaken => Error::UsernameTaken,
            StoreError::QuotaExceeded { quota } => Error::QuotaExceeded { quota },
            StoreError::NotFound => Error::NotFound,
            StoreError::AlreadyExists => Error::AlreadyExists,
            StoreError::AccountFull { quota } => Error::AccountFull { quota },
            StoreError::TooManyDocuments { limit } => Error::TooManyDocuments { limit },
            // Only updates with an `opId` get this, and each surface that takes one answers
            // it as a success itself; anywhere else, the version it names is the news.
            StoreError::AlreadyApplied { version } => Error::VersionMismatch { current: version },
            StoreError::Unavailable(cause) => {
                tracing::error!(%cause, "store unavailable");
                Error::Unavailable
            }
        }
    }
}

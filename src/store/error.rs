//! Why a store operation did not happen. Expected outcomes (a stale version, a name already
//! taken) are variants, not strings, so each maps to exactly one wire code at the edge.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The document does not exist or the caller may not do this to it. One variant for both
    /// so that replies never reveal which users exist.
    #[error("unauthorized")]
    Unauthorized,
    /// `current` is the document's version now (a `model::Version`; spelled `u64` so that
    /// this leaf module imports nothing of the store's).
    #[error("version mismatch")]
    VersionMismatch { current: u64 },
    #[error("document would be {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The update is well-formed JSON but cannot be applied (a JSON Patch `test` failed, the
    /// result is not an object, it nests too deeply).
    #[error("{0}")]
    Invalid(String),
    #[error("username taken")]
    UsernameTaken,
    /// The account's blobs would add up to more than its quota.
    #[error("blob quota of {quota} bytes exceeded")]
    QuotaExceeded { quota: u64 },
    /// A key path to delete does not exist; a named document to delete does not.
    #[error("not found")]
    NotFound,
    /// `create` of a named document that exists.
    #[error("already exists")]
    AlreadyExists,
    /// The account's documents would hold more than `quota` bytes together.
    #[error("account quota of {quota} bytes exceeded")]
    AccountFull { quota: u64 },
    /// The account holds `limit` named documents already (`MAX_DOCUMENTS_PER_ACCOUNT`).
    #[error("the account holds its limit of {limit} documents")]
    TooManyDocuments { limit: usize },
    /// The update's `opId` is already in the document's change log: it committed as
    /// `version` (a retry). Not a failure: each surface answers it as it answered the
    /// original (`store/ops.rs`).
    #[error("already applied as version {version}")]
    AlreadyApplied { version: u64 },
    /// Storage failed or is shutting down. The cause is logged, never sent to clients.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    pub(crate) fn unavailable(cause: impl std::fmt::Display) -> Self {
        StoreError::Unavailable(cause.to_string())
    }
}

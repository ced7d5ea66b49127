//! Request bodies and conditional headers, with our error format for every rejection.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::error::Error;
use crate::store::Version;

/// The body as JSON. Oversize bodies are 413 `too_large`, others that fail 400 `bad_request`.
///
/// # Errors
/// As above.
pub fn json<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = raw(body, limit)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError(Error::BadRequest(format!("invalid JSON body: {e}"))))
}

/// The body as bytes, mapping the size limit to 413 `too_large`.
///
/// # Errors
/// As above.
pub fn raw(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(Error::TooLarge { limit })
        } else {
            ApiError(Error::BadRequest(rejection.body_text()))
        }
    })
}

/// `If-Match: "5"` (or `W/"5"`, or `5`) → `Some(5)`; absent or `*` → `None` (unconditional).
///
/// # Errors
/// `bad_request` for anything else: a malformed precondition must not turn into an
/// unconditional write.
pub fn if_match(headers: &HeaderMap) -> Result<Option<Version>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    tag.parse().map(Some).map_err(|_| {
        ApiError(Error::BadRequest(format!(
            "If-Match must be a version like \"5\", not {text:?}"
        )))
    })
}

/// The `Idempotency-Key` header: the write's operation id (`store/ops.rs`), so a client that
/// lost the answer may send the write again and have it applied once.
///
/// # Errors
/// `bad_request` for a key that is not an operation id.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("").trim();
    crate::store::ops::validate(key)
        .map_err(|why| ApiError(Error::BadRequest(format!("Idempotency-Key: {why}"))))?;
    Ok(Some(key.to_owned()))
}

/// `"<version>"`, the ETag of a document version.
pub fn etag(version: Version) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Splits a key path (`profile/address/billing`) into segments; empty means the whole
/// `userdata`. Empty segments (`a//b`) are refused rather than guessed at.
///
/// # Errors
/// `bad_request` for empty segments and paths too deep or too long.
pub fn key_path(raw: &str) -> Result<Vec<String>, ApiError> {
    const MAX_SEGMENTS: usize = 64;
    const MAX_BYTES: usize = 1024;
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if raw.len() > MAX_BYTES {
        return Err(ApiError(Error::BadRequest(format!(
            "key paths are at most {MAX_BYTES} bytes"
        ))));
    }
    let segments: Vec<String> = raw.split('/').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(ApiError(Error::BadRequest(
            "key paths have no empty segments".into(),
        )));
    }
    if segments.len() > MAX_SEGMENTS {
        return Err(ApiError(Error::BadRequest(format!(
            "key paths have at most {MAX_SEGMENTS} segments"
        ))));
    }
    Ok(segments)
}

//! `/v1/blobs`: content-addressed blobs over HTTP — upload, download with ranges, delete,
//! list. The bytes live in files (see `blobs.rs`); these handlers decide who may do what.
//!
//! Who may read a blob: anyone holding a reference to it (they uploaded it), or anyone who
//! names, with `?doc=OWNER`, a document they may read that mentions the hash in one of its
//! strings, when the blob is referenced by someone who may write that document (its owner
//! or a collaborator). Knowing a hash alone is never enough, and a reader cannot launder a
//! hash through a document they can write: only writers' uploads count.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::auth::Caller;
use super::error::ApiError;
use crate::auth::Claims;
use crate::blobs::is_hash;
use crate::error::Error;
use crate::state::AppState;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Longest `Content-Type` kept with a blob.
const MAX_CONTENT_TYPE: usize = 200;

/// Uploads the body as a blob: `{sha256, size, contentType}`, 201 when new to the caller,
/// 200 when the caller already held it.
#[utoipa::path(put, path = "/v1/blobs", request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "{sha256, size, contentType}"), (status = 200, description = "already held"), (status = 413, description = "too_large or quota_exceeded")), tag = "blobs")]
pub async fn upload(
    State(state): State<AppState>,
    Caller(claims): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    store_blob(&state, &claims, &headers, body, None).await
}

/// Uploads the body as the blob `sha256`, refused with 400 if its hash differs. When the
/// caller already holds it, answers 200 at once without reading the body: clients can
/// upload-if-absent in one request.
#[utoipa::path(put, path = "/v1/blobs/{sha256}", params(("sha256" = String, Path)), request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201), (status = 200), (status = 400, description = "hash mismatch"), (status = 413)), tag = "blobs")]
pub async fn upload_named(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !is_hash(&sha256) {
        return Err(not_a_hash());
    }
    claims.can_write()?;
    if state
        .store
        .holds_blob(&sha256, vec![claims.sub.clone()])
        .await?
        && let Some(record) = state.store.blob(&sha256).await?
    {
        let body =
            json!({"sha256": sha256, "size": record.size, "contentType": record.content_type});
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    store_blob(&state, &claims, &headers, body, Some(&sha256)).await
}

fn not_a_hash() -> ApiError {
    ApiError(Error::BadRequest(
        "a blob is named by its SHA-256 in 64 lowercase hex digits".into(),
    ))
}

async fn store_blob(
    state: &AppState,
    claims: &Claims,
    headers: &HeaderMap,
    body: Body,
    expect: Option<&str>,
) -> Result<Response, ApiError> {
    claims.can_write()?;
    let blobs = &state.blobs;
    let (_, used) = state.store.user_blobs(&claims.sub, 0, 0).await?;
    let room = blobs.quota.saturating_sub(used);
    let (limit, over) = if blobs.max_size <= room {
        let limit = usize::try_from(blobs.max_size).unwrap_or(usize::MAX);
        (blobs.max_size, Error::TooLarge { limit })
    } else {
        (room, Error::QuotaExceeded { quota: blobs.quota })
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(over.into());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_CONTENT_TYPE)
        .unwrap_or("application/octet-stream")
        .to_owned();
    let received = blobs
        .receive(body.into_data_stream(), limit, over, expect)
        .await?;
    let (sha256, size) = (received.sha256.clone(), received.size);
    let new = blobs
        .commit(&state.store, &claims.sub, received, &content_type)
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (
        status,
        Json(json!({"sha256": sha256, "size": size, "contentType": content_type})),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/blobs/{sha256}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Via {
    /// The owner of a document you may read that mentions the blob.
    doc: Option<String>,
}

/// The blob's bytes with its content type; `Range: bytes=…` gives 206, `If-None-Match` 304.
#[utoipa::path(get, path = "/v1/blobs/{sha256}", params(("sha256" = String, Path), Via),
    responses((status = 200), (status = 206), (status = 304), (status = 404), (status = 416)), tag = "blobs")]
pub async fn download(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(sha256): Path<String>,
    Query(via): Query<Via>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !is_hash(&sha256) {
        return Err(not_a_hash());
    }
    if !may_read(&state, &claims.sub, &sha256, via.doc.as_deref()).await? {
        return Err(Error::NotFound.into());
    }
    let record = state.store.blob(&sha256).await?.ok_or(Error::NotFound)?;
    let etag = format!("\"{sha256}\"");
    let mut common = HeaderMap::new();
    common.insert(header::ETAG, header_value(&etag));
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Content-addressed bytes never change; only the access check keeps them private.
    common.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    // Uploaded HTML or SVG must not run as this origin's script.
    common.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    common.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    common.insert(header::CONTENT_TYPE, header_value(&record.content_type));
    let size = record.size;
    // If-Range with another validator means "the whole thing, fresh".
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(spec) if if_range_ok => parse_range(spec, size),
        _ => Ok(None),
    };
    let (status, start, len) = match range {
        Ok(Some((start, end))) => {
            common.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {start}-{end}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Ok(None) => (StatusCode::OK, 0, size),
        Err(()) => {
            common.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{size}")),
            );
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, common).into_response());
        }
    };
    let fail = |e: std::io::Error| {
        tracing::error!(error = %e, %sha256, "a referenced blob cannot be read");
        ApiError(Error::Unavailable)
    };
    let mut file = tokio::fs::File::open(state.blobs.path(&sha256))
        .await
        .map_err(fail)?;
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(fail)?;
    }
    common.insert(header::CONTENT_LENGTH, header_value(&len.to_string()));
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(len)));
    Ok((status, common, body).into_response())
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// One `bytes=` range as inclusive `(start, end)`. `Ok(None)`: not a range we serve (other
/// units, several ranges), so the whole body goes; `Err`: unsatisfiable (416).
fn parse_range(spec: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if set.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = |s: &str| s.parse::<u64>().map_err(|_| ());
    let (start, end) = if first.is_empty() {
        // The last N bytes.
        let n = parsed(last)?;
        if n == 0 || size == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start = parsed(first)?;
        let end = if last.is_empty() {
            size.saturating_sub(1)
        } else {
            parsed(last)?.min(size.saturating_sub(1))
        };
        (start, end)
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// The access rule in this module's header.
async fn may_read(
    state: &AppState,
    caller: &str,
    sha256: &str,
    via: Option<&str>,
) -> Result<bool, ApiError> {
    if state
        .store
        .holds_blob(sha256, vec![caller.to_owned()])
        .await?
    {
        return Ok(true);
    }
    let Some(owner) = via else {
        return Ok(false);
    };
    let doc = super::data::readable(state, caller, owner).await?;
    if !doc.userdata.values().any(|v| mentions(v, sha256)) {
        return Ok(false);
    }
    // Only a holder's own act shares a blob: someone who holds it wrote its hash into this
    // document. Being a writer of the document is not enough (its owner can make anyone a
    // collaborator without their consent), nor is knowing the hash.
    let writers = state.store.mentioned_by(&doc.key(), sha256).await?;
    if writers.is_empty() {
        return Ok(false);
    }
    Ok(state.store.holds_blob(sha256, writers).await?)
}

/// Whether any string in `value` contains `needle`.
fn mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s.contains(needle),
        Value::Array(items) => items.iter().any(|v| mentions(v, needle)),
        Value::Object(map) => map.values().any(|v| mentions(v, needle)),
        _ => false,
    }
}

/// Drops the caller's reference; the bytes go with the last one.
#[utoipa::path(delete, path = "/v1/blobs/{sha256}", params(("sha256" = String, Path)),
    responses((status = 204), (status = 404, description = "the caller holds no reference")), tag = "blobs")]
pub async fn delete(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(sha256): Path<String>,
) -> Result<StatusCode, ApiError> {
    claims.can_write()?;
    if !is_hash(&sha256) {
        return Err(not_a_hash());
    }
    state
        .blobs
        .remove(&state.store, &claims.sub, &sha256)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The caller's blobs: `{blobs: [{sha256, size}], used, quota, maxSize, next_offset}`.
#[utoipa::path(get, path = "/v1/blobs", params(Page), responses((status = 200)), tag = "blobs")]
pub async fn list(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    // One more than asked tells whether another page follows.
    let (mut blobs, used) = state
        .store
        .user_blobs(&claims.sub, offset, limit + 1)
        .await?;
    let next = (blobs.len() > limit).then_some(offset + limit);
    blobs.truncate(limit);
    Ok(Json(json!({
        "blobs": blobs,
        "used": used,
        "quota": state.blobs.quota,
        "maxSize": state.blobs.max_size,
        "next_offset": next,
    })))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-500", 100), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("bytes=x-3", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=0-0", 0), Err(()));
    }
}

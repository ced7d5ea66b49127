//! Protocol errors as HTTP responses: JSON `{code, message}` with the WebSocket codes, and
//! a status per code. Internal causes never reach the body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::frame::ErrorBody;

/// The code of an error response, left in its extensions for the metrics layer.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

/// An [`Error`] leaving through HTTP.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError(e.into())
    }
}

/// The status for each code. `unauthorized` is 404: a document you may not see and one that
/// does not exist must look the same, and "not found" is the honest common answer.
pub fn status(e: &Error) -> StatusCode {
    match e {
        Error::BadRequest(_) | Error::UnknownUsers(_) => StatusCode::BAD_REQUEST,
        Error::InvalidToken | Error::InvalidCredentials | Error::AuthRequired => {
            StatusCode::UNAUTHORIZED
        }
        Error::Unauthorized | Error::NotFound => StatusCode::NOT_FOUND,
        Error::Forbidden => StatusCode::FORBIDDEN,
        Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Error::UsernameTaken | Error::AlreadyExists | Error::TooManyDocuments { .. } => {
            StatusCode::CONFLICT
        }
        Error::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
        Error::TooLarge { .. } | Error::QuotaExceeded { .. } | Error::AccountFull { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        Error::TooManyWatches(_) | Error::TooManyConnections | Error::RateLimited { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (status(&self.0), Json(ErrorBody::from(&self.0))).into_response();
        // For the metrics layer, which counts errors by code without parsing bodies.
        response.extensions_mut().insert(ErrorCode(self.0.code()));
        if let Error::RateLimited { retry_after } = self.0 {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        response
    }
}

/// Most a framework-made error body is read to reuse its text as the message.
const PLAIN_ERROR_MAX: usize = 4096;

/// Rewrites an error response that did not come from an [`ApiError`] — axum's own rejections
/// (a query string or path that does not parse, a wrong method's empty 405, a body over the
/// limit) — into the same `{code, message}` JSON every other error has, so clients parse one
/// shape. Their text, when there is one, becomes the message. 416 stays as it is: a range
/// answer with `Content-Range: bytes */size`, as RFC 9110 has it.
pub async fn as_json(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400
        || status == StatusCode::RANGE_NOT_SATISFIABLE
        || response.extensions().get::<ErrorCode>().is_some()
        || response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        return response;
    }
    let code = match status.as_u16() {
        400 | 411 | 415 | 422 => Error::BadRequest(String::new()).code(),
        401 => Error::AuthRequired.code(),
        403 => Error::Forbidden.code(),
        404 => Error::NotFound.code(),
        405 => Error::MethodNotAllowed.code(),
        413 => Error::TooLarge { limit: 0 }.code(),
        429 => Error::TooManyConnections.code(),
        503 => Error::Unavailable.code(),
        _ => Error::Internal.code(),
    };
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, PLAIN_ERROR_MAX)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let message =
        text.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase());
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.extensions.insert(ErrorCode(code));
    Response::from_parts(parts, axum::body::Body::from(body))
}

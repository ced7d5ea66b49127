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
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::InvalidToken | Error::InvalidCredentials | Error::AuthRequired => {
            StatusCode::UNAUTHORIZED
        }
        Error::Unauthorized | Error::NotFound => StatusCode::NOT_FOUND,
        Error::Forbidden => StatusCode::FORBIDDEN,
        Error::UsernameTaken => StatusCode::CONFLICT,
        Error::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
        Error::TooLarge { .. } | Error::QuotaExceeded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
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

//! HTTP error responses: every failure is `{"error":{"code","message"}}` with
//! the status its code maps to, so clients match on codes, not on text.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventwire_protocol::{ErrorCode, ProtocolError};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError(pub ProtocolError);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError(ProtocolError::new(code, message))
    }
}

impl<E: Into<ProtocolError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(json!({ "error": self.0 }))).into_response()
    }
}

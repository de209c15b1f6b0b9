//! The one error type of both servers' handlers: a status and one line saying why, sent as
//! JSON `{"error": "…"}` (with the `id` of the server's log line for a 500). Handlers return
//! `Result<impl IntoResponse, AppError>` and use `?`. The response also carries the error in
//! its extensions, for a layer that shows it otherwise (the browser's pages, as a page).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An answer that is not a success: its status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// The HTTP status (4xx: the client's; 5xx: the server's).
    pub status: StatusCode,
    /// One line saying why.
    pub message: String,
    /// For a 500: the id of the server's log line that has the details.
    pub id: Option<String>,
}

impl AppError {
    /// `status` with `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            message: message.into(),
            id: None,
        }
    }

    /// 400: the request cannot be read.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: what the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 503: the server cannot take the request now (answered with `Retry-After`).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500: the server failed; `id` names its log line.
    pub fn internal(message: impl Into<String>, id: Option<String>) -> Self {
        AppError {
            id,
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for AppError {}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(id) = &self.id {
            body["id"] = serde_json::Value::String(id.clone());
        }
        let status = self.status;
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_answer_json_with_their_status() {
        let r = AppError::unavailable("busy").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = AppError::internal("boom", Some("e-1".into())).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(AppError::bad("no").to_string(), "400 no");
        let r = AppError::not_found("gone").into_response();
        assert_eq!(
            r.extensions().get::<AppError>(),
            Some(&AppError::not_found("gone"))
        );
    }
}

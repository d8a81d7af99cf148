//! One error shape for every HTTP answer: `{"error":{"code","message","details"}}`.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::store::StoreError;
use crate::sync::SyncError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<serde_json::Value>,
    /// Headers the answer carries besides the body (`Allow` on a 405).
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn with_details(mut self, details: Vec<serde_json::Value>) -> Self {
        self.details = details;
        self
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
    }
    pub fn internal(source: &dyn std::fmt::Display) -> Self {
        // The cause goes to the log; the caller learns only that it was ours.
        tracing::error!(error = %source, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        for (name, value) in &self.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                response.insert_header((name.clone(), value));
            }
        }
        response.json(json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        }))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::NotFound(m) => ApiError::not_found(m),
            other => ApiError::internal(&other),
        }
    }
}

impl From<crate::scores::ingest::IngestError> for ApiError {
    fn from(e: crate::scores::ingest::IngestError) -> Self {
        use crate::scores::ingest::IngestError;
        match e {
            IngestError::Busy => {
                ApiError::new(StatusCode::CONFLICT, "sync_in_progress", e.to_string())
            }
            IngestError::Store(s) => s.into(),
        }
    }
}

impl From<crate::scores::overrides::OverrideError> for ApiError {
    fn from(e: crate::scores::overrides::OverrideError) -> Self {
        use crate::scores::overrides::OverrideError;
        match e {
            OverrideError::UnknownSubject(_) | OverrideError::UnknownGoalArea { .. } => {
                ApiError::not_found(e.to_string())
            }
            OverrideError::UnknownStudent(_) => ApiError::not_found(e.to_string()),
            OverrideError::UnknownUnit { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_unit",
                e.to_string(),
            ),
            OverrideError::NotCoaching { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "not_coaching", e.to_string())
            }
            OverrideError::NothingToClear { .. } => ApiError::not_found(e.to_string()),
            OverrideError::Store(s) => s.into(),
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Busy(_) => {
                ApiError::new(StatusCode::CONFLICT, "sync_in_progress", e.to_string())
            }
            SyncError::RunNotFound(_) => ApiError::not_found(e.to_string()),
            SyncError::NotHeld { .. } => {
                ApiError::new(StatusCode::CONFLICT, "run_not_held", e.to_string())
            }
            SyncError::StagingLost(_) => {
                ApiError::new(StatusCode::CONFLICT, "staging_lost", e.to_string())
            }
            SyncError::Unplanned(_) => ApiError::internal(&e),
            SyncError::Store(s) => s.into(),
        }
    }
}

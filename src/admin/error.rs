//! The one error type of the admin API: a status, a stable machine code and a message,
//! answered as `{"error": code, "message": message}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::approval::{ApprovalError, LinkError, VerdictResult};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, snake_case: `unauthorized`, `self_approval`, `not_an_approver`, `not_found`,
    /// `already_decided`, `already_voted`, `expired`, `rationale_required`, `bad_request`,
    /// `link_invalid`, `link_expired`, `audit_unavailable`.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such approval request",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// The refusal a verdict result stands for (`Recorded` and `Final` are not refusals and
    /// map to an internal error).
    pub fn refused(result: &VerdictResult) -> Self {
        use StatusCode as S;
        let (status, message) = match result {
            VerdictResult::Recorded { .. } | VerdictResult::Final { .. } => (
                S::INTERNAL_SERVER_ERROR,
                "a recorded verdict is not a refusal".to_owned(),
            ),
            VerdictResult::SelfApprovalRefused => (
                S::FORBIDDEN,
                "the requester cannot decide its own request".to_owned(),
            ),
            VerdictResult::NotAnApprover => (
                S::FORBIDDEN,
                "you are not an approver of this request".to_owned(),
            ),
            VerdictResult::NotFound => (S::NOT_FOUND, "no such approval request".to_owned()),
            VerdictResult::AlreadyDecided(state) => (
                S::CONFLICT,
                format!("the request is already {}", state.as_str()),
            ),
            VerdictResult::AlreadyVoted => {
                (S::CONFLICT, "you already approved this request".to_owned())
            }
            VerdictResult::Expired => (S::GONE, "the request expired before a verdict".to_owned()),
            VerdictResult::RationaleRequired => (
                S::UNPROCESSABLE_ENTITY,
                "a rationale is required".to_owned(),
            ),
        };
        Self::new(status, result.code(), message)
    }
}

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> Self {
        tracing::error!(error = %e, "approval registry error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "the verdict could not be recorded in the audit; nothing ran",
        )
    }
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Invalid => Self::new(
                StatusCode::FORBIDDEN,
                "link_invalid",
                "this approval link is not valid",
            ),
            LinkError::Expired => Self::new(
                StatusCode::GONE,
                "link_expired",
                "this approval link has expired",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"airlock\""),
            );
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

//! `/api/approvals…`: list, show, approve, deny. JSON in, JSON out; identity from the bearer
//! token only.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

use super::error::ApiError;
use super::AdminState;
use crate::approval::{
    verify_link, Channel, Delivery, ListFilter, RequestId, RequestView, VerdictResult,
};

/// Longest rationale accepted, in characters (it ends up in notices, cards and the audit).
pub(crate) const MAX_RATIONALE_CHARS: usize = 4000;

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/whoami", get(whoami))
        .route("/api/approvals", get(list))
        .route("/api/approvals/{id}", get(show))
        .route("/api/approvals/{id}/approve", post(approve))
        .route("/api/approvals/{id}/deny", post(deny))
}

#[derive(Serialize)]
struct WhoAmI {
    name: String,
}

async fn whoami(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<WhoAmI>, ApiError> {
    let name = state.tokens().authenticate(&headers)?;
    Ok(Json(WhoAmI { name }))
}

#[derive(Deserialize)]
struct ListQuery {
    /// `pending` (default) or `all`.
    state: Option<String>,
}

#[derive(Serialize)]
struct ListBody {
    requests: Vec<RequestView>,
}

async fn list(
    State(state): State<AdminState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ListBody>, ApiError> {
    state.tokens().authenticate(&headers)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = match q.state.as_deref() {
        None | Some("pending") => ListFilter::Pending,
        Some("all") => ListFilter::All,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "state must be `pending` or `all`, not `{other}`"
            )))
        }
    };
    Ok(Json(ListBody {
        requests: state.registry().list(filter).await,
    }))
}

#[derive(Deserialize)]
struct LinkQuery {
    exp: Option<u64>,
    sig: Option<String>,
}

/// Readable with a token, or with a valid signed link for this very request (which shows no
/// more than the card the link came in).
async fn show(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<LinkQuery>, QueryRejection>,
) -> Result<Json<RequestView>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match (q.exp, q.sig) {
        (Some(exp), Some(sig)) if !headers.contains_key(axum::http::header::AUTHORIZATION) => {
            verify_link(
                state.link_secret().as_bytes(),
                &id,
                exp,
                &sig,
                SystemTime::now(),
            )?;
        }
        _ => {
            state.tokens().authenticate(&headers)?;
        }
    }
    state
        .registry()
        .get(&RequestId::new(id))
        .await
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VerdictBody {
    rationale: Option<String>,
    /// `api` (default), `web` or `cli`: where the approver clicked, for the audit.
    channel: Option<String>,
}

#[derive(Serialize)]
struct VerdictResponse {
    /// `recorded` (more approvals needed) or `final`.
    result: &'static str,
    /// Approvals still needed (for `recorded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining: Option<u32>,
    /// `client_released`, `grant_issued` or `nobody` (for `final`).
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<&'static str>,
    request: Option<RequestView>,
}

async fn approve(
    state: State<AdminState>,
    headers: HeaderMap,
    id: Path<String>,
    body: Bytes,
) -> Result<Json<VerdictResponse>, ApiError> {
    verdict(state, headers, id, body, true).await
}

async fn deny(
    state: State<AdminState>,
    headers: HeaderMap,
    id: Path<String>,
    body: Bytes,
) -> Result<Json<VerdictResponse>, ApiError> {
    verdict(state, headers, id, body, false).await
}

async fn verdict(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
    approve: bool,
) -> Result<Json<VerdictResponse>, ApiError> {
    let who = state.tokens().authenticate(&headers)?;
    let body: VerdictBody = if body.iter().all(u8::is_ascii_whitespace) {
        VerdictBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let channel = match body.channel.as_deref() {
        None => Channel::Api,
        Some(c) => Channel::parse_api(c)
            .ok_or_else(|| ApiError::bad_request("channel must be `api`, `web` or `cli`"))?,
    };
    if body
        .rationale
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_RATIONALE_CHARS)
    {
        return Err(ApiError::unprocessable(
            "rationale_too_long",
            format!("a rationale is limited to {MAX_RATIONALE_CHARS} characters"),
        ));
    }
    let id = RequestId::new(id);
    let registry = state.registry();
    let result = if approve {
        registry.approve(&id, &who, channel, body.rationale).await?
    } else {
        registry.deny(&id, &who, channel, body.rationale).await?
    };
    let response = match result {
        VerdictResult::Recorded { remaining } => VerdictResponse {
            result: "recorded",
            remaining: Some(remaining),
            delivery: None,
            request: registry.get(&id).await,
        },
        VerdictResult::Final { delivery, .. } => VerdictResponse {
            result: "final",
            remaining: None,
            delivery: Some(match delivery {
                Delivery::ClientReleased => "client_released",
                Delivery::GrantIssued { .. } => "grant_issued",
                Delivery::Nobody => "nobody",
            }),
            request: registry.get(&id).await,
        },
        refused => return Err(ApiError::refused(&refused)),
    };
    Ok(Json(response))
}

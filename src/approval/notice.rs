//! The words an agent reads while its statement waits, and when the wait ends without an
//! approval. The session puts them into NoticeResponse / ErrorResponse fields (M, D, H).
//!
//! They are written for a program as much as for a person: the request id comes first, the
//! next step is spelled out, and the wording is stable so an agent can act on it.

use super::link::page_url;
use super::types::{RequestView, Verdict};

/// Message, detail and hint fields of a NoticeResponse or ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeText {
    pub message: String,
    pub detail: String,
    pub hint: String,
}

fn join_or(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_owned()
    } else {
        items.join(", ")
    }
}

fn why(view: &RequestView) -> String {
    let kinds: Vec<String> = view
        .facts
        .kinds
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    let mut detail = format!(
        "rule {}: {}; kind {}; tables {}",
        view.rule_id,
        view.reason,
        join_or(&kinds, "unknown"),
        join_or(&view.facts.tables, "none"),
    );
    if !view.facts.pii_columns.is_empty() {
        detail.push_str(&format!(
            "; PII columns {}",
            view.facts.pii_columns.join(", ")
        ));
    }
    if view.quorum > 1 {
        detail.push_str(&format!("; needs {} approvers", view.quorum));
    }
    detail
}

/// Sent as a NOTICE as soon as the statement is held.
///
/// ```text
/// NOTICE:  airlock: statement held for approval, request 01J9Z…
/// DETAIL:  rule ddl.hold: DDL needs approval; kind ddl; tables public.orders
/// HINT:  Approve at http://gw:6480/approvals/01J9Z… (or: airlock approvals approve 01J9Z…).
///        Waiting up to 300 s, until 2026-11-02T10:15:00Z. Cancel the query to withdraw it.
/// ```
pub fn held_notice(view: &RequestView, public_url: &str) -> NoticeText {
    let attached = if view.approvals.is_empty() {
        String::new()
    } else {
        format!(
            " ({} of {} approvals so far)",
            view.approvals.len(),
            view.quorum
        )
    };
    NoticeText {
        message: format!(
            "airlock: statement held for approval, request {}{attached}",
            view.id
        ),
        detail: why(view),
        hint: format!(
            "Approve at {} (or: airlock approvals approve {}). Waiting up to {} s, until {}. \
             Cancel the query to withdraw it.",
            page_url(public_url, view.id.as_str()),
            view.id,
            view.hold_remaining_secs,
            view.hold_expires_at,
        ),
    }
}

/// The error for a hold that timed out. The request itself stays approvable until
/// `approvable_until`; an approval then leaves a grant, so re-running the same statement runs
/// it once without a new hold.
pub fn expired_error(view: &RequestView) -> NoticeText {
    NoticeText {
        message: format!(
            "airlock: approval request {} was not decided in time; nothing ran",
            view.id
        ),
        detail: why(view),
        hint: format!(
            "Re-run the same statement after approval: once request {} is approved (until {}), \
             the identical statement runs once without a new hold.",
            view.id, view.approvable_until
        ),
    }
}

/// The error for a denied request (SQLSTATE 42501).
pub fn denied_error(request_id: &str, by: &str, rationale: &str) -> NoticeText {
    NoticeText {
        message: format!("airlock: request {request_id} denied by {by}: {rationale}"),
        detail: format!("approval request {request_id} was denied; nothing ran"),
        hint: "Do not retry the same statement; change the approach or ask the approver.".into(),
    }
}

/// One line naming who approved, for the NOTICE a session may send before running an
/// approved batch or a grant.
pub fn approved_notice(request_id: &str, by: &[Verdict]) -> String {
    let names: Vec<&str> = by.iter().map(|v| v.approver.as_str()).collect();
    format!(
        "airlock: request {request_id} approved by {}",
        if names.is_empty() {
            "nobody".to_owned()
        } else {
            names.join(", ")
        }
    )
}

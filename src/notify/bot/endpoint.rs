//! The bot's messaging endpoint: `POST /api/teams/messages` (path configurable).
//!
//! Teams delivers a click on `Action.Execute` as an `invoke` activity named
//! `adaptiveCard/action`, and an approver's client asks for its own view of the card the same
//! way (verb `refresh`). The answer is the card to show that person:
//! `{"statusCode":200,"type":"application/vnd.microsoft.card.adaptive","value":CARD}`. When a
//! click settles the request, the card is also replaced for everyone with a PUT to the Bot
//! Connector.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header::AUTHORIZATION, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::activity::{ActionInvoke, Activity};
use super::auth::BotAuth;
use super::connector::PostedCard;
use super::notifier::BotNotifier;
use super::verdict::{
    ApproverDirectory, RefusalReason, RefusedAttempt, VerdictAttempt, VerdictResult, VerdictSink,
    CHANNEL_TEAMS_BOT,
};
use crate::notify::card::{
    self, CardOutcome, CardRequest, Notice, OutcomeState, Tone, DATA_REQUEST_ID, INPUT_RATIONALE,
    MAX_RATIONALE_CHARS, VERB_APPROVE, VERB_DENY, VERB_REFRESH,
};
use crate::notify::config::{BotConfig, RetryConfig};
use crate::notify::{http_client, NotifyError};

/// Name of the invoke Teams sends for `Action.Execute`.
pub const INVOKE_ADAPTIVE_CARD_ACTION: &str = "adaptiveCard/action";
/// Largest activity accepted; real invokes are a few KB.
const MAX_ACTIVITY_BYTES: usize = 256 * 1024;

/// Everything the messaging endpoint needs. Cheap to clone.
#[derive(Clone)]
pub struct BotState {
    inner: Arc<Inner>,
}

struct Inner {
    auth: BotAuth,
    notifier: BotNotifier,
    verdicts: Arc<dyn VerdictSink>,
    approvers: Arc<dyn ApproverDirectory>,
    path: String,
}

impl BotState {
    pub fn new(
        auth: BotAuth,
        notifier: BotNotifier,
        verdicts: Arc<dyn VerdictSink>,
        approvers: Arc<dyn ApproverDirectory>,
        messaging_path: impl Into<String>,
    ) -> BotState {
        BotState {
            inner: Arc::new(Inner {
                auth,
                notifier,
                verdicts,
                approvers,
                path: messaging_path.into(),
            }),
        }
    }

    /// Builds the token checker from `[notify.bot]` and ties it to the notifier that posts the
    /// cards (so clicks can update them).
    pub fn from_config(
        cfg: &BotConfig,
        retry: &RetryConfig,
        notifier: BotNotifier,
        verdicts: Arc<dyn VerdictSink>,
        approvers: Arc<dyn ApproverDirectory>,
    ) -> Result<BotState, NotifyError> {
        let auth = BotAuth::new(cfg, http_client(retry)?)?;
        Ok(BotState::new(
            auth,
            notifier,
            verdicts,
            approvers,
            cfg.messaging_path.clone(),
        ))
    }
}

/// The router with the messaging endpoint, to merge into the admin listener's router.
pub fn bot_routes(state: BotState) -> Router {
    let path = state.inner.path.clone();
    Router::new()
        .route(&path, post(messages))
        .layer(DefaultBodyLimit::max(MAX_ACTIVITY_BYTES))
        .with_state(state)
}

async fn messages(State(state): State<BotState>, headers: HeaderMap, body: Bytes) -> Response {
    let activity: Activity = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(target: "airlock::notify", error = %e, "unreadable activity on the bot endpoint");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Err(e) = state.inner.auth.verify(authorization, &activity).await {
        tracing::warn!(
            target: "airlock::notify",
            error = %e,
            activity_type = %activity.kind,
            "refused a request on the bot endpoint"
        );
        return e.status().into_response();
    }
    match (activity.kind.as_str(), activity.name.as_deref()) {
        ("invoke", Some(INVOKE_ADAPTIVE_CARD_ACTION)) => on_card_action(&state, &activity).await,
        ("invoke", _) => StatusCode::NOT_IMPLEMENTED.into_response(),
        // Messages, installs, member changes: acknowledged, nothing to do. Logged because the
        // install is where an operator finds the serviceUrl and channel id for the config.
        _ => {
            let conversation_id = activity
                .conversation
                .as_ref()
                .and_then(|c| c.id.as_deref())
                .unwrap_or("");
            let channel_id = activity
                .channel_data
                .as_ref()
                .and_then(|d| d.pointer("/channel/id"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let tenant_id = activity.tenant_id().unwrap_or("");
            tracing::info!(
                target: "airlock::notify",
                activity_type = %activity.kind,
                service_url = %activity.service_url,
                conversation_id,
                channel_id,
                tenant_id,
                "teams activity acknowledged"
            );
            StatusCode::OK.into_response()
        }
    }
}

fn card_response(card: Value) -> Response {
    (
        StatusCode::OK,
        Json(json!({
            "statusCode": 200,
            "type": "application/vnd.microsoft.card.adaptive",
            "value": card,
        })),
    )
        .into_response()
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "statusCode": status.as_u16(),
            "type": "application/vnd.microsoft.error",
            "value": { "code": code, "message": message },
        })),
    )
        .into_response()
}

fn notice(text: impl Into<String>, tone: Tone) -> Notice {
    Notice {
        text: text.into(),
        tone,
    }
}

async fn on_card_action(state: &BotState, activity: &Activity) -> Response {
    let inner = &state.inner;
    let invoke: ActionInvoke = match activity
        .value
        .clone()
        .map(serde_json::from_value)
        .transpose()
    {
        Ok(Some(v)) => v,
        _ => return error_response(StatusCode::BAD_REQUEST, "BadRequest", "missing action"),
    };
    if invoke.action.kind != "Action.Execute" {
        return error_response(StatusCode::BAD_REQUEST, "BadRequest", "not Action.Execute");
    }
    let Some(request_id) = invoke
        .action
        .data
        .get(DATA_REQUEST_ID)
        .and_then(Value::as_str)
        .filter(|s| is_request_id(s))
        .map(str::to_string)
    else {
        return error_response(StatusCode::BAD_REQUEST, "BadRequest", "missing request id");
    };
    let from = activity.from.clone();
    let aad = from
        .as_ref()
        .and_then(|f| f.aad_object_id.clone())
        .filter(|s| !s.is_empty());
    let approver = aad
        .as_deref()
        .and_then(|a| inner.approvers.approver_for_aad(a));
    let request = inner.notifier.request(&request_id);

    let approve = match invoke.action.verb.as_str() {
        VERB_REFRESH => return refresh(state, &request_id, request.as_ref(), approver.is_some()),
        VERB_APPROVE => true,
        VERB_DENY => false,
        _ => return error_response(StatusCode::BAD_REQUEST, "BadRequest", "unknown verb"),
    };

    let refuse = |reason: RefusalReason| RefusedAttempt {
        request_id: request_id.clone(),
        aad_object_id: aad.clone().unwrap_or_default(),
        display_name: from.as_ref().and_then(|f| f.name.clone()),
        approve,
        channel: CHANNEL_TEAMS_BOT,
        reason,
    };
    let Some(approver) = approver else {
        tracing::warn!(target: "airlock::notify", request_id = ?request_id, aad = ?aad, "card verdict from someone who is not an approver");
        inner
            .verdicts
            .refused(refuse(RefusalReason::NotAnApprover))
            .await;
        let n = notice("You are not an approver for this request.", Tone::Attention);
        return card_response(match &request {
            Some(r) => card::bot_base_card(r, Some(&n)),
            None => card::notice_card(&request_id, &n),
        });
    };
    let rationale = invoke
        .action
        .data
        .get(INPUT_RATIONALE)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if rationale
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_RATIONALE_CHARS)
    {
        inner
            .verdicts
            .refused(refuse(RefusalReason::RationaleTooLong))
            .await;
        let n = notice(
            format!("The rationale is longer than {MAX_RATIONALE_CHARS} characters."),
            Tone::Warning,
        );
        return approver_view(&request_id, request.as_ref(), &n);
    }

    // An approval from the card is an approval of what the card showed: a request too long
    // for it is approved on the approval page. (Its card has no Approve; this refuses a click
    // sent without one.)
    if approve
        && request
            .as_ref()
            .is_some_and(|r| !card::approvable_in_card(r))
    {
        tracing::warn!(target: "airlock::notify", request_id = ?request_id, %approver, "card approval of a request the card cannot show whole");
        inner
            .verdicts
            .refused(refuse(RefusalReason::NotShownWhole))
            .await;
        let n = notice(
            "Too long to approve from Teams: approve it on the approval page.",
            Tone::Attention,
        );
        return approver_view(&request_id, request.as_ref(), &n);
    }

    let result = inner
        .verdicts
        .verdict(VerdictAttempt {
            request_id: request_id.clone(),
            approver: approver.clone(),
            approve,
            rationale,
            channel: CHANNEL_TEAMS_BOT,
            aad_object_id: aad.clone().unwrap_or_default(),
        })
        .await;
    tracing::info!(target: "airlock::notify", request_id = ?request_id, %approver, approve, result = ?result_name(&result), "card verdict");

    let clicked_card = match (&activity.conversation, &activity.reply_to_id) {
        (Some(c), Some(reply_to)) => c.id.clone().map(|conversation_id| PostedCard {
            service_url: activity.service_url.clone(),
            conversation_id,
            activity_id: reply_to.clone(),
        }),
        _ => None,
    };
    match result {
        VerdictResult::Decided(outcome) | VerdictResult::AlreadyDecided(outcome) => {
            let card = card::verdict_card(request.as_ref(), &outcome);
            drop(inner.notifier.settle(outcome, clicked_card));
            card_response(card)
        }
        VerdictResult::Recorded { remaining } => approver_view(
            &request_id,
            request.as_ref(),
            &notice(
                format!(
                    "Your approval is recorded; {remaining} more approver{} needed.",
                    if remaining == 1 { " is" } else { "s are" }
                ),
                Tone::Good,
            ),
        ),
        VerdictResult::AlreadyVoted => approver_view(
            &request_id,
            request.as_ref(),
            &notice(
                "You already approved this request; another approver has to approve too.",
                Tone::Warning,
            ),
        ),
        VerdictResult::SelfApproval => approver_view(
            &request_id,
            request.as_ref(),
            &notice("You cannot approve your own request.", Tone::Attention),
        ),
        VerdictResult::NotAnApprover => {
            let n = notice("You are not an approver for this request.", Tone::Attention);
            card_response(match &request {
                Some(r) => card::bot_base_card(r, Some(&n)),
                None => card::notice_card(&request_id, &n),
            })
        }
        VerdictResult::RationaleRequired => approver_view(
            &request_id,
            request.as_ref(),
            &notice(
                if approve {
                    "A rationale is required to approve this request."
                } else {
                    "A rationale is required to deny."
                },
                Tone::Warning,
            ),
        ),
        VerdictResult::Expired => {
            let outcome = CardOutcome {
                request_id: request_id.clone(),
                state: OutcomeState::Expired,
                by: Vec::new(),
                rationale: None,
                decided_at: time::OffsetDateTime::now_utc(),
            };
            card_response(card::verdict_card(request.as_ref(), &outcome))
        }
        VerdictResult::UnknownRequest => card_response(card::notice_card(
            &request_id,
            &notice(
                "This request is not pending on the gateway (it may have restarted).",
                Tone::Warning,
            ),
        )),
        VerdictResult::Unavailable(why) => {
            tracing::error!(target: "airlock::notify", request_id = ?request_id, error = %why, "verdict could not be recorded");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The gateway could not record the decision. Try again or use the approval page.",
            )
        }
    }
}

fn approver_view(request_id: &str, request: Option<&CardRequest>, n: &Notice) -> Response {
    card_response(match request {
        Some(r) => card::bot_approver_card(r, Some(n)),
        None => card::notice_card(request_id, n),
    })
}

/// An approver's client asking for its view of the card.
fn refresh(
    state: &BotState,
    request_id: &str,
    request: Option<&CardRequest>,
    is_approver: bool,
) -> Response {
    if let Some(outcome) = state.inner.notifier.outcome(request_id) {
        return card_response(card::verdict_card(request, &outcome));
    }
    match request {
        Some(r) if is_approver => card_response(card::bot_approver_card(r, None)),
        Some(r) => card_response(card::bot_base_card(r, None)),
        None => card_response(card::notice_card(
            request_id,
            &notice(
                "This request is not known to the gateway any more; see the approval page.",
                Tone::Warning,
            ),
        )),
    }
}

/// The shape of a request id (a ULID; tests use shorter ones). The id comes from the card's
/// data, which the clicking client sends back and could edit: anything else is refused before
/// it reaches the audit or a log line.
fn is_request_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn result_name(r: &VerdictResult) -> &'static str {
    match r {
        VerdictResult::Decided(_) => "decided",
        VerdictResult::Recorded { .. } => "recorded",
        VerdictResult::AlreadyVoted => "already-voted",
        VerdictResult::AlreadyDecided(_) => "already-decided",
        VerdictResult::SelfApproval => "self-approval",
        VerdictResult::NotAnApprover => "not-an-approver",
        VerdictResult::RationaleRequired => "rationale-required",
        VerdictResult::Expired => "expired",
        VerdictResult::UnknownRequest => "unknown-request",
        VerdictResult::Unavailable(_) => "unavailable",
    }
}

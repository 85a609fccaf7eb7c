//! The bridge between the approval registry and the Teams notifiers in [`crate::notify`].
//!
//! The registry speaks [`RequestView`]s and async [`Notifier`] calls; the Teams side speaks
//! [`CardRequest`] / [`CardOutcome`] and returns at once. The reverse direction (a verdict
//! clicked in a bot card) reaches the registry through [`RegistryVerdicts`], with the same
//! rules as every other channel, and the bot maps Entra ids to approvers through
//! [`PolicyApprovers`].

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::future::BoxFuture;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::audit::{audit_time, ApprovalAudit};
use super::link::{signed_url, LinkSecret};
use super::notifier::Notifier;
use super::registry::Registry;
use super::types::{Channel, RequestId, RequestState, RequestView, VerdictResult};
use super::{ApprovalAction, ApprovalEntry};
use crate::notify::{self, CardOutcome, CardRequest, OutcomeState};
use crate::policy::PolicyStore;

/// Announces held requests in Teams through the configured [`notify::Notifiers`].
pub struct TeamsNotifier {
    notifiers: notify::Notifiers,
    policy: Arc<PolicyStore>,
    public_url: String,
    /// The same key the admin listener verifies page links with.
    links: LinkSecret,
    /// `[notify] link_ttl_secs`: a card's link expires then, or when the request can no longer
    /// be approved, whichever comes first.
    link_ttl: Duration,
}

impl TeamsNotifier {
    pub fn new(
        notifiers: notify::Notifiers,
        policy: Arc<PolicyStore>,
        public_url: String,
        links: LinkSecret,
        link_ttl: Duration,
    ) -> Self {
        TeamsNotifier {
            notifiers,
            policy,
            public_url,
            links,
            link_ttl,
        }
    }

    fn card_request(&self, req: &RequestView) -> CardRequest {
        let expires_at = parse_time(&req.approvable_until);
        let exp = link_expiry(expires_at, SystemTime::now(), self.link_ttl);
        let policy = self.policy.current();
        let approver_aad_ids = req
            .approvers
            .iter()
            .filter_map(|name| policy.approver(name)?.aad_object_id.clone())
            .collect();
        CardRequest {
            request_id: req.id.to_string(),
            requester: req.requester.clone(),
            application_name: (!req.application_name.is_empty())
                .then(|| req.application_name.clone()),
            database: req.database.clone(),
            sql: req.sql.clone(),
            params: req
                .params
                .iter()
                .enumerate()
                .map(|(i, v)| (req.param_types.get(i).cloned().flatten(), v.clone()))
                .collect(),
            rule_id: req.rule_id.clone(),
            reason: req.reason.clone(),
            kind: req
                .facts
                .kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            tables: req.facts.tables.clone(),
            pii_columns: req.facts.pii_columns.clone(),
            expires_at,
            approve_url: signed_url(
                &self.public_url,
                self.links.as_bytes(),
                req.id.as_str(),
                exp,
            ),
            approver_aad_ids,
        }
    }
}

impl Notifier for TeamsNotifier {
    fn held<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            notify::Notifier::held(&self.notifiers, self.card_request(req));
        })
    }

    fn decided<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(outcome) = card_outcome(req) {
                notify::Notifier::settled(&self.notifiers, outcome);
            }
        })
    }
}

/// RFC 3339 from a view, or now when unreadable (views always write valid times).
/// Unix second a card's link stops working: `ttl` from now, but never after the request
/// stops being approvable.
fn link_expiry(approvable_until: OffsetDateTime, now: SystemTime, ttl: Duration) -> u64 {
    let until = approvable_until.unix_timestamp().max(0) as u64;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    until.min(now.saturating_add(ttl.as_secs()))
}

fn parse_time(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|_| OffsetDateTime::now_utc())
}

/// The card outcome of a closed request; `None` while it is pending.
pub fn card_outcome(req: &RequestView) -> Option<CardOutcome> {
    let now = OffsetDateTime::now_utc();
    let (state, by, rationale, at) = match req.state {
        RequestState::Pending => return None,
        RequestState::Approved => (
            OutcomeState::Approved,
            req.approvals.iter().map(|v| v.approver.clone()).collect(),
            req.approvals.iter().rev().find_map(|v| v.rationale.clone()),
            req.approvals
                .last()
                .map(|v| parse_time(&v.at))
                .unwrap_or(now),
        ),
        RequestState::Denied => match &req.denial {
            Some(d) => (
                OutcomeState::Denied,
                vec![d.approver.clone()],
                d.rationale.clone(),
                parse_time(&d.at),
            ),
            None => (OutcomeState::Denied, Vec::new(), None, now),
        },
        RequestState::Withdrawn => (OutcomeState::Withdrawn, Vec::new(), None, now),
        RequestState::Expired => (OutcomeState::Expired, Vec::new(), None, now),
        RequestState::Abandoned => (OutcomeState::Abandoned, Vec::new(), None, now),
        RequestState::Aborted => (OutcomeState::Aborted, Vec::new(), None, now),
    };
    Some(CardOutcome {
        request_id: req.id.to_string(),
        state,
        by,
        rationale,
        decided_at: at,
    })
}

/// Verdicts clicked in a bot card, applied by the registry (separation of duties, quorum,
/// rationale and first-verdict-wins are the registry's, not the bot's).
pub struct RegistryVerdicts {
    registry: Arc<Registry>,
    audit: Arc<dyn ApprovalAudit>,
}

impl RegistryVerdicts {
    pub fn new(registry: Arc<Registry>, audit: Arc<dyn ApprovalAudit>) -> Self {
        RegistryVerdicts { registry, audit }
    }

    async fn outcome(&self, id: &RequestId) -> Option<CardOutcome> {
        self.registry.get(id).await.as_ref().and_then(card_outcome)
    }
}

#[async_trait]
impl notify::VerdictSink for RegistryVerdicts {
    async fn verdict(&self, attempt: notify::VerdictAttempt) -> notify::VerdictResult {
        let id = RequestId::new(attempt.request_id.clone());
        let result = if attempt.approve {
            self.registry
                .approve(&id, &attempt.approver, Channel::Teams, attempt.rationale)
                .await
        } else {
            self.registry
                .deny(&id, &attempt.approver, Channel::Teams, attempt.rationale)
                .await
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => return notify::VerdictResult::Unavailable(e.to_string()),
        };
        let settled = |o: Option<CardOutcome>| {
            o.ok_or_else(|| notify::VerdictResult::Unavailable("request vanished".into()))
        };
        match result {
            VerdictResult::Recorded { remaining } => notify::VerdictResult::Recorded { remaining },
            VerdictResult::Final { .. } => match settled(self.outcome(&id).await) {
                Ok(o) => notify::VerdictResult::Decided(o),
                Err(e) => e,
            },
            VerdictResult::AlreadyDecided(_) => match settled(self.outcome(&id).await) {
                Ok(o) => notify::VerdictResult::AlreadyDecided(o),
                Err(e) => e,
            },
            VerdictResult::AlreadyVoted => notify::VerdictResult::AlreadyVoted,
            VerdictResult::SelfApprovalRefused => notify::VerdictResult::SelfApproval,
            VerdictResult::NotAnApprover => notify::VerdictResult::NotAnApprover,
            VerdictResult::NotFound => notify::VerdictResult::UnknownRequest,
            VerdictResult::Expired => notify::VerdictResult::Expired,
            VerdictResult::RationaleRequired => notify::VerdictResult::RationaleRequired,
        }
    }

    async fn refused(&self, attempt: notify::RefusedAttempt) {
        let reason = match attempt.reason {
            notify::bot::RefusalReason::NotAnApprover => "not_an_approver",
            notify::bot::RefusalReason::RationaleTooLong => "rationale_too_long",
            notify::bot::RefusalReason::NotShownWhole => "not_shown_whole",
        };
        let verb = if attempt.approve { "approve" } else { "deny" };
        // Linked to the held statement, so `airlock audit show` tells it with the rest of the
        // trail. A request the registry no longer knows (long closed) stays unlinked.
        let decision_id = self
            .registry
            .get(&RequestId::new(attempt.request_id.clone()))
            .await
            .map(|r| r.decision_id)
            .unwrap_or_default();
        let entry = ApprovalEntry {
            request_id: attempt.request_id,
            decision_id,
            actor: format!("aad:{}", attempt.aad_object_id),
            channel: Channel::Teams.as_str().into(),
            action: ApprovalAction::Refused,
            rationale: Some(format!("{reason}: attempted {verb} from Teams")),
            at: audit_time(SystemTime::now()),
        };
        if let Err(e) = self.audit.append(entry).await {
            tracing::warn!(error = %e, "could not audit a refused Teams click");
        }
    }
}

/// Maps Entra object ids to approvers of the current policy (reloads included).
pub struct PolicyApprovers(pub Arc<PolicyStore>);

impl notify::ApproverDirectory for PolicyApprovers {
    fn approver_for_aad(&self, aad_object_id: &str) -> Option<String> {
        self.0
            .current()
            .approver_by_aad_object_id(aad_object_id)
            .map(|a| a.name.clone())
    }
}

/// Writes Teams deliveries that gave up into the audit as `notify_failed`, in the background
/// so the notifier's task never waits on the audit.
pub struct AuditDeliveryReport {
    audit: Arc<dyn ApprovalAudit>,
    /// Names the decision a failed delivery belongs to. Bound after start: the registry is
    /// built after the notifiers it announces through. Weak, since the registry holds them.
    registry: OnceLock<Weak<Registry>>,
}

impl AuditDeliveryReport {
    pub fn new(audit: Arc<dyn ApprovalAudit>) -> Self {
        AuditDeliveryReport {
            audit,
            registry: OnceLock::new(),
        }
    }

    /// Lets failures name their decision from now on (once; later calls are ignored).
    pub fn bind(&self, registry: &Arc<Registry>) {
        let _ = self.registry.set(Arc::downgrade(registry));
    }
}

impl notify::DeliveryReport for AuditDeliveryReport {
    fn failed(&self, failure: notify::DeliveryFailure) {
        tracing::warn!(
            request_id = %failure.request_id,
            channel = failure.channel.as_str(),
            attempts = failure.attempts,
            error = %failure.error,
            "Teams delivery gave up; the request stays pending and reachable from the page"
        );
        let kind = match failure.kind {
            notify::DeliveryKind::Held => "held card",
            notify::DeliveryKind::Settled => "verdict card",
        };
        let mut entry = ApprovalEntry {
            request_id: failure.request_id,
            decision_id: String::new(),
            actor: "airlock".into(),
            channel: failure.channel.as_str().into(),
            action: ApprovalAction::NotifyFailed,
            rationale: Some(format!(
                "{kind} not delivered after {} attempts: {}",
                failure.attempts, failure.error
            )),
            at: audit_time(SystemTime::now()),
        };
        let audit = self.audit.clone();
        let registry = self.registry.get().and_then(Weak::upgrade);
        tokio::spawn(async move {
            if let Some(registry) = registry {
                if let Some(req) = registry
                    .get(&RequestId::new(entry.request_id.clone()))
                    .await
                {
                    entry.decision_id = req.decision_id;
                }
            }
            if let Err(e) = audit.append(entry).await {
                tracing::warn!(error = %e, "could not audit a failed Teams delivery");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_expires_at_its_ttl_or_with_the_request_whichever_is_first() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ttl = Duration::from_secs(900);
        let at = |secs: i64| OffsetDateTime::from_unix_timestamp(secs).unwrap();
        // Approvable for an hour: the link lasts the TTL.
        assert_eq!(link_expiry(at(1_003_600), now, ttl), 1_000_900);
        // Approvable for five more minutes: the link dies with the request.
        assert_eq!(link_expiry(at(1_000_300), now, ttl), 1_000_300);
    }
}

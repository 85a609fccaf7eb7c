//! The approval registry: every held request, its verdicts and its grant.
//!
//! It is the only shared lock of the gateway and sits off the hot path: only statements whose
//! decision is `hold` touch it. One async mutex serializes every change, and the audit entry of
//! a change is written (and awaited) *inside* that critical section, before any waiting client
//! is released. So the audit order is the order of events, a verdict is never acted on before
//! it is durable, and "first final verdict wins" needs no further coordination.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::audit::{ApprovalAction, ApprovalAudit, ApprovalEntry};
use super::entry::{Attachment, Entry, GrantSlot, GrantState, Now, GATEWAY_ACTOR};
use super::journal::{Journal, JournalRecord, JournalStatus};
use super::notifier::Notifier;
use super::types::*;
use super::waiter::Waiter;
use super::{ApprovalConfig, ApprovalError};
use crate::admin::Metrics;

/// Which requests a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    Pending,
    All,
}

#[derive(Clone, Copy)]
pub(super) enum NotifyKind {
    Held,
    Updated,
    Decided,
}

type NotifyEvent = (NotifyKind, Arc<RequestView>);

pub(super) struct State {
    pub(super) requests: BTreeMap<RequestId, Entry>,
    ids: ulid::Generator,
}

pub struct Registry {
    pub(super) config: ApprovalConfig,
    pub(super) audit: Arc<dyn ApprovalAudit>,
    notifiers: Vec<mpsc::UnboundedSender<NotifyEvent>>,
    pub(super) metrics: Arc<Metrics>,
    journal: Option<Journal>,
    pub(super) state: Mutex<State>,
}

impl Registry {
    /// Opens the registry. Requests left open by a previous run (found in the journal under
    /// `config.state_dir`) are recorded as abandoned, and their unused grants as dropped,
    /// before anything new is accepted. Each notifier gets its own task, fed in order.
    ///
    /// Must be called inside a tokio runtime.
    pub async fn open(
        config: ApprovalConfig,
        audit: Arc<dyn ApprovalAudit>,
        notifiers: Vec<Arc<dyn Notifier>>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Registry>, ApprovalError> {
        let journal = match &config.state_dir {
            Some(dir) if !dir.as_os_str().is_empty() => Some(Journal::open(dir)?),
            _ => None,
        };
        if let Some(journal) = &journal {
            super::lifecycle::recover(journal, audit.as_ref()).await?;
        }
        let notifiers = notifiers.into_iter().map(spawn_notifier).collect();
        Ok(Arc::new(Registry {
            config,
            audit,
            notifiers,
            metrics,
            journal,
            state: Mutex::new(State {
                requests: BTreeMap::new(),
                ids: ulid::Generator::new(),
            }),
        }))
    }

    pub fn config(&self) -> &ApprovalConfig {
        &self.config
    }

    /// Holds a statement. Returns its request id and the [`Waiter`] the session awaits.
    ///
    /// If the same requester re-runs the very same batch (same [`Binding`], same rule and
    /// approvers) while an earlier request for it is still approvable but nobody waits on it
    /// (its hold timed out), the new session reattaches to that request instead of opening a
    /// second one, so approvers see one request and the approval releases the live session.
    ///
    /// Fails (and nothing is held) when the audit or the journal cannot record the hold: the
    /// session must then refuse the statement.
    pub async fn submit(
        self: &Arc<Self>,
        req: HoldRequest,
    ) -> Result<(RequestId, Waiter), ApprovalError> {
        if req.binding.requester() != req.session.user
            || req.binding.database() != req.session.database
        {
            return Err(ApprovalError::BindingMismatch);
        }
        let mut st = self.state.lock().await;
        let now = Now::read();
        self.sweep(&mut st, &now).await;
        let timeout = req
            .decision
            .hold_timeout
            .unwrap_or(Duration::from_secs(self.config.hold_timeout_secs));
        let grant_ttl = Duration::from_secs(self.config.grant_ttl_secs);
        let hold_deadline = now.mono + timeout;

        let reattach = st.requests.values().find(|e| {
            e.state == RequestState::Pending
                && e.waiter.is_none()
                && e.req.binding == req.binding
                && e.req.decision.rule_id == req.decision.rule_id
                && e.req.decision.approvers == req.decision.approvers
                && e.req.decision.quorum == req.decision.quorum
        });
        if let Some(id) = reattach.map(|e| e.id.clone()) {
            let entry = st.requests.get_mut(&id).expect("found above");
            let (tx, rx) = oneshot::channel();
            let seq = entry.next_seq;
            entry.next_seq += 1;
            let audit = ApprovalEntry {
                decision_id: req.decision_id.clone(),
                ..entry.audit(
                    ApprovalAction::Reattach,
                    &req.session.user,
                    Channel::Client,
                    Some(format!("re-run from session {}", req.session.session_id)),
                    now.wall,
                )
            };
            self.audit.append(audit).await?;
            entry.waiter = Some(Attachment {
                tx,
                seq,
                since: now.mono,
                decision_id: req.decision_id.clone(),
            });
            entry.hold_deadline = hold_deadline;
            entry.approvable_until = entry.approvable_until.max(hold_deadline + grant_ttl);
            let view = entry.view(&now);
            self.metrics.hold_submitted();
            self.notify(NotifyKind::Updated, &view);
            tracing::info!(request_id = %id, "held statement reattached to open request");
            return Ok((
                id.clone(),
                Waiter::new(self.clone(), id, seq, hold_deadline, rx, view),
            ));
        }

        if req.decision.approvers.is_empty() {
            tracing::warn!(rule = %req.decision.rule_id, "hold rule names no approvers: the request can only expire");
        }
        let id = RequestId::generate(&mut st.ids);
        let (tx, rx) = oneshot::channel();
        let entry = Entry {
            id: id.clone(),
            quorum: req.decision.quorum.max(1),
            created: now.mono,
            hold_deadline,
            approvable_until: hold_deadline + grant_ttl,
            waiter: Some(Attachment {
                tx,
                seq: 0,
                since: now.mono,
                decision_id: req.decision_id.clone(),
            }),
            next_seq: 1,
            approvals: Vec::new(),
            denial: None,
            state: RequestState::Pending,
            closed_reason: None,
            grant: None,
            req,
        };
        if let Some(journal) = &self.journal {
            journal.put(&JournalRecord {
                request_id: id.to_string(),
                decision_id: entry.req.decision_id.clone(),
                requester: entry.req.session.user.clone(),
                status: JournalStatus::Pending,
            })?;
        }
        let held = entry.audit(
            ApprovalAction::Requested,
            GATEWAY_ACTOR,
            Channel::Gateway,
            Some(entry.req.decision.reason.clone()),
            now.wall,
        );
        if let Err(e) = self.audit.append(held).await {
            self.forget(id.as_str());
            return Err(e.into());
        }
        let view = entry.view(&now);
        st.requests.insert(id.clone(), entry);
        self.metrics.hold_submitted();
        self.notify(NotifyKind::Held, &view);
        tracing::info!(request_id = %id, rule = %view.rule_id, requester = %view.requester, "statement held for approval");
        Ok((
            id.clone(),
            Waiter::new(self.clone(), id, 0, hold_deadline, rx, view),
        ))
    }

    /// Records an approval by `approver` (an identity proven by the caller: token, bot JWT).
    pub async fn approve(
        &self,
        id: &RequestId,
        approver: &str,
        channel: Channel,
        rationale: Option<String>,
    ) -> Result<VerdictResult, ApprovalError> {
        self.verdict(id, approver, channel, rationale, true).await
    }

    /// Records a denial. A rationale is required; one denial is final.
    pub async fn deny(
        &self,
        id: &RequestId,
        approver: &str,
        channel: Channel,
        rationale: Option<String>,
    ) -> Result<VerdictResult, ApprovalError> {
        self.verdict(id, approver, channel, rationale, false).await
    }

    async fn verdict(
        &self,
        id: &RequestId,
        who: &str,
        channel: Channel,
        rationale: Option<String>,
        approve: bool,
    ) -> Result<VerdictResult, ApprovalError> {
        let rationale = rationale
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        let mut st = self.state.lock().await;
        let now = Now::read();
        self.sweep(&mut st, &now).await;
        let Some(entry) = st.requests.get_mut(id) else {
            self.metrics.refusal("not_found");
            return Ok(VerdictResult::NotFound);
        };

        let refusal = if entry.is_requester(who) {
            Some(VerdictResult::SelfApprovalRefused)
        } else if !entry.is_approver(who) {
            Some(VerdictResult::NotAnApprover)
        } else if entry.state == RequestState::Expired {
            Some(VerdictResult::Expired)
        } else if entry.state.is_final() {
            Some(VerdictResult::AlreadyDecided(entry.state))
        } else if entry.approvals.iter().any(|v| v.approver == who) {
            Some(VerdictResult::AlreadyVoted)
        } else if rationale.is_none() && (!approve || self.config.approve_rationale_required) {
            Some(VerdictResult::RationaleRequired)
        } else {
            None
        };
        if let Some(result) = refusal {
            // The reason code leads, so refusals can be grouped; the attempt follows.
            let what = if approve { "approve" } else { "deny" };
            let note = match &rationale {
                Some(r) => format!("{}: attempted {what}: {r}", result.code()),
                None => format!("{}: attempted {what}", result.code()),
            };
            let record = entry.audit(ApprovalAction::Refused, who, channel, Some(note), now.wall);
            self.audit.append(record).await?;
            self.metrics.refusal(result.code());
            tracing::warn!(request_id = %id, actor = who, refused = result.code(), "verdict refused");
            return Ok(result);
        }

        let verdict = Verdict {
            approver: who.to_owned(),
            channel,
            rationale: rationale.clone(),
            at: rfc3339(now.wall),
        };
        if approve && (entry.approvals.len() as u32 + 1) < entry.quorum {
            self.audit
                .append(entry.audit(ApprovalAction::Approve, who, channel, rationale, now.wall))
                .await?;
            entry.approvals.push(verdict);
            self.metrics.verdict(true, channel);
            let remaining = entry.quorum - entry.approvals.len() as u32;
            let view = entry.view(&now);
            self.notify(NotifyKind::Updated, &view);
            return Ok(VerdictResult::Recorded { remaining });
        }

        // A final verdict: durable before anyone acts on it.
        let action = if approve {
            ApprovalAction::Approve
        } else {
            ApprovalAction::Deny
        };
        let written = self
            .audit
            .append(entry.audit(action, who, channel, rationale.clone(), now.wall))
            .await;
        if let Err(e) = written {
            // Fail closed: the verdict cannot be proven, so nothing runs and the request closes.
            entry.state = RequestState::Aborted;
            entry.closed_reason = Some(format!("verdict could not be recorded: {}", e.0));
            let reason = "the verdict could not be written to the audit; nothing ran".to_owned();
            if let Some(waited) = entry.release(Outcome::Aborted { reason }, now.mono) {
                self.metrics.hold_resolved("aborted", waited);
            }
            let view = entry.view(&now);
            self.forget(id.as_str());
            self.notify(NotifyKind::Decided, &view);
            return Err(e.into());
        }
        self.metrics.verdict(approve, channel);
        let delivery = if approve {
            entry.approvals.push(verdict);
            entry.state = RequestState::Approved;
            let outcome = Outcome::Approved {
                by: entry.approvals.clone(),
            };
            if let Some(waited) = entry.release(outcome, now.mono) {
                self.metrics.hold_resolved("approved", waited);
                self.forget(id.as_str());
                Delivery::ClientReleased
            } else {
                self.issue_grant(entry, &now).await
            }
        } else {
            entry.denial = Some(verdict);
            entry.state = RequestState::Denied;
            let outcome = Outcome::Denied {
                by: who.to_owned(),
                rationale: rationale.unwrap_or_default(),
            };
            self.forget(id.as_str());
            match entry.release(outcome, now.mono) {
                Some(waited) => {
                    self.metrics.hold_resolved("denied", waited);
                    Delivery::ClientReleased
                }
                None => Delivery::Nobody,
            }
        };
        let state = entry.state;
        let view = entry.view(&now);
        self.notify(NotifyKind::Decided, &view);
        tracing::info!(request_id = %id, actor = who, state = state.as_str(), "request decided");
        Ok(VerdictResult::Final { state, delivery })
    }

    /// A late approval: the client gave up (hold timeout), so the approval becomes a
    /// single-use grant for the same batch. If the grant cannot be recorded, none is issued.
    async fn issue_grant(&self, entry: &mut Entry, now: &Now) -> Delivery {
        let ttl = Duration::from_secs(self.config.grant_ttl_secs);
        let expires = now.mono + ttl;
        let note = format!("single use, until {}", rfc3339(now.wall_of(expires)));
        let record = entry.audit(
            ApprovalAction::GrantIssued,
            GATEWAY_ACTOR,
            Channel::Gateway,
            Some(note),
            now.wall,
        );
        if let Err(e) = self.audit.append(record).await {
            tracing::error!(request_id = %entry.id, error = %e, "grant not issued: audit unavailable");
            self.forget(entry.id.as_str());
            return Delivery::Nobody;
        }
        if let Some(journal) = &self.journal {
            if let Err(e) = journal.put(&JournalRecord {
                request_id: entry.id.to_string(),
                decision_id: entry.req.decision_id.clone(),
                requester: entry.req.session.user.clone(),
                status: JournalStatus::Granted,
            }) {
                tracing::warn!(request_id = %entry.id, error = %e, "grant not journaled");
            }
        }
        entry.grant = Some(GrantSlot {
            expires,
            state: GrantState::Unused,
        });
        self.metrics.grant_issued();
        Delivery::GrantIssued {
            expires_at: now.wall_of(expires),
        }
    }

    /// Takes the grant left by a late approval of exactly this batch, if there is one: the
    /// session then runs the batch without holding it. Single use: a second call for the same
    /// batch finds nothing. `decision_id` is the re-run's decision record, linked in the audit.
    ///
    /// Returns `None` (so the statement is held as a new request) if the use of the grant
    /// cannot be recorded in the audit.
    pub async fn take_grant(&self, binding: &Binding, decision_id: &str) -> Option<Grant> {
        let mut st = self.state.lock().await;
        let now = Now::read();
        self.sweep(&mut st, &now).await;
        let entry = st
            .requests
            .values_mut()
            .filter(|e| e.has_unused_grant() && e.req.binding == *binding)
            .min_by_key(|e| e.grant.as_ref().map(|g| g.expires))?;
        let record = ApprovalEntry {
            decision_id: decision_id.to_owned(),
            ..entry.audit(
                ApprovalAction::GrantUsed,
                &entry.req.session.user,
                Channel::Client,
                Some(format!("used by re-run, decision {decision_id}")),
                now.wall,
            )
        };
        if let Err(e) = self.audit.append(record).await {
            tracing::error!(request_id = %entry.id, error = %e, "grant not used: audit unavailable");
            return None;
        }
        let slot = entry.grant.as_mut()?;
        slot.state = GrantState::Used;
        let expires_at = now.wall_of(slot.expires);
        self.forget(entry.id.as_str());
        self.metrics.grant_used();
        Some(Grant {
            request_id: entry.id.clone(),
            decision_id: entry.req.decision_id.clone(),
            approved_by: entry.approvals.clone(),
            expires_at,
        })
    }

    /// Withdraws the request the waiter `seq` is attached to (used by [`Waiter::withdraw`]).
    pub(crate) async fn withdraw_attached(
        &self,
        id: &RequestId,
        seq: u64,
        reason: WithdrawReason,
    ) -> WithdrawResult {
        let mut st = self.state.lock().await;
        let now = Now::read();
        // No sweep first: the session may already have dropped its waiter (which a sweep
        // would record as a disconnect) and is now saying why it left.
        let Some(entry) = st.requests.get_mut(id) else {
            return WithdrawResult::NotFound;
        };
        if entry.state.is_final() {
            return WithdrawResult::AlreadyClosed(entry.state);
        }
        if entry.waiter.as_ref().map(|a| a.seq) != Some(seq) {
            // This waiter was already released (hold timeout); the request now belongs to
            // the approvers, or to a newer waiter, and this session cannot close it.
            return WithdrawResult::AlreadyClosed(entry.state);
        }
        let user = entry.req.session.user.clone();
        let record = entry.audit(
            ApprovalAction::Withdraw,
            &user,
            Channel::Client,
            Some(reason.as_str().to_owned()),
            now.wall,
        );
        if let Err(e) = self.audit.append(record).await {
            // The client is gone either way; the request is closed and will show as withdrawn.
            tracing::error!(request_id = %id, error = %e, "withdrawal not recorded in the audit");
        }
        entry.state = RequestState::Withdrawn;
        entry.closed_reason = Some(reason.as_str().to_owned());
        if let Some(waited) = entry.release(Outcome::Withdrawn, now.mono) {
            self.metrics.hold_resolved("withdrawn", waited);
        }
        self.forget(id.as_str());
        let view = entry.view(&now);
        self.notify(NotifyKind::Decided, &view);
        tracing::info!(request_id = %id, reason = reason.as_str(), "request withdrawn");
        WithdrawResult::Withdrawn
    }

    /// Applies expiries now (the waiter calls this when its hold deadline passes, so its
    /// outcome is decided under the lock: a verdict that arrived first wins).
    pub(crate) async fn expire_due(&self) {
        let mut st = self.state.lock().await;
        let now = Now::read();
        self.sweep(&mut st, &now).await;
    }

    /// A snapshot of one request.
    pub async fn get(&self, id: &RequestId) -> Option<RequestView> {
        let mut st = self.state.lock().await;
        let now = Now::read();
        self.sweep(&mut st, &now).await;
        st.requests.get(id).map(|e| e.view(&now))
    }

    /// Requests, newest first.
    pub async fn list(&self, filter: ListFilter) -> Vec<RequestView> {
        let mut st = self.state.lock().await;
        let now = Now::read();
        self.sweep(&mut st, &now).await;
        st.requests
            .values()
            .rev()
            .filter(|e| filter == ListFilter::All || e.state == RequestState::Pending)
            .map(|e| e.view(&now))
            .collect()
    }

    /// Requests waiting for a verdict (for the `airlock_holds_pending` gauge).
    pub async fn pending_count(&self) -> usize {
        let st = self.state.lock().await;
        st.requests
            .values()
            .filter(|e| e.state == RequestState::Pending)
            .count()
    }

    pub(super) fn forget(&self, id: &str) {
        if let Some(journal) = &self.journal {
            journal.remove(id);
        }
    }

    pub(super) fn notify(&self, kind: NotifyKind, view: &RequestView) {
        if self.notifiers.is_empty() {
            return;
        }
        let view = Arc::new(view.clone());
        for tx in &self.notifiers {
            // A notifier task only ends with the runtime; nothing to do if it is gone.
            let _ = tx.send((kind, view.clone()));
        }
    }
}

/// One task per notifier, fed in order, so a card is posted before it is updated.
fn spawn_notifier(notifier: Arc<dyn Notifier>) -> mpsc::UnboundedSender<NotifyEvent> {
    let (tx, mut rx) = mpsc::unbounded_channel::<NotifyEvent>();
    tokio::spawn(async move {
        while let Some((kind, view)) = rx.recv().await {
            match kind {
                NotifyKind::Held => notifier.held(&view).await,
                NotifyKind::Updated => notifier.updated(&view).await,
                NotifyKind::Decided => notifier.decided(&view).await,
            }
        }
    });
    tx
}

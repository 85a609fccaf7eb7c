//! The registry's housekeeping: expiry of holds, requests and grants, the bounded history,
//! graceful shutdown and recovery of what a crash left open.

use std::sync::Arc;
use std::time::Duration;

use super::audit::{audit_time, ApprovalAction, ApprovalAudit, ApprovalEntry};
use super::entry::{GrantState, Now, GATEWAY_ACTOR};
use super::journal::{Journal, JournalStatus};
use super::registry::{NotifyKind, Registry, State};
use super::types::{rfc3339, Channel, Outcome, RequestId, RequestState};
use super::ApprovalError;

/// Side effects collected under the lock by expiry sweeps, performed before the lock is
/// released (audit first, then the waiting clients).
#[derive(Default)]
pub(super) struct Effects {
    audit: Vec<ApprovalEntry>,
    release: Vec<(RequestId, Outcome)>,
    notify: Vec<(NotifyKind, RequestId)>,
    forget: Vec<String>,
}

impl Registry {
    /// Applies expiries every second until `shutdown` resolves. Expiry is also applied on
    /// every registry call, so this only makes the audit trail and notifications timely.
    pub async fn run_sweeper(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => self.expire_due().await,
            }
        }
    }

    /// Graceful stop: every pending request is recorded as abandoned (its waiting session
    /// gets [`Outcome::Abandoned`]) and every unused grant as dropped — grants are not kept
    /// across restarts. The same happens at the next start for a crash.
    pub async fn shutdown(&self) {
        let mut st = self.state.lock().await;
        let now = Now::read();
        self.sweep(&mut st, &now).await;
        let mut fx = Effects::default();
        for entry in st.requests.values_mut() {
            if entry.state == RequestState::Pending {
                fx.audit.push(entry.audit(
                    ApprovalAction::Abandoned,
                    GATEWAY_ACTOR,
                    Channel::Gateway,
                    Some("gateway shutting down".into()),
                    now.wall,
                ));
                entry.state = RequestState::Abandoned;
                entry.closed_reason = Some("shutdown".into());
                fx.release.push((entry.id.clone(), Outcome::Abandoned));
                fx.notify.push((NotifyKind::Decided, entry.id.clone()));
                fx.forget.push(entry.id.to_string());
            }
            if entry.has_unused_grant() {
                fx.audit.push(entry.audit(
                    ApprovalAction::GrantDropped,
                    GATEWAY_ACTOR,
                    Channel::Gateway,
                    Some("gateway shutting down; grants are not kept".into()),
                    now.wall,
                ));
                if let Some(g) = entry.grant.as_mut() {
                    g.state = GrantState::Dropped;
                }
                fx.forget.push(entry.id.to_string());
            }
        }
        self.apply(&mut st, fx, &now).await;
    }

    /// Expiry of holds, requests and grants, and trimming of the history. Called under the
    /// lock at the start of every operation.
    pub(super) async fn sweep(&self, st: &mut State, now: &Now) {
        let mut fx = Effects::default();
        for entry in st.requests.values_mut() {
            if entry.state == RequestState::Pending {
                let gone = entry.waiter.as_ref().is_some_and(|a| a.tx.is_closed());
                if gone {
                    // The session dropped its waiter without withdrawing (its task ended):
                    // the client is gone, which is a disconnect.
                    fx.audit.push(entry.audit(
                        ApprovalAction::Withdraw,
                        &entry.req.session.user,
                        Channel::Client,
                        Some("disconnect".into()),
                        now.wall,
                    ));
                    entry.state = RequestState::Withdrawn;
                    entry.closed_reason = Some("disconnect".into());
                    fx.release.push((entry.id.clone(), Outcome::Withdrawn));
                    fx.notify.push((NotifyKind::Decided, entry.id.clone()));
                    fx.forget.push(entry.id.to_string());
                    continue;
                }
                if entry.waiter.is_some() && now.mono >= entry.hold_deadline {
                    let decision_id = entry.waiter.as_ref().map(|a| a.decision_id.clone());
                    let mut record = entry.audit(
                        ApprovalAction::Expire,
                        GATEWAY_ACTOR,
                        Channel::Gateway,
                        Some(format!(
                            "hold timeout: client released; approvable until {}",
                            rfc3339(now.wall_of(entry.approvable_until))
                        )),
                        now.wall,
                    );
                    record.decision_id = decision_id.unwrap_or(record.decision_id);
                    fx.audit.push(record);
                    fx.release.push((entry.id.clone(), Outcome::Expired));
                    fx.notify.push((NotifyKind::Updated, entry.id.clone()));
                }
                if now.mono >= entry.approvable_until {
                    fx.audit.push(entry.audit(
                        ApprovalAction::Expire,
                        GATEWAY_ACTOR,
                        Channel::Gateway,
                        Some("approvable window closed without a verdict; request expired".into()),
                        now.wall,
                    ));
                    entry.state = RequestState::Expired;
                    entry.closed_reason = Some("expired".into());
                    fx.notify.push((NotifyKind::Decided, entry.id.clone()));
                    fx.forget.push(entry.id.to_string());
                }
            }
            if let Some(g) = entry.grant.as_mut() {
                if g.state == GrantState::Unused && now.mono >= g.expires {
                    g.state = GrantState::Expired;
                    fx.audit.push(entry.audit(
                        ApprovalAction::GrantExpired,
                        GATEWAY_ACTOR,
                        Channel::Gateway,
                        None,
                        now.wall,
                    ));
                    fx.forget.push(entry.id.to_string());
                }
            }
        }
        self.apply(st, fx, now).await;
        // Keep a bounded history of closed requests for listings.
        let done: Vec<RequestId> = st
            .requests
            .values()
            .filter(|e| e.is_done())
            .map(|e| e.id.clone())
            .collect();
        let excess = done.len().saturating_sub(self.config.history_limit);
        for id in done.into_iter().take(excess) {
            st.requests.remove(&id);
        }
    }

    /// Performs collected effects: audit first (in order), then releases, then journal and
    /// notifications. Nothing here releases a client into running anything, so an audit
    /// failure is logged and the effects still happen.
    async fn apply(&self, st: &mut State, fx: Effects, now: &Now) {
        for record in fx.audit {
            if let Err(e) = self.audit.append(record.clone()).await {
                tracing::error!(request_id = %record.request_id, action = record.action.as_str(), error = %e, "approval audit entry lost");
            }
        }
        for (id, outcome) in fx.release {
            if let Some(entry) = st.requests.get_mut(&id) {
                let label = outcome.label();
                if let Some(waited) = entry.release(outcome, now.mono) {
                    self.metrics.hold_resolved(label, waited);
                }
            }
        }
        for id in fx.forget {
            self.forget(&id);
        }
        for (kind, id) in fx.notify {
            if let Some(entry) = st.requests.get(&id) {
                self.notify(kind, &entry.view(now));
            }
        }
    }
}

/// Records what a previous run left open: pending requests as abandoned, unused grants as
/// dropped. A journal file is removed only once its entry is in the audit.
pub(super) async fn recover(
    journal: &Journal,
    audit: &dyn ApprovalAudit,
) -> Result<(), ApprovalError> {
    let now = Now::read();
    for record in journal.drain()? {
        let (action, note) = match record.status {
            JournalStatus::Pending => (
                ApprovalAction::Abandoned,
                "pending when the gateway stopped; its client is gone",
            ),
            JournalStatus::Granted => (
                ApprovalAction::GrantDropped,
                "unused grant dropped at restart; grants are not kept",
            ),
        };
        audit
            .append(ApprovalEntry {
                request_id: record.request_id.clone(),
                decision_id: record.decision_id.clone(),
                actor: GATEWAY_ACTOR.to_owned(),
                channel: Channel::Gateway.as_str().to_owned(),
                action,
                rationale: Some(note.to_owned()),
                at: audit_time(now.wall),
            })
            .await?;
        journal.remove(&record.request_id);
        tracing::warn!(request_id = %record.request_id, action = action.as_str(), "recorded request left open by a previous run");
    }
    Ok(())
}

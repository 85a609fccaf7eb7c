//! What a session holds while its statement waits.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::registry::Registry;
use super::types::{Outcome, RequestId, RequestView, WithdrawReason, WithdrawResult};

/// The session's side of a held request.
///
/// ```ignore
/// let (id, mut waiter) = registry.submit(hold).await?;
/// send_notice(approval::held_notice(waiter.view(), &public_url));
/// let outcome = tokio::select! {
///     outcome = waiter.wait() => outcome,
///     _ = cancel_requested() => { waiter.withdraw(WithdrawReason::Cancel).await; return … }
///     _ = client_closed() => { waiter.withdraw(WithdrawReason::Disconnect).await; return … }
/// };
/// ```
///
/// [`wait`](Self::wait) is cancel safe: dropping its future (the other `select!` branch won)
/// loses nothing, and the waiter can still withdraw. Dropping the waiter itself without
/// withdrawing counts as a disconnect.
pub struct Waiter {
    registry: Arc<Registry>,
    id: RequestId,
    seq: u64,
    deadline: Instant,
    rx: oneshot::Receiver<Outcome>,
    view: RequestView,
    done: Option<Outcome>,
}

impl Waiter {
    pub(crate) fn new(
        registry: Arc<Registry>,
        id: RequestId,
        seq: u64,
        deadline: Instant,
        rx: oneshot::Receiver<Outcome>,
        view: RequestView,
    ) -> Self {
        Waiter {
            registry,
            id,
            seq,
            deadline,
            rx,
            view,
            done: None,
        }
    }

    pub fn id(&self) -> &RequestId {
        &self.id
    }

    /// The request as it was when the session started waiting (for the NOTICE).
    pub fn view(&self) -> &RequestView {
        &self.view
    }

    /// When the hold timeout releases this session with [`Outcome::Expired`].
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Waits for the outcome: a final verdict, or [`Outcome::Expired`] at the hold deadline.
    /// Every outcome is already in the audit when this returns. Calling it again after it
    /// returned gives the same outcome.
    pub async fn wait(&mut self) -> Outcome {
        if let Some(done) = &self.done {
            return done.clone();
        }
        let first = tokio::select! {
            biased;
            r = &mut self.rx => Some(r.map_err(|_| ())),
            _ = tokio::time::sleep_until(self.deadline) => None,
        };
        let received = match first {
            Some(r) => r,
            None => {
                // Deadline: let the registry decide under its lock. Either a verdict got
                // there first (and is already in our channel) or the hold expires now.
                self.registry.expire_due().await;
                match self.rx.try_recv() {
                    Ok(o) => Ok(o),
                    Err(oneshot::error::TryRecvError::Closed) => Err(()),
                    Err(oneshot::error::TryRecvError::Empty) => {
                        // Cannot happen while the registry keeps its invariants; never hang
                        // a client on it: expired runs nothing.
                        tracing::error!(request_id = %self.id, "hold deadline passed without an outcome");
                        Ok(Outcome::Expired)
                    }
                }
            }
        };
        let outcome = received.unwrap_or_else(|_| Outcome::Aborted {
            reason: "the approval registry stopped".into(),
        });
        self.done = Some(outcome.clone());
        outcome
    }

    /// A handle that can withdraw this wait later, separately from the waiter (for a
    /// session that moves the waiter into its verdict future and keeps a withdraw callback).
    pub fn withdraw_handle(&self) -> WithdrawHandle {
        WithdrawHandle {
            registry: self.registry.clone(),
            id: self.id.clone(),
            seq: self.seq,
        }
    }

    /// Withdraws the request because the client cancelled or disconnected. The request closes
    /// (approvers are told it was withdrawn) unless a verdict or the hold timeout already
    /// released this session, which the result says.
    pub async fn withdraw(self, reason: WithdrawReason) -> WithdrawResult {
        self.registry
            .withdraw_attached(&self.id, self.seq, reason)
            .await
    }
}

/// Withdraws one particular wait on a request (see [`Waiter::withdraw_handle`]). It can only
/// close the request while that wait is the one attached: once a verdict or the hold timeout
/// released it, withdrawing reports that instead and changes nothing.
#[derive(Clone)]
pub struct WithdrawHandle {
    registry: Arc<Registry>,
    id: RequestId,
    seq: u64,
}

impl WithdrawHandle {
    pub fn id(&self) -> &RequestId {
        &self.id
    }

    pub async fn withdraw(self, reason: WithdrawReason) -> WithdrawResult {
        self.registry
            .withdraw_attached(&self.id, self.seq, reason)
            .await
    }
}

//! The hook through which held requests are announced (Teams cards, chat, mail…).
//!
//! Notifiers are handed to the registry at construction. Each call runs in its own task, after
//! the registry's lock is released and after the audit entry is written, so a slow or failing
//! notifier never delays a verdict or loses a request: it can only fail to announce it, and it
//! is expected to log (and audit, through its own means) such failures.

use futures::future::BoxFuture;

use super::types::RequestView;

/// Receives request lifecycle events. Implementations should be cheap to call concurrently.
///
/// ```ignore
/// impl Notifier for MyNotifier {
///     fn held<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()> {
///         Box::pin(async move { /* post a card for req.id */ })
///     }
///     fn decided<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()> {
///         Box::pin(async move { /* update the card: req.state, req.approvals, req.denial */ })
///     }
/// }
/// ```
pub trait Notifier: Send + Sync {
    /// A new request was held (`req.state` is `pending`).
    fn held<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()>;

    /// The request reached a final state: approved, denied, withdrawn (the card should say
    /// so), expired or abandoned. `req.state` tells which; `req.approvals` / `req.denial` /
    /// `req.closed_reason` tell by whom or why.
    fn decided<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()>;

    /// Something changed while still pending: a vote short of quorum, the waiting client was
    /// released by the hold timeout (`client_waiting` false), or a re-run reattached to it.
    fn updated<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()> {
        let _ = req;
        Box::pin(async {})
    }
}

//! Cancel keys. Clients get a key made by the gateway (never the upstream's), so a
//! CancelRequest can only reach the upstream session that belongs to that client, and a
//! cancel during a hold can withdraw the held request instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::Notify;

use super::gate::Withdrawal;
use crate::upstream::CancelTarget;

/// Withdraws the held request (see [`super::gate::HeldUnit::withdraw`]).
pub type Withdraw = Box<dyn FnOnce(Withdrawal) -> futures::future::BoxFuture<'static, ()> + Send>;

/// What a cancel for one client session acts on.
pub struct CancelHandle {
    pub upstream: Mutex<Option<CancelTarget>>,
    /// Woken on cancel; a session waiting on an approval withdraws its request.
    pub hold_cancel: Notify,
    /// A cancel came for the unit being decided or held. The wakeup alone can be a leftover
    /// from an earlier unit (a permit stored just after that unit ended), so the waiting
    /// session acts only when this is set.
    hold_cancelled: AtomicBool,
    /// The session is deciding a unit or waiting on an approval: a cancel withdraws the hold
    /// (nothing of that unit runs upstream yet).
    holding: AtomicBool,
    /// The held request's withdrawal, while the session waits on it: a cancel withdraws the
    /// request at once, so an approval that arrives before the session wakes is refused as
    /// already decided instead of running the cancelled statement.
    withdraw: Mutex<Option<Withdraw>>,
    /// The held unit waits for earlier statements of the client's pipeline, which still run
    /// upstream: a cancel is forwarded to them too.
    awaiting_earlier: AtomicBool,
}

impl CancelHandle {
    fn new() -> CancelHandle {
        CancelHandle {
            upstream: Mutex::new(None),
            hold_cancel: Notify::new(),
            hold_cancelled: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            withdraw: Mutex::new(None),
            awaiting_earlier: AtomicBool::new(false),
        }
    }

    /// The session waits on a held request that `w` withdraws (`None`: it no longer does).
    pub fn set_withdraw(&self, w: Option<Withdraw>) {
        *self.withdraw.lock() = w;
    }

    /// The held request's withdrawal, once: whoever takes it withdraws.
    pub fn take_withdraw(&self) -> Option<Withdraw> {
        self.withdraw.lock().take()
    }

    pub fn set_awaiting_earlier(&self, on: bool) {
        self.awaiting_earlier.store(on, Ordering::Release);
    }

    pub fn is_awaiting_earlier(&self) -> bool {
        self.awaiting_earlier.load(Ordering::Acquire)
    }

    pub fn set_holding(&self, on: bool) {
        self.holding.store(on, Ordering::Release);
    }

    pub fn is_holding(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    /// Cancels the unit being decided or held: flag first, then wake.
    pub fn cancel_hold(&self) {
        self.hold_cancelled.store(true, Ordering::Release);
        self.hold_cancel.notify_one();
    }

    /// Takes the cancel of the current unit, if one came.
    pub fn take_hold_cancel(&self) -> bool {
        self.hold_cancelled.swap(false, Ordering::AcqRel)
    }

    /// Drops a cancel that arrived for a hold that did not happen or is over, so it cannot
    /// withdraw a later one (any wakeup left behind is ignored by [`Self::take_hold_cancel`]).
    /// One atomic store: this runs for every statement.
    pub fn forget_hold_cancel(&self) {
        self.hold_cancelled.store(false, Ordering::Release);
    }
}

type Keys = HashMap<(i32, i32), Arc<CancelHandle>>;

/// All live sessions' cancel keys. Shared by the accept loop; passed explicitly.
#[derive(Default, Clone)]
pub struct CancelMap {
    inner: Arc<Mutex<Keys>>,
}

impl CancelMap {
    /// Registers a new session and returns its key and handle.
    pub fn register(&self) -> ((i32, i32), Arc<CancelHandle>) {
        let handle = Arc::new(CancelHandle::new());
        let mut map = self.inner.lock();
        let mut rng = rand::thread_rng();
        loop {
            let key = (rng.gen_range(1..i32::MAX), rng.gen::<i32>());
            if let std::collections::hash_map::Entry::Vacant(e) = map.entry(key) {
                e.insert(handle.clone());
                return (key, handle);
            }
        }
    }

    pub fn remove(&self, key: (i32, i32)) {
        self.inner.lock().remove(&key);
    }

    pub fn get(&self, key: (i32, i32)) -> Option<Arc<CancelHandle>> {
        self.inner.lock().get(&key).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_left_from_an_earlier_unit_does_not_count_for_the_next_hold() {
        let (_, h) = CancelMap::default().register();
        // A cancel during a unit that was not held, then the unit ends.
        h.cancel_hold();
        h.forget_hold_cancel();
        // The next hold may still be woken by the stored permit, but it is not a cancel.
        h.hold_cancel.notified().await;
        assert!(!h.take_hold_cancel());
        // A cancel during that hold is one, once.
        h.cancel_hold();
        h.hold_cancel.notified().await;
        assert!(h.take_hold_cancel());
        assert!(!h.take_hold_cancel());
    }
}

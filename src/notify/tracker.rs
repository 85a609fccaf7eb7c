//! Per-request memory of what was posted, so the verdict follows the announcement.
//!
//! Each request gets an async lock. `held` takes it before spawning the post and keeps it until
//! the post is done (or given up); `settled` waits for it, so a verdict can never overtake the
//! card it answers, and the bot's update knows the activity id to replace.
//!
//! The memory is bounded (LRU): with more pending requests than [`CAPACITY`], the oldest lose
//! their details; their verdict is then posted without them (webhook) or not updated in place
//! (bot), and a warning is logged. The request itself is unaffected.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::card::CardRequest;

pub(crate) const CAPACITY: usize = 4096;

pub(crate) struct Entry<S> {
    pub request: Option<CardRequest>,
    pub state: Arc<AsyncMutex<S>>,
}

pub(crate) struct Tracker<S> {
    entries: Mutex<LruCache<String, Arc<Entry<S>>>>,
}

impl<S: Default + Send + 'static> Tracker<S> {
    pub fn new() -> Self {
        Tracker {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(CAPACITY).expect("capacity is not zero"),
            )),
        }
    }

    /// Registers a held request and returns its state, already locked by the caller.
    pub fn start(&self, request: CardRequest) -> OwnedMutexGuard<S> {
        let state = Arc::new(AsyncMutex::new(S::default()));
        let guard = state
            .clone()
            .try_lock_owned()
            .expect("a fresh mutex is unlocked");
        let id = request.request_id.clone();
        self.entries.lock().put(
            id,
            Arc::new(Entry {
                request: Some(request),
                state,
            }),
        );
        guard
    }

    /// The entry of a request, creating an empty one (no details) when it is not known.
    pub fn entry(&self, request_id: &str) -> Arc<Entry<S>> {
        let mut entries = self.entries.lock();
        if let Some(e) = entries.get(request_id) {
            return e.clone();
        }
        let e = Arc::new(Entry {
            request: None,
            state: Arc::new(AsyncMutex::new(S::default())),
        });
        entries.put(request_id.to_string(), e.clone());
        e
    }

    /// The entry of a request, when known.
    pub fn get(&self, request_id: &str) -> Option<Arc<Entry<S>>> {
        self.entries.lock().get(request_id).cloned()
    }

    /// The details of a request, when still remembered.
    pub fn request(&self, request_id: &str) -> Option<CardRequest> {
        self.entries
            .lock()
            .get(request_id)
            .and_then(|e| e.request.clone())
    }
}

//! A sharded LRU keyed by (search_path, text). Sharding by the key's hash keeps sessions from
//! contending on one lock; a hit is a hash, a short lock, a string compare and an `Arc` clone.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

const SHARDS: usize = 16;

/// A cached value with the full key it was stored under (hash collisions are misses).
#[derive(Debug)]
struct Slot<V> {
    path: Box<[String]>,
    text: Box<str>,
    value: Arc<V>,
}

type Shard<V> = Mutex<LruCache<u64, Slot<V>>>;

pub(crate) struct Cache<V> {
    shards: Box<[Shard<V>]>,
    hasher: RandomState,
}

impl<V> Cache<V> {
    /// `None` for a capacity of zero: no caching.
    pub fn new(capacity: usize) -> Option<Cache<V>> {
        let per_shard = NonZeroUsize::new(capacity.div_ceil(SHARDS))?;
        Some(Cache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            hasher: RandomState::new(),
        })
    }

    pub fn key(&self, path: &[String], text: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        path.hash(&mut h);
        text.hash(&mut h);
        h.finish()
    }

    fn shard(&self, key: u64) -> &Shard<V> {
        &self.shards[(key as usize) % SHARDS]
    }

    pub fn get(&self, key: u64, path: &[String], text: &str) -> Option<Arc<V>> {
        let mut shard = self.shard(key).lock();
        let slot = shard.get(&key)?;
        (&*slot.text == text && &*slot.path == path).then(|| slot.value.clone())
    }

    pub fn put(&self, key: u64, path: &[String], text: &str, value: Arc<V>) {
        let slot = Slot {
            path: path.into(),
            text: text.into(),
            value,
        };
        self.shard(key).lock().put(key, slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_need_the_whole_key_and_capacity_bounds_entries() {
        let c: Cache<u32> = Cache::new(16).expect("cache");
        let p = vec!["public".to_string()];
        let k = c.key(&p, "a");
        c.put(k, &p, "a", Arc::new(1));
        assert_eq!(c.get(k, &p, "a").as_deref(), Some(&1));
        assert!(c.get(k, &p, "b").is_none(), "same hash, other text");
        assert!(c.get(k, &["app".into()], "a").is_none(), "other path");
        for i in 0..1000 {
            let t = format!("t{i}");
            let k = c.key(&p, &t);
            c.put(k, &p, &t, Arc::new(i));
        }
        let held: usize = c.shards.iter().map(|s| s.lock().len()).sum();
        assert!(held <= 16, "{held} entries for a capacity of 16");
        assert!(Cache::<u32>::new(0).is_none());
    }
}

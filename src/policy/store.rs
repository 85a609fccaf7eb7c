//! The live policy: one `Arc<Policy>` behind a lock that is held only to clone or swap the
//! pointer. Sessions take a snapshot per statement; a reload never blocks a decision for
//! longer than a pointer copy and never leaves the gateway without a policy.

use std::path::Path;
use std::sync::{Arc, RwLock};

use super::{Policy, PolicyError};

#[derive(Debug)]
pub struct PolicyStore {
    current: RwLock<Arc<Policy>>,
}

impl PolicyStore {
    pub fn new(policy: Policy) -> PolicyStore {
        PolicyStore {
            current: RwLock::new(Arc::new(policy)),
        }
    }

    /// The policy in force now. Hold on to the `Arc` for the whole statement so that one
    /// decision sees one policy.
    pub fn current(&self) -> Arc<Policy> {
        // A poisoned lock only means a panic elsewhere while swapping a pointer: the value
        // inside is still a whole policy.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the policy.
    pub fn replace(&self, policy: Policy) {
        let new = Arc::new(policy);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = new;
    }

    /// Loads `path` and swaps it in. On error the old policy stays in force, the error is
    /// logged and returned.
    pub fn reload(&self, path: &Path) -> Result<(), PolicyError> {
        match Policy::load(path) {
            Ok(p) => {
                tracing::info!(
                    path = %path.display(),
                    rules = p.rules().len(),
                    pii_patterns = p.pii_pattern_count(),
                    "policy reloaded"
                );
                self.replace(p);
                Ok(())
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "policy reload failed; keeping the previous policy");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_keeps_old_policy_on_error_and_swaps_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[[rule]]\nid = \"one\"\naction = \"deny\"\n").unwrap();
        let store = PolicyStore::new(Policy::load(&path).unwrap());
        let before = store.current();
        assert_eq!(before.rules()[0].id, "one");

        std::fs::write(
            &path,
            "[[rule]]\nid = \"two\"\naction = \"deny\"\nbogus = 1\n",
        )
        .unwrap();
        let err = store.reload(&path).unwrap_err().to_string();
        assert!(err.contains("p.toml:4"), "{err}");
        assert_eq!(store.current().rules()[0].id, "one");

        std::fs::write(&path, "[[rule]]\nid = \"two\"\naction = \"deny\"\n").unwrap();
        store.reload(&path).unwrap();
        assert_eq!(store.current().rules()[0].id, "two");
        // A snapshot taken before the reload is unaffected.
        assert_eq!(before.rules()[0].id, "one");
    }
}

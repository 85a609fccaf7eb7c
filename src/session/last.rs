//! The decision a session made last, kept for the next run of the same statement.
//!
//! Agents and their drivers run the same statements again and again, and the classifier hands
//! back the same shared analysis for each run (see [`crate::sql::Classified::statements`]).
//! Evaluating the policy over it again, and escaping its facts and decision into JSON again,
//! was close to half of what a session did per statement once the classification itself was
//! cached. Only the decision is kept, never the record: every run is still audited with its
//! own text, parameters, time and id.

use std::sync::Arc;

use crate::audit::{Part, Serialized};
use crate::policy::{Action, Decision, Policy};
use crate::sql::{Classifier, Facts};

/// A decision that depends only on the statements' facts, with what it was made under.
pub struct LastDecision {
    policy: Arc<Policy>,
    classifier: Arc<Classifier>,
    facts: Serialized<Arc<Vec<Facts>>>,
    decision: Serialized<Box<Decision>>,
    touches_pii: bool,
}

impl LastDecision {
    /// Whether `decision` may be reused: allow and deny follow from the facts, the policy and
    /// the catalog alone. Mask and hold decisions are not, since a mask rewrites the very
    /// text, and a hold is seen by a person anyway.
    pub fn reusable(decision: &Decision) -> bool {
        matches!(decision.action, Action::Allow | Action::Deny) && decision.rewritten.is_none()
    }

    /// Keeps a [`reusable`](Self::reusable) decision with what it was made under.
    pub fn keep(
        decision: Decision,
        touches_pii: bool,
        statements: &Arc<Vec<Facts>>,
        policy: &Arc<Policy>,
        classifier: &Arc<Classifier>,
    ) -> LastDecision {
        LastDecision {
            policy: policy.clone(),
            classifier: classifier.clone(),
            facts: Serialized::new(statements.clone()),
            decision: Serialized::new(Box::new(decision)),
            touches_pii,
        }
    }

    /// Whether this is the decision for `statements` under `policy` and `classifier`.
    ///
    /// By identity: a shared analysis never changes, and this holds a reference to it, so its
    /// address cannot be reused for another. A reloaded policy or a re-read catalog is another
    /// `Arc` and misses.
    pub fn holds_for(
        &self,
        statements: &Arc<Vec<Facts>>,
        policy: &Arc<Policy>,
        classifier: &Arc<Classifier>,
    ) -> bool {
        Arc::ptr_eq(self.facts.held(), statements)
            && Arc::ptr_eq(&self.policy, policy)
            && Arc::ptr_eq(&self.classifier, classifier)
    }

    pub fn decision(&self) -> Part<'_, Decision> {
        self.decision.part()
    }

    pub fn facts(&self) -> Part<'_, [Facts]> {
        self.facts.part().as_slice()
    }

    pub fn touches_pii(&self) -> bool {
        self.touches_pii
    }
}

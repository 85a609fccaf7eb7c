//! Decisions a session made lately, kept for the next runs of the same statements.
//!
//! Agents and their drivers run the same few statements again and again (pgbench's TPC-B-like
//! script cycles through seven), and the classifier hands back the same shared analysis for
//! each run (see [`crate::sql::Classified::statements`]).
//! Evaluating the policy over it again, and escaping its facts and decision into JSON again,
//! was about two fifths of what a session did per statement once the classification itself
//! was cached. Only the decision is kept, never the record: every run is still audited with its
//! own text, parameters, time and id.
//!
//! A mask decision carries the rewritten text, which is built from the statement's own text,
//! constants included, while statements that differ only in constants share one analysis. So
//! a mask is kept with the exact text it rewrote, and only that text reuses it. Rewriting and
//! checking the rewrite is the dearest thing a policy does (tens of microseconds, against about
//! one for allow), and reports and dashboards run the same masked reads again and again.

use std::sync::Arc;

use crate::audit::{Part, Serialized};
use crate::policy::{Action, Decision, Policy};
use crate::sql::{Classifier, Facts};

/// How many decisions a session keeps; the oldest goes first.
pub const KEPT: usize = 8;

/// A decision that depends only on the statements' facts, with what it was made under.
pub struct KeptDecision {
    /// For a mask, the text it rewrote: the only text it holds for.
    text: Option<Box<str>>,
    policy: Arc<Policy>,
    classifier: Arc<Classifier>,
    facts: Serialized<Arc<Vec<Facts>>>,
    decision: Serialized<Box<Decision>>,
    touches_pii: bool,
}

impl KeptDecision {
    /// Whether `decision` may be reused: allow and deny follow from the facts, the policy and
    /// the catalog alone, and a mask from those and the text it rewrote. A hold is not: it is
    /// seen by a person anyway, and a mask that could not be applied is a hold.
    pub fn reusable(decision: &Decision) -> bool {
        match decision.action {
            Action::Allow | Action::Deny => decision.rewritten.is_none(),
            Action::Mask => decision.rewritten.is_some(),
            Action::Hold => false,
        }
    }

    /// Keeps a [`reusable`](Self::reusable) decision with what it was made under; `text` is
    /// the unit's text the policy saw.
    pub fn keep(
        decision: Decision,
        touches_pii: bool,
        text: &str,
        statements: &Arc<Vec<Facts>>,
        policy: &Arc<Policy>,
        classifier: &Arc<Classifier>,
    ) -> KeptDecision {
        KeptDecision {
            text: (decision.action == Action::Mask).then(|| text.into()),
            policy: policy.clone(),
            classifier: classifier.clone(),
            facts: Serialized::new(statements.clone()),
            decision: Serialized::new(Box::new(decision)),
            touches_pii,
        }
    }

    /// Whether this was decided under `policy` and `classifier`: a kept decision that was not
    /// is of no further use, and would keep an old catalog snapshot alive.
    pub fn made_under(&self, policy: &Arc<Policy>, classifier: &Arc<Classifier>) -> bool {
        Arc::ptr_eq(&self.policy, policy) && Arc::ptr_eq(&self.classifier, classifier)
    }

    /// Whether this is the decision for `statements` (whose text is `text`) under `policy` and
    /// `classifier`.
    ///
    /// By identity: a shared analysis never changes, and this holds a reference to it, so its
    /// address cannot be reused for another. A reloaded policy or a re-read catalog is another
    /// `Arc` and misses. A mask also needs the very text it rewrote.
    pub fn holds_for(
        &self,
        statements: &Arc<Vec<Facts>>,
        text: &str,
        policy: &Arc<Policy>,
        classifier: &Arc<Classifier>,
    ) -> bool {
        Arc::ptr_eq(self.facts.held(), statements)
            && self.text.as_deref().is_none_or(|t| t == text)
            && self.made_under(policy, classifier)
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

//! Helpers over [`Flags`] for the policy and for printing.

use super::Flags;

impl Flags {
    /// The names of the flags that are set, in a fixed order (`explain` output, audit, cards).
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.data_modifying_cte, "data_modifying_cte"),
            (self.explain_analyze, "explain_analyze"),
            (self.creates_table, "creates_table"),
            (self.unbounded_write, "unbounded_write"),
            (self.truncate, "truncate"),
            (self.unsafe_function, "unsafe_function"),
            (self.server_side_copy, "server_side_copy"),
            (self.has_secret, "has_secret"),
            (self.foreign_encoding, "foreign_encoding"),
        ];
        all.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n)
            .collect()
    }

    /// True when the statement is riskier than its kind says and should not be allowed by a
    /// kind-level default: everything but `has_secret` (which only asks for redaction).
    pub fn needs_review(&self) -> bool {
        self.data_modifying_cte
            || self.explain_analyze
            || self.creates_table
            || self.unbounded_write
            || self.truncate
            || self.unsafe_function
            || self.server_side_copy
            || self.foreign_encoding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_review() {
        let mut f = Flags::default();
        assert!(f.names().is_empty());
        assert!(!f.needs_review());
        f.has_secret = true;
        assert!(!f.needs_review());
        f.truncate = true;
        assert_eq!(f.names(), vec!["truncate", "has_secret"]);
        assert!(f.needs_review());
    }
}

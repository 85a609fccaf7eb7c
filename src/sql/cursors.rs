//! Which cursor names a `FETCH` may read as their `DECLARE` was decided.
//!
//! A FETCH returns rows of whatever cursor holds its name when it runs. The gate judged the
//! query of a cursor the session declared, so reading *that* cursor is a plain read. But by the
//! time the FETCH runs the name may hold something else, and a function the policy lists as
//! safe may open a refcursor under any name its caller gives it:
//!
//! - the DECLARE may have been refused, withdrawn or failed, so it never took the name;
//! - the cursor's transaction may have ended (a cursor without `WITH HOLD` closes when it
//!   commits, every cursor the transaction declared when it rolls back), or a
//!   `ROLLBACK TO SAVEPOINT` may have closed it;
//! - a `CLOSE` or `DISCARD ALL` may have freed the name;
//! - code the classifier cannot see into — a user-defined function, a trigger behind a write,
//!   anything held as `unknown` — may have closed it and opened another under its name.
//!
//! So a name is readable only from a DECLARE the server confirmed, while its cursor is open
//! (in the transaction still open, or `WITH HOLD` after a commit), with none of the above
//! classified since; or from a DECLARE earlier in the same statement text with none of the
//! above in between (an error there skips the rest of the text, so the FETCH runs only if the
//! DECLARE did). Everything here errs towards forgetting: a name forgotten too eagerly only
//! makes a FETCH `unknown`, and held. A rollback, or any error, forgets `WITH HOLD` cursors too.
//!
//! The confirmation comes from the relay ([`Readable::confirmed`]): a DECLARE's CommandComplete,
//! handed over only at a ReadyForQuery with no error since the one before that says a
//! transaction is still open (or, for `WITH HOLD`, that it ended). Any other ReadyForQuery ends
//! what was confirmed ([`Readable::transaction_ended`]).

use super::{Facts, Kind};

/// Names remembered in each list; past this the oldest is forgotten (its FETCH is then held).
const MAX_NAMES: usize = 64;

/// One DECLARE of a cursor name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Declared {
    name: String,
    /// The session state's stamp when it was classified: its confirmation names it by this.
    stamp: u64,
    /// `WITH HOLD`: it outlives a transaction that commits.
    hold: bool,
    /// Its query calls functions the classifier cannot see into. Running it (a FETCH or MOVE)
    /// may close and reopen *other* cursors; not itself, as PostgreSQL refuses to close an
    /// active cursor.
    runs_code: bool,
}

/// The session's readable cursor names (see the module doc).
#[derive(Debug, Clone, Default)]
pub(crate) struct Readable {
    /// Confirmed by the server, in the transaction still open.
    confirmed: Vec<Declared>,
    /// Classified and forwarded, perhaps: waiting for the server's word.
    pending: Vec<Declared>,
    /// Declared earlier in the text being classified.
    here: Vec<Declared>,
}

impl Readable {
    /// Nothing to read and nothing waiting: classifying a statement cannot change anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.confirmed.is_empty() && self.pending.is_empty() && self.here.is_empty()
    }

    /// Whether a FETCH of `name` reads the cursor the session declared under it.
    pub(crate) fn may_read(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// The DECLAREs a FETCH may read: earlier in this text, or confirmed.
    fn vouched(&self) -> impl Iterator<Item = &Declared> {
        self.here.iter().chain(&self.confirmed)
    }

    fn find(&self, name: &str) -> Option<&Declared> {
        self.vouched().find(|d| d.name == name)
    }

    /// A `DECLARE name CURSOR FOR …` classified, its query's facts already passed to
    /// [`Readable::statement`]; `runs_code`: the query calls functions the classifier cannot
    /// see into.
    pub(crate) fn declare(&mut self, name: String, stamp: u64, hold: bool, runs_code: bool) {
        let d = Declared {
            name,
            stamp,
            hold,
            runs_code,
        };
        push(&mut self.here, d.clone());
        push(&mut self.pending, d);
    }

    /// A `CLOSE name` (or `CLOSE ALL`, None) classified: whether or not it runs, the name is no
    /// longer vouched for.
    pub(crate) fn close(&mut self, name: Option<&str>) {
        match name {
            None => self.forget_all(),
            Some(n) => {
                for list in [&mut self.confirmed, &mut self.pending, &mut self.here] {
                    list.retain(|d| d.name != n);
                }
            }
        }
    }

    /// A FETCH of `name` classified as a read of it: running its query may replace the others.
    pub(crate) fn fetch(&mut self, name: &str) {
        if self.find(name).is_some_and(|d| d.runs_code) {
            for list in [&mut self.confirmed, &mut self.pending, &mut self.here] {
                list.retain(|d| d.name == name);
            }
        }
    }

    /// Any other statement classified with `facts`: when it may run code that closes or opens
    /// cursors, or end the transaction, every name is forgotten.
    pub(crate) fn statement(&mut self, facts: &Facts) {
        if self.is_empty() {
            return;
        }
        // A MOVE names no cursor the classifier reads, and runs the query of whichever.
        let moves_code = facts.label.starts_with("MOVE") && self.vouched().any(|d| d.runs_code);
        match if moves_code {
            Impact::Replaces
        } else {
            impact(facts)
        } {
            Impact::Keeps => {}
            Impact::Commits => self.keep_held(),
            Impact::Replaces => self.forget_all(),
        }
    }

    /// The text being classified ends: its DECLAREs count from now on only once confirmed.
    pub(crate) fn end_text(&mut self) {
        self.here.clear();
    }

    /// The server ran the DECLARE classified with `stamp`, and its transaction is still open.
    /// A DECLARE forgotten since (a CLOSE, a COMMIT, a function call classified after it) stays
    /// forgotten.
    pub(crate) fn confirmed(&mut self, stamp: u64) {
        if let Some(i) = self.pending.iter().position(|d| d.stamp == stamp) {
            let d = self.pending.remove(i);
            self.confirmed.retain(|c| c.name != d.name);
            push(&mut self.confirmed, d);
        }
    }

    /// The server's transaction ended: only `WITH HOLD` cursors may be open, and only when it
    /// `committed` (no error and not in a failed transaction).
    pub(crate) fn transaction_ended(&mut self, committed: bool) {
        if committed {
            self.confirmed.retain(|d| d.hold);
            self.pending.retain(|d| d.hold);
        } else {
            self.confirmed.clear();
            self.pending.clear();
        }
    }

    /// A COMMIT classified: whether or not it succeeds, only `WITH HOLD` cursors may survive
    /// it (a failed commit rolls back, and the relay then reports an error).
    fn keep_held(&mut self) {
        for list in [&mut self.confirmed, &mut self.pending, &mut self.here] {
            list.retain(|d| d.hold);
        }
    }

    fn forget_all(&mut self) {
        self.confirmed.clear();
        self.pending.clear();
        self.here.clear();
    }
}

fn push(list: &mut Vec<Declared>, d: Declared) {
    list.retain(|x| x.name != d.name);
    if list.len() >= MAX_NAMES {
        list.remove(0);
    }
    list.push(d);
}

/// What a statement may do to the open cursors.
enum Impact {
    Keeps,
    /// Ends the transaction by committing it: `WITH HOLD` cursors stay.
    Commits,
    /// May close cursors and open others, or roll back the transaction that holds them.
    Replaces,
}

fn impact(facts: &Facts) -> Impact {
    if calls_unseen_code(facts) {
        return Impact::Replaces;
    }
    match facts.kind {
        Kind::Read | Kind::Catalog | Kind::Export | Kind::Session => Impact::Keeps,
        Kind::Txn => transaction_impact(&facts.label),
        Kind::Write | Kind::Ddl | Kind::Role | Kind::Utility | Kind::Unknown => Impact::Replaces,
    }
}

/// BEGIN, SAVEPOINT, RELEASE and SET TRANSACTION leave cursors open; COMMIT and END (the
/// classifier labels both COMMIT, AND CHAIN or not) keep `WITH HOLD` ones; ROLLBACK, ABORT,
/// ROLLBACK TO SAVEPOINT and anything else close them.
fn transaction_impact(label: &str) -> Impact {
    let l = label.to_ascii_uppercase();
    let starts = |ks: &[&str]| ks.iter().any(|k| l.starts_with(k));
    if starts(&[
        "BEGIN",
        "START TRANSACTION",
        "SAVEPOINT",
        "RELEASE",
        "SET TRANSACTION",
    ]) {
        Impact::Keeps
    } else if starts(&["COMMIT", "END"]) && !l.contains("PREPARED") {
        Impact::Commits
    } else {
        Impact::Replaces
    }
}

/// Calls a function that is not a built-in: its body is not something the classifier read.
pub(crate) fn calls_unseen_code(facts: &Facts) -> bool {
    facts
        .functions
        .iter()
        .any(|f| !(f.starts_with("pg_catalog.") || f.starts_with("information_schema.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: Kind, label: &str, functions: &[&str]) -> Facts {
        Facts {
            kind,
            label: label.into(),
            functions: functions.iter().map(|f| f.to_string()).collect(),
            ..Facts::unknown("")
        }
    }

    /// As the session declares: the query's facts first, then the name.
    fn declare(r: &mut Readable, name: &str, stamp: u64, hold: bool, query: &Facts) {
        r.statement(query);
        r.declare(name.into(), stamp, hold, calls_unseen_code(query));
    }

    fn read() -> Facts {
        facts(Kind::Read, "SELECT", &["pg_catalog.now"])
    }

    #[test]
    fn a_declare_counts_in_its_text_and_then_only_once_confirmed() {
        let mut r = Readable::default();
        declare(&mut r, "c", 1, false, &read());
        assert!(r.may_read("c"));
        r.end_text();
        assert!(!r.may_read("c"), "not confirmed yet");
        r.confirmed(2);
        assert!(!r.may_read("c"), "another DECLARE's confirmation");
        r.confirmed(1);
        assert!(r.may_read("c"));
        r.transaction_ended(true);
        assert!(!r.may_read("c"));
        assert!(r.is_empty());
    }

    #[test]
    fn what_may_replace_a_cursor_forgets_every_name() {
        for (f, forgets) in [
            (read(), false),
            (facts(Kind::Txn, "SAVEPOINT", &[]), false),
            (facts(Kind::Txn, "RELEASE SAVEPOINT", &[]), false),
            (facts(Kind::Txn, "COMMIT", &[]), true),
            (facts(Kind::Txn, "ROLLBACK", &[]), true),
            (facts(Kind::Txn, "END", &[]), true),
            (
                facts(Kind::Read, "SELECT", &["public.open_customers"]),
                true,
            ),
            (facts(Kind::Read, "SELECT", &["open_customers"]), true),
            (facts(Kind::Write, "INSERT", &[]), true),
            (facts(Kind::Unknown, "DO block", &[]), true),
        ] {
            let mut r = Readable::default();
            declare(&mut r, "c", 1, false, &read());
            r.confirmed(1);
            r.statement(&f);
            assert_eq!(!r.may_read("c"), forgets, "{f:?}");
        }
    }

    /// A confirmation that arrives after a COMMIT or CLOSE was classified does not revive it.
    #[test]
    fn a_late_confirmation_does_not_undo_a_later_forgetting() {
        let mut r = Readable::default();
        declare(&mut r, "a", 1, false, &read());
        declare(&mut r, "b", 2, false, &read());
        r.close(Some("a"));
        r.end_text();
        r.confirmed(1);
        r.confirmed(2);
        assert!(!r.may_read("a"));
        assert!(r.may_read("b"));
        declare(&mut r, "c", 3, false, &read());
        r.statement(&facts(Kind::Txn, "COMMIT", &[]));
        r.confirmed(3);
        assert!(!r.may_read("c"));
        assert!(!r.may_read("b"));
    }

    /// Reading a cursor whose query calls a user-defined function runs that function, which
    /// may replace the other cursors (not the one it runs in).
    #[test]
    fn running_a_cursors_unseen_code_forgets_the_others() {
        let mut r = Readable::default();
        let calls = facts(Kind::Read, "SELECT", &["public.f"]);
        declare(&mut r, "early", 1, false, &read());
        // Planning its query may run the function already.
        declare(&mut r, "calls", 2, false, &calls);
        assert!(!r.may_read("early"));
        assert!(r.may_read("calls"), "declared after its own check");
        declare(&mut r, "plain", 3, false, &read());
        r.fetch("plain");
        assert!(r.may_read("calls"));
        r.fetch("calls");
        assert!(r.may_read("calls"));
        assert!(!r.may_read("plain"));
        declare(&mut r, "plain", 4, false, &read());
        r.statement(&facts(Kind::Read, "MOVE 1 IN calls", &[]));
        assert!(r.is_empty());
    }

    /// A `WITH HOLD` cursor outlives a commit, not a rollback or an error.
    #[test]
    fn a_held_cursor_outlives_a_commit_only() {
        let mut r = Readable::default();
        declare(&mut r, "held", 1, true, &read());
        declare(&mut r, "plain", 2, false, &read());
        r.statement(&facts(Kind::Txn, "COMMIT", &[]));
        assert!(r.may_read("held"), "in its text");
        assert!(!r.may_read("plain"));
        r.end_text();
        r.transaction_ended(true);
        r.confirmed(1);
        r.confirmed(2);
        assert!(r.may_read("held"));
        assert!(!r.may_read("plain"));
        r.transaction_ended(true);
        assert!(r.may_read("held"));
        r.transaction_ended(false);
        assert!(!r.may_read("held"));
        declare(&mut r, "held", 3, true, &read());
        r.confirmed(3);
        r.statement(&facts(Kind::Txn, "ROLLBACK", &[]));
        assert!(r.is_empty());
    }

    #[test]
    fn names_past_the_limit_are_forgotten_oldest_first() {
        let mut r = Readable::default();
        for i in 0..=MAX_NAMES as u64 {
            declare(&mut r, &format!("c{i}"), i, false, &read());
            r.confirmed(i);
        }
        assert!(!r.may_read("c0"));
        assert!(r.may_read(&format!("c{MAX_NAMES}")));
    }
}

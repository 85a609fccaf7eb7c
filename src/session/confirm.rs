//! What the server confirmed: the session state the gate judges by changes when the server
//! says a message ran, not when the gate classified it.
//!
//! The gate sees a Parse or Close before the server does, and the server may refuse or skip it:
//! after an error in the extended protocol, PostgreSQL skips every message up to the next Sync.
//! Had the gate recorded a skipped `Parse ''` as the unnamed statement's new text, a later
//! Bind of it would be judged by a text the server never took while the server runs the old
//! one. So the front records each forwarded Parse and Close here as unresolved, in order, and
//! the back direction resolves them from the server's ParseComplete (`1`) and CloseComplete
//! (`3`): the n-th of those answers the n-th Parse or Close still waiting. What its segment's
//! ReadyForQuery finds unanswered was skipped and is dropped. Until then a Bind is judged by
//! the confirmed text and every unresolved one.
//!
//! SQL-level forgetting (`DEALLOCATE`, `CLOSE`, `DISCARD ALL`, see
//! [`crate::sql::Deferred`]) travels with its unit to the back direction, which hands it back
//! here when the statement's CommandComplete arrives; the front applies it before deciding
//! its next unit. A `DECLARE` travels the same way but is handed back only at the next
//! ReadyForQuery, and only when no error came since the previous one and that says a
//! transaction is open (or, for `WITH HOLD`, that it committed); any other ReadyForQuery after
//! a confirmed DECLARE says the transaction ended ([`SqlNews::TransactionEnded`]): a FETCH
//! reads a cursor as its DECLARE was decided only while the cursor is the one declared.
//!
//! The back direction applies all of this while walking the server's messages, before it
//! writes the ReadyForQuery that follows them: a client that waits for its results always
//! sends its next message to a gate that knows them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::sql::Deferred;

/// Distinct texts a Bind is judged by, at most: past this the Bind is held (see
/// [`Candidates::overflowed`]).
pub const MAX_TEXTS: usize = 8;

/// One statement text as parsed upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub text: String,
    /// The parameter type OIDs the Parse gave (0 or absent: the server infers the type). They
    /// choose among a function's overloads, so they are part of what an approval binds.
    pub types: Vec<u32>,
    /// The gate rewrote the Parse to a masked text: running the statement runs that text.
    pub masked: bool,
}

/// A Parse or Close the gate forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Parse {
        name: String,
        stmt: Stmt,
    },
    CloseStatement(String),
    /// Answered by a CloseComplete too; kept only to stay in step.
    ClosePortal,
}

/// What a statement name may hold on the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    pub stmts: Vec<Stmt>,
    /// More texts than [`MAX_TEXTS`]: `stmts` is not all of them.
    pub overflowed: bool,
}

impl Candidates {
    fn add(&mut self, s: &Stmt) {
        if self.stmts.contains(s) {
            return;
        }
        if self.stmts.len() >= MAX_TEXTS {
            self.overflowed = true;
            return;
        }
        self.stmts.push(s.clone());
    }
}

/// What the server is answering when a ParseComplete or CloseComplete arrives, as the relay
/// sees it: the Sync that will close the oldest unanswered unit, if it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answering {
    /// The segment with this number (see [`Book::sent`]).
    Segment(u64),
    /// A simple Query, which no ParseComplete or CloseComplete answers.
    Query,
    /// Not known yet (the segment's Sync has not been sent).
    Unknown,
}

#[derive(Debug)]
struct Unresolved {
    segment: u64,
    op: Op,
}

/// The confirmed state and what is still in flight. Shared by the two directions of one
/// session ([`Confirmations`]).
#[derive(Debug, Default)]
pub struct Book {
    /// Statement texts the server confirmed, by name (`""` is the unnamed statement).
    confirmed: HashMap<String, Stmt>,
    /// Forwarded Parses and Closes not answered yet, in the order sent.
    unresolved: VecDeque<Unresolved>,
    /// The answers can no longer be matched to what was sent (a simple Query in the middle
    /// of an extended segment may be skipped without an answer, an answer came that nothing
    /// asks for). From then on, no Parse is ever taken back: every text parsed under a name
    /// stays a candidate for it, as before the server confirmed anything.
    lost: bool,
    /// In lost mode: every text parsed under each name since.
    maybe: HashMap<String, Candidates>,
    /// SQL-level effects the server confirmed, in order, for the front to apply.
    sql_ran: Vec<SqlNews>,
}

/// What the back direction learnt about the session's SQL state, in the server's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlNews {
    /// The statement of this effect ran.
    Ran(Deferred),
    /// A ReadyForQuery outside a transaction, in a failed one, or after an error, following a
    /// confirmed DECLARE: no cursor declared so far is open, except `WITH HOLD` ones when the
    /// transaction `committed` (no error, and none is open now).
    TransactionEnded { committed: bool },
}

/// A session's [`Book`], shared by the front and back directions.
pub type Confirmations = Arc<parking_lot::Mutex<Book>>;

impl Book {
    /// Everything a Bind to `name` may run, as far as Parses of earlier segments go.
    pub fn candidates(&self, name: &str) -> Candidates {
        let mut c = self.maybe.get(name).cloned().unwrap_or_default();
        if let Some(s) = self.confirmed.get(name) {
            c.add(s);
        }
        for u in &self.unresolved {
            if let Op::Parse { name: n, stmt } = &u.op {
                if n == name {
                    c.add(stmt);
                }
            }
        }
        c
    }

    /// Records what one forwarded unit of segment `segment` parsed and closed, in order.
    pub fn sent(&mut self, segment: u64, ops: Vec<Op>) {
        if self.lost {
            for op in ops {
                if let Op::Parse { name, stmt } = op {
                    self.maybe.entry(name).or_default().add(&stmt);
                }
            }
            return;
        }
        self.unresolved
            .extend(ops.into_iter().map(|op| Unresolved { segment, op }));
    }

    /// Stops matching answers for the rest of the session (see [`Book::lost`]).
    pub fn lose(&mut self, why: &str) {
        if self.lost {
            return;
        }
        tracing::warn!(
            why,
            "server answers no longer match the statements sent: every text parsed under a name stays a candidate"
        );
        self.lost = true;
        for u in std::mem::take(&mut self.unresolved) {
            if let Op::Parse { name, stmt } = u.op {
                self.maybe.entry(name).or_default().add(&stmt);
            }
        }
    }

    /// A ParseComplete or CloseComplete arrives while the server answers `answering`: the
    /// oldest op waiting must be of that segment. One of an earlier segment means that
    /// segment's ReadyForQuery was matched to something else, and one of a later segment
    /// (or an answer during a simple Query) that the answers no longer line up with what was
    /// sent: crediting it would record a text the server may not hold, so matching stops.
    pub fn answering(&mut self, answering: Answering) {
        if self.lost {
            return;
        }
        let oldest = self.unresolved.front().map(|u| u.segment);
        match (answering, oldest) {
            (Answering::Segment(s), Some(o)) if s != o => {
                self.lose("a ParseComplete or CloseComplete answered another segment")
            }
            (Answering::Query, Some(_)) => {
                self.lose("a ParseComplete or CloseComplete arrived for a simple Query")
            }
            _ => {}
        }
    }

    /// A ParseComplete: the oldest unresolved op is a Parse the server took.
    pub fn parse_complete(&mut self) {
        if self.lost {
            return;
        }
        match self.unresolved.pop_front() {
            Some(Unresolved {
                op: Op::Parse { name, stmt },
                ..
            }) => {
                self.confirmed.insert(name, stmt);
            }
            other => self.mismatch(other, "ParseComplete without a Parse waiting"),
        }
    }

    /// A CloseComplete: the oldest unresolved op is a Close the server did.
    pub fn close_complete(&mut self) {
        if self.lost {
            return;
        }
        match self.unresolved.pop_front() {
            Some(Unresolved {
                op: Op::CloseStatement(name),
                ..
            }) => {
                self.confirmed.remove(&name);
            }
            Some(Unresolved {
                op: Op::ClosePortal,
                ..
            }) => {}
            other => self.mismatch(other, "CloseComplete without a Close waiting"),
        }
    }

    /// An answer that does not fit what waits: what waits stays a candidate, for good.
    fn mismatch(&mut self, waiting: Option<Unresolved>, why: &str) {
        if let Some(u) = waiting {
            self.unresolved.push_front(u);
        }
        self.lose(why);
    }

    /// The ReadyForQuery answering segment `segment`'s Sync: whatever of it (or before it) is
    /// unanswered was skipped after an error.
    pub fn segment_closed(&mut self, segment: u64) {
        while self
            .unresolved
            .front()
            .is_some_and(|u| u.segment <= segment)
        {
            self.unresolved.pop_front();
        }
    }

    /// The server ran a statement with a SQL-level effect, or ended a transaction.
    pub fn sql_ran(&mut self, news: SqlNews) {
        self.sql_ran.push(news);
    }

    /// What the server confirmed since the last call, in order.
    pub fn take_sql_ran(&mut self) -> Vec<SqlNews> {
        std::mem::take(&mut self.sql_ran)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, text: &str) -> Op {
        Op::Parse {
            name: name.into(),
            stmt: stmt(text),
        }
    }

    fn stmt(text: &str) -> Stmt {
        Stmt {
            text: text.into(),
            types: Vec::new(),
            masked: false,
        }
    }

    fn texts(b: &Book, name: &str) -> Vec<String> {
        b.candidates(name)
            .stmts
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn a_parse_is_a_candidate_until_answered_then_the_only_text() {
        let mut b = Book::default();
        b.sent(0, vec![parse("", "SELECT ssn FROM customers")]);
        b.parse_complete();
        b.segment_closed(0);
        b.sent(1, vec![parse("", "SELECT 1")]);
        assert_eq!(texts(&b, ""), ["SELECT ssn FROM customers", "SELECT 1"]);
        b.parse_complete();
        assert_eq!(texts(&b, ""), ["SELECT 1"]);
    }

    /// `[Describe 'nope'; Parse '' …; Sync]`: the Describe fails, the Parse is skipped, the
    /// segment's ReadyForQuery drops it, and the unnamed statement keeps its text.
    #[test]
    fn a_skipped_parse_is_dropped_at_its_segments_end() {
        let mut b = Book::default();
        b.sent(0, vec![parse("", "SELECT ssn FROM customers")]);
        b.parse_complete();
        b.segment_closed(0);
        b.sent(1, vec![parse("", "SELECT 1")]);
        b.segment_closed(1);
        assert_eq!(texts(&b, ""), ["SELECT ssn FROM customers"]);
        // The next segment's answers line up with its own Parse.
        b.sent(2, vec![parse("", "SELECT 2")]);
        b.parse_complete();
        assert_eq!(texts(&b, ""), ["SELECT 2"]);
    }

    #[test]
    fn a_skipped_close_keeps_the_statement_and_a_done_one_forgets_it() {
        let mut b = Book::default();
        b.sent(0, vec![parse("s", "DELETE FROM orders")]);
        b.parse_complete();
        b.segment_closed(0);
        b.sent(1, vec![Op::CloseStatement("s".into())]);
        b.segment_closed(1);
        // Refused: the name is still taken (42P05).
        b.sent(2, vec![parse("s", "SELECT 1")]);
        b.segment_closed(2);
        assert_eq!(texts(&b, "s"), ["DELETE FROM orders"]);
        b.sent(3, vec![Op::ClosePortal, Op::CloseStatement("s".into())]);
        b.close_complete();
        b.close_complete();
        assert!(texts(&b, "s").is_empty());
    }

    /// Segments sent before earlier ones are answered: both texts count until each is.
    #[test]
    fn pipelined_segments_resolve_in_order() {
        let mut b = Book::default();
        b.sent(0, vec![parse("a", "SELECT 1"), parse("", "SELECT 2")]);
        b.sent(1, vec![parse("", "SELECT 3")]);
        assert_eq!(texts(&b, ""), ["SELECT 2", "SELECT 3"]);
        b.parse_complete();
        b.parse_complete();
        assert_eq!(texts(&b, ""), ["SELECT 2", "SELECT 3"]);
        b.segment_closed(0);
        b.parse_complete();
        assert_eq!(texts(&b, ""), ["SELECT 3"]);
        assert_eq!(texts(&b, "a"), ["SELECT 1"]);
    }

    /// H2: segment 1's ReadyForQuery was never matched (it was taken for another unit), so
    /// the server's answer to segment 2's Parse must not confirm segment 1's.
    #[test]
    fn an_answer_for_another_segment_stops_matching() {
        let mut b = Book::default();
        b.sent(1, vec![parse("s", "SELECT 1")]);
        b.sent(2, vec![parse("s", "SELECT ssn FROM customers")]);
        b.answering(Answering::Segment(2));
        b.parse_complete();
        assert!(b.lost);
        assert_eq!(texts(&b, "s"), ["SELECT 1", "SELECT ssn FROM customers"]);
        let mut b = Book::default();
        b.sent(1, vec![parse("s", "SELECT 1")]);
        b.answering(Answering::Query);
        assert!(b.lost);
        let mut b = Book::default();
        b.sent(1, vec![parse("s", "SELECT 1")]);
        b.answering(Answering::Segment(1));
        b.parse_complete();
        assert!(!b.lost);
        assert_eq!(texts(&b, "s"), ["SELECT 1"]);
    }

    #[test]
    fn an_answer_nothing_waits_for_keeps_every_text_from_then_on() {
        let mut b = Book::default();
        b.sent(0, vec![parse("", "SELECT ssn FROM customers")]);
        b.close_complete();
        assert!(b.lost);
        assert_eq!(texts(&b, ""), ["SELECT ssn FROM customers"]);
        b.sent(1, vec![parse("", "SELECT 1")]);
        b.parse_complete();
        b.segment_closed(1);
        assert_eq!(texts(&b, ""), ["SELECT ssn FROM customers", "SELECT 1"]);
        for i in 0..MAX_TEXTS {
            b.sent(2, vec![parse("", &format!("SELECT {i}0"))]);
        }
        assert!(b.candidates("").overflowed);
    }
}

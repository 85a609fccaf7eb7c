//! Property test: however a session interleaves DECLARE, CLOSE, transactions, refusals, errors
//! and a function that closes a cursor and opens another under its name, a FETCH the gateway
//! classifies as a plain read never reads a cursor the session did not declare; and a FETCH of
//! a cursor declared and confirmed with nothing since that could have replaced it is a read.
//!
//! The server is a model of PostgreSQL's rules for cursors in single-statement simple Queries
//! (transaction blocks, aborted transactions, `WITH HOLD`, name clashes); the gateway side is
//! the real classifier and session state, fed by the relay's real hand-over of DECLAREs
//! ([`super::back::Declares`]) through a real confirmation book.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::back::Declares;
use super::confirm::{Book, Confirmations, SqlNews};
use crate::sql::{Catalog, Classifier, ClassifierOptions, Deferred, Kind, SessionSqlState};

const NAMES: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone)]
enum Stmt {
    Begin,
    Commit,
    Rollback,
    Declare {
        name: usize,
        hold: bool,
    },
    Close(usize),
    /// A function the policy lists as safe: closes the cursor of that name if there is one,
    /// and opens another under it over data the session never asked for.
    Reopen(usize),
    Fetch(usize),
    Select,
}

impl Stmt {
    fn sql(&self) -> String {
        match self {
            Stmt::Begin => "BEGIN".into(),
            Stmt::Commit => "COMMIT".into(),
            Stmt::Rollback => "ROLLBACK".into(),
            Stmt::Declare { name, hold } => format!(
                "DECLARE {} CURSOR{} FOR SELECT 1",
                NAMES[*name],
                if *hold { " WITH HOLD" } else { "" }
            ),
            Stmt::Close(n) => format!("CLOSE {}", NAMES[*n]),
            Stmt::Reopen(n) => format!("SELECT reopen('{}')", NAMES[*n]),
            Stmt::Fetch(n) => format!("FETCH ALL FROM {}", NAMES[*n]),
            Stmt::Select => "SELECT 1".into(),
        }
    }
}

fn stmt() -> impl Strategy<Value = Stmt> {
    prop_oneof![
        Just(Stmt::Begin),
        Just(Stmt::Commit),
        Just(Stmt::Rollback),
        (0..2usize, any::<bool>()).prop_map(|(name, hold)| Stmt::Declare { name, hold }),
        (0..2usize).prop_map(Stmt::Close),
        (0..2usize).prop_map(Stmt::Reopen),
        (0..2usize).prop_map(Stmt::Fetch),
        (0..2usize).prop_map(Stmt::Fetch),
        Just(Stmt::Select),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Cursor {
    /// Declared by the session (its query was judged), or opened by the function.
    declared: bool,
    hold: bool,
    /// Opened in the transaction still open (a rollback closes it).
    this_txn: bool,
}

/// PostgreSQL's cursor rules, for one statement per Query.
#[derive(Debug, Default)]
struct Server {
    in_txn: bool,
    aborted: bool,
    cursors: HashMap<usize, Cursor>,
}

impl Server {
    /// Runs `s`; false when it fails.
    fn run(&mut self, s: &Stmt) -> bool {
        if self.aborted && !matches!(s, Stmt::Commit | Stmt::Rollback) {
            return false;
        }
        let ok = match s {
            Stmt::Begin => {
                self.in_txn = true;
                true
            }
            Stmt::Commit | Stmt::Rollback => {
                let commit = matches!(s, Stmt::Commit) && !self.aborted;
                self.end_txn(commit);
                true
            }
            Stmt::Declare { name, hold } => {
                if self.cursors.contains_key(name) || (!self.in_txn && !hold) {
                    false
                } else {
                    self.cursors.insert(
                        *name,
                        Cursor {
                            declared: true,
                            hold: *hold,
                            this_txn: true,
                        },
                    );
                    true
                }
            }
            Stmt::Close(n) | Stmt::Fetch(n) if !self.cursors.contains_key(n) => false,
            Stmt::Close(n) => {
                self.cursors.remove(n);
                true
            }
            Stmt::Reopen(n) => {
                self.cursors.remove(n);
                // Outside a transaction block the function's cursor closes with its statement.
                if self.in_txn {
                    self.cursors.insert(
                        *n,
                        Cursor {
                            declared: false,
                            hold: false,
                            this_txn: true,
                        },
                    );
                }
                true
            }
            Stmt::Fetch(_) | Stmt::Select => true,
        };
        if !self.in_txn {
            // A statement outside a block is a transaction of its own.
            self.end_txn(ok);
        } else if !ok {
            self.aborted = true;
        }
        ok
    }

    fn end_txn(&mut self, commit: bool) {
        self.cursors.retain(|_, c| {
            if commit {
                c.hold
            } else {
                !c.this_txn && c.hold
            }
        });
        for c in self.cursors.values_mut() {
            c.this_txn = false;
        }
        self.in_txn = false;
        self.aborted = false;
    }

    fn status(&self) -> u8 {
        match (self.in_txn, self.aborted) {
            (false, _) => b'I',
            (true, false) => b'T',
            (true, true) => b'E',
        }
    }
}

fn classifier() -> Classifier {
    let catalog = Catalog::builder().search_path(&["public"]).build();
    let opts = ClassifierOptions {
        safe_functions: vec!["reopen".into()],
        ..ClassifierOptions::default()
    };
    Classifier::new(Arc::new(catalog), opts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn a_fetch_read_as_declared_reads_a_declared_cursor(
        steps in proptest::collection::vec((stmt(), 0..10u8), 1..40)
    ) {
        let c = classifier();
        let mut state = SessionSqlState::new(c.catalog());
        let book: Confirmations = Arc::new(parking_lot::Mutex::new(Book::default()));
        let mut declares = Declares::default();
        let mut server = Server::default();
        // Cursors the gateway should still vouch for: declared, confirmed, and nothing since
        // that may have replaced them (an error, a rollback, the function, a commit of one
        // without WITH HOLD).
        let mut vouched: HashMap<usize, bool> = HashMap::new();
        for (s, dice) in steps {
            // The front applies what the server confirmed before deciding the next unit.
            for news in book.lock().take_sql_ran() {
                match news {
                    SqlNews::Ran(d) => state.confirm(&d),
                    SqlNews::TransactionEnded { committed } => state.transaction_ended(committed),
                }
            }
            let f = c.classify_in_session(&mut state, &s.sql()).statements[0].clone();
            let effects = state.take_deferred();
            if let Stmt::Fetch(n) = s {
                prop_assert_eq!(
                    f.kind == Kind::Read,
                    vouched.contains_key(&n),
                    "FETCH {} after {:?}", NAMES[n], vouched
                );
                if f.kind == Kind::Read {
                    let held = server.cursors.get(&n).copied();
                    prop_assert!(
                        held.is_none_or(|c| c.declared),
                        "FETCH {} read as declared, but the server holds {:?}", NAMES[n], held
                    );
                }
            }
            // One in ten is refused by the policy: nothing runs, and inside a transaction
            // the gateway fails it.
            let ok = if dice == 0 {
                if server.in_txn {
                    server.aborted = true;
                }
                false
            } else {
                server.run(&s)
            };
            if ok {
                for d in effects {
                    match d {
                        Deferred::Declare { .. } => declares.ran.push(d),
                        d => book.lock().sql_ran(SqlNews::Ran(d)),
                    }
                }
            }
            declares.ready(server.status(), !ok, &book);
            let unknown_fetch = matches!(s, Stmt::Fetch(n) if !vouched.contains_key(&n));
            match (&s, ok) {
                (_, false) | (Stmt::Rollback | Stmt::Reopen(_), _) => vouched.clear(),
                // Held as unknown: anything may run under it.
                _ if unknown_fetch => vouched.clear(),
                (Stmt::Commit, true) => vouched.retain(|_, hold| *hold),
                (Stmt::Close(n), true) => {
                    vouched.remove(n);
                }
                (Stmt::Declare { name, hold }, true) if *hold || server.in_txn => {
                    vouched.insert(*name, *hold);
                }
                _ => {}
            }
        }
    }
}

//! Per-session SQL state: SQL-level prepared statements, cursors and the session's search_path.

use std::collections::HashMap;
use std::sync::Arc;

use super::classify::Entry;
use super::commands::wrap_explain;
use super::cursors::{calls_unseen_code, Readable};
use super::scope::union_into;
use super::statement::{Effect, Wrap};
use super::text::safe_name;
use super::{Catalog, Classified, Facts, Flags, Kind};

/// The label of a FETCH whose cursor the session cannot vouch for (see [`super::cursors`]).
pub const UNVOUCHED_FETCH: &str =
    "FETCH from a cursor not declared in this transaction, or that code run since may have replaced";

/// Redefinitions of one prepared-statement name kept before giving up (and holding EXECUTE).
const MAX_CANDIDATES: usize = 8;

/// Search paths kept while the server's is uncertain; past this, names cannot be resolved.
const MAX_PATHS: usize = 4;

/// Temporary relation names remembered per session; past this, names cannot be resolved.
const MAX_TEMP: usize = 64;

/// What the classifier must remember about one client session. Owned by the session; passed to
/// [`super::Classifier::classify_in_session`].
///
/// Effects are recorded when a statement is classified, before the policy decides, and a
/// statement may then be refused, withdrawn, or skipped by the server after an earlier error.
/// So the state keeps every possibility: a name prepared twice keeps both definitions, and
/// after `SET search_path` both the old and the new path stay candidates until the session
/// confirms which one the server has ([`SessionSqlState::confirm_search_path`]). What forgets
/// (`DEALLOCATE`, `CLOSE`, `DISCARD ALL`) is not applied when classified: it is queued as a
/// [`Deferred`] effect, and the session applies it ([`SessionSqlState::confirm`]) only once the
/// server's CommandComplete says it ran. Forgetting too early would let a refused `PREPARE`
/// of the same name become the only definition the gate judges `EXECUTE` by. Which cursor
/// names a FETCH may read is the opposite case: there, what vouches (a `DECLARE`) waits for the
/// server, and what forgets applies at once (see [`super::cursors`]).
#[derive(Debug, Clone, Default)]
pub struct SessionSqlState {
    /// `PREPARE name AS …` → every definition seen since the name was last deallocated (a
    /// PREPARE the server refused still counts, so that EXECUTE is judged by the riskiest thing
    /// the name could mean).
    pub prepared: HashMap<String, Vec<Candidate>>,
    /// The search_path of the session's latest SET/RESET, `$user` read as the upstream role
    /// ([`Catalog::user`]).
    pub search_path: Vec<String>,
    /// Other paths the server may still be using (an earlier SET was refused or failed).
    /// Names resolve against `search_path` and each of these; the results are merged.
    pub other_search_paths: Vec<Vec<String>>,
    /// Too many uncertain SETs, or `$user` with a role change: every statement is `unknown`
    /// until the path is confirmed.
    pub search_path_lost: bool,
    /// A path naming `$user` was set in this session.
    user_path: bool,
    /// A role statement (`SET ROLE`, …) was classified in this session.
    role_changed: bool,
    /// Names the session may have given relations in its temporary schema (a CREATE the
    /// server refused counts, and one dropped since stays): PostgreSQL resolves an unqualified
    /// relation name there first, and the catalog snapshot knows nothing of them.
    pub temp_relations: Vec<String>,
    /// More temporary relations than [`MAX_TEMP`]: every statement is `unknown`.
    pub temp_lost: bool,
    /// Names of cursors declared in SQL and not closed since (a DECLARE the server refused
    /// counts, and a cursor its transaction ended stays), each with the stamp of its latest
    /// DECLARE. Cursors and protocol portals share one namespace on the server, so an Execute
    /// of such a name may run the cursor. This errs towards remembering; which of these names
    /// a FETCH may read errs the other way ([`Readable`]).
    pub cursors: HashMap<String, u64>,
    /// The cursor names a FETCH reads as their DECLARE was decided.
    readable: Readable,
    /// Effects classified but not yet confirmed, in statement order (taken by the
    /// session with [`SessionSqlState::take_deferred`]).
    deferred: Vec<Deferred>,
    /// Orders definitions and forgetting effects: a confirmed `DEALLOCATE` removes only what
    /// was defined before it was classified.
    stamp: u64,
}

/// One definition of a prepared statement name.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// When it was (last) classified; see [`Deferred`].
    pub stamp: u64,
    pub facts: Facts,
    /// The paths its names were resolved under ([`SessionSqlState::candidates`]). The server
    /// analyses a prepared statement again at EXECUTE when its search path has changed since
    /// (making the session's first temporary object changes it too), so these facts only
    /// hold for an EXECUTE while every path the server may have is one of these.
    pub paths: Vec<Vec<String>>,
}

/// An effect waiting for the server to confirm it ran. `upto` is the state's stamp when it was
/// classified: a definition or cursor classified after it (`DEALLOCATE p; PREPARE p AS …`)
/// survives its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// `DECLARE name CURSOR …`, classified with stamp `stamp`: once confirmed, and while the
    /// cursor is open, a FETCH of the name reads it (see [`super::cursors`]). The relay hands
    /// it over only at a ReadyForQuery with no error since the previous one, and that says a
    /// transaction is open or, for a `WITH HOLD` cursor (`hold`), that it committed.
    Declare { stamp: u64, hold: bool },
    /// `DEALLOCATE name`, or `DEALLOCATE ALL` (None).
    Deallocate { name: Option<String>, upto: u64 },
    /// `CLOSE name`, or `CLOSE ALL` (None).
    CloseCursor { name: Option<String>, upto: u64 },
    /// `DISCARD ALL`: prepared statements and cursors (its search_path reset is handled by the
    /// path candidates at once).
    DiscardAll { upto: u64 },
}

impl Deferred {
    /// The command tag PostgreSQL's CommandComplete carries when the statement ran.
    pub fn command_tag(&self) -> &'static str {
        match self {
            Deferred::Declare { .. } => "DECLARE CURSOR",
            Deferred::Deallocate { name: Some(_), .. } => "DEALLOCATE",
            Deferred::Deallocate { name: None, .. } => "DEALLOCATE ALL",
            Deferred::CloseCursor { name: Some(_), .. } => "CLOSE CURSOR",
            Deferred::CloseCursor { name: None, .. } => "CLOSE CURSOR ALL",
            Deferred::DiscardAll { .. } => "DISCARD ALL",
        }
    }
}

impl SessionSqlState {
    /// A fresh session: nothing prepared, the server's default search_path.
    pub fn new(catalog: &Catalog) -> SessionSqlState {
        SessionSqlState {
            search_path: catalog.search_path.clone(),
            ..SessionSqlState::default()
        }
    }

    /// Tell the state which search_path the server has (after a SET/RESET of it completed, or
    /// from `SHOW search_path`): the other candidates are dropped.
    pub fn confirm_search_path(&mut self, path: Vec<String>) {
        self.search_path = path;
        self.other_search_paths.clear();
        self.search_path_lost = false;
    }

    /// Every path the server may be using, the latest first, each followed by the session's
    /// temporary relation names when it has any (see [`super::names::TEMP_MARK`]).
    pub(crate) fn candidates(&self) -> Vec<Vec<String>> {
        let mut all = vec![self.search_path.clone()];
        for p in &self.other_search_paths {
            if !all.contains(p) {
                all.push(p.clone());
            }
        }
        if !self.temp_relations.is_empty() {
            for p in &mut all {
                p.push(super::names::TEMP_MARK.to_owned());
                p.extend(self.temp_relations.iter().cloned());
            }
        }
        all
    }

    /// Whether names resolve against the search path alone (the classifier's fast path).
    pub(crate) fn plain(&self) -> bool {
        self.other_search_paths.is_empty()
            && !self.search_path_lost
            && self.temp_relations.is_empty()
            && !self.temp_lost
    }

    fn create_temp(&mut self, name: String) {
        if self.temp_relations.contains(&name) {
            return;
        }
        if self.temp_relations.len() >= MAX_TEMP {
            self.temp_lost = true;
            return;
        }
        self.temp_relations.push(name);
        self.temp_relations.sort();
    }

    /// The effects classified since the last call that wait for the server, in statement order.
    /// The caller hands them back through [`SessionSqlState::confirm`] once the server ran them, and drops
    /// them when it did not (refused, withdrawn, failed, skipped).
    pub fn take_deferred(&mut self) -> Vec<Deferred> {
        std::mem::take(&mut self.deferred)
    }

    /// Applies an effect the server confirmed.
    pub fn confirm(&mut self, d: &Deferred) {
        let forget_prepared =
            |prepared: &mut HashMap<String, Vec<Candidate>>, name: Option<&String>, upto: u64| {
                for (n, candidates) in prepared.iter_mut() {
                    if name.is_none_or(|x| x == n) {
                        candidates.retain(|c| c.stamp > upto);
                    }
                }
                prepared.retain(|_, c| !c.is_empty());
            };
        let forget_cursors = |cursors: &mut HashMap<String, u64>, name: Option<&String>, upto| {
            cursors.retain(|n, stamp| *stamp > upto || name.is_some_and(|x| x != n));
        };
        match d {
            Deferred::Declare { stamp, .. } => self.readable.confirmed(*stamp),
            Deferred::Deallocate { name, upto } => {
                forget_prepared(&mut self.prepared, name.as_ref(), *upto)
            }
            Deferred::CloseCursor { name, upto } => {
                forget_cursors(&mut self.cursors, name.as_ref(), *upto)
            }
            Deferred::DiscardAll { upto } => {
                forget_prepared(&mut self.prepared, None, *upto);
                forget_cursors(&mut self.cursors, None, *upto);
            }
        }
    }

    /// The server reported a ReadyForQuery outside a transaction, in a failed one, or after an
    /// error: only `WITH HOLD` cursors may still be open, and only when nothing failed
    /// (`committed`; see [`super::cursors`]).
    pub fn transaction_ended(&mut self, committed: bool) {
        self.readable.transaction_ended(committed);
    }

    /// A protocol Close of portal `name`: portals and cursors share one namespace, so a FETCH
    /// of the name no longer reads what a DECLARE of it declared.
    pub fn portal_closed(&mut self, name: &str) {
        self.readable.close(Some(name));
    }

    /// A text with no session effects was classified: its statements may still end the
    /// transaction or run code that replaces cursors.
    pub(crate) fn observe(&mut self, statements: &[Facts]) {
        if statements.iter().any(|f| f.kind == Kind::Role) {
            self.role_changes();
        }
        if self.readable.is_empty() {
            return;
        }
        for f in statements {
            self.readable.statement(f);
        }
        self.readable.end_text();
    }

    fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    fn defer(&mut self, make: impl FnOnce(u64) -> Deferred) {
        let upto = self.next_stamp();
        self.deferred.push(make(upto));
    }

    /// A path naming `$user` was set: the gateway read it as the upstream role. After a role
    /// change (an approved `SET ROLE`) the server reads it as another role, which the state
    /// does not follow: either order loses the path, and every statement is held.
    fn path_names_user(&mut self) {
        self.user_path = true;
        if self.role_changed {
            self.search_path_lost = true;
        }
    }

    /// A role statement was classified (it may yet run): see [`Self::path_names_user`].
    fn role_changes(&mut self) {
        self.role_changed = true;
        if self.user_path {
            self.search_path_lost = true;
        }
    }

    fn switch_search_path(&mut self, new: Vec<String>) {
        if new == self.search_path {
            return;
        }
        let old = std::mem::replace(&mut self.search_path, new);
        if !self.other_search_paths.contains(&old) {
            self.other_search_paths.push(old);
        }
        self.other_search_paths.retain(|p| *p != self.search_path);
        if self.other_search_paths.len() + 1 > MAX_PATHS {
            self.search_path_lost = true;
            self.other_search_paths.truncate(MAX_PATHS - 1);
        }
    }

    fn prepare(&mut self, name: &str, facts: Facts, paths: Vec<Vec<String>>) {
        let stamp = self.next_stamp();
        let candidates = self.prepared.entry(name.to_owned()).or_default();
        // A definition seen again is as new as its latest PREPARE.
        candidates.retain(|c| c.facts != facts || c.paths != paths);
        candidates.push(Candidate {
            stamp,
            facts,
            paths: paths.clone(),
        });
        if candidates.len() > MAX_CANDIDATES {
            *candidates = vec![Candidate {
                stamp,
                facts: Facts::unknown(format!("prepared statement {name} redefined too often")),
                paths,
            }];
        }
    }

    fn execute(&self, name: &str, params: &Facts, wrap: Wrap) -> Facts {
        let now = self.candidates();
        let mut f = match self.prepared.get(name) {
            None => Facts::unknown(format!(
                "EXECUTE {} (not prepared in this session)",
                safe_name(name)
            )),
            // Whichever path the server has now, its facts must be among those merged.
            Some(c) if c.iter().any(|c| now.iter().any(|p| !c.paths.contains(p))) => {
                Facts::unknown(format!(
                "EXECUTE {} (prepared under another search_path, or before temporary relations \
                 were made: the server analyses it again)",
                    safe_name(name)
                ))
            }
            Some(c) => {
                let merged = merge(c.iter().map(|c| &c.facts));
                Facts {
                    label: format!("EXECUTE {}: {}", safe_name(name), merged.label),
                    ..merged
                }
            }
        };
        for func in &params.functions {
            if !f.functions.contains(func) {
                f.functions.push(func.clone());
            }
        }
        or_flags(&mut f.flags, &params.flags);
        match wrap {
            Wrap::None => f,
            Wrap::Explain => wrap_explain(f, false),
            Wrap::ExplainAnalyze => wrap_explain(f, true),
        }
    }
}

/// How much a kind asks of the policy, for merging candidates.
fn risk(k: Kind) -> u8 {
    match k {
        Kind::Read | Kind::Catalog => 0,
        Kind::Txn | Kind::Session => 1,
        Kind::Utility => 2,
        Kind::Write => 3,
        Kind::Export => 4,
        Kind::Ddl => 5,
        Kind::Role => 6,
        Kind::Unknown => 7,
    }
}

fn or_flags(a: &mut Flags, b: &Flags) {
    a.data_modifying_cte |= b.data_modifying_cte;
    a.explain_analyze |= b.explain_analyze;
    a.creates_table |= b.creates_table;
    a.unbounded_write |= b.unbounded_write;
    a.truncate |= b.truncate;
    a.unsafe_function |= b.unsafe_function;
    a.server_side_copy |= b.server_side_copy;
    a.has_secret |= b.has_secret;
    a.foreign_encoding |= b.foreign_encoding;
}

/// One `Facts` covering every candidate: the riskiest kind, everything touched.
fn merge<'f>(candidates: impl IntoIterator<Item = &'f Facts>) -> Facts {
    let mut it = candidates.into_iter();
    let Some(first) = it.next() else {
        return Facts::unknown("empty prepared statement");
    };
    let mut m = first.clone();
    for c in it {
        if risk(c.kind) > risk(m.kind) {
            m.kind = c.kind;
            m.label = c.label.clone();
        }
        union_into(&mut m.columns, &c.columns);
        union_into(&mut m.output_columns, &c.output_columns);
        union_into(&mut m.stored_columns, &c.stored_columns);
        for t in &c.live_check {
            if !m.live_check.contains(t) {
                m.live_check.push(t.clone());
            }
        }
        for t in &c.tables_read {
            if !m.tables_read.contains(t) {
                m.tables_read.push(t.clone());
            }
        }
        for t in &c.tables_written {
            if !m.tables_written.contains(t) {
                m.tables_written.push(t.clone());
            }
        }
        for f in &c.functions {
            if !m.functions.contains(f) {
                m.functions.push(f.clone());
            }
        }
        or_flags(&mut m.flags, &c.flags);
    }
    m
}

/// Walk the statements of a classified text in order, applying and resolving their session
/// effects. `classify` classifies the same text under a given search_path. While the server's
/// search_path is uncertain (a SET of it may have been refused), every statement is classified
/// under each possible path and the results merged.
pub(crate) fn resolve_in_session(
    state: &mut SessionSqlState,
    default_path: &[String],
    classify: impl Fn(&[String]) -> Arc<Entry>,
) -> Arc<Classified> {
    let entries_for = |state: &SessionSqlState| -> Vec<Arc<Entry>> {
        state.candidates().iter().map(|p| classify(p)).collect()
    };
    let mut entries = entries_for(state);
    let primary = entries[0].clone();
    // Nothing to apply or merge: the shared analysis as it is, unless the state is lost and
    // every statement must come out unknown (below).
    let lost = state.search_path_lost || state.temp_lost;
    if entries.len() == 1 && primary.effects.is_none() && !lost {
        state.observe(&primary.classified.statements);
        return primary.classified.clone();
    }
    let n = primary.classified.statements.len();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let facts = if entries.len() == 1 {
            entries[0].classified.statements[i].clone()
        } else {
            let all: Vec<Facts> = entries
                .iter()
                .filter_map(|e| e.classified.statements.get(i).cloned())
                .collect();
            merge(&all)
        };
        let lost = state.search_path_lost || state.temp_lost;
        if facts.kind == Kind::Role {
            state.role_changes();
        }
        let effect = entries[0].effects.as_ref().and_then(|e| e.get(i)).cloned();
        let before = state.candidates();
        // A DECLARE takes its name after its own facts were checked (see below).
        let mut declares = None;
        match effect.unwrap_or(Effect::None) {
            Effect::None => out.push(facts),
            Effect::Prepare { name, inner } => {
                // Under every path the server may have, the prepared statement may mean any.
                let mut all = vec![*inner];
                for e in &entries[1..] {
                    if let Some(Effect::Prepare { inner, .. }) =
                        e.effects.as_ref().and_then(|x| x.get(i))
                    {
                        all.push((**inner).clone());
                    }
                }
                state.prepare(&name, merge(&all), before.clone());
                out.push(facts);
            }
            Effect::Execute { name, params, wrap } => {
                let mut f = state.execute(&name, &params, wrap);
                f.flags.has_secret |= facts.flags.has_secret;
                out.push(f);
            }
            Effect::Deallocate(name) => {
                state.defer(|upto| Deferred::Deallocate { name, upto });
                out.push(facts);
            }
            Effect::DeclareCursor { name, hold } => {
                let stamp = state.next_stamp();
                state.cursors.insert(name.clone(), stamp);
                state.deferred.push(Deferred::Declare { stamp, hold });
                declares = Some((name, stamp, hold));
                out.push(facts);
            }
            Effect::CloseCursor(name) => {
                state.readable.close(name.as_deref());
                state.defer(|upto| Deferred::CloseCursor { name, upto });
                out.push(facts);
            }
            Effect::Fetch(name) if !state.readable.may_read(&name) => {
                let flags = facts.flags.clone();
                out.push(Facts {
                    flags,
                    ..Facts::unknown(UNVOUCHED_FETCH)
                });
            }
            Effect::Fetch(name) => {
                state.readable.fetch(&name);
                out.push(facts);
            }
            Effect::SetSearchPath { path, names_user } => {
                if names_user {
                    state.path_names_user();
                }
                state.switch_search_path(path);
                out.push(facts);
            }
            Effect::ResetSearchPath => {
                state.switch_search_path(default_path.to_vec());
                out.push(facts);
            }
            Effect::CreateTemp(name) => {
                state.create_temp(name);
                out.push(facts);
            }
            Effect::TempUnknown => {
                state.temp_lost = true;
                out.push(facts);
            }
            Effect::DiscardAll => {
                state.readable.close(None);
                state.defer(|upto| Deferred::DiscardAll { upto });
                state.switch_search_path(default_path.to_vec());
                out.push(facts);
            }
        }
        // Under another path the server may have, the same statement may make a temporary
        // relation (an unqualified CREATE while `pg_temp` leads that path) or lose track of
        // them: what any path's reading does to the temporary names counts.
        for e in &entries[1..] {
            match e.effects.as_ref().and_then(|x| x.get(i)) {
                Some(Effect::CreateTemp(name)) => state.create_temp(name.clone()),
                Some(Effect::TempUnknown) => state.temp_lost = true,
                _ => {}
            }
        }
        if lost {
            if let Some(last) = out.last_mut() {
                let flags = last.flags.clone();
                *last = Facts {
                    flags,
                    ..Facts::unknown(format!("{} (search_path unknown)", last.label))
                };
            }
        }
        if let Some(last) = out.last() {
            // Before a DECLARE takes its name: planning its query may already run a function.
            state.readable.statement(last);
            if let Some((name, stamp, hold)) = declares {
                state
                    .readable
                    .declare(name, stamp, hold, calls_unseen_code(last));
            }
        }
        if i + 1 < n && state.candidates() != before {
            // Later statements of this text resolve names with the new path(s).
            entries = entries_for(state);
        }
    }
    state.readable.end_text();
    let last = &entries[0].classified;
    Arc::new(Classified {
        statements: Arc::new(out),
        fingerprint: last.fingerprint.clone(),
        redacted: last.redacted.clone(),
    })
}

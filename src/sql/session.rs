//! Per-session SQL state: SQL-level prepared statements and the session's search_path.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::classify::Entry;
use super::commands::wrap_explain;
use super::scope::union_into;
use super::statement::{Effect, Wrap};
use super::text::safe_name;
use super::{Catalog, Classified, Facts, Flags, Kind};

/// Redefinitions of one prepared-statement name kept before giving up (and holding EXECUTE).
const MAX_CANDIDATES: usize = 8;

/// Search paths kept while the server's is uncertain; past this, names cannot be resolved.
const MAX_PATHS: usize = 4;

/// What the classifier must remember about one client session. Owned by the session; passed to
/// [`super::Classifier::classify_in_session`].
///
/// Effects are recorded when a statement is classified, before the policy decides, and a
/// statement may then be refused. So the state keeps every possibility: a name prepared twice
/// keeps both definitions, and after `SET search_path` both the old and the new path stay
/// candidates until the session confirms which one the server has
/// ([`SessionSqlState::confirm_search_path`]).
#[derive(Debug, Clone, Default)]
pub struct SessionSqlState {
    /// `PREPARE name AS …` → every definition seen since the name was last deallocated, one
    /// `Facts` per candidate in `statements` (a PREPARE the server refused still counts, so that
    /// EXECUTE is judged by the riskiest thing the name could mean).
    pub prepared: HashMap<String, Arc<Classified>>,
    /// The search_path of the session's latest SET/RESET, `$user` omitted.
    pub search_path: Vec<String>,
    /// Other paths the server may still be using (an earlier SET was refused or failed).
    /// Names resolve against `search_path` and each of these; the results are merged.
    pub other_search_paths: Vec<Vec<String>>,
    /// Too many uncertain SETs: every statement is `unknown` until the path is confirmed.
    pub search_path_lost: bool,
    /// Names of cursors declared in SQL and not closed since (a DECLARE the server refused
    /// counts, and a cursor its transaction ended stays). Cursors and protocol portals share
    /// one namespace on the server, so an Execute of such a name may run the cursor.
    pub cursors: HashSet<String>,
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

    /// Every path the server may be using, the latest first.
    pub(crate) fn candidates(&self) -> Vec<Vec<String>> {
        let mut all = vec![self.search_path.clone()];
        for p in &self.other_search_paths {
            if !all.contains(p) {
                all.push(p.clone());
            }
        }
        all
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

    fn prepare(&mut self, name: &str, facts: Facts) {
        let mut statements = self
            .prepared
            .get(name)
            .map(|c| c.statements.as_ref().clone())
            .unwrap_or_default();
        if !statements.contains(&facts) {
            statements.push(facts);
        }
        if statements.len() > MAX_CANDIDATES {
            statements = vec![Facts::unknown(format!(
                "prepared statement {name} redefined too often"
            ))];
        }
        self.prepared.insert(
            name.to_owned(),
            Arc::new(Classified {
                statements: Arc::new(statements),
                fingerprint: String::new(),
                redacted: String::new(),
            }),
        );
    }

    fn execute(&self, name: &str, params: &Facts, wrap: Wrap) -> Facts {
        let mut f = match self.prepared.get(name) {
            None => Facts::unknown(format!(
                "EXECUTE {} (not prepared in this session)",
                safe_name(name)
            )),
            Some(c) => {
                let merged = merge(&c.statements);
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
fn merge(candidates: &[Facts]) -> Facts {
    let mut it = candidates.iter();
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
    if entries.len() == 1 && primary.effects.is_none() {
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
        let lost = state.search_path_lost;
        let effect = entries[0].effects.as_ref().and_then(|e| e.get(i)).cloned();
        let before = state.candidates();
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
                state.prepare(&name, merge(&all));
                out.push(facts);
            }
            Effect::Execute { name, params, wrap } => {
                let mut f = state.execute(&name, &params, wrap);
                f.flags.has_secret |= facts.flags.has_secret;
                out.push(f);
            }
            Effect::Deallocate(Some(name)) => {
                state.prepared.remove(&name);
                out.push(facts);
            }
            Effect::Deallocate(None) => {
                state.prepared.clear();
                out.push(facts);
            }
            Effect::DeclareCursor(name) => {
                state.cursors.insert(name);
                out.push(facts);
            }
            Effect::CloseCursor(Some(name)) => {
                state.cursors.remove(&name);
                out.push(facts);
            }
            Effect::CloseCursor(None) => {
                state.cursors.clear();
                out.push(facts);
            }
            Effect::SetSearchPath(p) => {
                state.switch_search_path(p);
                out.push(facts);
            }
            Effect::ResetSearchPath => {
                state.switch_search_path(default_path.to_vec());
                out.push(facts);
            }
            Effect::DiscardAll => {
                state.prepared.clear();
                state.cursors.clear();
                state.switch_search_path(default_path.to_vec());
                out.push(facts);
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
        if i + 1 < n && state.candidates() != before {
            // Later statements of this text resolve names with the new path(s).
            entries = entries_for(state);
        }
    }
    let last = &entries[0].classified;
    Arc::new(Classified {
        statements: Arc::new(out),
        fingerprint: last.fingerprint.clone(),
        redacted: last.redacted.clone(),
    })
}

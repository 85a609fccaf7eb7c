//! What the analyzer knows while it walks a statement: the context (catalog, search_path,
//! policy knobs), the facts accumulated so far, and the nested scopes that say what a column
//! name refers to.
//!
//! Column provenance is tracked as a *lineage*: the set of base-table columns a value may be
//! computed from. A view column's lineage is its view's `view_sources`; a subquery or CTE output
//! column's lineage is that of its expression. Whole-row references and `*` expand to every
//! column of the source. When a relation is not in the catalog its columns are unknown and a
//! whole-row reference becomes the column `*` of that table: "every column, whatever they are".

use std::collections::HashSet;

use super::functions::FunctionPolicy;
use super::names::{effective_path, is_sensitive_relation, is_system_schema, is_temp_schema};
use super::{Catalog, ColumnRef, Flags, RelationKind, TableRef};

/// Set of base columns a value may come from (small; kept in first-seen order).
pub(crate) type Lineage = Vec<ColumnRef>;

/// Add the columns of `src` that `dst` lacks. Linear for the usual handful of columns, hashed
/// for wide tables (a `*` over hundreds of columns must not cost quadratic time).
pub(crate) fn union_into(dst: &mut Lineage, src: &[ColumnRef]) {
    if dst.len() + src.len() <= 32 {
        for c in src {
            if !dst.contains(c) {
                dst.push(c.clone());
            }
        }
        return;
    }
    let mut seen: HashSet<&ColumnRef> = dst.iter().collect();
    let new: Vec<ColumnRef> = src.iter().filter(|c| seen.insert(c)).cloned().collect();
    dst.extend(new);
}

/// The distinct columns of several lineages, in first-seen order.
pub(crate) fn unique<'a>(items: impl IntoIterator<Item = &'a ColumnRef>) -> Lineage {
    let mut seen: HashSet<&ColumnRef> = HashSet::new();
    let mut out = Vec::new();
    for c in items {
        if seen.insert(c) {
            out.push(c.clone());
        }
    }
    out
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Everything the analysis of one statement needs to look things up.
pub(crate) struct Ctx<'a> {
    pub catalog: &'a Catalog,
    pub path: &'a [String],
    /// Relations the session may have created in its temporary schema. PostgreSQL looks
    /// there first for an unqualified relation name, and the snapshot never holds them.
    pub temp: &'a [String],
    pub functions: &'a FunctionPolicy,
    /// Lower-cased setting names the policy lets an agent change.
    pub allowed_settings: &'a HashSet<String>,
    /// Set when a fact depended on a literal's value (`set_config('role', …)`, an EXPLAIN
    /// option's argument): such texts are not shared by fingerprint.
    pub literal_sensitive: std::cell::Cell<bool>,
    /// What the analysis of the current statement read (see [`super::coverage`]).
    pub marks: super::coverage::Marks,
}

impl Ctx<'_> {
    /// The relation a folded, possibly qualified name refers to in this session: one of its
    /// temporary relations before anything in the snapshot.
    pub fn relation(&self, parts: &[String]) -> TableRef {
        if let [name] = parts {
            if self.temp.contains(name) {
                return TableRef {
                    schema: "pg_temp".into(),
                    name: name.clone(),
                };
            }
        }
        self.catalog.resolve_relation(parts, self.path)
    }
}

/// Facts gathered while walking one statement.
#[derive(Debug, Default)]
pub(crate) struct Acc {
    pub tables_read: Vec<TableRef>,
    pub tables_written: Vec<TableRef>,
    pub columns: Vec<ColumnRef>,
    pub functions: Vec<String>,
    pub flags: Flags,
    /// A construct the analyzer does not handle: the statement becomes `unknown`.
    pub unsupported: Option<String>,
    /// INSERT/UPDATE/DELETE/MERGE somewhere in the statement.
    pub writes: bool,
    /// Verbs of data-modifying CTEs, for the label.
    pub cte_writes: Vec<&'static str>,
    /// `set_config('role' | 'session_authorization', …)`.
    pub role_setting: bool,
    /// `set_config` of an allowlisted setting.
    pub session_setting: bool,
    pub reads_user_relation: bool,
    pub reads_system_relation: bool,
    pub reads_sensitive_relation: bool,
    /// Called a server-information function (`version()`…) / any other function.
    pub info_functions: bool,
    pub other_functions: bool,
    /// Ids of the sources column references resolved to, in order (see `Source::uid`).
    pub touched: Vec<usize>,
    /// See [`super::Facts::live_check`].
    pub live_check: Vec<TableRef>,
    /// See [`super::Facts::live_names`].
    pub live_names: Vec<super::LiveName>,
    /// See [`super::Facts::stored_columns`].
    pub stored: Vec<ColumnRef>,
    next_uid: usize,
    columns_seen: HashSet<ColumnRef>,
    /// Work units spent so far (see [`WORK_BUDGET`]).
    work: usize,
}

/// Most sources (relations, subqueries, functions in FROM) one statement may name before it is
/// held as not understood. A column name is resolved against every source in reach, so names
/// times sources bounds the work: `SELECT a, a, … FROM x0, x1, …` with thousands of each would
/// otherwise keep a session thread busy for minutes on a statement the server rejects at once.
/// Far beyond hand-written or generated queries (PostgreSQL's planner stops searching join
/// orders exhaustively at 12).
pub(crate) const MAX_SOURCES: usize = 1000;

/// Most work units (expressions visited, queries analyzed) one statement may cost before it is
/// held as not understood. Caps on sources and nesting bound the size of what is walked, but
/// not how often: a recursive CTE is analyzed again until its lineage settles, and a recursive
/// CTE nested in another's recursive term multiplies the rounds, so ~2 KB of nested
/// `WITH RECURSIVE` would otherwise take minutes and gigabytes. A million units is a few
/// hundred milliseconds, and about five times what a statement naming 900 tables with 200
/// columns each costs.
pub(crate) const WORK_BUDGET: usize = 1_000_000;

impl Acc {
    pub fn uid(&mut self) -> usize {
        self.next_uid += 1;
        self.next_uid
    }

    /// Where source numbering stands, for [`Acc::rewind_uids`].
    pub fn uid_mark(&self) -> usize {
        self.next_uid
    }

    /// Numbers the sources of a subtree analyzed again (a round over a recursive WITH) as they
    /// were numbered the first time: they are the same sources, and [`MAX_SOURCES`] counts
    /// the sources a statement names, not how often they are looked at.
    pub fn rewind_uids(&mut self, mark: usize) {
        self.next_uid = mark;
    }

    /// True, and the statement marked as not understood, once it has named
    /// [`MAX_SOURCES`] sources: the caller adds no more.
    pub fn sources_exhausted(&mut self) -> bool {
        if self.next_uid < MAX_SOURCES {
            return false;
        }
        self.unsupported(format!(
            "more than {MAX_SOURCES} relations in one statement"
        ));
        true
    }

    /// Spends `units` of the statement's [`WORK_BUDGET`]: false, and the statement marked as
    /// not understood, once it is used up (the caller then stops walking).
    pub fn spend(&mut self, units: usize) -> bool {
        self.work = self.work.saturating_add(units);
        if self.work <= WORK_BUDGET {
            return true;
        }
        self.unsupported(format!(
            "too complex to analyze (more than {WORK_BUDGET} steps)"
        ));
        false
    }

    pub fn unsupported(&mut self, what: impl Into<String>) {
        if self.unsupported.is_none() {
            self.unsupported = Some(what.into());
        }
    }

    pub fn read(&mut self, t: &TableRef) {
        if is_sensitive_relation(t) {
            self.reads_sensitive_relation = true;
        } else if is_system_schema(&t.schema) {
            self.reads_system_relation = true;
        } else {
            self.reads_user_relation = true;
        }
        push_unique(&mut self.tables_read, t.clone());
    }

    /// What a statement implies without naming it (see `implied`): calls, and names to look
    /// up on the server.
    pub fn implied(&mut self, implied: super::implied::Implied) {
        for c in implied.calls {
            self.function(c.qualified, c.safe, false);
        }
        for n in implied.unknown {
            push_unique(&mut self.live_names, n);
        }
    }

    /// The relations behind `tables` (base tables of a lineage, or the relations themselves)
    /// must be compared with the live catalog before the statement is decided.
    pub fn live_check<'t>(&mut self, tables: impl IntoIterator<Item = &'t TableRef>) {
        for t in tables {
            push_unique(&mut self.live_check, t.clone());
        }
    }

    /// Values computed from `lineage` are stored into the column whose own lineage is `dest`
    /// (`None`: a column not known one by one). Only a value written back into the very
    /// column it came from moves nothing.
    pub fn stored(&mut self, dest: Option<&[ColumnRef]>, lineage: &[ColumnRef]) {
        for c in lineage {
            let same = matches!(dest, Some([d]) if d == c);
            if !same {
                push_unique(&mut self.stored, c.clone());
            }
        }
    }

    pub fn write(&mut self, t: &TableRef) {
        push_unique(&mut self.tables_written, t.clone());
    }

    pub fn columns(&mut self, cols: &[ColumnRef]) {
        for c in cols {
            if self.columns_seen.insert(c.clone()) {
                self.columns.push(c.clone());
            }
        }
    }

    pub fn function(&mut self, qualified: String, safe: bool, info: bool) {
        if !safe {
            self.flags.unsafe_function = true;
        }
        if info {
            self.info_functions = true;
        } else {
            self.other_functions = true;
        }
        push_unique(&mut self.functions, qualified);
    }
}

/// One output column of a query, subquery or CTE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutCol {
    pub name: Option<String>,
    pub lineage: Lineage,
}

/// Something in a FROM clause that column names can refer to.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub uid: usize,
    /// The name that qualifies its columns: the alias, or the relation's own name.
    pub alias: String,
    /// The relation, when referenced without an alias (so `schema.table.col` can match it).
    pub qualified: Option<TableRef>,
    /// The base relation behind it, to attribute columns the snapshot does not list.
    pub relation: Option<TableRef>,
    /// Known columns, or `None` when the catalog cannot say (unknown relation, table function).
    pub columns: Option<Vec<OutCol>>,
    /// Lineage of any column of a source whose columns are unknown.
    pub fallback: Lineage,
}

impl Source {
    /// The lineage of one named column.
    fn column(&self, col: &str) -> Option<Lineage> {
        match &self.columns {
            Some(cols) => {
                let mut lin = Vec::new();
                let mut found = false;
                for c in cols.iter().filter(|c| c.name.as_deref() == Some(col)) {
                    found = true;
                    union_into(&mut lin, &c.lineage);
                }
                found.then_some(lin)
            }
            None => Some(self.unknown_column(col)),
        }
    }

    /// A subquery, CTE or VALUES list: columns known, no relation behind it.
    fn derived(&self) -> bool {
        self.relation.is_none() && self.columns.is_some()
    }

    /// The lineage of the columns whose server-given name the gateway could not work out
    /// (see [`super::colname`]): any name that matches no named column may denote them.
    fn unnamed(&self) -> Lineage {
        match &self.columns {
            Some(cols) => unique(
                cols.iter()
                    .filter(|c| c.name.is_none())
                    .flat_map(|c| &c.lineage),
            ),
            None => Vec::new(),
        }
    }

    /// What `qual.col` denotes when `col` matches none of the source's named columns: for a
    /// relation, a column the snapshot does not list yet; for a derived source, one of its
    /// unnamed columns, or, when all are named (the server would refuse the name unless the
    /// gateway named a column differently from it), any of its columns.
    fn unmatched(&self, col: &str) -> Lineage {
        if !self.derived() {
            return self.unknown_column(col);
        }
        let unnamed = self.unnamed();
        if unnamed.is_empty() {
            self.all()
        } else {
            unnamed
        }
    }

    fn unknown_column(&self, col: &str) -> Lineage {
        let mut lin = self.fallback.clone();
        if let Some(rel) = &self.relation {
            union_into(
                &mut lin,
                &[ColumnRef {
                    table: rel.clone(),
                    column: col.to_owned(),
                }],
            );
        }
        lin
    }

    /// The relations whose current columns make up this source's whole row: the relation
    /// itself and the base tables its columns come from. Empty when the catalog does not know
    /// the columns (an unknown relation already stands for "any column").
    pub fn live_tables(&self) -> Vec<TableRef> {
        let Some(cols) = &self.columns else {
            return Vec::new();
        };
        let mut out: Vec<TableRef> = self.relation.iter().cloned().collect();
        for c in cols.iter().flat_map(|c| &c.lineage) {
            push_unique(&mut out, c.table.clone());
        }
        out
    }

    /// Every column: what `*`, `t.*` and a whole-row reference expand to.
    pub fn all(&self) -> Lineage {
        match &self.columns {
            Some(cols) => unique(cols.iter().flat_map(|c| &c.lineage)),
            None => self.unknown_column("*"),
        }
    }

    pub fn out_cols(&self) -> Vec<OutCol> {
        match &self.columns {
            Some(cols) => cols.clone(),
            None => vec![OutCol {
                name: None,
                lineage: self.unknown_column("*"),
            }],
        }
    }

    /// Does a qualifier (`alias`, `schema.table` or `db.schema.table`) name this source?
    pub fn matches(&self, qual: &[String]) -> bool {
        match qual {
            [a] => self.alias == *a,
            [.., s, t] => self
                .qualified
                .as_ref()
                .is_some_and(|q| q.schema == *s && q.name == *t),
            [] => false,
        }
    }
}

/// A CTE visible in a scope.
#[derive(Debug, Clone)]
pub(crate) struct CteDef {
    pub name: String,
    pub columns: Vec<OutCol>,
}

/// One level of name scope. Inner scopes see outer ones (correlated subqueries, LATERAL).
#[derive(Debug, Default)]
pub(crate) struct Env<'p> {
    pub parent: Option<&'p Env<'p>>,
    pub ctes: Vec<CteDef>,
    pub sources: Vec<Source>,
}

/// The lineage a reference resolved to and the sources it touched.
#[derive(Debug, Default)]
pub(crate) struct Resolution {
    pub lineage: Lineage,
    pub sources: Vec<usize>,
    /// Whole-row references: relations to compare with the live catalog (see
    /// [`super::Facts::live_check`]).
    pub live: Vec<TableRef>,
    /// Columns the name may denote without resolving to them: unnamed columns of derived
    /// sources along the way (see [`Source::unnamed`]). They flow with the reference wherever
    /// it ends up resolving.
    pub maybe: Lineage,
    /// `rel.name` where `name` is no column of `rel`: PostgreSQL reads it as the call
    /// `name(rel)` when such a function exists (`c.to_jsonb` is `to_jsonb(c)`, a whole row).
    pub calls: Vec<NotationCall>,
}

/// A possible call in functional notation (see [`Resolution::calls`]).
#[derive(Debug)]
pub(crate) struct NotationCall {
    /// The function name as folded.
    pub name: String,
    /// The whole row of the source it would be called with.
    pub whole: Lineage,
    pub live: Vec<TableRef>,
    /// The source is a relation whose columns the snapshot lists: the name is a call (or a
    /// column added since, which the live comparison will find) whatever it names.
    pub relation: bool,
}

impl<'p> Env<'p> {
    pub fn child(parent: &'p Env<'p>) -> Env<'p> {
        Env {
            parent: Some(parent),
            ctes: Vec::new(),
            sources: Vec::new(),
        }
    }

    fn chain(&self) -> impl Iterator<Item = &Env<'p>> {
        std::iter::successors(Some(self), |e| e.parent)
    }

    pub fn find_cte(&self, name: &str) -> Option<&CteDef> {
        self.chain()
            .find_map(|e| e.ctes.iter().rev().find(|c| c.name == name))
    }

    /// An unqualified name: a column of some source, innermost scope first; failing that, a
    /// whole-row reference to a source of that name. Sources whose columns are unknown may hold
    /// the column, so they always contribute (fail closed).
    pub fn resolve_ident(&self, col: &str) -> Resolution {
        let mut r = Resolution::default();
        // Gathered per scope and merged once: merging source by source costs quadratic time
        // in the number of sources (`FROM t0, t1, …` with thousands of them).
        let mut gathered = Vec::new();
        for e in self.chain() {
            let mut found = false;
            let mut maybe = Vec::new();
            for s in &e.sources {
                if s.columns.is_some() {
                    if let Some(lin) = s.column(col) {
                        found = true;
                        gathered.extend(lin);
                        r.sources.push(s.uid);
                    } else {
                        maybe.extend(s.unnamed());
                    }
                }
            }
            union_into(&mut r.maybe, &maybe);
            if found {
                union_into(&mut r.lineage, &gathered);
                return r;
            }
            for s in e.sources.iter().filter(|s| s.columns.is_none()) {
                gathered.extend(s.unknown_column(col));
                r.sources.push(s.uid);
            }
        }
        union_into(&mut r.lineage, &gathered);
        for e in self.chain() {
            let mut found = false;
            for s in e.sources.iter().filter(|s| s.alias == col) {
                found = true;
                union_into(&mut r.lineage, &s.all());
                r.live.extend(s.live_tables());
                r.sources.push(s.uid);
            }
            if found {
                break;
            }
        }
        r
    }

    /// `qual.col`: a column of the source `qual` names; failing that, `qual.col` itself may name
    /// a relation (`schema.table`) as a whole-row reference.
    pub fn resolve_qualified(&self, qual: &[String], col: &str) -> Resolution {
        let mut r = Resolution::default();
        for e in self.chain() {
            let mut found = false;
            for s in e.sources.iter().filter(|s| s.matches(qual)) {
                found = true;
                r.sources.push(s.uid);
                match s.column(col) {
                    Some(lin) => union_into(&mut r.lineage, &lin),
                    None => {
                        union_into(&mut r.lineage, &s.unmatched(col));
                        r.calls.push(NotationCall {
                            name: col.to_owned(),
                            whole: s.all(),
                            live: s.live_tables(),
                            relation: s.relation.is_some() && s.columns.is_some(),
                        });
                    }
                }
            }
            if found {
                return r;
            }
        }
        let mut whole: Vec<String> = qual.to_vec();
        whole.push(col.to_owned());
        self.whole_row(&whole)
    }

    /// `qual.*` or a whole-row reference by qualified name.
    pub fn whole_row(&self, qual: &[String]) -> Resolution {
        let mut r = Resolution::default();
        for e in self.chain() {
            let mut found = false;
            for s in e.sources.iter().filter(|s| s.matches(qual)) {
                found = true;
                union_into(&mut r.lineage, &s.all());
                r.live.extend(s.live_tables());
                r.sources.push(s.uid);
            }
            if found {
                break;
            }
        }
        r
    }

    /// Every column of every derived source in reach, with the sources: what a name that
    /// resolves nowhere may denote if the gateway named a derived column differently from the
    /// server.
    pub fn derived_columns(&self) -> (Lineage, Vec<usize>) {
        let mut all = Vec::new();
        let mut uids = Vec::new();
        for s in self
            .chain()
            .flat_map(|e| &e.sources)
            .filter(|s| s.derived())
        {
            all.extend(s.all());
            uids.push(s.uid);
        }
        (unique(&all), uids)
    }

    /// `*`: the columns of every source of this scope.
    pub fn star(&self) -> (Vec<OutCol>, Vec<usize>) {
        let mut out = Vec::new();
        let mut uids = Vec::new();
        for s in &self.sources {
            out.extend(s.out_cols());
            uids.push(s.uid);
        }
        (out, uids)
    }
}

/// Build the source for a relation named in FROM (or the target of a write). `read` records it
/// (and a view's base tables) as read.
pub(crate) fn relation_source(
    cx: &Ctx<'_>,
    acc: &mut Acc,
    parts: &[String],
    alias: Option<(&str, &[String])>,
    read: bool,
) -> Source {
    let table = cx.relation(parts);
    if is_temp_schema(&table.schema) {
        // Its columns, and what was put into them, are nowhere in the snapshot.
        acc.unsupported(format!(
            "temporary relation {}, whose columns airlock cannot see",
            table.name
        ));
    }
    if read {
        acc.read(&table);
    }
    let rel = cx.catalog.relation(&table);
    match rel {
        None if !cx.catalog.attributes.is_empty() => {
            // Made on the server since the snapshot was read (or never made: the server will
            // say so). Its columns and what it reads or runs are unknown here, so the gateway
            // asks the server first, under every name the server might resolve it to.
            match parts {
                [name] => {
                    for s in effective_path(cx.path).filter(|s| !is_temp_schema(s)) {
                        acc.live_check(&[TableRef {
                            schema: s.to_owned(),
                            name: name.clone(),
                        }]);
                    }
                }
                _ if !is_temp_schema(&table.schema) => acc.live_check(std::slice::from_ref(&table)),
                _ => {}
            }
        }
        None => {}
        Some(rel) => {
            if read {
                for base in rel.view_sources.values().flatten() {
                    acc.read(&base.table);
                }
            }
            // What the server runs for this relation (a view's functions, row-security
            // policies) is called by this statement as surely as a function it names.
            for f in &rel.runs {
                let parts = [f.schema.clone(), f.name.clone()];
                let v = cx.functions.verdict(cx.catalog, cx.path, &parts);
                acc.function(v.qualified, v.safe, false);
            }
        }
    }
    let mut columns = rel.map(|rel| {
        let is_view = matches!(
            rel.kind,
            RelationKind::View | RelationKind::MaterializedView
        );
        rel.columns
            .iter()
            .map(|c| {
                let lineage = match rel.view_sources.get(c) {
                    Some(base) if is_view => base.clone(),
                    _ => vec![ColumnRef {
                        table: table.clone(),
                        column: c.clone(),
                    }],
                };
                OutCol {
                    name: Some(c.clone()),
                    lineage,
                }
            })
            .collect::<Vec<_>>()
    });
    if let (Some(cols), Some((_, renames))) = (columns.as_mut(), alias) {
        rename(cols, renames);
    }
    let (alias_name, qualified) = match alias {
        Some((a, _)) => (a.to_owned(), None),
        None => (table.name.clone(), Some(table.clone())),
    };
    Source {
        uid: acc.uid(),
        alias: alias_name,
        qualified,
        relation: Some(table),
        columns,
        fallback: Vec::new(),
    }
}

/// Apply a column alias list (`AS t(a, b)`) to the first columns.
pub(crate) fn rename(cols: &mut [OutCol], names: &[String]) {
    for (c, n) in cols.iter_mut().zip(names) {
        c.name = Some(n.clone());
    }
}

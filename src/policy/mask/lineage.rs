//! Where each output column of a query comes from, as far as PII is concerned.
//!
//! The rewrite only ever masks a value that *is* a PII column (possibly renamed, cast, or
//! passed through a subquery, CTE or view). Anything computed from PII — `upper(email)`,
//! `count(ssn)`, `row_to_json(c)`, a scalar subquery returning `ssn` — is `Tainted`: it cannot
//! be masked without guessing, so the caller holds the statement instead. Names that cannot be
//! resolved, relations missing from the catalog and unsupported FROM items are tainted too:
//! this module may be wrong only in the direction of holding.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, JoinConstraint, JoinOperator,
    ObjectName, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, TableAlias,
    TableFactor, TableWithJoins, Visit, Visitor, WildcardAdditionalOptions,
};

use super::MaskError;
use crate::policy::model::PiiSet;
use crate::policy::MaskMethod;
use crate::sql::{Catalog, ColumnRef, Relation, TableRef};

/// What a value carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lineage {
    Clean,
    /// The value of PII column(s), unchanged: maskable with the strictest method.
    Pii(MaskMethod, Vec<ColumnRef>),
    /// Computed from PII or not understood: never maskable.
    Tainted(String),
}

impl Lineage {
    pub fn join(self, other: Lineage) -> Lineage {
        match (self, other) {
            (Lineage::Tainted(w), _) | (_, Lineage::Tainted(w)) => Lineage::Tainted(w),
            (Lineage::Clean, x) | (x, Lineage::Clean) => x,
            (Lineage::Pii(m1, mut s1), Lineage::Pii(m2, s2)) => {
                for s in s2 {
                    if !s1.contains(&s) {
                        s1.push(s);
                    }
                }
                Lineage::Pii(m1.max(m2), s1)
            }
        }
    }

    pub fn is_clean(&self) -> bool {
        *self == Lineage::Clean
    }

    /// A value derived from this one by some computation.
    fn computed(self, what: impl FnOnce() -> String) -> Lineage {
        match self {
            Lineage::Clean => Lineage::Clean,
            Lineage::Tainted(w) => Lineage::Tainted(w),
            Lineage::Pii(..) => Lineage::Tainted(what()),
        }
    }
}

/// Output columns of a query: name and lineage.
pub(super) type Columns = Vec<(String, Lineage)>;

/// A FROM item in scope.
#[derive(Debug, Clone)]
pub(super) struct Source {
    /// The name it is referred to by (alias, or table/CTE name), folded.
    pub refname: Option<String>,
    /// The same name as written, for qualifying expanded columns.
    pub qualifier: Option<Ident>,
    /// Schema, for `schema.table.column` references to an unaliased table.
    pub schema: Option<String>,
    /// `None` when the columns are not known (table functions, relations missing from the
    /// catalog, subqueries that could not be analysed).
    pub columns: Option<Columns>,
    /// Lineage of any column of a source whose columns are unknown.
    pub opaque: Lineage,
}

impl Source {
    fn whole_row(&self, name: &str) -> Lineage {
        let l = match &self.columns {
            Some(cols) => cols
                .iter()
                .fold(Lineage::Clean, |acc, (_, l)| acc.join(l.clone())),
            None => self.opaque.clone(),
        };
        l.computed(|| format!("whole-row reference `{name}` includes PII"))
    }
}

/// A CTE visible by name.
#[derive(Debug, Clone)]
struct Cte {
    name: String,
    columns: Option<Columns>,
    opaque: Lineage,
}

#[derive(Debug, Default)]
pub(super) struct Frame {
    pub sources: Vec<Source>,
    ctes: Vec<Cte>,
    /// A JOIN … USING / NATURAL merges columns: `*` cannot be expanded faithfully.
    pub merges_columns: bool,
}

/// Name resolution state: one frame per query level, innermost last.
pub(super) struct Env<'a> {
    pub pii: &'a PiiSet,
    pub catalog: &'a Catalog,
    pub frames: Vec<Frame>,
}

/// PostgreSQL identifier folding.
pub(super) fn fold(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

fn object_parts(name: &ObjectName) -> Option<Vec<Ident>> {
    name.0.iter().map(|p| p.as_ident().cloned()).collect()
}

fn unsafe_(msg: impl Into<String>) -> MaskError {
    MaskError::Unsafe(msg.into())
}

/// The column name PostgreSQL gives an output expression, as far as it matters here.
pub(super) fn output_ident(e: &Expr) -> Option<Ident> {
    match e {
        Expr::Identifier(id) => Some(id.clone()),
        Expr::CompoundIdentifier(ids) => ids.last().cloned(),
        Expr::Nested(inner) => output_ident(inner),
        Expr::Cast { expr, .. } | Expr::Collate { expr, .. } => output_ident(expr),
        Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident().cloned()),
        _ => None,
    }
}

pub(super) fn plain_wildcard(o: &WildcardAdditionalOptions) -> bool {
    o.opt_ilike.is_none()
        && o.opt_exclude.is_none()
        && o.opt_except.is_none()
        && o.opt_replace.is_none()
        && o.opt_rename.is_none()
        && o.opt_alias.is_none()
}

impl<'a> Env<'a> {
    pub fn new(pii: &'a PiiSet, catalog: &'a Catalog) -> Env<'a> {
        Env {
            pii,
            catalog,
            frames: Vec::new(),
        }
    }

    pub fn top(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("a frame is pushed")
    }

    fn column_lineage(&self, c: &ColumnRef) -> Lineage {
        match self.pii.method(c) {
            Some(m) => Lineage::Pii(m, vec![c.clone()]),
            None => Lineage::Clean,
        }
    }

    /// Columns of a catalog relation. A view column computed from PII base columns is masked
    /// as a whole; `partial` becomes `hash` there because the view may have transformed the
    /// value (a reversed SSN would show its first digits under `partial`).
    fn relation_columns(&self, t: &TableRef, rel: &Relation) -> Columns {
        rel.columns
            .iter()
            .map(|c| {
                let own = ColumnRef {
                    table: t.clone(),
                    column: c.clone(),
                };
                let mut l = self.column_lineage(&own);
                for b in rel.view_sources.get(c).into_iter().flatten() {
                    if let Some(m) = self.pii.method(b) {
                        let m = if m == MaskMethod::Partial {
                            MaskMethod::Hash
                        } else {
                            m
                        };
                        l = l.join(Lineage::Pii(m, vec![b.clone()]));
                    }
                }
                (c.clone(), l)
            })
            .collect()
    }

    /// `schema.name` or `name` looked up like PostgreSQL would: pg_catalog, then search_path.
    fn resolve_table(&self, parts: &[String]) -> Option<(TableRef, &'a Relation)> {
        let candidates: Vec<TableRef> = match parts {
            [s, n] => vec![TableRef {
                schema: s.clone(),
                name: n.clone(),
            }],
            [n] => std::iter::once("pg_catalog")
                .chain(self.catalog.search_path.iter().map(String::as_str))
                .map(|s| TableRef {
                    schema: s.to_string(),
                    name: n.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        candidates
            .into_iter()
            .find_map(|t| self.catalog.relation(&t).map(|r| (t, r)))
    }

    fn find_cte(&self, name: &str) -> Option<&Cte> {
        self.frames
            .iter()
            .rev()
            .flat_map(|f| f.ctes.iter().rev())
            .find(|c| c.name == name)
    }

    /// Registers the CTEs of a WITH clause in the top frame. A CTE whose query cannot be
    /// analysed becomes opaque and tainted: harmless unless something selects from it.
    pub fn register_ctes(&mut self, q: &Query) {
        let Some(with) = &q.with else { return };
        for cte in &with.cte_tables {
            let name = fold(&cte.alias.name);
            if with.recursive {
                // The self-reference is not analysed: anything read through it is tainted.
                self.top().ctes.push(Cte {
                    name: name.clone(),
                    columns: None,
                    opaque: Lineage::Tainted(format!("recursive CTE `{name}`")),
                });
            }
            let (columns, opaque) = match self.query_columns(&cte.query) {
                Ok(cols) => (Some(rename(cols, &cte.alias)), Lineage::Clean),
                Err(e) => (None, Lineage::Tainted(e.to_string())),
            };
            let frame = self.top();
            frame.ctes.retain(|c| c.name != name);
            frame.ctes.push(Cte {
                name,
                columns,
                opaque,
            });
        }
    }

    /// Output columns of a query, analysed in its own frame.
    pub fn query_columns(&mut self, q: &Query) -> Result<Columns, MaskError> {
        if self.frames.len() > 64 {
            return Err(unsafe_("query nested too deeply"));
        }
        self.frames.push(Frame::default());
        self.register_ctes(q);
        let r = self.setexpr_columns(&q.body);
        self.frames.pop();
        r
    }

    fn setexpr_columns(&mut self, e: &SetExpr) -> Result<Columns, MaskError> {
        match e {
            SetExpr::Select(s) => {
                self.frames.push(Frame::default());
                let r = self.select_columns(s);
                self.frames.pop();
                r
            }
            SetExpr::Query(q) => self.query_columns(q),
            SetExpr::SetOperation { left, right, .. } => {
                let l = self.setexpr_columns(left)?;
                let r = self.setexpr_columns(right)?;
                if l.len() != r.len() {
                    return Err(unsafe_("set operation branches differ in width"));
                }
                Ok(l.into_iter()
                    .zip(r)
                    .map(|((n, a), (_, b))| (n, a.join(b)))
                    .collect())
            }
            SetExpr::Values(v) => {
                let mut cols: Columns = Vec::new();
                for row in &v.rows {
                    for (i, e) in row.iter().enumerate() {
                        let l = self.expr_lineage(e)?;
                        if i < cols.len() {
                            let prev = std::mem::replace(&mut cols[i].1, Lineage::Clean);
                            cols[i].1 = prev.join(l);
                        } else {
                            cols.push((format!("column{}", i + 1), l));
                        }
                    }
                }
                Ok(cols)
            }
            SetExpr::Table(t) => {
                let mut parts = Vec::new();
                if let Some(s) = &t.schema_name {
                    parts.push(s.to_lowercase());
                }
                if let Some(n) = &t.table_name {
                    parts.push(n.to_lowercase());
                }
                match self.resolve_table(&parts) {
                    Some((tr, rel)) => Ok(self.relation_columns(&tr, rel)),
                    None => Err(unsafe_("TABLE of a relation missing from the catalog")),
                }
            }
            _ => Err(unsafe_("data-modifying statement inside a query")),
        }
    }

    /// Output columns of a SELECT; the caller has pushed a fresh frame.
    fn select_columns(&mut self, s: &Select) -> Result<Columns, MaskError> {
        self.add_from(&s.from)?;
        let mut out = Vec::new();
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let name = output_ident(e).map_or_else(|| "?column?".to_string(), |i| fold(&i));
                    out.push((name, self.expr_lineage(e)?));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    out.push((fold(alias), self.expr_lineage(expr)?));
                }
                SelectItem::Wildcard(o) if plain_wildcard(o) => {
                    let frame = self.frames.last().expect("frame");
                    for src in &frame.sources {
                        match &src.columns {
                            Some(c) => out.extend(c.iter().cloned()),
                            None => return Err(unsafe_("`*` over a source with unknown columns")),
                        }
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    o,
                ) if plain_wildcard(o) => {
                    let src = self.find_source_in_top(n)?;
                    match &src.columns {
                        Some(c) => out.extend(c.iter().cloned()),
                        None => return Err(unsafe_(format!("`{n}.*` has unknown columns"))),
                    }
                }
                other => return Err(unsafe_(format!("unsupported select item `{other}`"))),
            }
        }
        Ok(out)
    }

    /// The source of the top frame named by `t.*`.
    pub fn find_source_in_top(&self, n: &ObjectName) -> Result<&Source, MaskError> {
        let parts: Vec<String> = object_parts(n)
            .ok_or_else(|| unsafe_(format!("unsupported name `{n}`")))?
            .iter()
            .map(fold)
            .collect();
        let (schema, table) = match parts.as_slice() {
            [t] => (None, t),
            [s, t] => (Some(s), t),
            _ => return Err(unsafe_(format!("unsupported name `{n}`"))),
        };
        self.frames
            .last()
            .expect("frame")
            .sources
            .iter()
            .find(|s| {
                s.refname.as_ref() == Some(table)
                    && (schema.is_none() || s.schema.as_ref() == schema)
            })
            .ok_or_else(|| unsafe_(format!("`{n}.*` names no FROM item")))
    }

    /// Adds the FROM items of a SELECT to the top frame.
    pub fn add_from(&mut self, from: &[TableWithJoins]) -> Result<(), MaskError> {
        for twj in from {
            self.add_factor(&twj.relation)?;
            for j in &twj.joins {
                self.add_factor(&j.relation)?;
                let constraint = match &j.join_operator {
                    JoinOperator::Join(c)
                    | JoinOperator::Inner(c)
                    | JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c)
                    | JoinOperator::Right(c)
                    | JoinOperator::RightOuter(c)
                    | JoinOperator::FullOuter(c)
                    | JoinOperator::CrossJoin(c) => c,
                    other => return Err(unsafe_(format!("unsupported join `{other:?}`"))),
                };
                if matches!(
                    constraint,
                    JoinConstraint::Using(_) | JoinConstraint::Natural
                ) {
                    self.top().merges_columns = true;
                }
            }
        }
        Ok(())
    }

    fn add_factor(&mut self, f: &TableFactor) -> Result<(), MaskError> {
        let src = match f {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let idents = object_parts(name)
                    .ok_or_else(|| unsafe_(format!("unsupported name `{name}`")))?;
                let parts: Vec<String> = idents.iter().map(fold).collect();
                let written = idents.last().cloned();
                if let Some(args) = args {
                    // `FROM func(args)` parsed as a table with arguments.
                    let mut l = Lineage::Clean;
                    for a in &args.args {
                        l = l.join(self.arg_lineage(a)?);
                    }
                    opaque_source(
                        alias,
                        written,
                        l.computed(|| format!("`{f}` computes from PII")),
                    )
                } else if let (Some(cte), [n]) =
                    (self.find_cte(&parts[0]).cloned(), parts.as_slice())
                {
                    debug_assert_eq!(&cte.name, n);
                    let mut s = Source {
                        refname: Some(cte.name.clone()),
                        qualifier: written,
                        schema: None,
                        columns: cte.columns.clone(),
                        opaque: cte.opaque.clone(),
                    };
                    apply_alias(&mut s, alias);
                    s
                } else {
                    let mut s = match self.resolve_table(&parts) {
                        Some((t, rel)) => Source {
                            refname: Some(t.name.clone()),
                            qualifier: written,
                            schema: Some(t.schema.clone()),
                            columns: Some(self.relation_columns(&t, rel)),
                            opaque: Lineage::Clean,
                        },
                        None => Source {
                            refname: parts.last().cloned(),
                            qualifier: written,
                            schema: (parts.len() == 2).then(|| parts[0].clone()),
                            columns: None,
                            opaque: Lineage::Tainted(format!("`{name}` is not in the catalog")),
                        },
                    };
                    apply_alias(&mut s, alias);
                    s
                }
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let (columns, opaque) = match self.query_columns(subquery) {
                    Ok(c) => (Some(c), Lineage::Clean),
                    Err(e) => (None, Lineage::Tainted(e.to_string())),
                };
                let mut s = Source {
                    refname: None,
                    qualifier: None,
                    schema: None,
                    columns,
                    opaque,
                };
                apply_alias(&mut s, alias);
                s
            }
            TableFactor::Function {
                name, args, alias, ..
            } => {
                let mut l = Lineage::Clean;
                for a in args {
                    l = l.join(self.arg_lineage(a)?);
                }
                let written = name.0.last().and_then(|p| p.as_ident().cloned());
                opaque_source(
                    alias,
                    written,
                    l.computed(|| format!("`{f}` computes from PII")),
                )
            }
            TableFactor::UNNEST {
                alias, array_exprs, ..
            } => {
                let mut l = Lineage::Clean;
                for e in array_exprs {
                    l = l.join(self.expr_lineage(e)?);
                }
                opaque_source(
                    alias,
                    Some(Ident::new("unnest")),
                    l.computed(|| format!("`{f}` computes from PII")),
                )
            }
            TableFactor::TableFunction { expr, alias } => {
                let l = self.expr_lineage(expr)?;
                opaque_source(
                    alias,
                    None,
                    l.computed(|| format!("`{f}` computes from PII")),
                )
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => return self.add_from(std::slice::from_ref(table_with_joins)),
            other => return Err(unsafe_(format!("unsupported FROM item `{other}`"))),
        };
        self.top().sources.push(src);
        Ok(())
    }

    fn arg_lineage(&mut self, a: &FunctionArg) -> Result<Lineage, MaskError> {
        let e = match a {
            FunctionArg::Named { arg, .. }
            | FunctionArg::ExprNamed { arg, .. }
            | FunctionArg::Unnamed(arg) => arg,
        };
        match e {
            FunctionArgExpr::Expr(e) => self.expr_lineage(e),
            _ => Ok(Lineage::Tainted("wildcard argument".into())),
        }
    }

    /// Lineage of one expression. Only a column reference (possibly parenthesised, cast or
    /// collated) can be `Pii`; every other expression is `Clean` or `Tainted`.
    pub fn expr_lineage(&mut self, e: &Expr) -> Result<Lineage, MaskError> {
        match e {
            Expr::Identifier(id) => Ok(self.resolve(std::slice::from_ref(id))),
            Expr::CompoundIdentifier(ids) => Ok(self.resolve(ids)),
            Expr::Nested(inner)
            | Expr::Cast { expr: inner, .. }
            | Expr::Collate { expr: inner, .. } => self.expr_lineage(inner),
            _ => {
                let mut w = Walker {
                    env: self,
                    depth: 0,
                    acc: Lineage::Clean,
                };
                let _ = e.visit(&mut w);
                Ok(w.acc.computed(|| format!("`{e}` computes from PII")))
            }
        }
    }

    /// Resolves a column reference the way PostgreSQL does: column names at every level
    /// first, then (for a bare name) a whole-row reference to a FROM item.
    pub fn resolve(&self, ids: &[Ident]) -> Lineage {
        let parts: Vec<String> = ids.iter().map(fold).collect();
        match parts.as_slice() {
            [c] => self
                .resolve_name(c)
                .unwrap_or_else(|| Lineage::Tainted(format!("cannot resolve `{c}`"))),
            [t, c] => self.resolve_qualified(None, t, c).unwrap_or_else(|| {
                // `col.field` on a composite column.
                match self.resolve_name(t) {
                    Some(l) => l.computed(|| format!("field of PII column `{t}`")),
                    None => Lineage::Tainted(format!("cannot resolve `{t}.{c}`")),
                }
            }),
            [s, t, c] => self
                .resolve_qualified(Some(s), t, c)
                .unwrap_or_else(|| Lineage::Tainted(format!("cannot resolve `{s}.{t}.{c}`"))),
            _ => Lineage::Tainted(format!("unsupported name `{}`", parts.join("."))),
        }
    }

    /// A bare name: a column if any level has one, else a whole-row reference. Sources with
    /// unknown columns might hold the name at any level, so their lineage always joins in.
    fn resolve_name(&self, c: &str) -> Option<Lineage> {
        let (hit, opaque) = self.resolve_bare(c);
        let found = hit.or_else(|| self.whole_row(c));
        match (found, opaque) {
            (Some(f), Some(o)) => Some(o.join(f)),
            (f, o) => f.or(o),
        }
    }

    /// (lineage of the innermost level's columns named `c`, joined lineage of every source
    /// with unknown columns up to and including that level).
    fn resolve_bare(&self, c: &str) -> (Option<Lineage>, Option<Lineage>) {
        let mut opaque: Option<Lineage> = None;
        for frame in self.frames.iter().rev() {
            let mut hit: Option<Lineage> = None;
            for src in &frame.sources {
                match &src.columns {
                    Some(cols) => {
                        for (n, l) in cols {
                            if n == c {
                                hit = Some(hit.map_or_else(|| l.clone(), |h| h.join(l.clone())));
                            }
                        }
                    }
                    None => {
                        opaque = Some(
                            opaque
                                .map_or_else(|| src.opaque.clone(), |a| a.join(src.opaque.clone())),
                        )
                    }
                }
            }
            if hit.is_some() {
                return (hit, opaque);
            }
        }
        (None, opaque)
    }

    fn whole_row(&self, name: &str) -> Option<Lineage> {
        self.frames.iter().rev().find_map(|f| {
            f.sources
                .iter()
                .find(|s| s.refname.as_deref() == Some(name))
                .map(|s| s.whole_row(name))
        })
    }

    fn resolve_qualified(&self, schema: Option<&String>, t: &str, c: &str) -> Option<Lineage> {
        for frame in self.frames.iter().rev() {
            for src in &frame.sources {
                if src.refname.as_deref() != Some(t)
                    || (schema.is_some() && src.schema.as_ref() != schema)
                {
                    continue;
                }
                return Some(match &src.columns {
                    Some(cols) => cols
                        .iter()
                        .filter(|(n, _)| n == c)
                        .map(|(_, l)| l.clone())
                        .reduce(Lineage::join)
                        .unwrap_or_else(|| Lineage::Tainted(format!("no column `{t}.{c}`"))),
                    None => src.opaque.clone(),
                });
            }
        }
        None
    }
}

fn rename(mut cols: Columns, alias: &TableAlias) -> Columns {
    for (i, c) in alias.columns.iter().enumerate() {
        if let Some(slot) = cols.get_mut(i) {
            slot.0 = fold(&c.name);
        }
    }
    cols
}

fn apply_alias(s: &mut Source, alias: &Option<TableAlias>) {
    if let Some(a) = alias {
        s.refname = Some(fold(&a.name));
        s.qualifier = Some(a.name.clone());
        s.schema = None;
        if let Some(cols) = s.columns.take() {
            s.columns = Some(rename(cols, a));
        }
    }
}

/// A table function: its columns are unknown unless the alias lists them.
fn opaque_source(alias: &Option<TableAlias>, written: Option<Ident>, l: Lineage) -> Source {
    let mut s = Source {
        refname: written.as_ref().map(fold),
        qualifier: written,
        schema: None,
        columns: None,
        opaque: l.clone(),
    };
    if let Some(a) = alias {
        s.refname = Some(fold(&a.name));
        s.qualifier = Some(a.name.clone());
        if !a.columns.is_empty() {
            s.columns = Some(
                a.columns
                    .iter()
                    .map(|c| (fold(&c.name), l.clone()))
                    .collect(),
            );
        }
    }
    s
}

/// Collects the lineage of every column a general expression reads. Subqueries are analysed
/// on their own (their output counts, their WHERE does not) and skipped by the walk.
struct Walker<'e, 'a> {
    env: &'e mut Env<'a>,
    depth: usize,
    acc: Lineage,
}

impl Walker<'_, '_> {
    fn add(&mut self, l: Lineage) {
        let acc = std::mem::replace(&mut self.acc, Lineage::Clean);
        self.acc = acc.join(l);
    }

    fn all_rows(&self) -> Lineage {
        let frame = self.env.frames.last();
        frame
            .into_iter()
            .flat_map(|f| f.sources.iter())
            .fold(Lineage::Clean, |acc, s| acc.join(s.whole_row("*")))
    }
}

impl Visitor for Walker<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            let l = match self.env.query_columns(q) {
                Ok(cols) => cols
                    .into_iter()
                    .fold(Lineage::Clean, |acc, (_, l)| acc.join(l)),
                Err(e) => Lineage::Tainted(e.to_string()),
            };
            self.add(l.computed(|| "subquery returns PII".into()));
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        match e {
            Expr::Identifier(id) => {
                let l = self.env.resolve(std::slice::from_ref(id));
                self.add(l);
            }
            Expr::CompoundIdentifier(ids) => {
                let l = self.env.resolve(ids);
                self.add(l);
            }
            Expr::Wildcard(_) => {
                let l = self.all_rows();
                self.add(l);
            }
            Expr::QualifiedWildcard(n, _) => {
                let l = match self.env.find_source_in_top(n) {
                    Ok(s) => s.whole_row(&n.to_string()),
                    Err(e) => Lineage::Tainted(e.to_string()),
                };
                self.add(l);
            }
            Expr::Function(f) => {
                let FunctionArguments::List(list) = &f.args else {
                    return ControlFlow::Continue(());
                };
                let is_count = f.name.to_string().eq_ignore_ascii_case("count");
                for a in &list.args {
                    let (FunctionArg::Named { arg, .. }
                    | FunctionArg::ExprNamed { arg, .. }
                    | FunctionArg::Unnamed(arg)) = a;
                    let l = match arg {
                        FunctionArgExpr::Expr(_) => continue, // visited as an expression
                        FunctionArgExpr::Wildcard if is_count => continue,
                        FunctionArgExpr::QualifiedWildcard(n) => {
                            match self.env.find_source_in_top(n) {
                                Ok(s) => s.whole_row(&n.to_string()),
                                Err(e) => Lineage::Tainted(e.to_string()),
                            }
                        }
                        _ => self.all_rows(),
                    };
                    self.add(l);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

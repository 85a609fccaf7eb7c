//! Where each output column of a query comes from, as far as PII is concerned.
//!
//! The rewrite only ever masks a value that *is* a PII column (possibly renamed, cast, or
//! passed through a subquery, CTE or view). Anything computed from PII — `upper(email)`,
//! `count(ssn)`, `row_to_json(c)`, a scalar subquery returning `ssn` — is `Tainted`: it cannot
//! be masked without guessing, so the caller holds the statement instead. Names that cannot be
//! resolved, relations missing from the catalog and unsupported FROM items are tainted too:
//! this module may be wrong only in the direction of holding.

use sqlparser::ast::{
    Expr, Ident, ObjectName, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    WildcardAdditionalOptions,
};

use super::from::rename;
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
    pub(super) fn computed(self, what: impl FnOnce() -> String) -> Lineage {
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
    pub(super) fn whole_row(&self, name: &str) -> Lineage {
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
pub(super) struct Cte {
    pub name: String,
    pub columns: Option<Columns>,
    pub opaque: Lineage,
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
        id.value.to_ascii_lowercase()
    }
}

pub(super) fn object_parts(name: &ObjectName) -> Option<Vec<Ident>> {
    name.0.iter().map(|p| p.as_ident().cloned()).collect()
}

pub(super) fn unsafe_(msg: impl Into<String>) -> MaskError {
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

    pub(super) fn column_lineage(&self, c: &ColumnRef) -> Lineage {
        match self.pii.method(c) {
            Some(m) => Lineage::Pii(m, vec![c.clone()]),
            None => Lineage::Clean,
        }
    }

    /// Columns of a catalog relation. A view column computed from PII base columns is masked
    /// as a whole; `partial` becomes `hash` there because the view may have transformed the
    /// value (a reversed SSN would show its first digits under `partial`).
    pub(super) fn relation_columns(&self, t: &TableRef, rel: &Relation) -> Columns {
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
    pub(super) fn resolve_table(&self, parts: &[String]) -> Option<(TableRef, &'a Relation)> {
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

    pub(super) fn find_cte(&self, name: &str) -> Option<&Cte> {
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

    pub(super) fn setexpr_columns(&mut self, e: &SetExpr) -> Result<Columns, MaskError> {
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
                    parts.push(s.to_ascii_lowercase());
                }
                if let Some(n) = &t.table_name {
                    parts.push(n.to_ascii_lowercase());
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
    pub(super) fn select_columns(&mut self, s: &Select) -> Result<Columns, MaskError> {
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
}

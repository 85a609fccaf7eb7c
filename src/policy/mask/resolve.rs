//! Column references and expressions: what a name resolves to, the way PostgreSQL looks it
//! up, and the lineage of a whole expression (subqueries included).

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Query, Visit, Visitor,
};

use super::lineage::{fold, Env, Lineage};
use super::MaskError;

impl Env<'_> {
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

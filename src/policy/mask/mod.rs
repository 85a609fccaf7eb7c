//! `mask`: rewrite a SELECT so the PII it returns comes back masked.
//!
//! Only the outermost select list(s) change (each branch of a UNION, say); every PII column
//! there is replaced by a masking expression under the column's own name, and `*` / `t.*`
//! over a source with PII are expanded from the catalog first. The rest of the statement —
//! WHERE, JOIN, GROUP BY, ORDER BY, subqueries — is untouched, so filters and joins on PII
//! still work and the row set is what the agent asked for.
//!
//! The masking expressions (NULL stays NULL; results are `text`):
//! - `redact`  → `'***'`
//! - `partial` → emails: first character + `***` + `@domain`; other values of at least 8
//!   characters: `***` + last 4; shorter values: `***`
//! - `hash`    → `md5(value::text)`
//!
//! Whenever the rewrite cannot be shown safe — PII inside a computed expression, a whole-row
//! reference, `*` over a JOIN … USING, a relation missing from the catalog, a statement that is
//! not a query — it returns an error and the policy holds the statement. It never lets
//! unmasked PII through by falling back to the original text.

mod from;
mod lineage;
mod resolve;
#[cfg(test)]
mod tests;

use std::ops::ControlFlow;
use std::sync::OnceLock;

use sqlparser::ast::{
    visit_expressions_mut, Expr, Ident, Query, Select, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, Statement,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use lineage::{fold, output_ident, plain_wildcard, Env, Frame, Lineage, Source};

use super::model::PiiSet;
use super::MaskMethod;
use crate::sql::{Catalog, ColumnRef};

/// Why a statement could not be masked (becomes the reason of the hold).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("the statement does not parse: {0}")]
    Parse(String),
    #[error("{0}")]
    Unsafe(String),
}

/// The SQL that runs instead, and the PII columns it masks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub sql: String,
    /// Base columns (and view columns) whose values are masked in the output.
    pub masked: Vec<ColumnRef>,
}

/// Rewrites the statements of `sql` for which `which` is true; the others are reprinted as
/// parsed. `which` has one entry per statement of the classification.
pub(super) fn rewrite(
    sql: &str,
    which: &[bool],
    pii: &PiiSet,
    catalog: &Catalog,
) -> Result<Rewrite, MaskError> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| MaskError::Parse(e.to_string()))?;
    if statements.len() != which.len() {
        return Err(MaskError::Unsafe(format!(
            "{} statement(s) parsed where {} were classified",
            statements.len(),
            which.len()
        )));
    }
    let mut masked = Vec::new();
    for (stmt, &m) in statements.iter_mut().zip(which) {
        if !m {
            continue;
        }
        let Statement::Query(q) = stmt else {
            return Err(MaskError::Unsafe(
                "only SELECT statements can be masked".to_string(),
            ));
        };
        let mut env = Env::new(pii, catalog);
        let mut m = Masker {
            env: &mut env,
            masked: Vec::new(),
        };
        m.query(q)?;
        for c in m.masked {
            if !masked.contains(&c) {
                masked.push(c);
            }
        }
    }
    let sql = statements
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    reads_back(&sql, &statements)?;
    Ok(Rewrite { sql, masked })
}

/// The rewrite is sent instead of what the agent wrote, so its text must mean exactly the
/// statements built here. Printing is not always faithful (`- -1` comes out as `--1`, which
/// PostgreSQL reads as a comment that swallows the rest of the line, turning a string literal
/// further on into code): the text is parsed again and must give back the same statements,
/// else nothing is masked and the statement is held.
fn reads_back(sql: &str, statements: &[Statement]) -> Result<(), MaskError> {
    let again = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok();
    if again.as_deref() == Some(statements) {
        Ok(())
    } else {
        Err(MaskError::Unsafe(
            "the masked statement does not read back as the statement it was built from".into(),
        ))
    }
}

/// The SQL text of the masking expression for `v` (already an expression in SQL syntax).
fn mask_sql(m: MaskMethod, v: &str) -> String {
    let t = format!("({v})::text");
    match m {
        MaskMethod::Redact => format!("CASE WHEN ({v}) IS NULL THEN NULL ELSE '***' END"),
        MaskMethod::Hash => format!("md5({t})"),
        MaskMethod::Partial => format!(
            "CASE WHEN ({v}) IS NULL THEN NULL \
             WHEN strpos({t}, '@') > 1 THEN substr({t}, 1, 1) || '***' || substr({t}, strpos({t}, '@')) \
             WHEN length({t}) >= 8 THEN '***' || substr({t}, length({t}) - 3) \
             ELSE '***' END"
        ),
    }
}

/// Stands where the masked value goes in a method's template.
const PLACEHOLDER: &str = "airlock_masked_value";

/// A method's masking expression around [`PLACEHOLDER`], parsed once: masking a column then
/// costs a tree clone instead of printing the column and parsing the long expression around
/// it (three times per masked read, which made up half its cost).
fn template(m: MaskMethod) -> Result<&'static Expr, MaskError> {
    static TEMPLATES: [OnceLock<Result<Expr, String>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match m {
        MaskMethod::Partial => &TEMPLATES[0],
        MaskMethod::Hash => &TEMPLATES[1],
        MaskMethod::Redact => &TEMPLATES[2],
    };
    slot.get_or_init(|| {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&mask_sql(m, PLACEHOLDER))
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| MaskError::Parse(e.clone()))
}

/// The masking expression of `m` over `e`. The whole rewrite is printed and parsed back before
/// it is used ([`reads_back`]), so a tree that would not print as itself is never sent.
fn mask_expr(m: MaskMethod, e: &Expr) -> Result<Expr, MaskError> {
    let mut out = template(m)?.clone();
    // Post-order: a placeholder is replaced after its children were seen, and what replaces it
    // is not walked again, so nothing in `e` can itself pass for the placeholder.
    let _ = visit_expressions_mut(&mut out, |x| {
        if matches!(x, Expr::Identifier(id) if id.quote_style.is_none() && id.value == PLACEHOLDER)
        {
            // The template has the placeholder in parentheses already.
            *x = e.clone();
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(out)
}

struct Masker<'e, 'a> {
    env: &'e mut Env<'a>,
    masked: Vec<ColumnRef>,
}

impl Masker<'_, '_> {
    fn query(&mut self, q: &mut Query) -> Result<(), MaskError> {
        // The CTEs are registered by analysing the query in a frame of its own.
        self.env.frames.push(Frame::default());
        let r = self.with_ctes(q);
        self.env.frames.pop();
        r
    }

    fn with_ctes(&mut self, q: &mut Query) -> Result<(), MaskError> {
        self.env.register_ctes(q);
        self.set_expr(&mut q.body)
    }

    fn set_expr(&mut self, e: &mut SetExpr) -> Result<(), MaskError> {
        match e {
            SetExpr::Select(s) => {
                self.env.frames.push(Frame::default());
                let r = self.select(s);
                self.env.frames.pop();
                r
            }
            SetExpr::Query(q) => self.query(q),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left)?;
                self.set_expr(right)
            }
            SetExpr::Values(v) => {
                for row in &v.rows {
                    for e in row.iter() {
                        if let l @ (Lineage::Pii(..) | Lineage::Tainted(_)) =
                            self.env.expr_lineage(e)?
                        {
                            return Err(MaskError::Unsafe(describe(&l, e)));
                        }
                    }
                }
                Ok(())
            }
            SetExpr::Table(_) => Err(MaskError::Unsafe(
                "TABLE … cannot be masked (write SELECT … FROM instead)".into(),
            )),
            _ => Err(MaskError::Unsafe(
                "data-modifying statement inside a query".into(),
            )),
        }
    }

    /// Rewrites one select list; the caller has pushed a fresh frame.
    fn select(&mut self, s: &mut Select) -> Result<(), MaskError> {
        if s.into.is_some() {
            return Err(MaskError::Unsafe("SELECT … INTO cannot be masked".into()));
        }
        self.env.add_from(&s.from)?;
        let items = std::mem::take(&mut s.projection);
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                SelectItem::UnnamedExpr(e) => self.item(e, None, &mut out)?,
                SelectItem::ExprWithAlias { expr, alias } => {
                    self.item(expr, Some(alias), &mut out)?
                }
                SelectItem::Wildcard(o) => {
                    let frame = self.env.frames.last().expect("frame");
                    if frame.sources.iter().all(source_is_clean) {
                        out.push(SelectItem::Wildcard(o));
                        continue;
                    }
                    if !plain_wildcard(&o) {
                        return Err(MaskError::Unsafe(format!(
                            "`*` options cannot be masked: {o}"
                        )));
                    }
                    if frame.merges_columns {
                        return Err(MaskError::Unsafe(
                            "`*` over JOIN … USING / NATURAL cannot be expanded for masking".into(),
                        ));
                    }
                    let sources = frame.sources.clone();
                    for src in &sources {
                        self.expand(src, &mut out)?;
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    o,
                ) => {
                    let src = self.env.find_source_in_top(&n)?.clone();
                    if source_is_clean(&src) {
                        out.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(n),
                            o,
                        ));
                        continue;
                    }
                    if !plain_wildcard(&o) {
                        return Err(MaskError::Unsafe(format!(
                            "`{n}.*` options cannot be masked"
                        )));
                    }
                    self.expand(&src, &mut out)?;
                }
                other => {
                    return Err(MaskError::Unsafe(format!(
                        "select item `{other}` cannot be masked"
                    )))
                }
            }
        }
        s.projection = out;
        Ok(())
    }

    fn item(
        &mut self,
        e: Expr,
        alias: Option<Ident>,
        out: &mut Vec<SelectItem>,
    ) -> Result<(), MaskError> {
        match self.env.expr_lineage(&e)? {
            Lineage::Clean => out.push(match alias {
                Some(alias) => SelectItem::ExprWithAlias { expr: e, alias },
                None => SelectItem::UnnamedExpr(e),
            }),
            Lineage::Pii(m, sources) => {
                let alias = alias
                    .or_else(|| output_ident(&e))
                    .ok_or_else(|| MaskError::Unsafe(format!("`{e}` has no column name")))?;
                self.note(sources);
                out.push(SelectItem::ExprWithAlias {
                    expr: mask_expr(m, &e)?,
                    alias,
                });
            }
            l @ Lineage::Tainted(_) => return Err(MaskError::Unsafe(describe(&l, &e))),
        }
        Ok(())
    }

    /// `src.*` as explicit, qualified columns, masking the PII ones.
    fn expand(&mut self, src: &Source, out: &mut Vec<SelectItem>) -> Result<(), MaskError> {
        let (Some(cols), Some(q)) = (&src.columns, &src.qualifier) else {
            return Err(MaskError::Unsafe(format!(
                "`*` over {} cannot be expanded",
                src.refname.as_deref().unwrap_or("an unnamed subquery")
            )));
        };
        for (name, l) in cols {
            let col = Ident::with_quote('"', name.clone());
            let e = Expr::CompoundIdentifier(vec![q.clone(), col.clone()]);
            match l {
                Lineage::Clean => out.push(SelectItem::UnnamedExpr(e)),
                Lineage::Pii(m, sources) => {
                    self.note(sources.clone());
                    out.push(SelectItem::ExprWithAlias {
                        expr: mask_expr(*m, &e)?,
                        alias: col,
                    });
                }
                Lineage::Tainted(why) => {
                    return Err(MaskError::Unsafe(format!("column `{}`: {why}", fold(&col))))
                }
            }
        }
        Ok(())
    }

    fn note(&mut self, sources: Vec<ColumnRef>) {
        for s in sources {
            if !self.masked.contains(&s) {
                self.masked.push(s);
            }
        }
    }
}

fn source_is_clean(s: &Source) -> bool {
    match &s.columns {
        Some(cols) => cols.iter().all(|(_, l)| l.is_clean()),
        None => s.opaque.is_clean(),
    }
}

fn describe(l: &Lineage, e: &Expr) -> String {
    match l {
        Lineage::Tainted(why) => why.clone(),
        _ => format!("`{e}` returns PII"),
    }
}

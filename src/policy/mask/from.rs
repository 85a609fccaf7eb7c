//! FROM items in scope: tables and views from the catalog, CTEs, subqueries and table
//! functions, each with the lineage of its columns.

use sqlparser::ast::{
    FunctionArg, FunctionArgExpr, Ident, JoinConstraint, JoinOperator, TableAlias, TableFactor,
    TableWithJoins,
};

use super::lineage::{fold, object_parts, unsafe_, Columns, Env, Lineage, Source};
use super::MaskError;

impl Env<'_> {
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
}

pub(super) fn rename(mut cols: Columns, alias: &TableAlias) -> Columns {
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

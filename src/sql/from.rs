//! FROM clauses: relations, CTE references, subqueries, set-returning functions and joins,
//! each becoming a [`Source`] that column names resolve against.

use sqlparser::ast::{
    FunctionArg, FunctionArgExpr, JoinConstraint, JoinOperator, ObjectName, TableAlias,
    TableFactor, TableSampleKind, TableSampleMethod, TableSampleModifier, TableWithJoins,
};

use super::expr::walk;
use super::functions::is_info_function;
use super::implied::conversions;
use super::names::{fold, fold_name, relation_parts};
use super::query::analyze_query;
use super::scope::{relation_source, rename, union_into, Acc, Ctx, Env, Lineage, OutCol, Source};
use super::TableRef;

pub(crate) fn alias_parts(alias: &Option<TableAlias>) -> Option<(String, Vec<String>)> {
    alias.as_ref().map(|a| {
        (
            fold(&a.name),
            a.columns.iter().map(|c| fold(&c.name)).collect(),
        )
    })
}

/// Add the sources of one FROM item (with its joins) to `local`.
pub(crate) fn analyze_table_with_joins(
    cx: &Ctx<'_>,
    local: &mut Env<'_>,
    twj: &TableWithJoins,
    acc: &mut Acc,
) {
    if acc.sources_exhausted() {
        return;
    }
    let srcs = analyze_factor(cx, local, &twj.relation, acc);
    local.sources.extend(srcs);
    for j in &twj.joins {
        if acc.sources_exhausted() {
            return;
        }
        let srcs = analyze_factor(cx, local, &j.relation, acc);
        local.sources.extend(srcs);
        let constraint = match &j.join_operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c)
            | JoinOperator::CrossJoin(c)
            | JoinOperator::Semi(c)
            | JoinOperator::LeftSemi(c)
            | JoinOperator::RightSemi(c)
            | JoinOperator::Anti(c)
            | JoinOperator::LeftAnti(c)
            | JoinOperator::RightAnti(c)
            | JoinOperator::StraightJoin(c) => Some(c),
            JoinOperator::AsOf {
                match_condition,
                constraint,
            } => {
                walk(cx, local, acc, match_condition);
                Some(constraint)
            }
            JoinOperator::CrossApply
            | JoinOperator::OuterApply
            | JoinOperator::ArrayJoin
            | JoinOperator::LeftArrayJoin
            | JoinOperator::InnerArrayJoin => None,
        };
        match constraint {
            Some(JoinConstraint::On(e)) => {
                walk(cx, local, acc, e);
            }
            Some(JoinConstraint::Using(names)) => {
                for n in names {
                    if let Some(col) = n.0.last().and_then(|p| p.as_ident()).map(fold) {
                        let r = local.resolve_ident(&col);
                        acc.columns(&r.lineage);
                        acc.columns(&r.maybe);
                        acc.live_check(&r.live);
                        acc.touched.extend(r.sources);
                    }
                }
            }
            Some(JoinConstraint::Natural) | Some(JoinConstraint::None) | None => {}
        }
    }
}

fn function_args_lineage(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    acc: &mut Acc,
    args: &[FunctionArg],
) -> Lineage {
    let mut lin = Vec::new();
    for a in args {
        let fa = match a {
            FunctionArg::Named { arg, .. }
            | FunctionArg::ExprNamed { arg, .. }
            | FunctionArg::Unnamed(arg) => arg,
        };
        match fa {
            FunctionArgExpr::Expr(e) => union_into(&mut lin, &walk(cx, env, acc, e)),
            FunctionArgExpr::QualifiedWildcard(q) => {
                if let Some(q) = fold_name(q) {
                    let r = env.whole_row(&q);
                    acc.columns(&r.lineage);
                    acc.live_check(&r.live);
                    union_into(&mut lin, &r.lineage);
                }
            }
            FunctionArgExpr::Wildcard | FunctionArgExpr::WildcardWithOptions(_) => {}
        }
    }
    lin
}

/// A set-returning function in FROM: its rows come from its arguments.
fn table_function(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    acc: &mut Acc,
    name: &ObjectName,
    args: &[FunctionArg],
    alias: &Option<TableAlias>,
) -> Source {
    let fname = match fold_name(name) {
        Some(parts) => {
            let v = cx.functions.verdict(cx.catalog, cx.path, &parts);
            let info = is_info_function(&v.qualified);
            let last = parts.last().cloned().unwrap_or_default();
            acc.function(v.qualified, v.safe, info);
            last
        }
        None => {
            acc.unsupported("function name");
            String::new()
        }
    };
    let lineage = function_args_lineage(cx, env, acc, args);
    unknown_source(acc, alias, fname, lineage)
}

fn unknown_source(
    acc: &mut Acc,
    alias: &Option<TableAlias>,
    default_name: String,
    lineage: Lineage,
) -> Source {
    let (name, cols) = alias_parts(alias).unwrap_or((default_name, Vec::new()));
    let columns = (!cols.is_empty()).then(|| {
        cols.into_iter()
            .map(|c| OutCol {
                name: Some(c),
                lineage: lineage.clone(),
            })
            .collect()
    });
    Source {
        uid: acc.uid(),
        alias: name,
        qualified: None,
        relation: None,
        columns,
        fallback: lineage,
    }
}

/// `TABLESAMPLE method (amount) [REPEATABLE (seed)]`: the amount is an expression evaluated
/// once per scan, so whatever it calls or reads runs as part of the statement.
fn table_sample(cx: &Ctx<'_>, env: &Env<'_>, acc: &mut Acc, sample: &Option<TableSampleKind>) {
    let Some(TableSampleKind::BeforeTableAlias(t) | TableSampleKind::AfterTableAlias(t)) = sample
    else {
        return;
    };
    let postgres_method = matches!(
        t.name,
        Some(TableSampleMethod::Bernoulli | TableSampleMethod::System)
    );
    if t.modifier != TableSampleModifier::TableSample
        || !postgres_method
        || t.bucket.is_some()
        || t.offset.is_some()
        || t.quantity.as_ref().is_some_and(|q| q.unit.is_some())
    {
        acc.unsupported("non-PostgreSQL TABLESAMPLE");
    }
    if let Some(q) = &t.quantity {
        walk(cx, env, acc, &q.value);
    }
    walk(cx, env, acc, &t.seed);
}

/// Column definitions in an alias (`json_to_record(j) AS r(a checked_text)`) convert each
/// value to their type: whatever that runs is called.
fn alias_conversions(cx: &Ctx<'_>, tf: &TableFactor, acc: &mut Acc) {
    let alias = match tf {
        TableFactor::Table { alias, .. }
        | TableFactor::Derived { alias, .. }
        | TableFactor::Function { alias, .. }
        | TableFactor::TableFunction { alias, .. }
        | TableFactor::UNNEST { alias, .. }
        | TableFactor::NestedJoin { alias, .. } => alias.as_ref(),
        _ => None,
    };
    for ty in alias
        .into_iter()
        .flat_map(|a| &a.columns)
        .filter_map(|c| c.data_type.as_ref())
    {
        acc.implied(conversions(cx, ty));
    }
}

pub(crate) fn analyze_factor(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    tf: &TableFactor,
    acc: &mut Acc,
) -> Vec<Source> {
    alias_conversions(cx, tf, acc);
    match tf {
        TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            partitions,
            json_path,
            index_hints,
            sample,
            ..
        } => {
            table_sample(cx, env, acc, sample);
            if !with_hints.is_empty()
                || version.is_some()
                || !partitions.is_empty()
                || json_path.is_some()
                || !index_hints.is_empty()
            {
                acc.unsupported("non-PostgreSQL table reference");
            }
            if let Some(a) = args {
                if a.settings.is_some() {
                    acc.unsupported("table function settings");
                }
                return vec![table_function(cx, env, acc, name, &a.args, alias)];
            }
            let implicit = alias
                .as_ref()
                .filter(|a| !a.explicit && a.columns.is_empty())
                .map(|a| &a.name);
            let Some((parts, alias_consumed)) = relation_parts(name, implicit) else {
                acc.unsupported("relation name");
                return Vec::new();
            };
            let alias = if alias_consumed {
                None
            } else {
                alias_parts(alias)
            };
            if let [single] = parts.as_slice() {
                if let Some(cte) = env.find_cte(single) {
                    let mut columns = cte.columns.clone();
                    let alias_name = match &alias {
                        Some((a, renames)) => {
                            rename(&mut columns, renames);
                            a.clone()
                        }
                        None => single.clone(),
                    };
                    return vec![Source {
                        uid: acc.uid(),
                        alias: alias_name,
                        qualified: None,
                        relation: None,
                        columns: Some(columns),
                        fallback: Vec::new(),
                    }];
                }
            }
            let alias_ref = alias.as_ref().map(|(a, c)| (a.as_str(), c.as_slice()));
            vec![relation_source(cx, acc, &parts, alias_ref, true)]
        }
        TableFactor::Derived {
            subquery,
            alias,
            sample,
            ..
        } => {
            if sample.is_some() {
                acc.unsupported("TABLESAMPLE of a subquery");
            }
            let mut cols = analyze_query(cx, Some(env), subquery, acc);
            let (name, renames) = alias_parts(alias).unwrap_or_default();
            rename(&mut cols, &renames);
            vec![Source {
                uid: acc.uid(),
                alias: name,
                qualified: None,
                relation: None,
                columns: Some(cols),
                fallback: Vec::new(),
            }]
        }
        TableFactor::Function {
            name, args, alias, ..
        } => vec![table_function(cx, env, acc, name, args, alias)],
        TableFactor::TableFunction { expr, alias } => {
            let lin = walk(cx, env, acc, expr);
            vec![unknown_source(acc, alias, String::new(), lin)]
        }
        TableFactor::UNNEST {
            alias, array_exprs, ..
        } => {
            let lin = walk(cx, env, acc, array_exprs);
            vec![unknown_source(acc, alias, "unnest".into(), lin)]
        }
        TableFactor::NestedJoin {
            table_with_joins,
            alias,
        } => {
            let mut inner = Env::child(env);
            analyze_table_with_joins(cx, &mut inner, table_with_joins, acc);
            let sources = std::mem::take(&mut inner.sources);
            match alias_parts(alias) {
                None => sources,
                Some((name, renames)) => {
                    // `(a JOIN b) AS j`: one source with every column of both.
                    let mut cols = Vec::new();
                    for s in &sources {
                        cols.extend(s.out_cols());
                    }
                    rename(&mut cols, &renames);
                    vec![Source {
                        uid: acc.uid(),
                        alias: name,
                        qualified: None,
                        relation: None,
                        columns: Some(cols),
                        fallback: Vec::new(),
                    }]
                }
            }
        }
        TableFactor::XmlTable { alias, .. } | TableFactor::JsonTable { alias, .. } => {
            let lin = walk(cx, env, acc, tf);
            vec![unknown_source(acc, alias, String::new(), lin)]
        }
        TableFactor::OpenJsonTable { .. }
        | TableFactor::Pivot { .. }
        | TableFactor::Unpivot { .. }
        | TableFactor::UnpivotExpr { .. }
        | TableFactor::MatchRecognize { .. }
        | TableFactor::SemanticView { .. } => {
            acc.unsupported("non-PostgreSQL FROM item");
            Vec::new()
        }
    }
}

/// Resolve a relation named as the target of a write, record it (and, for an updatable view,
/// its base tables) as written, and return its source for the statement's expressions.
pub(crate) fn write_target(
    cx: &Ctx<'_>,
    acc: &mut Acc,
    parts: &[String],
    alias: Option<(String, Vec<String>)>,
) -> Source {
    let alias_ref = alias.as_ref().map(|(a, c)| (a.as_str(), c.as_slice()));
    let src = relation_source(cx, acc, parts, alias_ref, false);
    if let Some(t) = &src.relation {
        acc.write(t);
        if let Some(rel) = cx.catalog.relation(t) {
            let bases: Vec<TableRef> = rel
                .view_sources
                .values()
                .flatten()
                .map(|c| c.table.clone())
                .collect();
            for b in bases {
                acc.write(&b);
            }
        }
    }
    src
}

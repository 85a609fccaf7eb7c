//! Queries: CTEs, set operations, SELECT with its FROM clause, VALUES. Returns the output
//! columns with their lineage; everything referenced along the way goes into the accumulator.

use sqlparser::ast::{
    Cte, Distinct, Expr, GroupByExpr, LimitClause, NamedWindowExpr, OrderBy, OrderByKind, Query,
    Select, SelectFlavor, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
};

use super::colname::column_name;
use super::dml;
use super::expr::{walk, walk_with};
use super::from::analyze_table_with_joins;
use super::names::{fold, fold_name, is_temp_schema};
use super::scope::{rename, union_into, unique, Acc, CteDef, Ctx, Env, OutCol};
use super::TableRef;

/// Rounds over a recursive WITH, at most, beyond one per column of its CTEs (see
/// [`analyze_recursive_with`]).
const EXTRA_RECURSIVE_ROUNDS: usize = 2;

pub(crate) fn analyze_query(
    cx: &Ctx<'_>,
    parent: Option<&Env<'_>>,
    q: &Query,
    acc: &mut Acc,
) -> Vec<OutCol> {
    if !acc.spend(1) {
        return Vec::new();
    }
    cx.marks.mark(q);
    let mut env = Env {
        parent,
        ..Env::default()
    };
    if let Some(with) = &q.with {
        for cte in &with.cte_tables {
            if let Some(verb) = dml_verb(&cte.query.body) {
                acc.flags.data_modifying_cte = true;
                acc.cte_writes.push(verb);
            }
        }
        if with.recursive {
            analyze_recursive_with(cx, &mut env, &with.cte_tables, acc);
        } else {
            // Each CTE sees the ones before it; a later name is a relation.
            for cte in &with.cte_tables {
                let renames = cte_renames(cte);
                let mut cols = analyze_query(cx, Some(&env), &cte.query, acc);
                rename(&mut cols, &renames);
                env.ctes.push(CteDef {
                    name: fold(&cte.alias.name),
                    columns: cols,
                });
            }
        }
    }
    // The ORDER BY of a plain SELECT sees its FROM items as well as its output columns; that
    // of a set operation sees only the output columns.
    let out = match &*q.body {
        SetExpr::Select(s) => analyze_select(cx, &env, s, q.order_by.as_ref(), acc),
        body => {
            let out = analyze_set_expr(cx, &env, body, acc);
            order_by(cx, &env, q.order_by.as_ref(), &out, acc);
            out
        }
    };
    if let Some(limit) = &q.limit_clause {
        match limit {
            LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            } => {
                walk(cx, &env, acc, limit);
                if let Some(o) = offset {
                    walk(cx, &env, acc, &o.value);
                }
                walk(cx, &env, acc, limit_by);
            }
            LimitClause::OffsetCommaLimit { offset, limit } => {
                walk(cx, &env, acc, offset);
                walk(cx, &env, acc, limit);
            }
        }
    }
    if let Some(f) = &q.fetch {
        walk(cx, &env, acc, &f.quantity);
    }
    if q.for_clause.is_some()
        || q.settings.is_some()
        || q.format_clause.is_some()
        || !q.pipe_operators.is_empty()
    {
        acc.unsupported("non-PostgreSQL query clause");
    }
    out
}

/// Walks an ORDER BY in `env`, where output column names resolve too (`ORDER BY total`).
fn order_by(cx: &Ctx<'_>, env: &Env<'_>, ob: Option<&OrderBy>, out: &[OutCol], acc: &mut Acc) {
    let Some(ob) = ob else {
        return;
    };
    match &ob.kind {
        OrderByKind::Expressions(exprs) => {
            for o in exprs {
                walk_with(cx, env, acc, &o.expr, Some(out));
            }
        }
        OrderByKind::All(_) => acc.unsupported("ORDER BY ALL"),
    }
    if ob.interpolate.is_some() {
        acc.unsupported("INTERPOLATE");
    }
}

/// The column alias list of a CTE (`WITH c(a, b) AS …`), folded.
fn cte_renames(cte: &Cte) -> Vec<String> {
    cte.alias.columns.iter().map(|c| fold(&c.name)).collect()
}

/// `WITH RECURSIVE`: every CTE of the list may refer to itself and to every other one, before
/// or after it (PostgreSQL orders them by their references). All are put in scope at once with
/// no known lineage, and the list is analyzed again until no column's lineage changes.
///
/// A value moves at most one column (or one CTE) per round, so a list that has not settled
/// after one round per column, plus two, never will within reason: the statement is held as
/// not understood rather than decided on lineage that is still growing (a value handed along
/// a chain of columns longer than the rounds would arrive unseen).
fn analyze_recursive_with(cx: &Ctx<'_>, env: &mut Env<'_>, ctes: &[Cte], acc: &mut Acc) {
    let first = env.ctes.len();
    let renames: Vec<Vec<String>> = ctes.iter().map(cte_renames).collect();
    for (cte, names) in ctes.iter().zip(&renames) {
        env.ctes.push(CteDef {
            name: fold(&cte.alias.name),
            columns: names
                .iter()
                .map(|n| OutCol {
                    name: Some(n.clone()),
                    lineage: Vec::new(),
                })
                .collect(),
        });
    }
    let mut rounds = 0;
    let mark = acc.uid_mark();
    loop {
        acc.rewind_uids(mark);
        let mut changed = false;
        for (i, (cte, names)) in ctes.iter().zip(&renames).enumerate() {
            let mut cols = analyze_query(cx, Some(env), &cte.query, acc);
            rename(&mut cols, names);
            let def = &mut env.ctes[first + i];
            if def.columns != cols {
                def.columns = cols;
                changed = true;
            }
        }
        if !changed || acc.unsupported.is_some() {
            return;
        }
        rounds += 1;
        let columns: usize = env.ctes[first..].iter().map(|d| d.columns.len()).sum();
        if rounds > columns + EXTRA_RECURSIVE_ROUNDS {
            acc.unsupported("a recursive WITH whose column lineage does not settle");
            return;
        }
    }
}

/// Does this branch of a set operation select `*` or `t.*`?
pub(crate) fn projects_star(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(s) => s.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }),
        SetExpr::Query(q) => projects_star(&q.body),
        SetExpr::SetOperation { left, right, .. } => projects_star(left) || projects_star(right),
        _ => false,
    }
}

/// The verb of a data-modifying query body.
pub(crate) fn dml_verb(body: &SetExpr) -> Option<&'static str> {
    match body {
        SetExpr::Insert(_) => Some("INSERT"),
        SetExpr::Update(_) => Some("UPDATE"),
        SetExpr::Delete(_) => Some("DELETE"),
        SetExpr::Merge(_) => Some("MERGE"),
        _ => None,
    }
}

fn analyze_set_expr(cx: &Ctx<'_>, env: &Env<'_>, body: &SetExpr, acc: &mut Acc) -> Vec<OutCol> {
    match body {
        SetExpr::Select(s) => analyze_select(cx, env, s, None, acc),
        SetExpr::Query(q) => analyze_query(cx, Some(env), q, acc),
        SetExpr::SetOperation { left, right, .. } => {
            let l = analyze_set_expr(cx, env, left, acc);
            let r = analyze_set_expr(cx, env, right, acc);
            let out = merge_positional(l, r);
            // The result of a set operation names no source column, so the relay cannot tell
            // a column the snapshot lacks from the others: a `*` in it is checked live.
            if projects_star(left) || projects_star(right) {
                acc.live_check(out.iter().flat_map(|c| &c.lineage).map(|c| &c.table));
            }
            out
        }
        SetExpr::Values(v) => {
            let mut out: Vec<OutCol> = Vec::new();
            for row in &v.rows {
                for (i, e) in row.iter().enumerate() {
                    let lin = walk(cx, env, acc, e);
                    if out.len() <= i {
                        out.push(OutCol {
                            name: Some(format!("column{}", i + 1)),
                            lineage: Vec::new(),
                        });
                    }
                    union_into(&mut out[i].lineage, &lin);
                }
            }
            out
        }
        SetExpr::Insert(stmt)
        | SetExpr::Update(stmt)
        | SetExpr::Delete(stmt)
        | SetExpr::Merge(stmt) => dml::analyze_dml(cx, env, stmt, acc),
        SetExpr::Table(_) => {
            acc.unsupported("TABLE");
            Vec::new()
        }
    }
}

/// UNION / INTERSECT / EXCEPT: column i of the result may come from column i of either side.
fn merge_positional(mut l: Vec<OutCol>, r: Vec<OutCol>) -> Vec<OutCol> {
    if l.len() == r.len() {
        for (a, b) in l.iter_mut().zip(&r) {
            union_into(&mut a.lineage, &b.lineage);
        }
        return l;
    }
    // Arity unknown on one side (a `*` over an unknown relation): every column may be anything.
    let all = unique(l.iter().chain(&r).flat_map(|c| &c.lineage));
    for c in &mut l {
        c.lineage = all.clone();
    }
    if l.is_empty() {
        l.push(OutCol {
            name: None,
            lineage: all,
        });
    }
    l
}

/// One SELECT, with the ORDER BY of the query it is the body of (`order`): PostgreSQL reads
/// that in the SELECT's scope, so `ORDER BY ssn::int` reads `customers.ssn`.
pub(crate) fn analyze_select(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    s: &Select,
    order: Option<&OrderBy>,
    acc: &mut Acc,
) -> Vec<OutCol> {
    let mut local = Env::child(env);
    for twj in &s.from {
        analyze_table_with_joins(cx, &mut local, twj, acc);
    }
    if !s.lateral_views.is_empty()
        || !s.connect_by.is_empty()
        || s.flavor != SelectFlavor::Standard
        || s.top.is_some()
        || s.value_table_mode.is_some()
    {
        acc.unsupported("non-PostgreSQL SELECT clause");
    }
    walk(cx, &local, acc, &s.prewhere);
    walk(cx, &local, acc, &s.selection);
    match &s.group_by {
        GroupByExpr::Expressions(exprs, _) => {
            walk(cx, &local, acc, exprs);
        }
        GroupByExpr::All(_) => {}
    }
    walk(cx, &local, acc, &s.having);
    walk(cx, &local, acc, &s.qualify);
    walk(cx, &local, acc, &s.cluster_by);
    walk(cx, &local, acc, &s.distribute_by);
    for o in &s.sort_by {
        walk(cx, &local, acc, &o.expr);
    }
    for w in &s.named_window {
        // PARTITION BY, ORDER BY and the frame's offsets alike: all are evaluated.
        if let NamedWindowExpr::WindowSpec(spec) = &w.1 {
            walk(cx, &local, acc, spec);
        }
    }
    if let Some(Distinct::On(exprs)) = &s.distinct {
        walk(cx, &local, acc, exprs);
    }
    let out = select_items(cx, &local, &s.projection, acc);
    order_by(cx, &local, order, &out, acc);
    if let Some(into) = &s.into {
        acc.flags.creates_table = true;
        for t in &into.targets {
            // A name for the new table, not a column.
            cx.marks.mark(t);
            let parts: Option<Vec<String>> = match t {
                Expr::Identifier(i) => Some(vec![fold(i)]),
                Expr::CompoundIdentifier(ids) => Some(ids.iter().map(fold).collect()),
                _ => None,
            };
            match parts {
                Some(parts) => {
                    let r = match temp_created(cx, &parts, into.temporary) {
                        Some(t) => t,
                        None => cx.relation(&parts),
                    };
                    acc.write(&r);
                }
                None => acc.unsupported("SELECT INTO target"),
            }
        }
    }
    out
}

/// The relation a `CREATE [TEMP] …` (or `SELECT … INTO [TEMP]`) of `parts` makes in the
/// session's temporary schema, if it may: asked for as TEMP, named in `pg_temp`, or
/// unqualified while `pg_temp` is anywhere in the search path. The server creates in the
/// first schema of its path that exists, and schemas listed before `pg_temp` may not
/// (`SET search_path = nosuch, pg_temp, public`), which the snapshot cannot tell for certain.
pub(crate) fn temp_created(cx: &Ctx<'_>, parts: &[String], temporary: bool) -> Option<TableRef> {
    let name = match parts {
        [.., schema, name] if is_temp_schema(schema) => name,
        [name] if temporary || cx.path.iter().any(|s| is_temp_schema(s)) => name,
        _ => return None,
    };
    Some(TableRef {
        schema: "pg_temp".into(),
        name: name.clone(),
    })
}

/// The select list (or RETURNING list) in `env`: output columns with their lineage.
/// PostgreSQL refuses a target list longer than this ("target lists can have at most 1664
/// entries"), so no statement that runs returns more columns.
pub(crate) const MAX_RESULT_COLUMNS: usize = 1664;

pub(crate) fn select_items(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    items: &[SelectItem],
    acc: &mut Acc,
) -> Vec<OutCol> {
    let mut out = select_items_uncapped(cx, env, items, acc);
    if out.len() > MAX_RESULT_COLUMNS {
        // `*` over a chain of self-joined CTEs doubles the column count at every link: a
        // kilobyte of SQL would otherwise cost the gateway gigabytes and minutes before the
        // server refused it. Such a statement cannot run as written; what is kept is enough to
        // go on analysing the rest of the text, which is held as unknown.
        acc.unsupported(format!("more than {MAX_RESULT_COLUMNS} result columns"));
        out.truncate(MAX_RESULT_COLUMNS);
    }
    out
}

fn select_items_uncapped(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    items: &[SelectItem],
    acc: &mut Acc,
) -> Vec<OutCol> {
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let lineage = walk(cx, env, acc, e);
                out.push(OutCol {
                    name: column_name(e),
                    lineage,
                });
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                let lineage = walk(cx, env, acc, expr);
                out.push(OutCol {
                    name: Some(fold(alias)),
                    lineage,
                });
            }
            SelectItem::ExprWithAliases { expr, aliases } => {
                let lineage = walk(cx, env, acc, expr);
                for a in aliases {
                    out.push(OutCol {
                        name: Some(fold(a)),
                        lineage: lineage.clone(),
                    });
                }
            }
            SelectItem::Wildcard(_) => {
                let (cols, uids) = env.star();
                for c in &cols {
                    acc.columns(&c.lineage);
                }
                acc.touched.extend(uids);
                out.extend(cols);
            }
            SelectItem::QualifiedWildcard(kind, _) => match kind {
                SelectItemQualifiedWildcardKind::ObjectName(name) => match fold_name(name) {
                    Some(q) => {
                        let mut found = false;
                        for e in std::iter::successors(Some(env), |e| e.parent) {
                            for s in e.sources.iter().filter(|s| s.matches(&q)) {
                                found = true;
                                let cols = s.out_cols();
                                for c in &cols {
                                    acc.columns(&c.lineage);
                                }
                                acc.touched.push(s.uid);
                                out.extend(cols);
                            }
                            if found {
                                break;
                            }
                        }
                    }
                    None => acc.unsupported("qualified wildcard"),
                },
                SelectItemQualifiedWildcardKind::Expr(e) => {
                    let lineage = walk(cx, env, acc, e);
                    out.push(OutCol {
                        name: None,
                        lineage,
                    });
                }
            },
        }
    }
    out
}

//! INSERT, UPDATE, DELETE and MERGE, at top level or inside a CTE. Returns the RETURNING
//! columns (what flows back to the client).

use sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, Expr, FromTable, Insert, Merge, MergeAction,
    MergeInsertKind, MergeUpdateKind, ObjectName, OnConflictAction, OnInsert, OutputClause,
    SelectItem, Statement, TableAlias, TableFactor, TableObject, Update, UpdateTableFromKind,
};

use super::expr::walk;
use super::from::{analyze_factor, analyze_table_with_joins, write_target};
use super::names::{fold, relation_parts};
use super::query::{analyze_query, projects_star, select_items};
use super::scope::{Acc, Ctx, Env, Lineage, OutCol, Source};
use super::ColumnRef;

pub(crate) fn analyze_dml(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    stmt: &Statement,
    acc: &mut Acc,
) -> Vec<OutCol> {
    acc.writes = true;
    match stmt {
        Statement::Insert(i) => insert(cx, env, i, acc),
        Statement::Update(u) => update(cx, env, u, acc),
        Statement::Delete(d) => delete(cx, env, d, acc),
        Statement::Merge(m) => merge(cx, env, m, acc),
        _ => {
            acc.unsupported("statement in query position");
            Vec::new()
        }
    }
}

/// A folded relation name and its optional alias (with column renames).
type Target = (Vec<String>, Option<(String, Vec<String>)>);

/// The folded name and alias of an UPDATE/DELETE/MERGE target (see `relation_parts`).
fn target_name(name: &ObjectName, alias: &Option<TableAlias>) -> Option<Target> {
    let implicit = alias.as_ref().filter(|a| !a.explicit).map(|a| &a.name);
    let (parts, consumed) = relation_parts(name, implicit)?;
    let alias = alias
        .as_ref()
        .filter(|_| !consumed)
        .map(|a| (fold(&a.name), Vec::new()));
    Some((parts, alias))
}

fn last_ident(name: &ObjectName) -> Option<String> {
    name.0.last().and_then(|p| p.as_ident()).map(fold)
}

/// Record the columns a SET / INSERT column list writes.
fn target_columns(acc: &mut Acc, target: &Source, names: impl IntoIterator<Item = String>) {
    for n in names {
        if let Some(lin) = dest(target, &n) {
            acc.columns(&lin);
        }
    }
}

/// The base column behind the target's column `name` (what a write to it changes), also used to
/// tell a value written back into its own column from one copied elsewhere (`Acc::stored`).
fn dest(target: &Source, name: &str) -> Option<Vec<ColumnRef>> {
    let rel = target.relation.as_ref()?;
    let lin: Vec<ColumnRef> = target
        .columns
        .iter()
        .flatten()
        .filter(|c| c.name.as_deref() == Some(name))
        .flat_map(|c| c.lineage.clone())
        .collect();
    if lin.is_empty() {
        Some(vec![ColumnRef {
            table: rel.clone(),
            column: name.to_owned(),
        }])
    } else {
        Some(lin)
    }
}

/// Values with these lineages are stored into the target's columns `names`, position by
/// position (fewer values fill the first columns, as PostgreSQL does without a column list);
/// with more values than names (or unknown names) nothing is paired and every value counts as
/// copied elsewhere.
fn stored_into(acc: &mut Acc, target: &Source, names: &[String], values: &[Lineage]) {
    let paired = values.len() <= names.len();
    for (i, lin) in values.iter().enumerate() {
        let d = if paired {
            dest(target, &names[i])
        } else {
            None
        };
        acc.stored(d.as_deref(), lin);
    }
}

/// The target's column names, in table order (what an INSERT without a column list fills).
fn all_columns(target: &Source) -> Vec<String> {
    target
        .columns
        .iter()
        .flatten()
        .filter_map(|c| c.name.clone())
        .collect()
}

fn assignments(cx: &Ctx<'_>, env: &Env<'_>, acc: &mut Acc, target: &Source, list: &[Assignment]) {
    for a in list {
        let names: Vec<String> = match &a.target {
            AssignmentTarget::ColumnName(n) => last_ident(n).into_iter().collect(),
            AssignmentTarget::Tuple(ns) => ns.iter().filter_map(last_ident).collect(),
        };
        target_columns(acc, target, names.iter().cloned());
        let lin = walk(cx, env, acc, &a.value);
        // `SET (a, b) = (SELECT …)`: one value for several columns, so nothing is paired.
        let d = match names.as_slice() {
            [n] => dest(target, n),
            _ => None,
        };
        acc.stored(d.as_deref(), &lin);
    }
}

fn returning(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    acc: &mut Acc,
    items: Option<&[SelectItem]>,
) -> Vec<OutCol> {
    match items {
        Some(items) => select_items(cx, env, items, acc),
        None => Vec::new(),
    }
}

fn output_clause(output: &Option<OutputClause>, acc: &mut Acc) -> Option<Vec<SelectItem>> {
    match output {
        None => None,
        Some(OutputClause::Returning { select_items, .. }) => Some(select_items.clone()),
        Some(OutputClause::Output { .. }) => {
            acc.unsupported("OUTPUT clause");
            None
        }
    }
}

/// Walk a WHERE (or MERGE ON) condition; true when it does not depend on the rows of the
/// target at all (absent, `true`, `1 = 1`, an uncorrelated EXISTS): the write hits every row.
fn unbounded(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    acc: &mut Acc,
    cond: Option<&Expr>,
    target: usize,
) -> bool {
    let Some(cond) = cond else { return true };
    let mark = acc.touched.len();
    walk(cx, env, acc, cond);
    !acc.touched[mark..].contains(&target)
}

fn insert(cx: &Ctx<'_>, env: &Env<'_>, i: &Insert, acc: &mut Acc) -> Vec<OutCol> {
    let TableObject::TableName(name) = &i.table else {
        acc.unsupported("INSERT into a function");
        return Vec::new();
    };
    let implicit = i
        .table_alias
        .as_ref()
        .filter(|a| !a.explicit)
        .map(|a| &a.alias);
    let Some((parts, alias_consumed)) = relation_parts(name, implicit) else {
        acc.unsupported("relation name");
        return Vec::new();
    };
    if i.partitioned.is_some()
        || !i.after_columns.is_empty()
        || i.settings.is_some()
        || i.format_clause.is_some()
    {
        acc.unsupported("non-PostgreSQL INSERT clause");
    }
    let alias = i
        .table_alias
        .as_ref()
        .filter(|_| !alias_consumed)
        .map(|a| (fold(&a.alias), Vec::new()));
    let target = write_target(cx, acc, &parts, alias);
    let names: Vec<String> = if i.columns.is_empty() {
        all_columns(&target)
    } else {
        i.columns.iter().filter_map(last_ident).collect()
    };
    target_columns(acc, &target, names.iter().cloned());
    if let Some(src) = &i.source {
        let values = analyze_query(cx, Some(env), src, acc);
        // No row comes back to show a column the snapshot lacks: `*` is checked live.
        if projects_star(&src.body) {
            acc.live_check(values.iter().flat_map(|c| &c.lineage).map(|c| &c.table));
        }
        let lineages: Vec<Lineage> = values.into_iter().map(|c| c.lineage).collect();
        stored_into(acc, &target, &names, &lineages);
    }
    let mut scope = Env::child(env);
    scope.sources.push(target.clone());
    assignments(cx, &scope, acc, &target, &i.assignments);
    match &i.on {
        Some(OnInsert::OnConflict(oc)) => {
            if let OnConflictAction::DoUpdate(du) = &oc.action {
                // EXCLUDED is the row proposed for insertion: the target's columns.
                let mut excluded = target.clone();
                excluded.uid = acc.uid();
                excluded.alias = "excluded".into();
                excluded.qualified = None;
                scope.sources.push(excluded);
                assignments(cx, &scope, acc, &target, &du.assignments);
                walk(cx, &scope, acc, &du.selection);
                scope.sources.pop();
            }
        }
        Some(OnInsert::DuplicateKeyUpdate(list)) => assignments(cx, &scope, acc, &target, list),
        Some(_) => acc.unsupported("INSERT ON clause"),
        None => {}
    }
    let extra = output_clause(&i.output, acc);
    let mut out = returning(cx, &scope, acc, i.returning.as_deref());
    out.extend(returning(cx, &scope, acc, extra.as_deref()));
    out
}

fn update(cx: &Ctx<'_>, env: &Env<'_>, u: &Update, acc: &mut Acc) -> Vec<OutCol> {
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &u.table.relation
    else {
        acc.unsupported("UPDATE target");
        return Vec::new();
    };
    let Some((parts, alias)) = target_name(name, alias) else {
        acc.unsupported("relation name");
        return Vec::new();
    };
    let target = write_target(cx, acc, &parts, alias);
    let mut scope = Env::child(env);
    scope.sources.push(target.clone());
    for j in &u.table.joins {
        let srcs = analyze_factor(cx, &scope, &j.relation, acc);
        scope.sources.extend(srcs);
    }
    if let Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) =
        &u.from
    {
        for twj in from {
            analyze_table_with_joins(cx, &mut scope, twj, acc);
        }
    }
    assignments(cx, &scope, acc, &target, &u.assignments);
    if unbounded(cx, &scope, acc, u.selection.as_ref(), target.uid) {
        acc.flags.unbounded_write = true;
    }
    for o in &u.order_by {
        walk(cx, &scope, acc, &o.expr);
    }
    walk(cx, &scope, acc, &u.limit);
    if u.or.is_some() {
        acc.unsupported("UPDATE OR");
    }
    let extra = output_clause(&u.output, acc);
    let mut out = returning(cx, &scope, acc, u.returning.as_deref());
    out.extend(returning(cx, &scope, acc, extra.as_deref()));
    out
}

fn delete(cx: &Ctx<'_>, env: &Env<'_>, d: &Delete, acc: &mut Acc) -> Vec<OutCol> {
    let from = match &d.from {
        FromTable::WithFromKeyword(v) | FromTable::WithoutKeyword(v) => v,
    };
    if !d.tables.is_empty() || from.len() != 1 || !from[0].joins.is_empty() {
        acc.unsupported("multi-table DELETE");
        return Vec::new();
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &from[0].relation
    else {
        acc.unsupported("DELETE target");
        return Vec::new();
    };
    let Some((parts, alias)) = target_name(name, alias) else {
        acc.unsupported("relation name");
        return Vec::new();
    };
    let target = write_target(cx, acc, &parts, alias);
    let mut scope = Env::child(env);
    scope.sources.push(target.clone());
    for twj in d.using.iter().flatten() {
        analyze_table_with_joins(cx, &mut scope, twj, acc);
    }
    if unbounded(cx, &scope, acc, d.selection.as_ref(), target.uid) {
        acc.flags.unbounded_write = true;
    }
    for o in &d.order_by {
        walk(cx, &scope, acc, &o.expr);
    }
    walk(cx, &scope, acc, &d.limit);
    let extra = output_clause(&d.output, acc);
    let mut out = returning(cx, &scope, acc, d.returning.as_deref());
    out.extend(returning(cx, &scope, acc, extra.as_deref()));
    out
}

fn merge(cx: &Ctx<'_>, env: &Env<'_>, m: &Merge, acc: &mut Acc) -> Vec<OutCol> {
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &m.table
    else {
        acc.unsupported("MERGE target");
        return Vec::new();
    };
    let Some((parts, alias)) = target_name(name, alias) else {
        acc.unsupported("relation name");
        return Vec::new();
    };
    let target = write_target(cx, acc, &parts, alias);
    let mut scope = Env::child(env);
    scope.sources.push(target.clone());
    let srcs = analyze_factor(cx, &scope, &m.source, acc);
    scope.sources.extend(srcs);
    let on_unbounded = unbounded(cx, &scope, acc, Some(&m.on), target.uid);
    for clause in &m.clauses {
        walk(cx, &scope, acc, &clause.predicate);
        match &clause.action {
            MergeAction::Insert(ins) => {
                let names: Vec<String> = if ins.columns.is_empty() {
                    all_columns(&target)
                } else {
                    ins.columns.iter().filter_map(last_ident).collect()
                };
                target_columns(acc, &target, names.iter().cloned());
                match &ins.kind {
                    MergeInsertKind::Values(v) => {
                        for row in &v.rows {
                            let lineages: Vec<Lineage> =
                                row.iter().map(|e| walk(cx, &scope, acc, e)).collect();
                            stored_into(acc, &target, &names, &lineages);
                        }
                    }
                    _ => acc.unsupported("MERGE INSERT form"),
                }
                walk(cx, &scope, acc, &ins.insert_predicate);
            }
            MergeAction::Update(up) => {
                if on_unbounded {
                    acc.flags.unbounded_write = true;
                }
                match &up.kind {
                    MergeUpdateKind::Set(list) => assignments(cx, &scope, acc, &target, list),
                    _ => acc.unsupported("MERGE UPDATE form"),
                }
                walk(cx, &scope, acc, &up.update_predicate);
                walk(cx, &scope, acc, &up.delete_predicate);
            }
            MergeAction::Delete { .. } => {
                if on_unbounded {
                    acc.flags.unbounded_write = true;
                }
            }
            MergeAction::DoNothing { .. } => {}
        }
    }
    let extra = output_clause(&m.output, acc);
    returning(cx, &scope, acc, extra.as_deref())
}

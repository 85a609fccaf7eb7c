//! One parsed statement → its [`Facts`], by `Statement` variant. Variants the classifier does
//! not know are `unknown`: a new sqlparser variant, or a dialect construct PostgreSQL lacks,
//! is held rather than guessed at.

use sqlparser::ast::{
    AlterIndexOperation, AlterTableOperation, CloseCursor, CreateTableLikeKind, DeclareType,
    DescribeAlias, DiscardObject, Expr, ObjectName, ObjectType, Query, RenameTableNameKind, Reset,
    SetExpr, Statement,
};

use super::commands::{
    copy, ddl_read, ddl_targets, explain_analyze_option, set_statement, setting, setting_kind,
    wrap_explain,
};
use super::dml::analyze_dml;
use super::expr::walk;
use super::implied::{add_implied, conversions};
use super::label::token_label;
use super::lexer::Tok;
use super::names::{fold, fold_name, is_temp_schema, system_write_kind};
use super::query::{analyze_query, temp_created};
use super::scope::{unique, Acc, Ctx, Env, OutCol};
use super::text::safe_name;
use super::{ColumnRef, Facts, Kind, TableRef};

/// What a statement does to the per-session SQL state (prepared statements, search_path).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    None,
    Prepare {
        name: String,
        inner: Box<Facts>,
    },
    /// `EXECUTE name`, possibly under EXPLAIN [ANALYZE]; `params` holds what the parameter
    /// expressions themselves do (functions they call).
    Execute {
        name: String,
        params: Box<Facts>,
        wrap: Wrap,
    },
    Deallocate(Option<String>),
    /// `DECLARE name CURSOR …`: the name may now be a portal on the server. `hold`: `WITH
    /// HOLD`, the cursor outlives a transaction that commits.
    DeclareCursor {
        name: String,
        hold: bool,
    },
    /// `CLOSE name`, or `CLOSE ALL` (None).
    CloseCursor(Option<String>),
    /// `FETCH … name`: rows of a cursor whose query was decided when the session declared
    /// it. A cursor the session did not declare (a refcursor some function opened) hides
    /// its query, so such a FETCH is not a plain read; nor is one of a name a DECLARE no
    /// longer vouches for (see [`super::cursors`]).
    Fetch(String),
    /// `SET search_path`; `names_user` when an entry was `$user` (already replaced by the
    /// upstream role, which a role change in the session would make wrong).
    SetSearchPath {
        path: Vec<String>,
        names_user: bool,
    },
    ResetSearchPath,
    DiscardAll,
    /// `CREATE TEMP TABLE name …` and the like: the name may now be a relation of the
    /// session's temporary schema, which shadows any other of that name.
    CreateTemp(String),
    /// A statement sqlparser cannot read renames something while the session has temporary
    /// relations (`ALTER VIEW … RENAME …`): which name now shadows the catalog is not known.
    TempUnknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrap {
    None,
    Explain,
    ExplainAnalyze,
}

/// The statement's text, for labels.
pub(crate) struct Source<'t> {
    pub text: &'t str,
    pub toks: &'t [Tok],
}

impl Source<'_> {
    fn label(&self) -> String {
        token_label(self.text, self.toks)
    }
}

pub(crate) fn build(kind: Kind, label: impl Into<String>, acc: Acc, output: &[OutCol]) -> Facts {
    let output_columns: Vec<ColumnRef> = unique(output.iter().flat_map(|c| &c.lineage));
    let label = label.into();
    let (kind, label) = match &acc.unsupported {
        Some(what) => (Kind::Unknown, format!("{label} (unsupported: {what})")),
        None => system_write(kind, label, &acc.tables_written),
    };
    Facts {
        kind,
        label,
        tables_read: acc.tables_read,
        tables_written: acc.tables_written,
        columns: acc.columns,
        output_columns,
        stored_columns: acc.stored,
        functions: acc.functions,
        flags: acc.flags,
        live_check: acc.live_check,
        live_names: acc.live_names,
    }
}

pub(crate) fn simple(kind: Kind, label: impl Into<String>) -> Facts {
    build(kind, label, Acc::default(), &[])
}

/// A write to a system relation is judged as what it changes (see
/// [`super::names::system_write_kind`]), whatever statement makes it.
fn system_write(kind: Kind, label: String, written: &[TableRef]) -> (Kind, String) {
    let Some(t) = written.iter().find(|t| system_write_kind(t).is_some()) else {
        return (kind, label);
    };
    let kind = match kind {
        Kind::Unknown | Kind::Role => kind,
        _ if written
            .iter()
            .any(|t| system_write_kind(t) == Some(Kind::Role)) =>
        {
            Kind::Role
        }
        _ => Kind::Ddl,
    };
    (kind, format!("{label} (writes system catalog {t})"))
}

/// The kind of a query from what its analysis found.
fn query_kind(acc: &Acc) -> Kind {
    if acc.writes {
        Kind::Write
    } else if acc.flags.creates_table {
        Kind::Ddl
    } else if acc.role_setting {
        Kind::Role
    } else if acc.reads_sensitive_relation {
        Kind::Export
    } else if acc.reads_user_relation || acc.flags.unsafe_function {
        Kind::Read
    } else if acc.reads_system_relation || (acc.info_functions && !acc.other_functions) {
        Kind::Catalog
    } else if acc.session_setting && acc.functions.len() == 1 {
        Kind::Session
    } else {
        Kind::Read
    }
}

fn query_label(q: &Query, acc: &Acc) -> String {
    let mut body = &*q.body;
    while let SetExpr::Query(inner) = body {
        body = &inner.body;
    }
    let verb = match body {
        SetExpr::Insert(_) => "INSERT",
        SetExpr::Update(_) => "UPDATE",
        SetExpr::Delete(_) => "DELETE",
        SetExpr::Merge(_) => "MERGE",
        SetExpr::Values(_) => "VALUES",
        SetExpr::Select(s) if s.into.is_some() => "SELECT INTO",
        _ if !q.locks.is_empty() => "SELECT FOR UPDATE/SHARE",
        _ => "SELECT",
    };
    if acc.cte_writes.is_empty() {
        verb.to_owned()
    } else {
        format!("{verb} (WITH {})", acc.cte_writes.join(", "))
    }
}

pub(crate) fn classify_query(cx: &Ctx<'_>, q: &Query) -> Facts {
    let mut acc = Acc::default();
    let out = analyze_query(cx, None, q, &mut acc);
    let kind = query_kind(&acc);
    let label = query_label(q, &acc);
    // SELECT INTO returns no rows: its data goes into the new table.
    let out = if acc.flags.creates_table {
        Vec::new()
    } else {
        out
    };
    build(kind, label, acc, &out)
}

/// The temporary relation a CREATE of `name` makes, if it makes one (see [`temp_created`]).
fn creates_temp(cx: &Ctx<'_>, name: &ObjectName, temporary: bool) -> Option<TableRef> {
    temp_created(cx, &fold_name(name)?, temporary)
}

/// What `RENAME TO new` does to the session's temporary relations: when `old` may be one of
/// them, the new name shadows the catalog's relation of that name from then on, as a CREATE
/// would. A name that cannot be folded (the statement is held for it anyway, but may be
/// approved) loses the temporary names rather than guess.
fn renamed_temp(cx: &Ctx<'_>, old: &ObjectName, new: &ObjectName) -> Effect {
    let Some(old) = fold_name(old) else {
        return if cx.temp.is_empty() {
            Effect::None
        } else {
            Effect::TempUnknown
        };
    };
    if !is_temp_schema(&cx.relation(&old).schema) {
        return Effect::None;
    }
    match fold_name(new).and_then(|mut parts| parts.pop()) {
        Some(name) => Effect::CreateTemp(name),
        None => Effect::TempUnknown,
    }
}

/// Facts with the effect of creating `temp`, when there is one.
fn with_temp(facts: Facts, temp: Option<TableRef>) -> (Facts, Effect) {
    match temp {
        Some(t) => (facts, Effect::CreateTemp(t.name)),
        None => (facts, Effect::None),
    }
}

fn single_name(name: &ObjectName) -> Option<String> {
    match fold_name(name)?.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

pub(crate) fn classify_statement(
    cx: &Ctx<'_>,
    stmt: &Statement,
    src: &Source<'_>,
) -> (Facts, Effect) {
    let none = |f: Facts| (f, Effect::None);
    match stmt {
        Statement::Query(q) => {
            let temp = match &*q.body {
                SetExpr::Select(s) => {
                    s.into
                        .as_ref()
                        .and_then(|into| match into.targets.as_slice() {
                            [Expr::Identifier(i)] => temp_created(cx, &[fold(i)], into.temporary),
                            [Expr::CompoundIdentifier(ids)] => {
                                let parts: Vec<String> = ids.iter().map(fold).collect();
                                temp_created(cx, &parts, into.temporary)
                            }
                            _ => None,
                        })
                }
                _ => None,
            };
            with_temp(classify_query(cx, q), temp)
        }
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => {
            let mut acc = Acc::default();
            let out = analyze_dml(cx, &Env::default(), stmt, &mut acc);
            let verb = match stmt {
                Statement::Insert(_) => "INSERT",
                Statement::Update(_) => "UPDATE",
                Statement::Delete(_) => "DELETE",
                _ => "MERGE",
            };
            none(build(Kind::Write, verb, acc, &out))
        }
        Statement::Copy {
            source, to, target, ..
        } => none(copy(cx, source, *to, target)),
        Statement::Explain {
            describe_alias: DescribeAlias::Explain,
            analyze,
            statement,
            options,
            ..
        } => {
            if options.iter().flatten().any(|o| o.arg.is_some()) {
                cx.literal_sensitive.set(true);
            }
            let analyze = *analyze || explain_analyze_option(options);
            let (inner, effect) = classify_statement(cx, statement, src);
            match effect {
                Effect::Execute { name, params, .. } => {
                    let wrap = if analyze {
                        Wrap::ExplainAnalyze
                    } else {
                        Wrap::Explain
                    };
                    (
                        wrap_explain(inner, analyze),
                        Effect::Execute { name, params, wrap },
                    )
                }
                // EXPLAIN plans a DECLARE's query without opening the cursor.
                Effect::None | Effect::DeclareCursor { .. } => none(wrap_explain(inner, analyze)),
                _ => none(Facts::unknown("EXPLAIN of a session command")),
            }
        }
        Statement::Declare { stmts } => match stmts.as_slice() {
            [d] if d.declare_type == Some(DeclareType::Cursor) => match &d.for_query {
                Some(q) => {
                    let f = classify_query(cx, q);
                    let facts = Facts {
                        label: format!("DECLARE CURSOR FOR {}", f.label),
                        ..f
                    };
                    match d.names.as_slice() {
                        [name] => (
                            facts,
                            Effect::DeclareCursor {
                                name: fold(name),
                                hold: d.hold == Some(true),
                            },
                        ),
                        _ => none(Facts::unknown("DECLARE")),
                    }
                }
                None => none(Facts::unknown("DECLARE")),
            },
            _ => none(Facts::unknown("DECLARE")),
        },
        Statement::Prepare {
            name,
            data_types,
            statement,
        } => {
            let (mut inner, effect) = classify_statement(cx, statement, src);
            if effect != Effect::None {
                return none(Facts::unknown("PREPARE of a session command"));
            }
            // Each EXECUTE converts its parameters to the declared types.
            for ty in data_types {
                add_implied(&mut inner, &conversions(cx, ty));
            }
            let facts = Facts {
                label: format!("PREPARE {}", inner.label),
                ..inner.clone()
            };
            (
                facts,
                Effect::Prepare {
                    name: fold(name),
                    inner: Box::new(inner),
                },
            )
        }
        Statement::Execute {
            name: Some(name),
            parameters,
            immediate: false,
            into,
            using,
            output: false,
            default: false,
            ..
        } if into.is_empty() && using.is_empty() => {
            let Some(name) = single_name(name) else {
                return none(Facts::unknown("EXECUTE"));
            };
            let mut acc = Acc::default();
            walk(cx, &Env::default(), &mut acc, parameters);
            let params = build(Kind::Read, "parameters", acc, &[]);
            // Without session state the prepared statement is unknown: held.
            let facts = Facts {
                functions: params.functions.clone(),
                flags: params.flags.clone(),
                ..Facts::unknown(format!("EXECUTE {}", safe_name(&name)))
            };
            (
                facts,
                Effect::Execute {
                    name,
                    params: Box::new(params),
                    wrap: Wrap::None,
                },
            )
        }
        Statement::Deallocate { name, .. } => {
            let target = if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                None
            } else {
                Some(fold(name))
            };
            (
                simple(Kind::Utility, "DEALLOCATE"),
                Effect::Deallocate(target),
            )
        }
        Statement::Set(set) => set_statement(cx, set),
        Statement::Reset(r) => match &r.reset {
            // `role` and `session_authorization` are exempt from RESET ALL in the server:
            // it puts session settings back to their values at connection start.
            Reset::ALL => (simple(Kind::Session, "RESET ALL"), Effect::ResetSearchPath),
            Reset::SessionAuthorization => none(simple(Kind::Role, "RESET SESSION AUTHORIZATION")),
            Reset::ConfigurationParameter(n) => {
                let name = setting(n);
                let f = simple(
                    setting_kind(cx, &name),
                    format!("RESET {}", safe_name(&name)),
                );
                if name == "search_path" {
                    (f, Effect::ResetSearchPath)
                } else {
                    none(f)
                }
            }
        },
        Statement::ShowVariable { variable } => {
            let name: Vec<String> = variable
                .iter()
                .map(|i| safe_name(&i.value.to_ascii_lowercase()))
                .collect();
            none(simple(Kind::Catalog, format!("SHOW {}", name.join(" "))))
        }
        Statement::StartTransaction {
            statements,
            exception: None,
            ..
        } if statements.is_empty() => none(simple(Kind::Txn, "BEGIN")),
        Statement::Commit { .. } => none(simple(Kind::Txn, "COMMIT")),
        Statement::Rollback { .. } => none(simple(Kind::Txn, "ROLLBACK")),
        Statement::Savepoint { .. } => none(simple(Kind::Txn, "SAVEPOINT")),
        Statement::ReleaseSavepoint { .. } => none(simple(Kind::Txn, "RELEASE SAVEPOINT")),
        Statement::LISTEN { .. } => none(simple(Kind::Utility, "LISTEN")),
        Statement::UNLISTEN { .. } => none(simple(Kind::Utility, "UNLISTEN")),
        Statement::NOTIFY { .. } => none(simple(Kind::Utility, "NOTIFY")),
        Statement::Lock(l) => {
            let mut acc = Acc::default();
            for t in &l.tables {
                match fold_name(&t.name) {
                    Some(parts) => {
                        let r = cx.relation(&parts);
                        acc.read(&r);
                    }
                    None => acc.unsupported("relation name"),
                }
            }
            none(build(Kind::Utility, "LOCK TABLE", acc, &[]))
        }
        Statement::Vacuum(v) => {
            if v.full || v.reindex || v.recluster || v.sort_only || v.delete_only {
                return none(simple(Kind::Unknown, "VACUUM FULL"));
            }
            let mut acc = Acc::default();
            if let Some(t) = &v.table_name {
                ddl_read(cx, &mut acc, t);
            }
            none(build(Kind::Utility, "VACUUM", acc, &[]))
        }
        Statement::Analyze(a) => {
            let mut acc = Acc::default();
            if let Some(t) = &a.table_name {
                ddl_read(cx, &mut acc, t);
            }
            none(build(Kind::Utility, "ANALYZE", acc, &[]))
        }
        Statement::Truncate(t) => {
            let mut acc = Acc::default();
            let names: Vec<&ObjectName> = t.table_names.iter().map(|t| &t.name).collect();
            ddl_targets(cx, &mut acc, &names);
            acc.flags.truncate = true;
            none(build(Kind::Write, "TRUNCATE", acc, &[]))
        }
        Statement::Fetch {
            name, into: None, ..
        } => (simple(Kind::Read, "FETCH"), Effect::Fetch(fold(name))),
        Statement::Close { cursor } => match cursor {
            CloseCursor::All => (simple(Kind::Read, "CLOSE ALL"), Effect::CloseCursor(None)),
            CloseCursor::Specific { name } => (
                simple(Kind::Read, "CLOSE"),
                Effect::CloseCursor(Some(fold(name))),
            ),
        },
        Statement::Discard { object_type } => match object_type {
            DiscardObject::ALL => (simple(Kind::Role, "DISCARD ALL"), Effect::DiscardAll),
            _ => none(simple(Kind::Utility, "DISCARD")),
        },
        Statement::Call(f) => {
            let mut acc = Acc::default();
            let Some(parts) = fold_name(&f.name) else {
                return none(Facts::unknown("CALL"));
            };
            let v = cx.functions.verdict(cx.catalog, cx.path, &parts);
            let label = format!("CALL {}", safe_name(&v.qualified));
            let safe = v.safe;
            acc.function(v.qualified, safe, false);
            walk(cx, &Env::default(), &mut acc, &f.args);
            // A procedure can do anything; only one the policy declares safe is a plain write.
            let kind = if safe && !acc.flags.unsafe_function {
                Kind::Write
            } else {
                Kind::Unknown
            };
            none(build(kind, label, acc, &[]))
        }
        Statement::CreateRole(_)
        | Statement::AlterRole { .. }
        | Statement::CreateUser(_)
        | Statement::AlterUser(_)
        | Statement::Grant(_)
        | Statement::Revoke(_)
        | Statement::Deny(_) => none(simple(Kind::Role, src.label())),
        Statement::Drop {
            object_type: ObjectType::Role | ObjectType::User,
            ..
        } => none(simple(Kind::Role, src.label())),
        Statement::Drop {
            object_type, names, ..
        } => {
            let mut acc = Acc::default();
            if matches!(
                object_type,
                ObjectType::Table | ObjectType::View | ObjectType::MaterializedView
            ) {
                let names: Vec<&ObjectName> = names.iter().collect();
                ddl_targets(cx, &mut acc, &names);
            }
            none(build(Kind::Ddl, src.label(), acc, &[]))
        }
        Statement::CreateTable(ct) => {
            let mut acc = Acc::default();
            let temp = creates_temp(cx, &ct.name, ct.temporary);
            match &temp {
                Some(t) => acc.write(t),
                None => ddl_targets(cx, &mut acc, &[&ct.name]),
            }
            let mut label = src.label();
            if let Some(q) = &ct.query {
                acc.flags.creates_table = true;
                analyze_query(cx, None, q, &mut acc);
                label.push_str(" AS");
            }
            match &ct.like {
                Some(CreateTableLikeKind::Parenthesized(l))
                | Some(CreateTableLikeKind::Plain(l)) => {
                    ddl_read(cx, &mut acc, &l.name);
                }
                None => {}
            }
            if let Some(c) = &ct.clone {
                ddl_read(cx, &mut acc, c);
            }
            with_temp(build(Kind::Ddl, label, acc, &[]), temp)
        }
        Statement::CreateView(cv) => {
            let mut acc = Acc::default();
            let temp = creates_temp(cx, &cv.name, cv.temporary);
            match &temp {
                Some(t) => acc.write(t),
                None => ddl_targets(cx, &mut acc, &[&cv.name]),
            }
            analyze_query(cx, None, &cv.query, &mut acc);
            if cv.materialized {
                // CREATE MATERIALIZED VIEW runs its query and stores the rows.
                acc.flags.creates_table = true;
            }
            // A view over a temporary relation is itself temporary.
            let temp = temp.or_else(|| {
                let reads_temp = acc.tables_read.iter().any(|t| is_temp_schema(&t.schema));
                match fold_name(&cv.name)?.as_slice() {
                    [name] if reads_temp => Some(TableRef {
                        schema: "pg_temp".into(),
                        name: name.clone(),
                    }),
                    _ => None,
                }
            });
            with_temp(build(Kind::Ddl, src.label(), acc, &[]), temp)
        }
        Statement::CreateSequence {
            temporary, name, ..
        } => {
            let mut acc = Acc::default();
            let temp = creates_temp(cx, name, *temporary);
            if let Some(t) = &temp {
                acc.write(t);
            }
            with_temp(build(Kind::Ddl, src.label(), acc, &[]), temp)
        }
        Statement::CreateIndex(ci) => {
            let mut acc = Acc::default();
            ddl_targets(cx, &mut acc, &[&ci.table_name]);
            none(build(Kind::Ddl, src.label(), acc, &[]))
        }
        Statement::AlterTable(at) => {
            let mut acc = Acc::default();
            ddl_targets(cx, &mut acc, &[&at.name]);
            let new_name = at.operations.iter().find_map(|op| match op {
                AlterTableOperation::RenameTable {
                    table_name: RenameTableNameKind::To(n) | RenameTableNameKind::As(n),
                } => Some(n),
                _ => None,
            });
            let effect = new_name.map_or(Effect::None, |n| renamed_temp(cx, &at.name, n));
            (build(Kind::Ddl, src.label(), acc, &[]), effect)
        }
        Statement::AlterIndex {
            name,
            operation: AlterIndexOperation::RenameIndex { index_name },
        } => {
            // PostgreSQL renames any relation this way, a table or a view included.
            (
                simple(Kind::Ddl, src.label()),
                renamed_temp(cx, name, index_name),
            )
        }
        Statement::Comment { .. }
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateFunction(_)
        | Statement::CreateTrigger(_)
        | Statement::DropTrigger(_)
        | Statement::CreateProcedure { .. }
        | Statement::CreateDomain(_)
        | Statement::CreateType { .. }
        | Statement::CreateExtension(_)
        | Statement::DropExtension(_)
        | Statement::CreateCollation(_)
        | Statement::CreateServer(_)
        | Statement::CreatePolicy(_)
        | Statement::AlterPolicy(_)
        | Statement::DropPolicy(_)
        | Statement::CreateOperator(_)
        | Statement::CreateOperatorFamily(_)
        | Statement::CreateOperatorClass(_)
        | Statement::DropOperator(_)
        | Statement::DropOperatorFamily(_)
        | Statement::DropOperatorClass(_)
        | Statement::CreateTextSearch(_)
        | Statement::AlterSchema(_)
        | Statement::AlterView { .. }
        | Statement::AlterFunction(_)
        | Statement::AlterType(_)
        | Statement::AlterCollation(_)
        | Statement::AlterOperator(_)
        | Statement::AlterOperatorFamily(_)
        | Statement::AlterOperatorClass(_)
        | Statement::AlterTextSearch(_)
        | Statement::DropFunction(_)
        | Statement::DropDomain(_)
        | Statement::DropProcedure { .. } => none(simple(Kind::Ddl, src.label())),
        _ => none(simple(Kind::Unknown, src.label())),
    }
}

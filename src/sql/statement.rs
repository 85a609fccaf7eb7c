//! One parsed statement → its [`Facts`], by `Statement` variant. Variants the classifier does
//! not know are `unknown`: a new sqlparser variant, or a dialect construct PostgreSQL lacks,
//! is held rather than guessed at.

use sqlparser::ast::{
    CloseCursor, CopySource, CopyTarget, CreateTableLikeKind, DeclareType, DescribeAlias,
    DiscardObject, Expr, ObjectName, ObjectType, Query, Reset, Set, SetExpr, Statement, Value,
};

use super::dml::analyze_dml;
use super::expr::walk;
use super::lexer::Tok;
use super::names::{fold, fold_name};
use super::query::{analyze_query, write_target};
use super::scope::{relation_source, union_into, Acc, Ctx, Env, OutCol};
use super::text::{safe_name, token_label};
use super::{ColumnRef, Facts, Flags, Kind};

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
    SetSearchPath(Vec<String>),
    ResetSearchPath,
    DiscardAll,
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

fn build(kind: Kind, label: impl Into<String>, acc: Acc, output: &[OutCol]) -> Facts {
    let mut output_columns: Vec<ColumnRef> = Vec::new();
    for c in output {
        union_into(&mut output_columns, &c.lineage);
    }
    let label = label.into();
    let (kind, label) = match &acc.unsupported {
        Some(what) => (Kind::Unknown, format!("{label} (unsupported: {what})")),
        None => (kind, label),
    };
    Facts {
        kind,
        label,
        tables_read: acc.tables_read,
        tables_written: acc.tables_written,
        columns: acc.columns,
        output_columns,
        functions: acc.functions,
        flags: acc.flags,
    }
}

fn simple(kind: Kind, label: impl Into<String>) -> Facts {
    build(kind, label, Acc::default(), &[])
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

fn single_name(name: &ObjectName) -> Option<String> {
    match fold_name(name)?.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// A setting name as the server compares them: case-insensitively.
fn setting(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

fn setting_kind(cx: &Ctx<'_>, name: &str) -> Kind {
    match name {
        "role" | "session_authorization" | "session_replication_role" => Kind::Role,
        _ if cx.allowed_settings.contains(name) => Kind::Session,
        _ => Kind::Unknown,
    }
}

fn search_path_values(values: &[Expr]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for v in values {
        match v {
            Expr::Identifier(i)
                if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default") =>
            {
                return None;
            }
            Expr::Identifier(i) => out.push(fold(i)),
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => {
                    out.push(s.clone())
                }
                _ => out.push(v.value.to_string()),
            },
            other => out.push(other.to_string()),
        }
    }
    Some(out)
}

fn set_statement(cx: &Ctx<'_>, set: &Set) -> (Facts, Effect) {
    match set {
        Set::SingleAssignment {
            variable,
            values,
            hivevar: false,
            ..
        } => {
            let name = setting(variable);
            let mut acc = Acc::default();
            walk(cx, &Env::default(), &mut acc, values);
            let mut kind = setting_kind(cx, &name);
            if acc.flags.unsafe_function {
                kind = Kind::Unknown;
            }
            let facts = build(kind, format!("SET {}", safe_name(&name)), acc, &[]);
            let effect = if name == "search_path" {
                match search_path_values(values) {
                    Some(p) => Effect::SetSearchPath(p),
                    None => Effect::ResetSearchPath,
                }
            } else {
                Effect::None
            };
            (facts, effect)
        }
        Set::SetRole { .. } => (simple(Kind::Role, "SET ROLE"), Effect::None),
        Set::SetSessionAuthorization(_) => (
            simple(Kind::Role, "SET SESSION AUTHORIZATION"),
            Effect::None,
        ),
        Set::SetTimeZone { .. } => (
            simple(setting_kind(cx, "timezone"), "SET timezone"),
            Effect::None,
        ),
        Set::SetNames { .. } | Set::SetNamesDefault {} => (
            simple(setting_kind(cx, "client_encoding"), "SET client_encoding"),
            Effect::None,
        ),
        Set::SetTransaction { .. } => (simple(Kind::Txn, "SET TRANSACTION"), Effect::None),
        _ => (
            simple(Kind::Unknown, "SET (unsupported form)"),
            Effect::None,
        ),
    }
}

fn copy(cx: &Ctx<'_>, source: &CopySource, to: bool, target: &CopyTarget) -> Facts {
    let mut acc = Acc::default();
    let out: Vec<OutCol> = match source {
        CopySource::Table {
            table_name,
            columns,
        } => match fold_name(table_name) {
            Some(parts) => {
                let src = if to {
                    relation_source(cx, &mut acc, &parts, None, true)
                } else {
                    write_target(cx, &mut acc, &parts, None)
                };
                let cols: Vec<OutCol> = if columns.is_empty() {
                    src.out_cols()
                } else {
                    let env = Env {
                        sources: vec![src],
                        ..Env::default()
                    };
                    columns
                        .iter()
                        .map(|c| OutCol {
                            name: Some(fold(c)),
                            lineage: env
                                .resolve_qualified(&[env.sources[0].alias.clone()], &fold(c))
                                .lineage,
                        })
                        .collect()
                };
                for c in &cols {
                    acc.columns(&c.lineage);
                }
                cols
            }
            None => {
                acc.unsupported("relation name");
                Vec::new()
            }
        },
        CopySource::Query(q) => analyze_query(cx, None, q, &mut acc),
    };
    if acc.writes {
        // COPY (DELETE … RETURNING …) TO: a write hidden in an export.
        acc.flags.data_modifying_cte = true;
    }
    let (dest, server_side) = match target {
        CopyTarget::Stdin => ("STDIN", false),
        CopyTarget::Stdout => ("STDOUT", false),
        CopyTarget::File { .. } => ("file", true),
        CopyTarget::Program { .. } => ("PROGRAM", true),
    };
    acc.flags.server_side_copy = server_side;
    let (kind, label, out) = if to {
        (Kind::Export, format!("COPY TO {dest}"), out)
    } else {
        (Kind::Write, format!("COPY FROM {dest}"), Vec::new())
    };
    if !to && matches!(source, CopySource::Query(_)) {
        acc.unsupported("COPY (query) FROM");
    }
    build(kind, label, acc, &out)
}

fn explain_analyze_option(options: &Option<Vec<sqlparser::ast::UtilityOption>>) -> bool {
    options.iter().flatten().any(|o| {
        o.name.value.eq_ignore_ascii_case("analyze")
            && match &o.arg {
                None => true,
                Some(Expr::Value(v)) => !matches!(
                    v.value
                        .to_string()
                        .to_ascii_lowercase()
                        .trim_matches('\'')
                        .as_ref(),
                    "false" | "off" | "0" | "no"
                ),
                Some(Expr::Identifier(i)) => !matches!(
                    i.value.to_ascii_lowercase().as_str(),
                    "false" | "off" | "no"
                ),
                Some(_) => true,
            }
    })
}

/// What EXPLAIN makes of the facts of the statement it wraps.
pub(crate) fn wrap_explain(inner: Facts, analyze: bool) -> Facts {
    if analyze {
        // The statement runs; only its plan comes back.
        let kind = match inner.kind {
            Kind::Read | Kind::Catalog | Kind::Export => Kind::Write,
            k => k,
        };
        Facts {
            kind,
            label: format!("EXPLAIN ANALYZE {}", inner.label),
            output_columns: Vec::new(),
            flags: Flags {
                explain_analyze: true,
                ..inner.flags
            },
            ..inner
        }
    } else {
        // Planned, not run: nothing is written and no row comes back.
        let mut tables_read = inner.tables_read;
        for t in inner.tables_written {
            if !tables_read.contains(&t) {
                tables_read.push(t);
            }
        }
        Facts {
            kind: if inner.kind == Kind::Unknown {
                Kind::Unknown
            } else {
                Kind::Read
            },
            label: format!("EXPLAIN {}", inner.label),
            tables_read,
            tables_written: Vec::new(),
            columns: inner.columns,
            output_columns: Vec::new(),
            functions: inner.functions,
            flags: Flags {
                unsafe_function: inner.flags.unsafe_function,
                has_secret: inner.flags.has_secret,
                ..Flags::default()
            },
        }
    }
}

fn ddl_targets(cx: &Ctx<'_>, acc: &mut Acc, names: &[&ObjectName]) {
    for n in names {
        match fold_name(n) {
            Some(parts) => {
                let r = cx.catalog.resolve_relation(&parts, cx.path);
                acc.write(&r);
            }
            None => acc.unsupported("object name"),
        }
    }
}

pub(crate) fn classify_statement(
    cx: &Ctx<'_>,
    stmt: &Statement,
    src: &Source<'_>,
) -> (Facts, Effect) {
    let none = |f: Facts| (f, Effect::None);
    match stmt {
        Statement::Query(q) => none(classify_query(cx, q)),
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
                Effect::None => none(wrap_explain(inner, analyze)),
                _ => none(Facts::unknown("EXPLAIN of a session command")),
            }
        }
        Statement::Declare { stmts } => match stmts.as_slice() {
            [d] if d.declare_type == Some(DeclareType::Cursor) => match &d.for_query {
                Some(q) => {
                    let f = classify_query(cx, q);
                    none(Facts {
                        label: format!("DECLARE CURSOR FOR {}", f.label),
                        ..f
                    })
                }
                None => none(Facts::unknown("DECLARE")),
            },
            _ => none(Facts::unknown("DECLARE")),
        },
        Statement::Prepare {
            name, statement, ..
        } => {
            let (inner, effect) = classify_statement(cx, statement, src);
            if effect != Effect::None {
                return none(Facts::unknown("PREPARE of a session command"));
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
            Reset::ALL => (simple(Kind::Role, "RESET ALL"), Effect::ResetSearchPath),
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
                .map(|i| i.value.to_ascii_lowercase())
                .collect();
            none(simple(
                Kind::Catalog,
                format!("SHOW {}", safe_name(&name.join(" ")).replace('.', ".")),
            ))
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
                        let r = cx.catalog.resolve_relation(&parts, cx.path);
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
        Statement::Fetch { into: None, .. } => none(simple(Kind::Read, "FETCH")),
        Statement::Close { cursor } => none(simple(
            Kind::Read,
            match cursor {
                CloseCursor::All => "CLOSE ALL",
                CloseCursor::Specific { .. } => "CLOSE",
            },
        )),
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
            ddl_targets(cx, &mut acc, &[&ct.name]);
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
            none(build(Kind::Ddl, label, acc, &[]))
        }
        Statement::CreateView(cv) => {
            let mut acc = Acc::default();
            ddl_targets(cx, &mut acc, &[&cv.name]);
            analyze_query(cx, None, &cv.query, &mut acc);
            if cv.materialized {
                // CREATE MATERIALIZED VIEW runs its query and stores the rows.
                acc.flags.creates_table = true;
            }
            none(build(Kind::Ddl, src.label(), acc, &[]))
        }
        Statement::CreateIndex(ci) => {
            let mut acc = Acc::default();
            ddl_targets(cx, &mut acc, &[&ci.table_name]);
            none(build(Kind::Ddl, src.label(), acc, &[]))
        }
        Statement::AlterTable(at) => {
            let mut acc = Acc::default();
            ddl_targets(cx, &mut acc, &[&at.name]);
            none(build(Kind::Ddl, src.label(), acc, &[]))
        }
        Statement::Comment { .. }
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateFunction(_)
        | Statement::CreateTrigger(_)
        | Statement::DropTrigger(_)
        | Statement::CreateProcedure { .. }
        | Statement::CreateSequence { .. }
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
        | Statement::AlterIndex { .. }
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

fn ddl_read(cx: &Ctx<'_>, acc: &mut Acc, name: &ObjectName) {
    match fold_name(name) {
        Some(parts) => {
            let r = cx.catalog.resolve_relation(&parts, cx.path);
            acc.read(&r);
        }
        None => acc.unsupported("relation name"),
    }
}

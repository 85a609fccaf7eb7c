//! Statements that are not queries: SET, COPY, EXPLAIN, and the targets of DDL.

use sqlparser::ast::{CopySource, CopyTarget, Expr, ObjectName, Set, UtilityOption, Value};

use super::expr::walk;
use super::from::write_target;
use super::names::{fold, fold_name, is_utf8_encoding};
use super::query::analyze_query;
use super::scope::{relation_source, Acc, Ctx, Env, OutCol};
use super::statement::{build, simple, Effect};
use super::text::safe_name;
use super::{Facts, Flags, Kind};

/// A setting name as the server compares them: case-insensitively.
pub(crate) fn setting(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn setting_kind(cx: &Ctx<'_>, name: &str) -> Kind {
    match name {
        "role" | "session_authorization" | "session_replication_role" => Kind::Role,
        _ if cx.allowed_settings.contains(name) => Kind::Session,
        _ => Kind::Unknown,
    }
}

/// `SET client_encoding TO …` names UTF-8, or `DEFAULT` (the value the session started with,
/// which the gateway always makes UTF8).
fn encoding_values_are_utf8(values: &[Expr]) -> bool {
    match values {
        [Expr::Identifier(i)] => {
            is_utf8_encoding(&i.value) || i.value.eq_ignore_ascii_case("default")
        }
        [Expr::Value(v)] => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => is_utf8_encoding(s),
            _ => false,
        },
        _ => false,
    }
}

/// The schemas a `SET search_path` names, in order, and whether one was `$user`; None for
/// `DEFAULT`. An entry `$user` (however written: `"$user"`, `'$user'`) is the session's role,
/// as the server reads it each time it looks a name up: left as it was, it would name no
/// schema, and a table in the role's own schema would be judged as the one of that name
/// further down the path.
fn search_path_values(values: &[Expr], user: Option<&str>) -> Option<(Vec<String>, bool)> {
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
    let names_user = out.iter().any(|s| s == "$user");
    if let Some(user) = user {
        for s in &mut out {
            if s == "$user" {
                user.clone_into(s);
            }
        }
    }
    Some((out, names_user))
}

pub(crate) fn set_statement(cx: &Ctx<'_>, set: &Set) -> (Facts, Effect) {
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
            if name == "client_encoding" && !encoding_values_are_utf8(values) {
                acc.flags.foreign_encoding = true;
            }
            let facts = build(kind, format!("SET {}", safe_name(&name)), acc, &[]);
            let effect = if name == "search_path" {
                match search_path_values(values, cx.catalog.user.as_deref()) {
                    Some((path, names_user)) => Effect::SetSearchPath { path, names_user },
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
        Set::SetNames { charset_name, .. } => {
            let mut f = simple(setting_kind(cx, "client_encoding"), "SET client_encoding");
            f.flags.foreign_encoding = !is_utf8_encoding(&charset_name.value);
            (f, Effect::None)
        }
        Set::SetNamesDefault {} => (
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

pub(crate) fn copy(cx: &Ctx<'_>, source: &CopySource, to: bool, target: &CopyTarget) -> Facts {
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
                    if to {
                        // Every current column goes out, and COPY names none of them.
                        acc.live_check(&src.live_tables());
                    }
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
        CopySource::Query(q) => {
            let out = analyze_query(cx, None, q, &mut acc);
            // COPY sends no row description, so the relay checks none of its columns.
            if to {
                acc.live_check(out.iter().flat_map(|c| &c.lineage).map(|c| &c.table));
            }
            out
        }
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

/// Does an EXPLAIN option list make the statement run? `ANALYZE` (or `ANALYSE`) unless set
/// false; an option the classifier does not know counts as running it (fail closed).
pub(crate) fn explain_analyze_option(options: &Option<Vec<UtilityOption>>) -> bool {
    const PLAN_ONLY: &[&str] = &[
        "verbose",
        "costs",
        "settings",
        "buffers",
        "wal",
        "timing",
        "summary",
        "format",
        "generic_plan",
        "serialize",
        "memory",
    ];
    options.iter().flatten().any(|o| {
        let name = o.name.value.to_ascii_lowercase();
        if PLAN_ONLY.contains(&name.as_str()) {
            return false;
        }
        if name != "analyze" && name != "analyse" {
            return true;
        }
        match &o.arg {
            None => true,
            Some(Expr::Value(v)) => !matches!(
                v.value.to_string().to_ascii_lowercase().trim_matches('\''),
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
            // Only the plan comes back: no value of the statement's rows.
            live_check: Vec::new(),
            live_names: Vec::new(),
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
            stored_columns: Vec::new(),
            live_check: Vec::new(),
            live_names: Vec::new(),
            functions: inner.functions,
            flags: Flags {
                unsafe_function: inner.flags.unsafe_function,
                has_secret: inner.flags.has_secret,
                ..Flags::default()
            },
        }
    }
}

pub(crate) fn ddl_targets(cx: &Ctx<'_>, acc: &mut Acc, names: &[&ObjectName]) {
    for n in names {
        match fold_name(n) {
            Some(parts) => {
                let r = cx.relation(&parts);
                acc.write(&r);
            }
            None => acc.unsupported("object name"),
        }
    }
}

pub(crate) fn ddl_read(cx: &Ctx<'_>, acc: &mut Acc, name: &ObjectName) {
    match fold_name(name) {
        Some(parts) => {
            let r = cx.relation(&parts);
            acc.read(&r);
        }
        None => acc.unsupported("relation name"),
    }
}

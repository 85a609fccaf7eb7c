//! `airlock policy check PATH` and `airlock explain "SQL"`: arguments, run, printers.
//!
//! Both return a process exit code instead of exiting, and write to the writers they are
//! given, so they are tested like any other function.
//!
//! Exit codes of `explain` (with or without `-q`): 0 allow or mask, 1 deny, 3 hold,
//! 2 error (bad policy, unreadable catalog…). `policy check`: 0 valid, 2 invalid.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Action, Decision, Policy, RequestContext};
use crate::sql::{
    Catalog, Classified, ClassifierOptions, Facts, FunctionInfo, Relation, RelationKind, TableRef,
    Volatility,
};

pub const EXIT_ALLOW: i32 = 0;
pub const EXIT_DENY: i32 = 1;
pub const EXIT_ERROR: i32 = 2;
pub const EXIT_HOLD: i32 = 3;

/// `airlock policy …`
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Validate policies and print a summary of each. A directory is one policy (its *.toml
    /// files merged in name order); give several paths to check several policies.
    Check {
        /// Policy file or directory.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// `airlock explain …`
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The SQL to explain (several statements allowed, separated by `;`).
    pub sql: String,
    /// The user the statement is sent as.
    #[arg(long = "as", value_name = "USER", default_value = "")]
    pub user: String,
    /// The session's application_name.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub app: String,
    /// The database connected to.
    #[arg(long, value_name = "DB", default_value = "")]
    pub db: String,
    /// Policy file or directory [default: the --config file's policy, else
    /// policies/default.toml].
    #[arg(long, value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// A catalog snapshot as JSON (tables, views, functions, search_path) for offline use.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub catalog_file: Option<PathBuf>,
    /// A gateway config: the catalog is read from its upstream (database --db, else the
    /// upstream URL's), as the gateway would read it, and its policy is used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Facts as JSON (a classification, as stored in the audit) instead of classifying the SQL.
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,
    /// Print nothing; only the exit code tells (0 allow/mask, 1 deny, 3 hold, 2 error).
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the facts and the decision as one JSON object.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
}

/// Exit code for a decision.
pub fn exit_code(a: Action) -> i32 {
    match a {
        Action::Allow | Action::Mask => EXIT_ALLOW,
        Action::Deny => EXIT_DENY,
        Action::Hold => EXIT_HOLD,
    }
}

pub fn run_policy(args: &PolicyArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match &args.command {
        PolicyCommand::Check { paths } => {
            let mut code = EXIT_ALLOW;
            for path in paths {
                match Policy::load(path) {
                    Ok(p) => {
                        let _ = print_summary(&p, out);
                    }
                    Err(e) => {
                        let _ = writeln!(err, "error: {e}");
                        code = EXIT_ERROR;
                    }
                }
            }
            code
        }
    }
}

fn print_summary(p: &Policy, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "ok: {}", p.sources().join(", "))?;
    let rules = p.rules();
    writeln!(
        out,
        "  {} rule(s), {} PII column pattern(s), {} agent(s), {} approver(s), {} group(s)",
        rules.len(),
        p.pii_pattern_count(),
        p.agents().len(),
        p.approvers().len(),
        p.groups().len()
    )?;
    if !p.agents().is_empty() {
        let names: Vec<&str> = p.agents().iter().map(|a| a.name.as_str()).collect();
        writeln!(out, "  agents:    {}", names.join(", "))?;
    }
    if !p.approvers().is_empty() {
        let names: Vec<String> = p
            .approvers()
            .iter()
            .map(|a| {
                let mut s = a.name.clone();
                if a.display_name != a.name {
                    s.push_str(&format!(" ({})", a.display_name));
                }
                let mut how = Vec::new();
                if a.aad_object_id.is_some() {
                    how.push("teams");
                }
                if a.token_sha256.is_some() {
                    how.push("api token");
                }
                if !how.is_empty() {
                    s.push_str(&format!(" [{}]", how.join(", ")));
                }
                s
            })
            .collect();
        writeln!(out, "  approvers: {}", names.join(", "))?;
    }
    for g in p.groups() {
        writeln!(out, "  group {}: {}", g.name, g.members.join(", "))?;
    }
    let width = rules.iter().map(|r| r.id.len()).max().unwrap_or(0);
    for r in &rules {
        writeln!(
            out,
            "  rule {:width$}  {:5}  {}",
            r.id,
            r.action.as_str(),
            r.source
        )?;
    }
    let missing = p.kinds_without_default();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|k| k.as_str()).collect();
        writeln!(
            out,
            "  note: no [defaults] entry for {}: held by the built-in default",
            names.join(", ")
        )?;
    }
    Ok(())
}

/// The one place `explain` asks the classifier: as the gateway would classify `sql` as the
/// first text of a new session, so what depends on the session (`EXECUTE` of a name, `FETCH`
/// of a cursor, names after a `SET search_path`) comes out as the gateway decides it there.
fn classify(
    catalog: Arc<Catalog>,
    options: ClassifierOptions,
    sql: &str,
) -> Result<Arc<Classified>, String> {
    let mut session = crate::sql::SessionSqlState::new(&catalog);
    Ok(crate::sql::Classifier::new(catalog, options).classify_in_session(&mut session, sql))
}

/// Explains `args.sql`. `live_catalog`: the catalog a `--config` was read for (by the caller,
/// which owns the runtime and the upstream connection, and also fills in the policy path).
pub fn run_explain(
    args: &ExplainArgs,
    live_catalog: Option<Catalog>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let policy_path = args
        .policy
        .clone()
        .unwrap_or_else(|| PathBuf::from("policies/default.toml"));
    let policy = match Policy::load(&policy_path) {
        Ok(p) => p,
        Err(e) => {
            if !args.quiet {
                let _ = writeln!(err, "error: {e}");
            }
            return EXIT_ERROR;
        }
    };
    let catalog = match (&args.catalog_file, live_catalog) {
        (_, Some(c)) => c,
        (None, None) => Catalog {
            search_path: vec!["public".into()],
            ..Default::default()
        },
        (Some(path), None) => match load_catalog_file(path) {
            Ok(c) => c,
            Err(e) => {
                if !args.quiet {
                    let _ = writeln!(err, "error: {e}");
                }
                return EXIT_ERROR;
            }
        },
    };
    let ctx = RequestContext {
        user: args.user.clone(),
        application_name: args.app.clone(),
        database: args.db.clone(),
    };
    let catalog = Arc::new(catalog);
    let classified = match &args.facts {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|t| {
                serde_json::from_str::<Classified>(&t)
                    .map(Arc::new)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }),
        None => classify(catalog.clone(), policy.classifier_options(), &args.sql),
    };
    let classified = match classified {
        Ok(c) => c,
        Err(e) => {
            if !args.quiet {
                let _ = writeln!(err, "error: {e}");
            }
            return EXIT_ERROR;
        }
    };
    let decision = policy.evaluate(&classified, &args.sql, &ctx, &catalog);
    let withheld = policy.messages_may_quote_pii(&classified.statements, &decision, &catalog);
    let code = exit_code(decision.action);
    if args.quiet {
        return code;
    }
    let printed = if args.json {
        print_json(&policy, &classified, &decision, withheld, &ctx, out)
    } else {
        print_explanation(
            &policy,
            &args.sql,
            &classified,
            &decision,
            withheld,
            &ctx,
            out,
        )
    };
    match printed {
        Ok(()) => code,
        // A closed pipe (`| head`) is not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            EXIT_ERROR
        }
    }
}

fn list_or_dash<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn flag_names(f: &Facts) -> Vec<&'static str> {
    f.flags.names()
}

/// The human printer. `withheld`: the server's error text would not reach the client.
pub fn print_explanation(
    policy: &Policy,
    sql: &str,
    classified: &Classified,
    d: &Decision,
    withheld: bool,
    ctx: &RequestContext,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let or_none = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    writeln!(out, "policy     {}", policy.sources().join(", "))?;
    writeln!(
        out,
        "session    user={} application={} database={}",
        or_none(&ctx.user),
        or_none(&ctx.application_name),
        or_none(&ctx.database)
    )?;
    if !classified.redacted.is_empty() && classified.redacted != sql {
        // Secrets (passwords) are never echoed back, not even to the person asking.
        writeln!(out, "redacted   {}", classified.redacted)?;
    }
    if !classified.fingerprint.is_empty() {
        writeln!(out, "normalized {}", classified.fingerprint)?;
    }
    for (i, f) in classified.statements.iter().enumerate() {
        writeln!(out)?;
        let (action, rule) = policy.statement_action(f, ctx);
        let kind = policy.effective_kind(f);
        let kind = if kind == f.kind {
            kind.as_str().to_string()
        } else {
            let returns = f.output_columns.iter().any(|c| policy.is_pii(c).is_some());
            let why = if returns { "returns PII" } else { "copies PII" };
            format!("{} -> {} ({why})", f.kind.as_str(), kind.as_str())
        };
        writeln!(out, "statement {}: {}", i + 1, f.label)?;
        writeln!(out, "  kind       {kind}")?;
        writeln!(out, "  reads      {}", list_or_dash(&f.tables_read))?;
        writeln!(out, "  writes     {}", list_or_dash(&f.tables_written))?;
        writeln!(out, "  columns    {}", list_or_dash(&f.columns))?;
        writeln!(out, "  output     {}", list_or_dash(&f.output_columns))?;
        if !f.stored_columns.is_empty() {
            writeln!(out, "  copies     {}", list_or_dash(&f.stored_columns))?;
        }
        writeln!(out, "  functions  {}", list_or_dash(&f.functions))?;
        writeln!(out, "  flags      {}", list_or_dash(&flag_names(f)))?;
        writeln!(out, "  -> {} ({rule})", action.as_str())?;
    }
    writeln!(out)?;
    writeln!(out, "decision   {}", d.action.as_str().to_uppercase())?;
    writeln!(out, "rule       {} ({})", d.rule_id, d.rule_source)?;
    writeln!(out, "reason     {}", d.reason)?;
    if !d.pii_columns.is_empty() {
        writeln!(out, "pii        {}", d.pii_columns.join(", "))?;
    }
    if withheld {
        writeln!(
            out,
            "errors     the server's message text is withheld (the statement touches PII)"
        )?;
    }
    if d.action == Action::Hold {
        let timeout = d.hold_timeout.map_or("gateway default".to_string(), |t| {
            format!("{}s", t.as_secs())
        });
        writeln!(
            out,
            "approvers  {} (quorum {}, timeout {timeout})",
            list_or_dash(&d.approvers),
            d.quorum
        )?;
    }
    if let Some(rw) = &d.rewritten {
        writeln!(out, "rewritten  {rw}")?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonExplanation<'a> {
    policy: &'a [String],
    session: &'a RequestContext,
    statements: Vec<JsonStatement<'a>>,
    decision: &'a Decision,
    /// The server's error and notice text would be withheld from the client.
    messages_withheld: bool,
}

#[derive(Serialize)]
struct JsonStatement<'a> {
    facts: &'a Facts,
    effective_kind: crate::sql::Kind,
    action: Action,
    rule_id: String,
}

fn print_json(
    policy: &Policy,
    classified: &Classified,
    d: &Decision,
    withheld: bool,
    ctx: &RequestContext,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let statements = classified
        .statements
        .iter()
        .map(|f| {
            let (action, rule_id) = policy.statement_action(f, ctx);
            JsonStatement {
                facts: f,
                effective_kind: policy.effective_kind(f),
                action,
                rule_id,
            }
        })
        .collect();
    let doc = JsonExplanation {
        policy: policy.sources(),
        session: ctx,
        statements,
        decision: d,
        messages_withheld: withheld,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// The `--catalog-file` format: a list of relations rather than `Catalog`'s map keyed by
/// `TableRef`, which JSON cannot express as object keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default = "default_search_path")]
    search_path: Vec<String>,
    #[serde(default)]
    relations: Vec<RelationEntry>,
    #[serde(default)]
    functions: Vec<FunctionEntry>,
    /// Operator name → functions writing it calls (`schema.function`): see `Catalog::operators`.
    #[serde(default)]
    operators: std::collections::HashMap<String, Vec<String>>,
    /// `schema.type` → functions converting to it runs: see `Catalog::types`.
    #[serde(default)]
    types: std::collections::HashMap<String, Vec<String>>,
}

fn default_search_path() -> Vec<String> {
    vec!["public".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelationEntry {
    schema: String,
    name: String,
    #[serde(default = "default_kind")]
    kind: RelationKind,
    columns: Vec<String>,
    #[serde(default)]
    view_sources: std::collections::HashMap<String, Vec<String>>,
    /// Functions a read of the relation runs (`schema.function`): see `Relation::runs`.
    #[serde(default)]
    runs: Vec<String>,
}

fn default_kind() -> RelationKind {
    RelationKind::Table
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionEntry {
    schema: String,
    name: String,
    volatility: Volatility,
    #[serde(default)]
    security_definer: bool,
    #[serde(default = "default_language")]
    language: String,
}

fn default_language() -> String {
    "sql".into()
}

/// Reads a catalog snapshot for offline `explain`. View sources are `schema.table.column`.
pub fn load_catalog_file(path: &Path) -> Result<Catalog, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: CatalogFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut catalog = Catalog {
        search_path: file.search_path,
        ..Default::default()
    };
    for r in file.relations {
        let table = TableRef {
            schema: r.schema,
            name: r.name,
        };
        let mut view_sources = std::collections::HashMap::new();
        for (col, bases) in r.view_sources {
            let mut refs = Vec::new();
            for b in bases {
                let mut parts = b.rsplitn(3, '.');
                let (Some(column), Some(name), Some(schema)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(format!(
                        "{}: view source `{b}` of {table}.{col} must be schema.table.column",
                        path.display()
                    ));
                };
                refs.push(crate::sql::ColumnRef {
                    table: TableRef {
                        schema: schema.into(),
                        name: name.into(),
                    },
                    column: column.into(),
                });
            }
            view_sources.insert(col, refs);
        }
        let runs = function_refs(path, &r.runs, &format!("run by {table}"))?;
        catalog.relations.insert(
            table.clone(),
            Relation {
                table,
                kind: r.kind,
                columns: r.columns,
                view_columns: view_sources.values().flatten().cloned().collect(),
                view_sources,
                runs,
            },
        );
    }
    for f in file.functions {
        catalog.functions.insert(
            format!("{}.{}", f.schema, f.name),
            FunctionInfo {
                schema: f.schema,
                name: f.name,
                volatility: f.volatility,
                security_definer: f.security_definer,
                language: f.language,
            },
        );
    }
    for (op, fs) in file.operators {
        let fs = function_refs(path, &fs, &format!("behind operator {op}"))?;
        catalog.operators.insert(op, fs);
    }
    for (ty, fs) in file.types {
        if ty.split_once('.').is_none() {
            return Err(format!(
                "{}: type `{ty}` must be schema.type",
                path.display()
            ));
        }
        let fs = function_refs(path, &fs, &format!("run by a conversion to {ty}"))?;
        catalog.types.insert(ty, fs);
    }
    Ok(catalog)
}

/// `schema.function` names as function references; `what` says where they stand, for errors.
fn function_refs(
    path: &Path,
    names: &[String],
    what: &str,
) -> Result<Vec<crate::sql::FunctionRef>, String> {
    names
        .iter()
        .map(|f| match f.split_once('.') {
            Some((schema, name)) => Ok(crate::sql::FunctionRef {
                schema: schema.into(),
                name: name.into(),
            }),
            None => Err(format!(
                "{}: function `{f}` {what} must be schema.function",
                path.display()
            )),
        })
        .collect()
}

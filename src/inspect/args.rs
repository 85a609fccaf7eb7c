//! The command line of `airlock audit`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::filter::FilterSpec;
use super::printer::ColorChoice;

/// Inspect the audit: grep, show, tail, verify, export.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Say on stderr which source was used (the store directly, or a gateway's admin API).
    /// Goes before the subcommand: `airlock audit -v grep …` (`grep -v` inverts the match).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Colour the text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// Where the audit is read from. With `--config`, the store named there is opened directly
/// when the gateway is stopped, and its admin API is used when the gateway holds the store.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// A stopped gateway's sled store directory.
    #[arg(long, value_name = "DIR", global = true, env = "AIRLOCK_AUDIT_STORE")]
    pub store: Option<PathBuf>,
    /// A running gateway's admin API (`http://127.0.0.1:6480`).
    #[arg(long, value_name = "URL", global = true)]
    pub admin: Option<String>,
    /// Bearer token for the admin API (an approver token; AIRLOCK_TOKEN works too).
    #[arg(
        long,
        value_name = "TOKEN",
        global = true,
        env = "AIRLOCK_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// The gateway's config file: use its store, or its admin API when the store is in use.
    #[arg(long, value_name = "FILE", global = true, env = "AIRLOCK_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Search statements by a regex over their SQL (original and rewritten), with filters.
    Grep(GrepArgs),
    /// One statement's whole story: session, facts, decision, rewrite, approvals, outcome, chain.
    Show(ShowArgs),
    /// The latest records, optionally following new ones.
    Tail(TailArgs),
    /// Walk the hash chain; report the first broken or missing link (exit 1 on a break).
    Verify(VerifyArgs),
    /// Export statements (or every raw record) for auditors and SIEMs.
    Export(ExportArgs),
}

/// Text or JSON lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Filters shared by `grep` and `export`.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Agent (database user) name; globs allowed.
    #[arg(long)]
    pub user: Option<String>,
    /// application_name.
    #[arg(long)]
    pub app: Option<String>,
    /// Database.
    #[arg(long)]
    pub db: Option<String>,
    /// Statement kind: read, write, ddl, role, export, catalog, txn, session, utility, unknown.
    #[arg(long)]
    pub kind: Option<String>,
    /// allow, mask, hold or deny.
    #[arg(long)]
    pub decision: Option<String>,
    /// Deciding rule id.
    #[arg(long)]
    pub rule: Option<String>,
    /// Table read or written (`orders` or `public.orders`; globs allowed).
    #[arg(long)]
    pub table: Option<String>,
    /// Someone who approved, denied or tried to.
    #[arg(long)]
    pub approver: Option<String>,
    /// Session id.
    #[arg(long)]
    pub session: Option<String>,
    /// Only records at or after: `30m`, `1h`, `2d`, `1w`, `2024-05-01`, RFC 3339.
    #[arg(long)]
    pub since: Option<String>,
    /// Only records at or before (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only statements that ended in an error.
    #[arg(long)]
    pub errors: bool,
}

impl FilterArgs {
    pub fn into_spec(self) -> FilterSpec {
        FilterSpec {
            user: self.user,
            app: self.app,
            db: self.db,
            kind: self.kind,
            decision: self.decision,
            rule: self.rule,
            table: self.table,
            approver: self.approver,
            session: self.session,
            since: self.since,
            until: self.until,
            errors: self.errors,
            ..FilterSpec::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct GrepArgs {
    /// Regex over the SQL (Rust regex syntax).
    pub pattern: String,
    /// Case-insensitive.
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    /// PATTERN is a fixed string.
    #[arg(short = 'F', long)]
    pub fixed_strings: bool,
    /// Select statements that do NOT match.
    #[arg(short = 'v', long)]
    pub invert_match: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Print only the number of matching statements.
    #[arg(short = 'c', long)]
    pub count: bool,
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl GrepArgs {
    pub fn spec(&self) -> FilterSpec {
        FilterSpec {
            pattern: Some(self.pattern.clone()),
            ignore_case: self.ignore_case,
            fixed_strings: self.fixed_strings,
            invert: self.invert_match,
            ..self.filters.clone().into_spec()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// A record id (a decision's, or its outcome's or approval's).
    pub id: String,
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Keep printing new records as they are written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// How many of the latest records to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: u64,
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Only statements whose SQL matches this regex.
    #[arg(short = 'e', long = "regexp", value_name = "PATTERN")]
    pub pattern: Option<String>,
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Every record as stored (all kinds, with their hashes) instead of statements; jsonl only,
    /// filters other than --since/--until do not apply.
    #[arg(long)]
    pub raw: bool,
}

impl ExportArgs {
    pub fn spec(&self) -> FilterSpec {
        FilterSpec {
            pattern: self.pattern.clone(),
            ignore_case: self.ignore_case,
            ..self.filters.clone().into_spec()
        }
    }
}

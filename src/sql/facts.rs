//! The facts the classifier establishes about one statement. This is the contract between
//! `sql` (which produces them) and `policy` / `audit` (which consume them).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What a statement does, coarsely. The policy has a default action per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// SELECT / TABLE / VALUES over ordinary tables, no side effects.
    Read,
    /// INSERT / UPDATE / DELETE / MERGE.
    Write,
    /// CREATE / ALTER / DROP / TRUNCATE / COMMENT … on schema objects.
    Ddl,
    /// Roles and privileges: CREATE/ALTER/DROP ROLE, GRANT, REVOKE, SET ROLE, ALTER SYSTEM…
    Role,
    /// Data leaving through COPY … TO, or a statement that returns PII or copies it into
    /// another column (set by the policy).
    Export,
    /// pg_catalog / information_schema reads, SHOW, version(): what drivers send on connect.
    Catalog,
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT …
    Txn,
    /// SET / RESET of allowlisted session settings.
    Session,
    /// VACUUM, ANALYZE, LISTEN, NOTIFY, LOCK, DISCARD, CHECKPOINT and similar.
    Utility,
    /// Did not parse, or parsed into something the classifier does not understand.
    Unknown,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Ddl => "ddl",
            Kind::Role => "role",
            Kind::Export => "export",
            Kind::Catalog => "catalog",
            Kind::Txn => "txn",
            Kind::Session => "session",
            Kind::Utility => "utility",
            Kind::Unknown => "unknown",
        }
    }
}

/// A table (or view) after search_path resolution. Names are stored as PostgreSQL folds them:
/// unquoted identifiers lower-cased, quoted ones kept exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A column of a base table (views are expanded to the base columns they expose).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ColumnRef {
    pub table: TableRef,
    pub column: String,
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// Things that make a statement riskier than its kind suggests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    /// A CTE contains INSERT/UPDATE/DELETE/MERGE.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data_modifying_cte: bool,
    /// EXPLAIN ANALYZE executes its statement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain_analyze: bool,
    /// SELECT … INTO / CREATE TABLE AS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creates_table: bool,
    /// UPDATE or DELETE without WHERE.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unbounded_write: bool,
    /// TRUNCATE.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncate: bool,
    /// Calls a function that is volatile, unknown, SECURITY DEFINER, or on the deny list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_function: bool,
    /// COPY … TO PROGRAM / TO 'file' / FROM PROGRAM / FROM 'file' (server side).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub server_side_copy: bool,
    /// The statement sets a secret (CREATE/ALTER ROLE … PASSWORD): the audit redacts it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_secret: bool,
    /// Sets `client_encoding` to something other than UTF8 (or to a value only known when it
    /// runs). The gateway reads every statement as UTF-8; under SJIS, BIG5, GBK and the like
    /// the server splits the same bytes differently (a backslash or a quote can be the second
    /// byte of a character), so a statement the gateway saw as one harmless string would run
    /// as several. Always refused, whatever the policy says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub foreign_encoding: bool,
}

impl Flags {
    /// No flag is set.
    pub fn is_none(&self) -> bool {
        *self == Flags::default()
    }
}

/// Everything the classifier knows about one statement. Serialized compactly (empty lists
/// and unset flags are left out: a decision record is written for every statement), and read
/// back with the same defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub kind: Kind,
    /// Short human label for the approver: "SELECT", "DROP TABLE", "DO block", "ALTER SYSTEM".
    pub label: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables_read: Vec<TableRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables_written: Vec<TableRef>,
    /// Every base column referenced anywhere (select list, WHERE, JOIN, RETURNING…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnRef>,
    /// Columns whose values flow back to the client (select list, RETURNING, COPY TO),
    /// with `*`, `t.*` and whole-row references expanded. PII here makes an export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_columns: Vec<ColumnRef>,
    /// Columns whose values a write stores into *other* columns: the sources of
    /// `INSERT … SELECT`/`VALUES`, of `SET` and of `MERGE`. A value written back into the
    /// column it was read from (`SET email = lower(email)`) is not listed. PII here makes an
    /// export too: copied into a column the policy does not declare, it would come back from
    /// the next plain read of that column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stored_columns: Vec<ColumnRef>,
    /// Functions called, schema-qualified when known (`pg_catalog.now`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    #[serde(default, skip_serializing_if = "Flags::is_none")]
    pub flags: Flags,
    /// Relations whose *current* columns decide what this statement returns, in a form the
    /// relay cannot check column by column against the snapshot: whole-row values
    /// (`to_json(o)`), set operations (their results name no source column), `COPY … TO`, and
    /// column names the snapshot does not know. A column added after the snapshot would flow
    /// out unseen there, so the gateway compares these relations with the live catalog before
    /// it decides (a plain `SELECT *` needs no such check: its row description names each
    /// column). Relations a snapshot read from a server does not know are listed too (under
    /// each schema of the search path, for an unqualified name): one made on the server since
    /// may read PII or run code, so if one exists the catalog is read again first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_check: Vec<TableRef>,
    /// Operators and types the statement names that the snapshot does not hold at all, built-in
    /// or not. Either the server has none (the statement fails there) or one was made since the
    /// snapshot, whose code nobody has judged: the gateway asks the server first, as for
    /// relations in [`Facts::live_check`], and reads the catalog again if one exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_names: Vec<LiveName>,
}

/// An operator or type name to look up on the server (see [`Facts::live_names`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveName {
    Operator(String),
    /// A type, by schema and name.
    Type(TableRef),
}

impl std::fmt::Display for LiveName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveName::Operator(o) => write!(f, "operator {o}"),
            LiveName::Type(t) => write!(f, "type {t}"),
        }
    }
}

impl Facts {
    /// Facts for text the classifier could not understand: always held by default.
    pub fn unknown(label: impl Into<String>) -> Self {
        Facts {
            kind: Kind::Unknown,
            label: label.into(),
            tables_read: Vec::new(),
            tables_written: Vec::new(),
            columns: Vec::new(),
            output_columns: Vec::new(),
            stored_columns: Vec::new(),
            functions: Vec::new(),
            flags: Flags::default(),
            live_check: Vec::new(),
            live_names: Vec::new(),
        }
    }
}

/// The classification of one query string (possibly several statements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classified {
    /// One entry per statement, in order. Empty for an empty query string.
    /// Shared: statements that differ only in constants share one analysis.
    pub statements: Arc<Vec<Facts>>,
    /// The text with literals replaced by `$n`/`?`, for grouping in the audit.
    pub fingerprint: String,
    /// The text with secrets (passwords) replaced; equal to the input when there are none.
    pub redacted: String,
}

/// Knobs the policy gives the classifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierOptions {
    /// Functions declared harmless in the policy (`schema.name` or bare name), on top of the
    /// built-in allowlist of immutable/stable pg_catalog functions.
    pub safe_functions: Vec<String>,
    /// Settings an agent may SET/RESET without approval (`statement_timeout`, …).
    pub allowed_settings: Vec<String>,
    /// Entries in the classification cache.
    pub cache_capacity: usize,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        ClassifierOptions {
            safe_functions: Vec::new(),
            allowed_settings: [
                "application_name",
                "client_encoding",
                "datestyle",
                "intervalstyle",
                "extra_float_digits",
                "statement_timeout",
                "lock_timeout",
                "idle_in_transaction_session_timeout",
                "timezone",
                "bytea_output",
                "client_min_messages",
                "default_transaction_isolation",
                "transaction_isolation",
            ]
            .map(String::from)
            .to_vec(),
            cache_capacity: 10_000,
        }
    }
}

//! The compiled policy: principals, PII matchers and rules as the evaluator uses them.
//! Built by `compile` from one or more files; immutable afterwards (reload swaps the whole
//! value, see `store`).

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::pattern::{ColumnPattern, Glob, TablePattern};
use super::Action;
use super::Decision;
use crate::sql::{Catalog, ColumnRef, Facts, Flags, Kind, TableRef};

/// How a PII column is masked when a `mask` rule lets a read through.
/// Ordered from the method that reveals most to the one that reveals nothing, so that when
/// several declarations cover one column the strictest (`max`) wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskMethod {
    /// Emails keep their first character and domain (`a***@example.com`); other values of 8
    /// characters or more keep their last four (`***6789`); shorter ones become `***`.
    Partial,
    /// `md5(value::text)`: equal values stay equal (joins, counting distinct) but unreadable.
    Hash,
    /// The constant `'***'`.
    Redact,
}

impl MaskMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MaskMethod::Partial => "partial",
            MaskMethod::Hash => "hash",
            MaskMethod::Redact => "redact",
        }
    }
}

/// An identity that sends SQL through the gateway (the user it authenticates as).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub name: String,
    pub description: Option<String>,
}

/// A person who may approve held statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approver {
    pub name: String,
    /// Shown on cards and pages; the name when the file gives none.
    pub display_name: String,
    pub email: Option<String>,
    /// Microsoft Entra object id: how a Teams action is tied to this approver.
    pub aad_object_id: Option<String>,
    /// SHA-256 of the approver's admin API token (never the token itself).
    #[serde(skip)]
    pub token_sha256: Option<[u8; 32]>,
    /// Database users this person also connects through the gateway as: requests those
    /// users send are theirs, and they never decide them.
    pub database_users: Vec<String>,
}

/// A named set of principals (agents and/or approvers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub name: String,
    pub members: Vec<String>,
}

/// Which bind parameters of a statement the audit must not store in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamRedaction {
    None,
    All,
    /// 1-based positions (`$1` is 1).
    Positions(Vec<u32>),
}

/// What stands in for a redacted parameter.
pub const REDACTED_PARAM: &str = "<redacted>";

impl ParamRedaction {
    /// Replaces the values that must not be stored; NULLs stay NULL.
    pub fn apply(&self, params: &mut [Option<String>]) {
        let redact = |p: &mut Option<String>| {
            if p.is_some() {
                *p = Some(REDACTED_PARAM.to_string());
            }
        };
        match self {
            ParamRedaction::None => {}
            ParamRedaction::All => params.iter_mut().for_each(redact),
            ParamRedaction::Positions(pos) => {
                for &n in pos {
                    if let Some(p) = (n as usize).checked_sub(1).and_then(|i| params.get_mut(i)) {
                        redact(p);
                    }
                }
            }
        }
    }
}

/// The global `redact_params` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GlobalRedaction {
    None,
    /// Redact all parameters of statements that touch a PII column.
    Pii,
    All,
}

/// Statement flags the policy can put a floor under (`[flags]`) or match in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flag {
    DataModifyingCte,
    ExplainAnalyze,
    CreatesTable,
    UnboundedWrite,
    Truncate,
    UnsafeFunction,
    ServerSideCopy,
}

impl Flag {
    /// In the order of `RawFlags::entries`.
    pub const ALL: [Flag; 7] = [
        Flag::DataModifyingCte,
        Flag::ExplainAnalyze,
        Flag::CreatesTable,
        Flag::UnboundedWrite,
        Flag::Truncate,
        Flag::UnsafeFunction,
        Flag::ServerSideCopy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Flag::DataModifyingCte => "data_modifying_cte",
            Flag::ExplainAnalyze => "explain_analyze",
            Flag::CreatesTable => "creates_table",
            Flag::UnboundedWrite => "unbounded_write",
            Flag::Truncate => "truncate",
            Flag::UnsafeFunction => "unsafe_function",
            Flag::ServerSideCopy => "server_side_copy",
        }
    }

    pub fn parse(s: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.name() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn is_set(self, f: &Flags) -> bool {
        match self {
            Flag::DataModifyingCte => f.data_modifying_cte,
            Flag::ExplainAnalyze => f.explain_analyze,
            Flag::CreatesTable => f.creates_table,
            Flag::UnboundedWrite => f.unbounded_write,
            Flag::Truncate => f.truncate,
            Flag::UnsafeFunction => f.unsafe_function,
            Flag::ServerSideCopy => f.server_side_copy,
        }
    }

    /// Whether the policy may lift the floor entirely. Only the two "write-shaped" flags may:
    /// the others mean the statement does something its kind hides, which is never allowed
    /// without a person looking.
    pub fn may_allow(self) -> bool {
        matches!(self, Flag::UnboundedWrite | Flag::Truncate)
    }

    /// Words for the reason line.
    pub fn describe(self) -> &'static str {
        match self {
            Flag::DataModifyingCte => "has a data-modifying WITH clause",
            Flag::ExplainAnalyze => "is EXPLAIN ANALYZE, which runs the statement",
            Flag::CreatesTable => "creates a table from a query",
            Flag::UnboundedWrite => "is an UPDATE or DELETE without WHERE",
            Flag::Truncate => "truncates a table",
            Flag::UnsafeFunction => "calls a function not known to be harmless",
            Flag::ServerSideCopy => "is a server-side COPY (file or program)",
        }
    }
}

/// Index of a kind in per-kind arrays.
pub(super) fn kind_index(k: Kind) -> usize {
    match k {
        Kind::Read => 0,
        Kind::Write => 1,
        Kind::Ddl => 2,
        Kind::Role => 3,
        Kind::Export => 4,
        Kind::Catalog => 5,
        Kind::Txn => 6,
        Kind::Session => 7,
        Kind::Utility => 8,
        Kind::Unknown => 9,
    }
}

pub(super) const KINDS: [Kind; 10] = [
    Kind::Read,
    Kind::Write,
    Kind::Ddl,
    Kind::Role,
    Kind::Export,
    Kind::Catalog,
    Kind::Txn,
    Kind::Session,
    Kind::Utility,
    Kind::Unknown,
];

/// A decided setting (a per-kind default or a flag floor) with where it was written.
#[derive(Debug, Clone)]
pub(super) struct Setting {
    pub action: Action,
    /// `default.read`, `flags.truncate`, or `built-in.…` when the files do not say.
    pub id: String,
    /// `file:line` or `built-in`.
    pub source: String,
}

/// Hold parameters: from `[defaults]`, overridden field by field by a hold rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct HoldSpec {
    pub timeout: Option<Duration>,
    pub quorum: u32,
    /// Approver names, groups already expanded, in declaration order, no duplicates.
    pub approvers: Vec<String>,
}

/// Who a rule is about: user-name globs and the members of the listed groups.
#[derive(Debug, Clone, Default)]
pub(super) struct Who {
    pub users: Vec<Glob>,
    pub members: Vec<String>,
}

impl Who {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.members.is_empty()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.iter().any(|g| g.matches(user)) || self.members.iter().any(|m| m == user)
    }
}

/// One `[[rule]]`, compiled.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub id: String,
    pub action: Action,
    pub reason: Option<String>,
    pub source: String,
    /// Empty: anyone.
    pub who: Who,
    pub except: Who,
    pub applications: Vec<Glob>,
    pub databases: Vec<Glob>,
    /// Bit per `kind_index`; 0 means any kind.
    pub kinds: u16,
    pub labels: Vec<Glob>,
    pub tables: Vec<TablePattern>,
    pub columns: Vec<ColumnPattern>,
    pub flags: Vec<Flag>,
    /// For hold rules: the settings that differ from `[defaults]`, already merged.
    pub hold: Option<HoldSpec>,
    pub redact_params: Option<ParamRedaction>,
}

/// A rule as `policy check` and other callers may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    pub id: String,
    pub action: Action,
    pub source: String,
}

/// Declared PII columns: exact names in a hash map, globs in a short list.
#[derive(Debug, Clone, Default)]
pub(super) struct PiiSet {
    pub exact: HashMap<ColumnRef, MaskMethod>,
    pub globs: Vec<(ColumnPattern, MaskMethod)>,
    /// Number of patterns declared, for the summary.
    pub declared: usize,
}

impl PiiSet {
    pub fn insert(&mut self, p: ColumnPattern, m: MaskMethod) {
        self.declared += 1;
        match p.exact() {
            Some(c) => {
                let e = self.exact.entry(c).or_insert(m);
                *e = (*e).max(m);
            }
            None => self.globs.push((p, m)),
        }
    }

    /// The strictest method among the declarations covering `c`.
    ///
    /// The classifier reports the column `*` for a relation the catalog does not describe
    /// (`SELECT * FROM new_table`): its columns are unknown, so it counts as PII when any
    /// declaration could cover a column of that table.
    pub fn method(&self, c: &ColumnRef) -> Option<MaskMethod> {
        if c.column == "*" {
            return self.any_in_table(&c.table);
        }
        let mut best = self.exact.get(c).copied();
        for (p, m) in &self.globs {
            if p.matches(c) {
                best = Some(best.map_or(*m, |b| b.max(*m)));
            }
        }
        best
    }

    /// The strictest method among the declarations that could cover a column of `table`.
    pub fn any_in_table(&self, table: &TableRef) -> Option<MaskMethod> {
        let exact = self
            .exact
            .iter()
            .filter(|(e, _)| e.table == *table)
            .map(|(_, m)| *m);
        let globs = self
            .globs
            .iter()
            .filter(|(p, _)| p.matches_table(table))
            .map(|(_, m)| *m);
        exact.chain(globs).max()
    }
}

/// A loaded, validated policy. Immutable; see [`super::PolicyStore`] for reloads.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(super) sources: Vec<String>,
    pub(super) pii: PiiSet,
    pub(super) agents: Vec<Agent>,
    pub(super) approvers: Vec<Approver>,
    pub(super) groups: Vec<Group>,
    pub(super) rules: Vec<Rule>,
    /// Indexed by `kind_index`.
    pub(super) defaults: Vec<Setting>,
    /// Indexed by `Flag::index`.
    pub(super) flags: Vec<Setting>,
    pub(super) hold: HoldSpec,
    pub(super) safe_functions: Vec<String>,
    pub(super) allowed_settings: Option<Vec<String>>,
    pub(super) redact_params: GlobalRedaction,
    /// Kinds with no `[defaults]` entry in any file (held by the built-in default).
    pub(super) missing_defaults: Vec<Kind>,
}

impl Policy {
    /// The files this policy was loaded from, in merge order.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The mask method for a column when it is declared PII.
    pub fn is_pii(&self, c: &ColumnRef) -> Option<MaskMethod> {
        self.pii.method(c)
    }

    /// Whether the server's messages about these statements may quote declared PII: one of
    /// them references a PII column (`decision.pii_columns`), writes a table that may hold
    /// one (its constraint violations show the whole failing row), or reads a view whose
    /// definition references one (the server evaluates the view's filters too).
    pub fn messages_may_quote_pii(
        &self,
        statements: &[Facts],
        decision: &Decision,
        catalog: &Catalog,
    ) -> bool {
        !decision.pii_columns.is_empty()
            || statements.iter().any(|f| {
                f.tables_written
                    .iter()
                    .any(|t| self.pii.any_in_table(t).is_some())
                    || f.tables_read.iter().any(|t| {
                        catalog.relation(t).is_some_and(|r| {
                            r.view_columns.iter().any(|c| self.pii.method(c).is_some())
                        })
                    })
            })
    }

    /// Number of `[[pii]]` column patterns declared.
    pub fn pii_pattern_count(&self) -> usize {
        self.pii.declared
    }

    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// Declared approvers, in name order.
    pub fn approvers(&self) -> &[Approver] {
        &self.approvers
    }

    pub fn approver(&self, name: &str) -> Option<&Approver> {
        self.approvers.iter().find(|a| a.name == name)
    }

    /// The approvers who also connect as database user `user` (case-insensitive, as the
    /// registry compares requesters): separation of duties counts them as the requester.
    pub fn approvers_connecting_as(&self, user: &str) -> Vec<String> {
        self.approvers
            .iter()
            .filter(|a| {
                a.database_users
                    .iter()
                    .any(|u| u.eq_ignore_ascii_case(user))
            })
            .map(|a| a.name.clone())
            .collect()
    }

    /// The approver whose `aad_object_id` matches (case-insensitive, as Entra ids are GUIDs).
    pub fn approver_by_aad_object_id(&self, id: &str) -> Option<&Approver> {
        self.approvers.iter().find(|a| {
            a.aad_object_id
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(id))
        })
    }

    /// The approver whose `token_sha256` is the SHA-256 of `token`. Every entry is compared
    /// in full so the time taken does not depend on which approver matched.
    pub fn approver_by_token(&self, token: &str) -> Option<&Approver> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for a in &self.approvers {
            if let Some(h) = &a.token_sha256 {
                let diff = h
                    .iter()
                    .zip(digest.iter())
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y));
                if diff == 0 && found.is_none() {
                    found = Some(a);
                }
            }
        }
        found
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Names of the groups `principal` belongs to.
    pub fn groups_of(&self, principal: &str) -> Vec<&str> {
        self.groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == principal))
            .map(|g| g.name.as_str())
            .collect()
    }

    /// Whether `name` may approve a held decision: listed in it and not its requester.
    /// (Separation of duties: the caller passes the requesting user.)
    pub fn may_approve(&self, decision: &super::Decision, name: &str, requester: &str) -> bool {
        name != requester
            && self.approver(name).is_some()
            && decision.approvers.iter().any(|a| a == name)
    }

    /// The approvers named in a decision, resolved to their declarations.
    pub fn approvers_for(&self, decision: &super::Decision) -> Vec<&Approver> {
        decision
            .approvers
            .iter()
            .filter_map(|n| self.approver(n))
            .collect()
    }

    /// Every rule in evaluation (file) order.
    pub fn rules(&self) -> Vec<RuleInfo> {
        self.rules
            .iter()
            .map(|r| RuleInfo {
                id: r.id.clone(),
                action: r.action,
                source: r.source.clone(),
            })
            .collect()
    }

    /// Kinds no file gives a default for: they are held by the built-in default.
    pub fn kinds_without_default(&self) -> &[Kind] {
        &self.missing_defaults
    }

    /// What the classifier needs from the policy.
    pub fn classifier_options(&self) -> crate::sql::ClassifierOptions {
        let mut o = crate::sql::ClassifierOptions {
            safe_functions: self.safe_functions.clone(),
            ..Default::default()
        };
        if let Some(s) = &self.allowed_settings {
            o.allowed_settings = s.clone();
        }
        o
    }

    /// Which bind parameters of the decided statement the audit must redact: the deciding
    /// rule's `redact_params` when it has one, else the global setting (`pii`: all of them
    /// when the statement touches a PII column).
    pub fn param_redaction(&self, decision: &super::Decision) -> ParamRedaction {
        if let Some(r) = self
            .rules
            .iter()
            .find(|r| r.id == decision.rule_id)
            .and_then(|r| r.redact_params.clone())
        {
            return r;
        }
        match self.redact_params {
            GlobalRedaction::None => ParamRedaction::None,
            GlobalRedaction::All => ParamRedaction::All,
            GlobalRedaction::Pii if decision.pii_columns.is_empty() => ParamRedaction::None,
            GlobalRedaction::Pii => ParamRedaction::All,
        }
    }
}

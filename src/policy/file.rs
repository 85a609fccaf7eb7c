//! The policy file as written: serde types mirroring the TOML, with spans kept on everything
//! a later validation error may need to point at. Nothing here is used at evaluation time;
//! `compile` turns it into matchers.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{Action, MaskMethod};
use crate::sql::Kind;

/// One policy file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    /// Which bind parameters the audit redacts when the deciding rule says nothing.
    pub redact_params: Option<Spanned<RawGlobalRedaction>>,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub flags: RawFlags,
    #[serde(default)]
    pub functions: RawFunctions,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub pii: Vec<RawPii>,
    #[serde(default)]
    pub agents: BTreeMap<Spanned<String>, RawAgent>,
    #[serde(default)]
    pub approvers: BTreeMap<Spanned<String>, RawApprover>,
    #[serde(default)]
    pub groups: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawGlobalRedaction {
    None,
    Pii,
    All,
}

/// `[defaults]`: the action for each kind when no rule matches, and hold settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub read: Option<Spanned<Action>>,
    pub write: Option<Spanned<Action>>,
    pub ddl: Option<Spanned<Action>>,
    pub role: Option<Spanned<Action>>,
    pub export: Option<Spanned<Action>>,
    pub catalog: Option<Spanned<Action>>,
    pub txn: Option<Spanned<Action>>,
    pub session: Option<Spanned<Action>>,
    pub utility: Option<Spanned<Action>>,
    pub unknown: Option<Spanned<Action>>,
    pub hold_timeout_secs: Option<Spanned<u64>>,
    pub quorum: Option<Spanned<u32>>,
    pub approvers: Option<Vec<Spanned<String>>>,
}

impl RawDefaults {
    /// The per-kind entries, in `Kind` order.
    pub fn kinds(&self) -> [(Kind, Option<&Spanned<Action>>); 10] {
        [
            (Kind::Read, self.read.as_ref()),
            (Kind::Write, self.write.as_ref()),
            (Kind::Ddl, self.ddl.as_ref()),
            (Kind::Role, self.role.as_ref()),
            (Kind::Export, self.export.as_ref()),
            (Kind::Catalog, self.catalog.as_ref()),
            (Kind::Txn, self.txn.as_ref()),
            (Kind::Session, self.session.as_ref()),
            (Kind::Utility, self.utility.as_ref()),
            (Kind::Unknown, self.unknown.as_ref()),
        ]
    }
}

/// `[flags]`: the least action a statement carrying each flag gets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlags {
    pub data_modifying_cte: Option<Spanned<Action>>,
    pub explain_analyze: Option<Spanned<Action>>,
    pub creates_table: Option<Spanned<Action>>,
    pub unbounded_write: Option<Spanned<Action>>,
    pub truncate: Option<Spanned<Action>>,
    pub unsafe_function: Option<Spanned<Action>>,
    pub server_side_copy: Option<Spanned<Action>>,
}

impl RawFlags {
    /// The entries in `Flag::ALL` order.
    pub fn entries(&self) -> [Option<&Spanned<Action>>; 7] {
        [
            self.data_modifying_cte.as_ref(),
            self.explain_analyze.as_ref(),
            self.creates_table.as_ref(),
            self.unbounded_write.as_ref(),
            self.truncate.as_ref(),
            self.unsafe_function.as_ref(),
            self.server_side_copy.as_ref(),
        ]
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFunctions {
    #[serde(default)]
    pub safe: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub allowed_settings: Option<Vec<Spanned<String>>>,
}

/// `[[pii]]`: columns holding personal data and how to mask them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPii {
    pub columns: Spanned<Vec<Spanned<String>>>,
    pub mask: MaskMethod,
    #[serde(default)]
    #[allow(dead_code)] // documentation for people reading the file
    pub description: Option<String>,
}

/// `[agents.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub description: Option<String>,
}

/// `[approvers.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApprover {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub aad_object_id: Option<Spanned<String>>,
    pub token_sha256: Option<Spanned<String>>,
    pub database_users: Option<Vec<Spanned<String>>>,
}

/// `redact_params` on a rule: `true` (all), `false` (none) or 1-based positions.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum RawRuleRedaction {
    All(bool),
    Positions(Vec<u32>),
}

/// `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub id: Spanned<String>,
    pub action: Spanned<Action>,
    pub reason: Option<String>,
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub except_users: Vec<Spanned<String>>,
    #[serde(default)]
    pub except_groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub applications: Vec<Spanned<String>>,
    #[serde(default)]
    pub databases: Vec<Spanned<String>>,
    #[serde(default)]
    pub kinds: Vec<Spanned<Kind>>,
    #[serde(default)]
    pub labels: Vec<Spanned<String>>,
    #[serde(default)]
    pub tables: Vec<Spanned<String>>,
    #[serde(default)]
    pub columns: Vec<Spanned<String>>,
    #[serde(default)]
    pub flags: Vec<Spanned<String>>,
    pub hold_timeout_secs: Option<Spanned<u64>>,
    pub quorum: Option<Spanned<u32>>,
    pub approvers: Option<Vec<Spanned<String>>>,
    pub redact_params: Option<Spanned<RawRuleRedaction>>,
}

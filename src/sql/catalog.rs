//! A snapshot of the upstream catalog: what `*` expands to, what a view exposes, and what a
//! function may do. Read from upstream at start and on reload; tests build one by hand.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{ColumnRef, TableRef};

/// How a relation behaves for classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelationKind {
    Table,
    View,
    MaterializedView,
    Foreign,
}

/// One table or view with its columns in attribute order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub table: TableRef,
    pub kind: RelationKind,
    pub columns: Vec<String>,
    /// For views: view column name → the base columns it is computed from.
    pub view_sources: HashMap<String, Vec<ColumnRef>>,
    /// For views: every base column the definition references anywhere (its select list, and
    /// its WHERE, JOIN and subqueries, through the views it reads). A read of one column of the
    /// view makes the server evaluate the view's filters, whose errors may quote those values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub view_columns: Vec<ColumnRef>,
    /// Functions the server runs whenever the relation is read, though no statement reading it
    /// names them: those a view's definition calls (directly or through an operator, and
    /// through the views and row-security policies it reads), and those of row-level-security
    /// policies that filter reads of a table. A read of the relation calls them. Only functions
    /// that are not harmless on their own are listed (a policy may still declare them safe).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<FunctionRef>,
}

/// A function by schema and name; overloads are not told apart (the catalog keeps the riskiest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FunctionRef {
    pub schema: String,
    pub name: String,
}

impl std::fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// `pg_proc.provolatile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Volatility {
    Immutable,
    Stable,
    Volatile,
}

/// What the catalog says about a function name (overloads merged to the riskiest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionInfo {
    pub schema: String,
    pub name: String,
    pub volatility: Volatility,
    pub security_definer: bool,
    pub language: String,
}

/// The attribute numbers a relation had when the snapshot was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub table: TableRef,
    /// Sorted.
    pub attnums: Vec<i16>,
}

/// The snapshot. Lookups are by already-folded names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub relations: HashMap<TableRef, Relation>,
    /// Relation OID → its columns' attribute numbers, as read from the server. A result whose
    /// row description names a column of a known relation that is not here was shaped by a
    /// schema newer than the snapshot (see [`Catalog::unknown_column`]). Empty for catalogs
    /// built by hand or from a file: nothing is checked then.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub attributes: HashMap<u32, Attributes>,
    /// `schema.name` → info.
    pub functions: HashMap<String, FunctionInfo>,
    /// Operator name → the functions behind user-defined operators of that name that a
    /// statement may reach by writing the operator: every such operator whose name no built-in
    /// operator has, and volatile ones of any name (see `catalog_runs::Q_OPERATORS`). Only
    /// functions that are not harmless on their own are listed.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub operators: HashMap<String, Vec<FunctionRef>>,
    /// `schema.type` → the functions converting a value to that type runs: CHECK constraints
    /// of a domain, input functions and casts, through the domains, arrays, ranges and
    /// composite types it is made of (see `catalog_runs::Q_TYPES`). Only types with such a
    /// function that is not harmless on its own are listed.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub types: HashMap<String, Vec<FunctionRef>>,
    /// OID → `schema.type`, for the types in [`Catalog::types`]: a Parse message declares its
    /// parameters' types by OID, and binding a value converts it.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub type_oids: HashMap<u32, String>,
    /// Every operator name the server had, built-in or not. Empty for catalogs built by hand or
    /// from a file: names are then not looked up (see [`super::Facts::live_names`]).
    #[serde(default, skip_serializing_if = "HashSet::is_empty")]
    pub operator_names: HashSet<String>,
    /// Every type the server had, built-in or not (outside temporary schemas), by schema and
    /// name.
    #[serde(default, skip_serializing_if = "HashSet::is_empty")]
    pub type_names: HashSet<TableRef>,
    /// The server's catalog fingerprint, read before the rest of the snapshot (so a change
    /// made while it was read shows as a difference later, never the other way round). None
    /// for catalogs built by hand or from a file. See [`Catalog::version_on`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The upstream's default search_path, already resolved (`$user` substituted).
    pub search_path: Vec<String>,
    /// The role the gateway's upstream connections run as, which `$user` stands for in a
    /// search_path a session sets. None for catalogs built by hand or from a file: `$user`
    /// then names no schema, as it does for a role without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Catalog {
    pub fn relation(&self, t: &TableRef) -> Option<&Relation> {
        self.relations.get(t)
    }

    /// The relation and attribute number of a result column (as a RowDescription names it)
    /// that the snapshot does not know although it knows the relation: a column added after the
    /// snapshot was read. Expressions (OID 0), system columns (attnum ≤ 0) and relations the
    /// snapshot never saw are not this case (the classifier already treats unknown relations as
    /// holding anything).
    pub fn unknown_column(&self, table_oid: u32, attnum: i16) -> Option<&TableRef> {
        if table_oid == 0 || attnum <= 0 {
            return None;
        }
        let known = self.attributes.get(&table_oid)?;
        known
            .attnums
            .binary_search(&attnum)
            .is_err()
            .then_some(&known.table)
    }
}

//! A snapshot of the upstream catalog: what `*` expands to, what a view exposes, and what a
//! function may do. Read from upstream at start and on reload; tests build one by hand.

use std::collections::HashMap;

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

/// The snapshot. Lookups are by already-folded names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub relations: HashMap<TableRef, Relation>,
    /// `schema.name` → info.
    pub functions: HashMap<String, FunctionInfo>,
    /// The upstream's default search_path, already resolved (`$user` substituted).
    pub search_path: Vec<String>,
}

impl Catalog {
    pub fn relation(&self, t: &TableRef) -> Option<&Relation> {
        self.relations.get(t)
    }
}

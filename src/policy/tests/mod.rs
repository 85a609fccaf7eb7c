//! Policy tests: file format and errors, evaluation semantics, the shipped default policy
//! (a table of statements), and reload. Mask rewrites are tested in `mask::tests`.

mod cli;
mod defaults_table;
mod end_to_end;
mod evaluate;
mod format;

use std::collections::HashMap;

use crate::policy::{Policy, RequestContext};
use crate::sql::{Catalog, ColumnRef, Facts, Flags, Kind, Relation, RelationKind, TableRef};

pub(crate) const DEFAULT_TOML: &str = include_str!("../../../policies/default.toml");
pub(crate) const DEMO_TOML: &str = include_str!("../../../policies/demo.toml");

pub(crate) fn default_policy() -> Policy {
    Policy::from_str(DEFAULT_TOML, "policies/default.toml").expect("default.toml loads")
}

pub(crate) fn demo_policy() -> Policy {
    Policy::from_str(DEMO_TOML, "policies/demo.toml").expect("demo.toml loads")
}

pub(crate) fn t(s: &str) -> TableRef {
    let (schema, name) = s.split_once('.').expect("schema.table");
    TableRef {
        schema: schema.into(),
        name: name.into(),
    }
}

pub(crate) fn c(s: &str) -> ColumnRef {
    let (table, column) = s.rsplit_once('.').expect("schema.table.column");
    ColumnRef {
        table: t(table),
        column: column.into(),
    }
}

/// Facts built by hand, the way the classifier would report them.
#[derive(Clone)]
pub(crate) struct F(pub Facts);

impl F {
    pub fn new(kind: Kind, label: &str) -> F {
        F(Facts {
            kind,
            ..Facts::unknown(label)
        })
    }
    pub fn reads(mut self, tables: &[&str]) -> F {
        self.0.tables_read.extend(tables.iter().map(|s| t(s)));
        self
    }
    pub fn writes(mut self, tables: &[&str]) -> F {
        self.0.tables_written.extend(tables.iter().map(|s| t(s)));
        self
    }
    /// Columns referenced (not returned).
    pub fn cols(mut self, cols: &[&str]) -> F {
        self.0.columns.extend(cols.iter().map(|s| c(s)));
        self
    }
    /// Columns returned (also counted as referenced, as the classifier does).
    pub fn out(mut self, cols: &[&str]) -> F {
        self.0.columns.extend(cols.iter().map(|s| c(s)));
        self.0.output_columns.extend(cols.iter().map(|s| c(s)));
        self
    }
    pub fn funcs(mut self, f: &[&str]) -> F {
        self.0.functions.extend(f.iter().map(|s| s.to_string()));
        self
    }
    pub fn flag(mut self, set: impl FnOnce(&mut Flags)) -> F {
        set(&mut self.0.flags);
        self
    }
}

pub(crate) fn classified(stmts: Vec<F>) -> crate::sql::Classified {
    crate::sql::Classified {
        statements: std::sync::Arc::new(stmts.into_iter().map(|f| f.0).collect()),
        fingerprint: String::new(),
        redacted: String::new(),
    }
}

pub(crate) fn ctx(user: &str, app: &str, db: &str) -> RequestContext {
    RequestContext {
        user: user.into(),
        application_name: app.into(),
        database: db.into(),
    }
}

/// The demo schema (and a view over it) as a catalog snapshot.
pub(crate) fn demo_catalog() -> Catalog {
    let mut relations = HashMap::new();
    let mut add = |name: &str, cols: &[&str], kind: RelationKind, sources: &[(&str, &[&str])]| {
        relations.insert(
            t(name),
            Relation {
                table: t(name),
                kind,
                columns: cols.iter().map(|s| s.to_string()).collect(),
                view_sources: sources
                    .iter()
                    .map(|(col, base)| (col.to_string(), base.iter().map(|b| c(b)).collect()))
                    .collect(),
                view_columns: Vec::new(),
                runs: Vec::new(),
            },
        );
    };
    add(
        "public.customers",
        &["id", "name", "email", "ssn", "phone", "created_at"],
        RelationKind::Table,
        &[],
    );
    add(
        "public.orders",
        &[
            "id",
            "customer_id",
            "product_id",
            "quantity",
            "total",
            "status",
            "created_at",
        ],
        RelationKind::Table,
        &[],
    );
    add(
        "public.products",
        &["id", "name", "price"],
        RelationKind::Table,
        &[],
    );
    add(
        "public.customer_contacts",
        &["id", "contact"],
        RelationKind::View,
        &[
            ("id", &["public.customers.id"]),
            (
                "contact",
                &["public.customers.email", "public.customers.phone"],
            ),
        ],
    );
    // Quoted, mixed-case names are stored as written.
    add("crm.Leads", &["Id", "E-mail"], RelationKind::Table, &[]);
    Catalog {
        relations,
        functions: HashMap::new(),
        search_path: vec!["public".into()],
        ..Catalog::default()
    }
}

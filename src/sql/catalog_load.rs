//! Reading the catalog snapshot from upstream, and building one by hand.
//!
//! Relations and their columns come from `pg_class`/`pg_attribute`, functions from `pg_proc`.
//! What a view exposes is derived by analyzing its definition (`pg_get_viewdef`) with the
//! classifier itself, so `view column → base columns` is exact wherever the definition can be
//! analyzed. Where it cannot (a definition sqlparser does not parse, a view calling functions
//! that may read anything), every column of the view is taken to come from every column of
//! every relation the view depends on (`pg_depend`): a view over PII is PII.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::catalog_live::Q_NAMES;
use super::catalog_runs::{attach, conversions, operators, TypeRow, Q_OPERATORS, Q_RUNS, Q_TYPES};
use super::depth::too_deep;
use super::functions::FunctionPolicy;
use super::lexer::lex;
use super::query::analyze_query;
use super::scope::{union_into, Acc, Ctx, Lineage};
use super::{
    Attributes, Catalog, ColumnRef, FunctionInfo, FunctionRef, Relation, RelationKind, TableRef,
    Volatility,
};

/// Errors of the `sql` module.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("catalog query failed: {0}")]
    CatalogQuery(String),
    #[error("unexpected row from the {query} catalog query: {detail}")]
    CatalogRow { query: &'static str, detail: String },
}

/// Something that runs a plain SQL text query upstream and returns its rows as text values
/// (NULL as `None`), e.g. a simple-query over the gateway's service connection.
pub trait CatalogSource {
    fn query(
        &mut self,
        sql: &str,
    ) -> impl Future<Output = Result<Vec<Vec<Option<String>>>, String>> + Send;
}

/// The effective search_path, and the role `$user` stands for in a path a session sets. One
/// row even when the path is empty, so the role is always read.
const Q_PATH: &str = "SELECT CURRENT_USER::text, t.s FROM (VALUES (1)) AS one(x) \
     LEFT JOIN unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS t(s, n) ON true \
     ORDER BY t.n";

const Q_RELATIONS: &str = "SELECT n.nspname, c.relname, c.relkind::text, a.attname, \
c.oid::text, a.attnum::text \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast%' \
ORDER BY n.nspname, c.relname, a.attnum";

const Q_VIEWS: &str = "SELECT n.nspname, c.relname, pg_catalog.pg_get_viewdef(c.oid) \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

const Q_VIEW_DEPS: &str = "SELECT DISTINCT vn.nspname, v.relname, tn.nspname, t.relname \
FROM pg_catalog.pg_rewrite r \
JOIN pg_catalog.pg_class v ON v.oid = r.ev_class \
JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace \
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
 AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
JOIN pg_catalog.pg_class t ON t.oid = d.refobjid AND t.oid <> v.oid \
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
WHERE v.relkind IN ('v', 'm') AND vn.nspname NOT IN ('pg_catalog', 'information_schema')";

const Q_FUNCTIONS: &str =
    "SELECT n.nspname, p.proname, p.provolatile::text, p.prosecdef, l.lanname \
FROM pg_catalog.pg_proc p \
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
JOIN pg_catalog.pg_language l ON l.oid = p.prolang";

pub(super) async fn rows<S: CatalogSource>(
    src: &mut S,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, SqlError> {
    src.query(sql).await.map_err(SqlError::CatalogQuery)
}

/// Column `i` of a row, which must be present and non-NULL.
pub(super) fn col<'r>(
    row: &'r [Option<String>],
    i: usize,
    query: &'static str,
) -> Result<&'r str, SqlError> {
    row.get(i)
        .and_then(|v| v.as_deref())
        .ok_or_else(|| SqlError::CatalogRow {
            query,
            detail: format!(
                "column {i} missing or NULL in a row of {} values",
                row.len()
            ),
        })
}

fn table(schema: &str, name: &str) -> TableRef {
    TableRef {
        schema: schema.to_owned(),
        name: name.to_owned(),
    }
}

impl Catalog {
    /// Read a snapshot from upstream. Issues ten read-only catalog queries.
    pub async fn load<S: CatalogSource>(src: &mut S) -> Result<Catalog, SqlError> {
        let mut cat = Catalog {
            version: Some(Catalog::version_on(src).await?),
            ..Catalog::default()
        };
        for row in rows(src, Q_PATH).await? {
            cat.user = Some(col(&row, 0, "search_path")?.to_owned());
            if let Some(Some(schema)) = row.get(1) {
                cat.search_path.push(schema.clone());
            }
        }
        for row in rows(src, Q_RELATIONS).await? {
            let t = table(col(&row, 0, "relations")?, col(&row, 1, "relations")?);
            let kind = match col(&row, 2, "relations")? {
                "v" => RelationKind::View,
                "m" => RelationKind::MaterializedView,
                "f" => RelationKind::Foreign,
                _ => RelationKind::Table,
            };
            let rel = cat.relations.entry(t.clone()).or_insert_with(|| Relation {
                table: t,
                kind,
                columns: Vec::new(),
                view_sources: HashMap::new(),
                view_columns: Vec::new(),
                runs: Vec::new(),
            });
            if let Some(Some(a)) = row.get(3) {
                rel.columns.push(a.clone());
            }
            // OID and attnum: what the relay checks row descriptions against.
            if let Some(oid) = row.get(4).cloned().flatten().and_then(|o| o.parse().ok()) {
                let attrs = cat.attributes.entry(oid).or_insert_with(|| Attributes {
                    table: rel.table.clone(),
                    attnums: Vec::new(),
                });
                if let Some(n) = row.get(5).cloned().flatten().and_then(|n| n.parse().ok()) {
                    attrs.attnums.push(n);
                }
            }
        }
        for attrs in cat.attributes.values_mut() {
            attrs.attnums.sort_unstable();
        }
        let mut defs = Vec::new();
        for row in rows(src, Q_VIEWS).await? {
            let t = table(col(&row, 0, "views")?, col(&row, 1, "views")?);
            // A NULL definition (no permission) leaves only the dependency fallback.
            let def = row.get(2).cloned().flatten();
            defs.push((t, def));
        }
        let mut deps: HashMap<TableRef, Vec<TableRef>> = HashMap::new();
        for row in rows(src, Q_VIEW_DEPS).await? {
            let v = table(
                col(&row, 0, "view dependencies")?,
                col(&row, 1, "view dependencies")?,
            );
            let t = table(
                col(&row, 2, "view dependencies")?,
                col(&row, 3, "view dependencies")?,
            );
            deps.entry(v).or_default().push(t);
        }
        for row in rows(src, Q_FUNCTIONS).await? {
            let schema = col(&row, 0, "functions")?;
            let name = col(&row, 1, "functions")?;
            let volatility = match col(&row, 2, "functions")? {
                "i" => Volatility::Immutable,
                "s" => Volatility::Stable,
                _ => Volatility::Volatile,
            };
            let security_definer = matches!(col(&row, 3, "functions")?, "t" | "true");
            let language = col(&row, 4, "functions")?;
            merge_function(
                &mut cat,
                FunctionInfo {
                    schema: schema.to_owned(),
                    name: name.to_owned(),
                    volatility,
                    security_definer,
                    language: language.to_owned(),
                },
            );
        }
        resolve_views(&mut cat, defs, &deps);
        let mut runs = Vec::new();
        for row in rows(src, Q_RUNS).await? {
            let t = table(
                col(&row, 0, "functions run")?,
                col(&row, 1, "functions run")?,
            );
            let f = FunctionRef {
                schema: col(&row, 2, "functions run")?.to_owned(),
                name: col(&row, 3, "functions run")?.to_owned(),
            };
            runs.push((t, f));
        }
        attach(&mut cat, runs, &deps);
        let fref = |row: &[Option<String>], i: usize, what: &'static str| {
            Ok::<_, SqlError>(FunctionRef {
                schema: col(row, i, what)?.to_owned(),
                name: col(row, i + 1, what)?.to_owned(),
            })
        };
        let mut ops = Vec::new();
        for row in rows(src, Q_OPERATORS).await? {
            ops.push((
                col(&row, 0, "operators")?.to_owned(),
                fref(&row, 1, "operators")?,
            ));
        }
        operators(&mut cat, ops);
        let mut types = Vec::new();
        for row in rows(src, Q_TYPES).await? {
            let oid = col(&row, 5, "types")?;
            types.push(TypeRow {
                ty: fref(&row, 0, "types")?,
                oid: oid.parse().map_err(|_| SqlError::CatalogRow {
                    query: "types",
                    detail: format!("type OID {oid:?} is not a number"),
                })?,
                is_part: col(&row, 2, "types")? == "part",
                other: fref(&row, 3, "types")?,
            });
        }
        conversions(&mut cat, types);
        for row in rows(src, Q_NAMES).await? {
            let name = col(&row, 2, "names")?.to_owned();
            if col(&row, 0, "names")? == "operator" {
                cat.operator_names.insert(name);
            } else {
                let schema = col(&row, 1, "names")?;
                cat.type_names.insert(table(schema, &name));
            }
        }
        tracing::info!(
            relations = cat.relations.len(),
            functions = cat.functions.len(),
            operators = cat.operators.len(),
            types = cat.types.len(),
            search_path = ?cat.search_path,
            "catalog snapshot loaded"
        );
        Ok(cat)
    }
}

/// Overloads share a name: keep the riskiest of them.
fn merge_function(cat: &mut Catalog, f: FunctionInfo) {
    let key = format!("{}.{}", f.schema, f.name);
    let rank = |v: Volatility| match v {
        Volatility::Immutable => 0,
        Volatility::Stable => 1,
        Volatility::Volatile => 2,
    };
    match cat.functions.get_mut(&key) {
        None => {
            cat.functions.insert(key, f);
        }
        Some(old) => {
            if rank(f.volatility) > rank(old.volatility) {
                old.volatility = f.volatility;
                old.language = f.language;
            }
            old.security_definer |= f.security_definer;
        }
    }
}

/// Derive `view_sources` for every view, dependencies first.
fn resolve_views(
    cat: &mut Catalog,
    defs: Vec<(TableRef, Option<String>)>,
    deps: &HashMap<TableRef, Vec<TableRef>>,
) {
    let mut pending: Vec<(TableRef, Option<String>)> = defs
        .into_iter()
        .filter(|(t, _)| cat.relations.contains_key(t))
        .collect();
    let mut done: HashSet<TableRef> = HashSet::new();
    while !pending.is_empty() {
        let waiting: HashSet<TableRef> = pending.iter().map(|(t, _)| t.clone()).collect();
        let (ready, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(t, _)| {
            deps.get(t)
                .is_none_or(|ds| ds.iter().all(|d| d == t || !waiting.contains(d)))
        });
        // A cycle (impossible in PostgreSQL) or a broken dependency list: resolve the rest with
        // the fallback rather than loop.
        let (ready, rest) = if ready.is_empty() {
            (rest, Vec::new())
        } else {
            (ready, rest)
        };
        for (t, def) in ready {
            let (sources, touched) = view_sources(cat, &t, def.as_deref(), deps);
            if let Some(rel) = cat.relations.get_mut(&t) {
                rel.view_sources = sources;
                rel.view_columns = touched;
            }
            done.insert(t);
        }
        pending = rest;
    }
}

/// Each column's base lineage, and every base column the definition references anywhere.
fn view_sources(
    cat: &Catalog,
    view: &TableRef,
    def: Option<&str>,
    deps: &HashMap<TableRef, Vec<TableRef>>,
) -> (HashMap<String, Vec<ColumnRef>>, Lineage) {
    let columns = cat
        .relation(view)
        .map(|r| r.columns.clone())
        .unwrap_or_default();
    let fallback = || {
        let mut all = Vec::new();
        for d in deps.get(view).into_iter().flatten() {
            union_into(&mut all, &all_base_columns(cat, d));
        }
        if all.is_empty() {
            // Nothing known about its sources: the view's own columns stand for themselves.
            return None;
        }
        Some(all)
    };
    let precise = def.and_then(|sql| view_lineage(cat, &cat.search_path, &columns, sql));
    let mut touched = match &precise {
        Some(v) if !v.unsafe_functions => v.touched.clone(),
        // Unreadable, or calling functions that may read anything: all it could reach.
        _ => fallback().unwrap_or_default(),
    };
    for d in deps.get(view).into_iter().flatten() {
        if let Some(r) = cat.relation(d) {
            union_into(&mut touched, &r.view_columns);
        }
    }
    let mut out = HashMap::new();
    for (i, c) in columns.iter().enumerate() {
        let own = || {
            vec![ColumnRef {
                table: view.clone(),
                column: c.clone(),
            }]
        };
        let lin = match &precise {
            Some(v) if !v.unsafe_functions => v.lineages[i].clone(),
            Some(v) => {
                let mut l = v.lineages[i].clone();
                union_into(&mut l, &fallback().unwrap_or_else(own));
                l
            }
            None => fallback().unwrap_or_else(own),
        };
        out.insert(c.clone(), lin);
    }
    (out, touched)
}

/// Every base column behind a relation (through views).
fn all_base_columns(cat: &Catalog, t: &TableRef) -> Lineage {
    let Some(rel) = cat.relation(t) else {
        return vec![ColumnRef {
            table: t.clone(),
            column: "*".into(),
        }];
    };
    let mut out = Vec::new();
    for c in &rel.columns {
        match rel.view_sources.get(c) {
            Some(base) => union_into(&mut out, base),
            None => union_into(
                &mut out,
                &[ColumnRef {
                    table: t.clone(),
                    column: c.clone(),
                }],
            ),
        }
    }
    out
}

/// What a view definition reads, as analyzed from its SQL.
pub(crate) struct ViewLineage {
    /// The lineage of each output column.
    pub lineages: Vec<Lineage>,
    /// Every base column referenced anywhere in the definition.
    pub touched: Lineage,
    /// It calls functions not known to be harmless (which may read anything).
    pub unsafe_functions: bool,
}

/// What a view definition reads. `None` when the definition cannot be analyzed or its arity
/// does not match the view's columns.
pub(crate) fn view_lineage(
    cat: &Catalog,
    path: &[String],
    columns: &[String],
    sql: &str,
) -> Option<ViewLineage> {
    let sql = sql.trim().trim_end_matches(';');
    // A definition the server accepted can still nest deeper than the analysis can walk (the
    // server flattens long AND/OR chains, sqlparser does not): it gets the dependency fallback.
    if too_deep(sql, &lex(sql, true).toks) {
        return None;
    }
    let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let [Statement::Query(q)] = stmt.as_slice() else {
        return None;
    };
    let functions = FunctionPolicy::default();
    let allowed = HashSet::new();
    let cx = Ctx {
        catalog: cat,
        path,
        temp: &[],
        functions: &functions,
        allowed_settings: &allowed,
        literal_sensitive: std::cell::Cell::new(false),
        marks: Default::default(),
    };
    let mut acc = Acc::default();
    let out = analyze_query(&cx, None, q, &mut acc);
    if acc.unsupported.is_some() || out.len() != columns.len() {
        return None;
    }
    Some(ViewLineage {
        lineages: out.into_iter().map(|c| c.lineage).collect(),
        touched: acc.columns.clone(),
        unsafe_functions: acc.flags.unsafe_function,
    })
}

/// A catalog built by hand (tests, demos, `airlock explain` without a server).
#[derive(Debug, Clone)]
pub struct CatalogBuilder {
    catalog: Catalog,
    views: Vec<(TableRef, RelationKind, Vec<String>, String)>,
}

impl Catalog {
    /// Start a hand-built catalog; its search_path is `public` until set.
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder {
            catalog: Catalog {
                search_path: vec!["public".into()],
                ..Catalog::default()
            },
            views: Vec::new(),
        }
    }
}

impl CatalogBuilder {
    pub fn search_path(mut self, path: &[&str]) -> Self {
        self.catalog.search_path = path.iter().map(|s| s.to_string()).collect();
        self
    }

    fn relation(
        mut self,
        schema: &str,
        name: &str,
        kind: RelationKind,
        columns: Vec<String>,
        sources: HashMap<String, Vec<ColumnRef>>,
    ) -> Self {
        let t = table(schema, name);
        self.catalog.relations.insert(
            t.clone(),
            Relation {
                table: t,
                kind,
                columns,
                view_sources: sources,
                view_columns: Vec::new(),
                runs: Vec::new(),
            },
        );
        self
    }

    pub fn table(self, schema: &str, name: &str, columns: &[&str]) -> Self {
        let cols = columns.iter().map(|c| c.to_string()).collect();
        self.relation(schema, name, RelationKind::Table, cols, HashMap::new())
    }

    /// A view with explicit lineage: each column with the base columns (`schema.table.column`)
    /// it is computed from.
    pub fn view(self, schema: &str, name: &str, columns: &[(&str, &[&str])]) -> Self {
        let cols = columns.iter().map(|(c, _)| c.to_string()).collect();
        let sources = columns
            .iter()
            .map(|(c, base)| {
                let refs = base
                    .iter()
                    .filter_map(|b| {
                        let mut parts = b.rsplitn(3, '.');
                        let column = parts.next()?.to_owned();
                        let name = parts.next()?;
                        let schema = parts.next()?;
                        Some(ColumnRef {
                            table: table(schema, name),
                            column,
                        })
                    })
                    .collect();
                (c.to_string(), refs)
            })
            .collect();
        self.relation(schema, name, RelationKind::View, cols, sources)
    }

    /// A view defined by SQL; its lineage is derived at [`CatalogBuilder::build`] exactly as for
    /// a snapshot read from a server (views may use relations and views added before them).
    pub fn view_sql(mut self, schema: &str, name: &str, columns: &[&str], sql: &str) -> Self {
        let cols: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        self.views.push((
            table(schema, name),
            RelationKind::View,
            cols.clone(),
            sql.to_owned(),
        ));
        self.relation(schema, name, RelationKind::View, cols, HashMap::new())
    }

    /// Functions a read of `schema.name` runs without naming them (see [`Relation::runs`]),
    /// as `schema.function`.
    pub fn runs(mut self, schema: &str, name: &str, functions: &[&str]) -> Self {
        if let Some(rel) = self.catalog.relations.get_mut(&table(schema, name)) {
            rel.runs = functions
                .iter()
                .filter_map(|f| f.split_once('.'))
                .map(|(schema, name)| FunctionRef {
                    schema: schema.to_owned(),
                    name: name.to_owned(),
                })
                .collect();
        }
        self
    }

    pub fn function(
        mut self,
        schema: &str,
        name: &str,
        volatility: Volatility,
        security_definer: bool,
        language: &str,
    ) -> Self {
        merge_function(
            &mut self.catalog,
            FunctionInfo {
                schema: schema.to_owned(),
                name: name.to_owned(),
                volatility,
                security_definer,
                language: language.to_owned(),
            },
        );
        self
    }

    pub fn build(self) -> Catalog {
        let mut cat = self.catalog;
        for (t, kind, cols, sql) in self.views {
            let lineage = view_lineage(&cat, &cat.search_path, &cols, &sql);
            let sources = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let lin = match &lineage {
                        Some(v) => v.lineages[i].clone(),
                        None => vec![ColumnRef {
                            table: t.clone(),
                            column: c.clone(),
                        }],
                    };
                    (c.clone(), lin)
                })
                .collect();
            if let Some(rel) = cat.relations.get_mut(&t) {
                rel.kind = kind;
                rel.view_sources = sources;
                rel.view_columns = lineage.map(|v| v.touched).unwrap_or_default();
            }
        }
        cat
    }
}

//! Classification tests against a hand-built catalog shaped like the demo schema.

mod cases;
mod catalog_load;
mod evasion;
mod fuzz;
mod live;
mod session;

use std::sync::Arc;

use super::{Catalog, Classifier, ClassifierOptions, Facts, Kind, Volatility};

/// The demo schema: customers (PII: email, ssn, phone, name), orders, products, a view over
/// customer PII and a view without PII, plus a few objects to test names and functions.
pub(crate) fn demo_catalog() -> Catalog {
    Catalog::builder()
        .search_path(&["public"])
        .table(
            "public",
            "customers",
            &["id", "name", "email", "ssn", "phone", "created_at"],
        )
        .table(
            "public",
            "orders",
            &[
                "id",
                "customer_id",
                "product_id",
                "quantity",
                "total",
                "created_at",
            ],
        )
        .table("public", "products", &["id", "name", "price"])
        .table("public", "Customers", &["id", "secret"])
        .table("app", "customers", &["id", "nickname"])
        .table(
            "pg_catalog",
            "pg_class",
            &["oid", "relname", "relnamespace", "relkind"],
        )
        .table("pg_catalog", "pg_namespace", &["oid", "nspname"])
        .table(
            "pg_catalog",
            "pg_type",
            &[
                "oid",
                "typname",
                "typnamespace",
                "typtype",
                "typbasetype",
                "typelem",
                "typrelid",
                "typarray",
            ],
        )
        .table(
            "pg_catalog",
            "pg_attribute",
            &["attrelid", "attname", "atttypid", "attnum", "attisdropped"],
        )
        .table(
            "pg_catalog",
            "pg_stats",
            &["schemaname", "tablename", "attname", "most_common_vals"],
        )
        .table(
            "pg_catalog",
            "pg_stat_activity",
            &["pid", "usename", "query"],
        )
        .table("pg_catalog", "pg_settings", &["name", "setting"])
        .table("pg_catalog", "pg_database", &["oid", "datname"])
        .table("pg_catalog", "pg_roles", &["oid", "rolname"])
        .table("pg_catalog", "pg_range", &["rngtypid", "rngsubtype"])
        .table("pg_catalog", "pg_proc", &["oid", "proname"])
        .table(
            "information_schema",
            "tables",
            &["table_schema", "table_name", "table_type"],
        )
        .table(
            "information_schema",
            "columns",
            &["table_schema", "table_name", "column_name", "data_type"],
        )
        .view_sql(
            "public",
            "customer_contacts",
            &["name", "email"],
            "SELECT name, email FROM customers",
        )
        .view_sql(
            "public",
            "order_totals",
            &["customer_id", "total"],
            "SELECT customer_id, sum(total) AS total FROM orders GROUP BY customer_id",
        )
        .view_sql(
            "public",
            "contact_emails",
            &["email"],
            "SELECT c.email FROM customer_contacts c",
        )
        .function(
            "public",
            "calc_discount",
            Volatility::Immutable,
            false,
            "sql",
        )
        .function("public", "get_ssn", Volatility::Stable, true, "plpgsql")
        .function(
            "pg_catalog",
            "set_config",
            Volatility::Volatile,
            false,
            "internal",
        )
        .function(
            "pg_catalog",
            "nextval",
            Volatility::Volatile,
            false,
            "internal",
        )
        .build()
}

pub(crate) fn classifier() -> Classifier {
    let opts = ClassifierOptions {
        safe_functions: vec!["calc_discount".into()],
        ..ClassifierOptions::default()
    };
    Classifier::new(Arc::new(demo_catalog()), opts)
}

/// The single statement of `sql`.
pub(crate) fn one(c: &Classifier, sql: &str) -> Facts {
    let cl = c.classify(sql);
    assert_eq!(
        cl.statements.len(),
        1,
        "expected one statement in {sql:?}: {cl:#?}"
    );
    cl.statements[0].clone()
}

/// `t` → `public.t`; `s.t` kept; sorted.
pub(crate) fn tables(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .map(|n| {
            if n.contains('.') {
                n.to_string()
            } else {
                format!("public.{n}")
            }
        })
        .collect();
    v.sort();
    v
}

/// `t.c` → `public.t.c`; `s.t.c` kept; sorted.
pub(crate) fn cols(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .map(|n| {
            if n.matches('.').count() == 1 {
                format!("public.{n}")
            } else {
                n.to_string()
            }
        })
        .collect();
    v.sort();
    v
}

pub(crate) fn sorted<T: ToString>(items: &[T]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|t| t.to_string()).collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn classifier_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Classifier>();
    assert_send_sync::<super::SessionSqlState>();
}

#[test]
fn empty_text_has_no_statements() {
    let c = classifier();
    for t in ["", "   ", ";", " ; ;; ", "-- nothing\n", "/* nothing */"] {
        let cl = c.classify(t);
        assert!(cl.statements.is_empty(), "{t:?} → {cl:?}");
        assert_eq!(cl.redacted, t);
    }
}

#[test]
fn multi_statement_text_gets_one_facts_each() {
    let c = classifier();
    let cl = c.classify("BEGIN; SELECT email FROM customers; DROP TABLE orders; COMMIT");
    let kinds: Vec<Kind> = cl.statements.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![Kind::Txn, Kind::Read, Kind::Ddl, Kind::Txn]);
    assert_eq!(
        sorted(&cl.statements[2].tables_written),
        tables(&["orders"])
    );
    // One statement that does not parse does not hide the others.
    let cl = c.classify("SELECT 1; VACUUM (VERBOSE, FREEZE) customers; DELETE FROM orders");
    let kinds: Vec<Kind> = cl.statements.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![Kind::Read, Kind::Utility, Kind::Write]);
    assert!(cl.statements[2].flags.unbounded_write);
}

#[test]
fn cache_returns_the_same_classification() {
    let c = classifier();
    let a = c.classify("SELECT email FROM customers WHERE id = 1");
    let b = c.classify("SELECT email FROM customers WHERE id = 1");
    assert!(Arc::ptr_eq(&a, &b), "second call is a cache hit");
    // Another search_path is another key.
    let other = c.classify_with_search_path("SELECT * FROM customers", &["app".into()]);
    assert_eq!(
        sorted(&other.statements[0].tables_read),
        vec!["app.customers"]
    );
    let default = c.classify("SELECT * FROM customers");
    assert_eq!(
        sorted(&default.statements[0].tables_read),
        vec!["public.customers"]
    );
    // A reload starts a fresh cache over the new snapshot.
    let reloaded = c.with_catalog(Arc::new(
        Catalog::builder()
            .table("public", "customers", &["id"])
            .build(),
    ));
    let r = reloaded.classify("SELECT * FROM customers");
    assert_eq!(
        sorted(&r.statements[0].output_columns),
        cols(&["customers.id"])
    );
    assert_eq!(reloaded.options(), c.options());
}

#[test]
fn cache_capacity_zero_disables_caching() {
    let c = Classifier::new(
        Arc::new(demo_catalog()),
        ClassifierOptions {
            cache_capacity: 0,
            ..ClassifierOptions::default()
        },
    );
    let a = c.classify("SELECT 1");
    let b = c.classify("SELECT 1");
    assert!(!Arc::ptr_eq(&a, &b));
    assert_eq!(a, b);
}

#[test]
fn cached_lookup_is_fast() {
    let c = classifier();
    let sql =
        "SELECT o.id, o.total FROM orders o JOIN products p ON p.id = o.product_id WHERE o.id = $1";
    c.classify(sql);
    let n = 20_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(c.classify(std::hint::black_box(sql)));
    }
    let per = start.elapsed() / n;
    // Generous for unoptimized test builds on a shared machine; release builds are far below.
    assert!(
        per < std::time::Duration::from_micros(20),
        "cached classify took {per:?}"
    );
}

#[test]
fn wide_tables_cost_linear_time() {
    // PostgreSQL's limit for a table (and the result may hold at most 1664 columns).
    let names: Vec<String> = (0..1600).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let cat = Catalog::builder().table("public", "wide", &refs).build();
    let c = Classifier::new(Arc::new(cat), ClassifierOptions::default());
    let start = std::time::Instant::now();
    for sql in [
        "SELECT * FROM wide",
        "SELECT w FROM wide w",
        "SELECT a.*, b.c2 FROM wide a JOIN wide b USING (c1)",
        "SELECT * FROM wide UNION ALL SELECT * FROM wide",
        "SELECT row_to_json(w), * FROM wide w",
    ] {
        let f = one(&c, sql);
        assert_eq!(f.output_columns.len(), 1600, "{sql}");
    }
    let took = start.elapsed();
    // Quadratic behaviour takes seconds here; linear takes milliseconds even unoptimized.
    assert!(
        took < std::time::Duration::from_millis(1500),
        "took {took:?}"
    );
}

#[test]
fn same_statement_with_other_constants_skips_parsing() {
    let c = classifier();
    let a = c.classify("SELECT email FROM customers WHERE id = 1 AND name = 'Ann'");
    assert_eq!(c.analyses(), 1);
    let b = c.classify("select email from customers where id = 2 and name = 'Bob' -- hi");
    assert_eq!(c.analyses(), 1, "served by fingerprint");
    assert_eq!(a.statements, b.statements);
    assert_eq!(
        b.redacted,
        "select email from customers where id = 2 and name = 'Bob' -- hi"
    );
    assert_eq!(b.fingerprint, a.fingerprint);
    // Facts that depend on a literal are never shared.
    let role = c.classify("SELECT set_config('role', 'admin', false)");
    let timeout = c.classify("SELECT set_config('statement_timeout', '5s', false)");
    assert_eq!(role.statements[0].kind, Kind::Role);
    assert_eq!(timeout.statements[0].kind, Kind::Session);
    let off = c.classify("EXPLAIN (ANALYZE 0) DELETE FROM orders WHERE id = 1");
    let on = c.classify("EXPLAIN (ANALYZE 1) DELETE FROM orders WHERE id = 1");
    assert!(!off.statements[0].flags.explain_analyze);
    assert!(on.statements[0].flags.explain_analyze);
    // A text with a secret is analyzed (and redacted) on its own.
    c.classify("ALTER ROLE x PASSWORD 'one'");
    let two = c.classify("ALTER ROLE x PASSWORD 'two'");
    assert_eq!(two.redacted, "ALTER ROLE x PASSWORD '***'");
    assert!(two.statements[0].flags.has_secret);
    // Quoting that depends on standard_conforming_strings is never shared.
    c.classify("SELECT 'ab', 1");
    let amb = c.classify("SELECT 'a\\', 1");
    assert_eq!(amb.statements[0].kind, Kind::Unknown);
}

//! Rewrites checked as text; every rewrite must parse again. The lead's integration tests run
//! the same shapes against PostgreSQL.

use super::*;
use crate::policy::model::PiiSet;
use crate::policy::pattern::ColumnPattern;
use crate::policy::tests::demo_catalog;

fn pii() -> PiiSet {
    let mut p = PiiSet::default();
    for (pat, m) in [
        ("public.customers.email", MaskMethod::Partial),
        ("public.customers.phone", MaskMethod::Partial),
        ("public.customers.ssn", MaskMethod::Redact),
        ("public.customers.name", MaskMethod::Hash),
        (r#"crm."Leads"."E-mail""#, MaskMethod::Hash),
    ] {
        p.insert(ColumnPattern::parse(pat).unwrap(), m);
    }
    p
}

fn rw(sql: &str) -> Result<Rewrite, MaskError> {
    let n = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map(|s| s.len())
        .unwrap_or(1);
    let out = rewrite(sql, &vec![true; n], &pii(), &demo_catalog());
    if let Ok(r) = &out {
        Parser::parse_sql(&PostgreSqlDialect {}, &r.sql)
            .unwrap_or_else(|e| panic!("rewrite does not parse: {e}\n{}", r.sql));
    }
    out
}

#[track_caller]
fn ok(sql: &str) -> String {
    match rw(sql) {
        Ok(r) => r.sql,
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[track_caller]
fn refused(sql: &str, why: &str) {
    match rw(sql) {
        Ok(r) => panic!("{sql} was rewritten to {}", r.sql),
        Err(e) => assert!(e.to_string().contains(why), "{sql}: {e}"),
    }
}

const P_EMAIL: &str = "CASE WHEN (email) IS NULL THEN NULL WHEN strpos((email)::TEXT, '@') > 1 THEN SUBSTR((email)::TEXT, 1, 1) || '***' || SUBSTR((email)::TEXT, strpos((email)::TEXT, '@')) WHEN length((email)::TEXT) >= 8 THEN '***' || SUBSTR((email)::TEXT, length((email)::TEXT) - 3) ELSE '***' END";

#[test]
fn columns_are_masked_by_method_under_their_name() {
    assert_eq!(
        ok("SELECT id, email FROM customers"),
        format!("SELECT id, {P_EMAIL} AS email FROM customers")
    );
    assert_eq!(
        ok("SELECT ssn FROM customers"),
        "SELECT CASE WHEN (ssn) IS NULL THEN NULL ELSE '***' END AS ssn FROM customers"
    );
    assert_eq!(
        ok("select name from customers"),
        "SELECT md5((name)::TEXT) AS name FROM customers"
    );
    // An alias is kept; a cast is masked whole and named after its column.
    assert_eq!(
        ok("SELECT ssn AS s, name::varchar FROM customers"),
        "SELECT CASE WHEN (ssn) IS NULL THEN NULL ELSE '***' END AS s, md5((name::VARCHAR)::TEXT) AS name FROM customers"
    );
}

#[test]
fn the_rest_of_the_statement_is_untouched() {
    let out = ok("SELECT c.ssn, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.email LIKE '%@x.org' GROUP BY c.ssn ORDER BY 2 DESC LIMIT 5");
    assert_eq!(
        out,
        "SELECT CASE WHEN (c.ssn) IS NULL THEN NULL ELSE '***' END AS ssn, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.email LIKE '%@x.org' GROUP BY c.ssn ORDER BY 2 DESC LIMIT 5"
    );
    let r = rw("SELECT id FROM customers WHERE ssn = $1").unwrap();
    assert_eq!(r.sql, "SELECT id FROM customers WHERE ssn = $1");
    assert!(r.masked.is_empty());
}

#[test]
fn stars_are_expanded_only_over_sources_with_pii() {
    assert_eq!(
        ok("SELECT * FROM customers"),
        "SELECT customers.\"id\", md5((customers.\"name\")::TEXT) AS \"name\", \
         CASE WHEN (customers.\"email\") IS NULL THEN NULL WHEN strpos((customers.\"email\")::TEXT, '@') > 1 THEN SUBSTR((customers.\"email\")::TEXT, 1, 1) || '***' || SUBSTR((customers.\"email\")::TEXT, strpos((customers.\"email\")::TEXT, '@')) WHEN length((customers.\"email\")::TEXT) >= 8 THEN '***' || SUBSTR((customers.\"email\")::TEXT, length((customers.\"email\")::TEXT) - 3) ELSE '***' END AS \"email\", \
         CASE WHEN (customers.\"ssn\") IS NULL THEN NULL ELSE '***' END AS \"ssn\", \
         CASE WHEN (customers.\"phone\") IS NULL THEN NULL WHEN strpos((customers.\"phone\")::TEXT, '@') > 1 THEN SUBSTR((customers.\"phone\")::TEXT, 1, 1) || '***' || SUBSTR((customers.\"phone\")::TEXT, strpos((customers.\"phone\")::TEXT, '@')) WHEN length((customers.\"phone\")::TEXT) >= 8 THEN '***' || SUBSTR((customers.\"phone\")::TEXT, length((customers.\"phone\")::TEXT) - 3) ELSE '***' END AS \"phone\", \
         customers.\"created_at\" FROM customers"
    );
    let out = ok("SELECT o.*, c.* FROM orders o JOIN customers c ON c.id = o.customer_id");
    assert!(
        out.starts_with("SELECT o.*, c.\"id\", md5((c.\"name\")::TEXT) AS \"name\""),
        "{out}"
    );
    assert!(out.contains("c.\"created_at\" FROM orders o JOIN"), "{out}");
    // Plain `*` over sources without PII stays as written.
    assert_eq!(ok("SELECT * FROM orders"), "SELECT * FROM orders");
    // `*` over a subquery, with its column aliases.
    assert_eq!(
        ok("SELECT * FROM (SELECT id, ssn FROM customers) AS s(a, b)"),
        "SELECT s.\"a\", CASE WHEN (s.\"b\") IS NULL THEN NULL ELSE '***' END AS \"b\" FROM (SELECT id, ssn FROM customers) AS s (a, b)"
    );
}

#[test]
fn pii_through_subqueries_ctes_and_views_is_masked_at_the_output() {
    assert_eq!(
        ok("SELECT x FROM (SELECT ssn AS x FROM customers) s"),
        "SELECT CASE WHEN (x) IS NULL THEN NULL ELSE '***' END AS x FROM (SELECT ssn AS x FROM customers) s"
    );
    assert_eq!(
        ok("WITH t AS (SELECT id, ssn FROM customers) SELECT t.ssn FROM t"),
        "WITH t AS (SELECT id, ssn FROM customers) SELECT CASE WHEN (t.ssn) IS NULL THEN NULL ELSE '***' END AS ssn FROM t"
    );
    // A view column computed from email/phone: partial is not trusted on a derived value.
    let r = rw("SELECT id, contact FROM customer_contacts").unwrap();
    assert_eq!(
        r.sql,
        "SELECT id, md5((contact)::TEXT) AS contact FROM customer_contacts"
    );
    assert_eq!(
        r.masked.len(),
        2,
        "both base columns are accounted for: {:?}",
        r.masked
    );
    // Quoted identifiers resolve exactly.
    assert_eq!(
        ok(r#"SELECT "Id", "E-mail" FROM crm."Leads""#),
        r#"SELECT "Id", md5(("E-mail")::TEXT) AS "E-mail" FROM crm."Leads""#
    );
    refused(r#"SELECT "EMAIL" FROM customers"#, "cannot resolve");
    // Three-part names and schema-qualified tables.
    assert_eq!(
        ok("SELECT public.customers.ssn FROM public.customers"),
        "SELECT CASE WHEN (public.customers.ssn) IS NULL THEN NULL ELSE '***' END AS ssn FROM public.customers"
    );
}

#[test]
fn set_operations_mask_each_branch() {
    assert_eq!(
        ok("SELECT ssn FROM customers UNION ALL SELECT name FROM products"),
        "SELECT CASE WHEN (ssn) IS NULL THEN NULL ELSE '***' END AS ssn FROM customers UNION ALL SELECT name FROM products"
    );
}

#[test]
fn correlated_subqueries_without_pii_output_are_fine() {
    let out = ok("SELECT email, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c");
    assert!(out.ends_with("AS email, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c"), "{out}");
    assert_eq!(
        ok("SELECT g, ssn FROM customers, generate_series(1, 2) AS g"),
        "SELECT g, CASE WHEN (ssn) IS NULL THEN NULL ELSE '***' END AS ssn FROM customers, generate_series(1, 2) AS g"
    );
}

#[test]
fn unsafe_shapes_are_refused() {
    refused("SELECT upper(email) FROM customers", "upper(email)");
    refused("SELECT email || '' FROM customers", "computes from PII");
    refused("SELECT count(ssn) FROM customers", "computes from PII");
    refused("SELECT c FROM customers c", "whole-row");
    refused("SELECT row_to_json(c) FROM customers c", "whole-row");
    refused("SELECT to_json(c.*) FROM customers c", "whole-row");
    refused("SELECT json_agg(customers.*) FROM customers", "whole-row");
    refused("SELECT (c).ssn FROM customers c", "whole-row");
    refused(
        "SELECT c, g FROM customers c, generate_series(1, 2) g",
        "whole-row",
    );
    refused(
        "SELECT (SELECT ssn FROM customers LIMIT 1)",
        "subquery returns PII",
    );
    refused(
        "SELECT id IN (SELECT ssn FROM customers) FROM orders",
        "subquery returns PII",
    );
    refused("SELECT * FROM orders JOIN customers USING (id)", "USING");
    refused("SELECT * FROM orders NATURAL JOIN customers", "USING");
    refused(
        "SELECT m FROM (SELECT max(ssn) AS m FROM customers) s",
        "computes from PII",
    );
    refused(
        "SELECT x FROM customers, unnest(ARRAY[ssn]) AS x",
        "computes from PII",
    );
    refused("SELECT email FROM mystery", "not in the catalog");
    refused(
        "SELECT id, email FROM customers, mystery",
        "not in the catalog",
    );
    refused("WITH RECURSIVE r(e) AS (SELECT email FROM customers UNION SELECT e FROM r) SELECT e FROM r", "recursive");
    refused("TABLE customers", "TABLE");
    refused("SELECT ssn INTO t2 FROM customers", "INTO");
    refused("VALUES ((SELECT ssn FROM customers LIMIT 1))", "PII");
    refused(
        "INSERT INTO orders (id) VALUES (1) RETURNING id",
        "only SELECT",
    );
    refused(
        "SELECT row_number() OVER (ORDER BY ssn), name FROM customers",
        "computes from PII",
    );
    refused("SELECT 1 +", "does not parse");
}

#[test]
fn only_selected_statements_are_rewritten() {
    let r = rewrite(
        "select ssn from customers; select ssn from customers",
        &[false, true],
        &pii(),
        &demo_catalog(),
    )
    .unwrap();
    assert_eq!(
        r.sql,
        "SELECT ssn FROM customers; SELECT CASE WHEN (ssn) IS NULL THEN NULL ELSE '***' END AS ssn FROM customers"
    );
    let e = rewrite("select 1; select 2", &[true], &pii(), &demo_catalog()).unwrap_err();
    assert!(e.to_string().contains("2 statement(s)"), "{e}");
}

#[test]
fn masked_columns_are_reported() {
    let r = rw("SELECT email, ssn, id FROM customers").unwrap();
    let got: Vec<String> = r.masked.iter().map(|c| c.to_string()).collect();
    assert_eq!(got, ["public.customers.email", "public.customers.ssn"]);
}

#[test]
fn a_rewrite_that_prints_differently_from_what_it_means_is_refused() {
    // Printed, `- -1` is `--1`: a comment to the end of the line, so the literal's
    // second line would become SQL of its own.
    refused(
        "SELECT email, - -1 AS x, '\nssn, phone FROM customers LIMIT 5; --' AS y FROM customers",
        "does not read back",
    );
    refused(
        "SELECT email, - -1 AS x, '\n1; CREATE ROLE evil SUPERUSER; --' AS y FROM customers",
        "does not read back",
    );
    // The same values without the ambiguity are masked as usual.
    let sql = ok("SELECT email, -(-1) AS x, 'a\nb' AS y FROM customers");
    assert!(sql.contains("strpos"), "{sql}");
    assert!(sql.contains("'a\nb'"), "{sql}");
}

#[test]
fn unquoted_names_fold_only_ascii_like_postgresql() {
    // PostgreSQL folds unquoted `É` to itself (only ASCII letters are lowered in UTF-8), so
    // it names the column "É" — the email — not "é".
    let sql = ok(r#"SELECT É, "É" FROM (SELECT email AS "É", city AS "é" FROM customers) s"#);
    assert_eq!(sql.matches("WHEN strpos(").count(), 2, "{sql}");
    let sql = ok(r#"SELECT Ṕ FROM (SELECT phone AS "Ṕ", city AS "ṕ" FROM customers) s"#);
    assert_eq!(sql.matches("WHEN strpos(").count(), 1, "{sql}");
}

/// The masking templates name their value with a placeholder; a query that uses the same
/// name itself is masked like any other.
#[test]
fn the_template_placeholder_is_not_the_agents_to_use() {
    assert_eq!(
        ok("SELECT ssn AS airlock_masked_value FROM customers"),
        "SELECT CASE WHEN (ssn) IS NULL THEN NULL ELSE '***' END AS airlock_masked_value FROM customers"
    );
    assert_eq!(
        ok("SELECT airlock_masked_value FROM (SELECT name AS airlock_masked_value FROM customers) s"),
        "SELECT md5((airlock_masked_value)::TEXT) AS airlock_masked_value FROM (SELECT name AS airlock_masked_value FROM customers) s"
    );
    for m in [MaskMethod::Partial, MaskMethod::Hash, MaskMethod::Redact] {
        assert!(template(m).is_ok(), "{m:?}");
    }
}

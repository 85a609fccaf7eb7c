//! Ways to make a risky statement look harmless: statements hidden after comments and quotes,
//! functions hidden in corners of a query, PII hidden behind whole-row references, views and
//! CTEs. Each must come out as something the shipped policy holds (a risky kind, a risk flag, or
//! PII in the output columns), and the harmless look-alikes must not.

use std::sync::Arc;

use super::super::{Classified, Classifier, ClassifierOptions, Kind};
use super::super::{ColumnRef, Facts};
use super::{classifier, one, sorted};

/// Each `(sql, column)`: the column is among the statement's `what` columns.
fn each_lists(
    c: &Classifier,
    cases: &[(&str, &str)],
    what: &str,
    list: fn(&Facts) -> &Vec<ColumnRef>,
) {
    for (sql, col) in cases {
        let f = one(c, sql);
        let got: Vec<String> = list(&f).iter().map(|c| c.to_string()).collect();
        assert!(
            got.iter().any(|o| o == col),
            "{sql:?}: {col} not among {what} {got:?}"
        );
    }
}

const PII: &[&str] = &[
    "public.customers.name",
    "public.customers.email",
    "public.customers.ssn",
    "public.customers.phone",
];

/// Would the shipped policy let this through without a person looking at it?
fn passes_unseen(cl: &Classified) -> bool {
    cl.statements.iter().all(|f| {
        matches!(
            f.kind,
            Kind::Read | Kind::Catalog | Kind::Txn | Kind::Session
        ) && !f.flags.needs_review()
            && !f
                .output_columns
                .iter()
                .chain(&f.stored_columns)
                .any(|c| PII.contains(&c.to_string().as_str()))
    })
}

#[test]
fn hidden_statements_are_found() {
    let c = classifier();
    let risky = [
        "SELECT 1; DELETE FROM orders",
        "SELECT 1 /* ; */ ; DROP TABLE customers",
        "SELECT 1;--\rDROP TABLE customers",
        "SELECT 1;--\nDROP TABLE customers",
        "SELECT 1 /* /* */ */; DROP TABLE customers",
        "SELECT $$ $$; DROP TABLE customers; SELECT $$ $$",
        "SELECT $a$ $b$ $a$; DROP TABLE customers; SELECT $b$ $b$",
        "SELECT 'x'';'; DROP TABLE customers",
        "SELECT E'\\''; DROP TABLE customers; --'",
        "SELECT 'a\\'; DROP TABLE customers; --'",
        "SELECT 'a\\' , $$'; DROP TABLE customers; --$$",
        "SELECT 1 AS \"x;\"; DROP TABLE customers",
        "SELECT 1 a$$, 2 b$$; DROP TABLE customers; SELECT 3 c$$",
        "SELECT 1\u{a0}; DROP TABLE customers",
        "select 1; dRoP tAbLe customers",
        "CREATE FUNCTION f() RETURNS void AS $$ SELECT 1; $$ LANGUAGE sql; SELECT 1",
        "SELECT 1 /* unterminated",
        "SELECT 'unterminated",
        "/*/ DROP TABLE customers; /*/ SELECT 1",
        "WITH orders AS (DELETE FROM customers RETURNING *) SELECT * FROM orders",
        "explain analyze delete from orders",
        "EXPLAIN (ANALYZE) UPDATE products SET price = 0",
        "SELECT * INTO leak FROM customers",
        "COPY (SELECT 1) TO PROGRAM 'rm -rf /'",
        "DO $$ BEGIN EXECUTE 'DROP TABLE customers'; END $$",
        "TRUNCATE orders",
        "DELETE FROM ONLY orders",
        "UPDATE customers SET ssn = NULL",
        "GRANT admin TO agent",
        "SELECT set_config('role', 'postgres', false)",
        "EXECUTE something_prepared_elsewhere",
        "SET search_path TO evil, public",
    ];
    for sql in risky {
        let cl = c.classify(sql);
        assert!(
            !passes_unseen(&cl),
            "passes unseen: {sql:?} → {:#?}",
            cl.statements
        );
    }
    let harmless = [
        "SELECT 1 /* /* */ ; DROP TABLE customers; */",
        "SELECT $a$ $b$ ; DROP TABLE x; $b$ $a$",
        "SELECT '; DROP TABLE customers; --'",
        "SELECT 'C:\\path\\file' AS p",
        "SELECT E'\\\\'; SELECT 2",
        "SELECT 1 -- ; DROP TABLE customers",
        "SELECT id, name, price FROM products WHERE id = $1",
        "SELECT count(*) FROM customers",
        "SELECT id FROM customers WHERE created_at > now() - interval '1 day'",
        "BEGIN; SELECT total FROM orders; COMMIT",
        "SET statement_timeout = '5s'; SELECT version()",
        // What an asyncpg pool sends when a connection is released.
        "SELECT pg_advisory_unlock_all(); CLOSE ALL; RESET ALL;",
    ];
    for sql in harmless {
        let cl = c.classify(sql);
        assert!(
            passes_unseen(&cl),
            "held needlessly: {sql:?} → {:#?}",
            cl.statements
        );
    }
}

#[test]
fn the_hidden_statement_itself_is_classified() {
    let c = classifier();
    let cl = c.classify("SELECT 1;--\rDROP TABLE customers");
    assert_eq!(cl.statements.len(), 2);
    assert_eq!(cl.statements[1].kind, Kind::Ddl);
    assert_eq!(
        sorted(&cl.statements[1].tables_written),
        vec!["public.customers"]
    );
    let cl = c.classify("SELECT E'\\''; DROP TABLE customers; --'");
    assert_eq!(cl.statements.len(), 2);
    assert_eq!(cl.statements[1].kind, Kind::Ddl);
    // Where a plain string ends depends on standard_conforming_strings: held whole.
    let cl = c.classify("SELECT 'a\\'; DROP TABLE customers; --'");
    assert_eq!(cl.statements.len(), 1);
    assert_eq!(cl.statements[0].kind, Kind::Unknown);
    // `U&"\0073sn"` is the column ssn to the server; sqlparser does not read it that way.
    let f = one(&c, "SELECT U&\"\\0073sn\" FROM customers");
    assert_eq!(f.kind, Kind::Unknown);
    assert!(f.label.contains("ambiguous"), "{}", f.label);
    // A non-breaking space is an identifier character to the server, as to sqlparser:
    // `SELECT "email\u{a0}from" AS customers`, no table at all.
    let f = one(&c, "SELECT email\u{a0}FROM customers");
    assert!(f.tables_read.is_empty(), "{f:?}");
}

#[test]
fn hidden_functions_are_found() {
    let c = classifier();
    let risky = [
        "SELECT 1 ORDER BY pg_read_file('x')",
        "SELECT 1 LIMIT (SELECT lo_import('/etc/passwd'))",
        "VALUES (1), (lo_unlink(1))",
        "INSERT INTO products VALUES (DEFAULT, dblink_exec('x', 'y'), 1)",
        "SELECT 1 FROM products p JOIN orders o ON pg_terminate_backend(1)",
        "SELECT count(*) FROM products GROUP BY id HAVING setval('s', 1) > 0",
        "SELECT sum(1) OVER (ORDER BY setval('s', 1))",
        "SELECT count(*) FILTER (WHERE nextval('s') > 0) FROM products",
        "SELECT * FROM generate_series(1, nextval('s'))",
        "UPDATE products SET price = (SELECT nextval('s')) WHERE id = 1",
        "COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT",
        "SELECT \"pg_read_file\"('x')",
        "SELECT PG_READ_FILE('x')",
        "SELECT \"PG_READ_FILE\"('x')",
        "SELECT pg_catalog.pg_ls_dir('.')",
        "WITH x AS (SELECT pg_reload_conf()) SELECT 1",
        "SELECT * FROM products WHERE id IN (SELECT lo_export(1, '/tmp/x'))",
        "SELECT EXISTS (SELECT pg_cancel_backend(1))",
        "SELECT CASE WHEN true THEN get_ssn(1) END",
        "SELECT set_config(lower('ROLE'), 'x', false)",
        "SELECT SET_CONFIG('Role', 'postgres', false)",
        "SELECT xmlelement(name x, pg_read_file('x'))",
        "SELECT ARRAY[pg_read_file('x')]",
        "SELECT (pg_read_file('x'))::text",
        "SELECT * FROM customers c, LATERAL get_things(c.id) g",
        "EXPLAIN SELECT nextval('s')",
        // Seeding the session's generator: the next random() gives the seed back.
        "SELECT id, random() FROM customers WHERE setseed(id / 1e10)::text <> 'x'",
        "SELECT 1 FROM products ORDER BY pg_catalog.setseed(0.5)",
        // The sample amount and a named window's frame offsets are evaluated too.
        "SELECT count(*) FROM products TABLESAMPLE BERNOULLI (pg_terminate_backend(1)::int)",
        "SELECT count(*) FROM products p TABLESAMPLE BERNOULLI (setval('s', 1)) REPEATABLE (1)",
        "DELETE FROM products p USING orders o TABLESAMPLE SYSTEM (nextval('s')) WHERE o.id = p.id",
        "SELECT count(*) OVER w FROM products WINDOW w AS (ROWS BETWEEN setval('s', 1) PRECEDING AND CURRENT ROW)",
    ];
    for sql in risky {
        let cl = c.classify(sql);
        assert!(
            !passes_unseen(&cl),
            "passes unseen: {sql:?} → {:#?}",
            cl.statements
        );
    }
}

/// The server's own tables hold the schema, the roles and the settings: writing their rows is
/// DDL or a role change by another road, whatever the statement's verb.
#[test]
fn writes_to_system_catalogs_are_schema_or_role_changes() {
    let c = classifier();
    let cases = [
        ("UPDATE pg_catalog.pg_attribute SET attname = 'nickname' WHERE attname = 'ssn'", Kind::Ddl),
        ("update PG_CATALOG.\"pg_attribute\" set attname = 'x'", Kind::Ddl),
        ("UPDATE pg_attribute SET attname = 'x' WHERE attrelid = 1", Kind::Ddl),
        ("DELETE FROM pg_catalog.pg_constraint WHERE conname = 'orders_customer_id_fkey'", Kind::Ddl),
        ("UPDATE pg_proc SET prosrc = 'select 1' WHERE proname = 'f'", Kind::Ddl),
        ("INSERT INTO pg_catalog.pg_description VALUES (1, 2, 0, 'x')", Kind::Ddl),
        ("MERGE INTO pg_catalog.pg_class c USING products p ON c.oid = p.id WHEN MATCHED THEN DELETE", Kind::Ddl),
        ("TRUNCATE pg_catalog.pg_description", Kind::Ddl),
        ("COPY pg_catalog.pg_description FROM STDIN", Kind::Ddl),
        ("WITH x AS (DELETE FROM pg_catalog.pg_trigger RETURNING 1) SELECT * FROM x", Kind::Ddl),
        ("UPDATE information_schema.sql_features SET comments = 'x'", Kind::Ddl),
        ("UPDATE pg_toast.pg_toast_1234 SET chunk_data = ''", Kind::Ddl),
        ("UPDATE pg_catalog.pg_authid SET rolsuper = true WHERE rolname = 'agent'", Kind::Role),
        ("UPDATE pg_catalog.pg_authid SET rolconnlimit = 7", Kind::Role),
        ("INSERT INTO pg_catalog.pg_auth_members VALUES (1, 2, 3, 4)", Kind::Role),
        ("UPDATE pg_settings SET setting = 'replica' WHERE name = 'session_replication_role'", Kind::Role),
        ("UPDATE pg_catalog.pg_db_role_setting SET setconfig = '{}'", Kind::Role),
        // Both: the riskier one wins.
        ("WITH a AS (DELETE FROM pg_attribute) UPDATE pg_catalog.pg_authid SET rolsuper = true", Kind::Role),
    ];
    for (sql, kind) in cases {
        let f = one(&c, sql);
        assert_eq!(f.kind, kind, "{sql:?} → {f:#?}");
        assert!(
            f.label.contains("writes system catalog"),
            "{sql:?}: {}",
            f.label
        );
    }
    // Reading them stays a catalog read, and user tables stay ordinary writes.
    assert_eq!(
        one(&c, "SELECT attname FROM pg_attribute").kind,
        Kind::Catalog
    );
    assert_eq!(
        one(&c, "UPDATE products SET name = 'x' WHERE id = 1").kind,
        Kind::Write
    );
    // EXPLAIN without ANALYZE plans the write and runs nothing.
    assert_eq!(
        one(
            &c,
            "EXPLAIN UPDATE pg_catalog.pg_authid SET rolsuper = true"
        )
        .kind,
        Kind::Read
    );
    assert_eq!(
        one(&c, "EXPLAIN ANALYZE UPDATE pg_attribute SET attname = 'x'").kind,
        Kind::Ddl
    );
}

#[test]
fn hidden_pii_is_found() {
    let c = classifier();
    let cases = [
        ("SELECT customers FROM customers", "public.customers.ssn"),
        ("SELECT customers::text FROM customers", "public.customers.ssn"),
        ("SELECT (customers.*)::text FROM customers", "public.customers.ssn"),
        ("SELECT array_agg(c) FROM customers c", "public.customers.ssn"),
        ("SELECT format('%s', c) FROM customers c", "public.customers.ssn"),
        ("SELECT (SELECT c FROM customers c LIMIT 1)", "public.customers.ssn"),
        ("SELECT * FROM (SELECT * FROM (SELECT * FROM customers) a) b", "public.customers.ssn"),
        ("SELECT pg_catalog.row_to_json(c) FROM public.customers AS c", "public.customers.ssn"),
        ("SELECT (c).ssn FROM customers c", "public.customers.ssn"),
        ("SELECT * FROM customers NATURAL JOIN orders", "public.customers.ssn"),
        ("WITH x AS MATERIALIZED (SELECT * FROM customers) SELECT * FROM x", "public.customers.ssn"),
        ("WITH x AS (SELECT c AS r FROM customers c) SELECT r FROM x", "public.customers.ssn"),
        ("SELECT r.* FROM (SELECT to_json(c) AS r FROM customers c) r", "public.customers.ssn"),
        ("SELECT * FROM customer_contacts", "public.customers.email"),
        ("SELECT * FROM contact_emails", "public.customers.email"),
        ("SELECT email FROM products, customers", "public.customers.email"),
        ("SELECT 'x' || ssn FROM customers", "public.customers.ssn"),
        ("SELECT string_agg(ssn, ',') FROM customers", "public.customers.ssn"),
        ("SELECT max(ssn) FROM customers", "public.customers.ssn"),
        ("SELECT * FROM products UNION ALL SELECT id, ssn, 0 FROM customers", "public.customers.ssn"),
        ("SELECT * FROM (VALUES (1)) v(x), LATERAL (SELECT ssn FROM customers) s", "public.customers.ssn"),
        ("DELETE FROM customers WHERE id = 1 RETURNING ssn", "public.customers.ssn"),
        ("INSERT INTO orders (customer_id) SELECT 1 RETURNING (SELECT ssn FROM customers LIMIT 1)", "public.customers.ssn"),
        ("COPY customers TO STDOUT", "public.customers.ssn"),
        ("DECLARE c CURSOR FOR SELECT * FROM customers", "public.customers.ssn"),
        ("SELECT j.value FROM customers c, jsonb_each_text(to_jsonb(c)) j", "public.customers.ssn"),
        // Attribute notation: `rel.f` is `f(rel)` when `f` is no column of `rel`.
        ("SELECT c.to_jsonb FROM customers c LIMIT 2", "public.customers.ssn"),
        ("SELECT customers.row_to_json FROM customers", "public.customers.ssn"),
        ("SELECT public.customers.to_json FROM customers", "public.customers.phone"),
        ("SELECT v.to_json FROM customer_contacts v", "public.customers.email"),
        ("SELECT s.to_jsonb FROM (SELECT ssn, 1 + 1 FROM customers) s", "public.customers.ssn"),
        // A skipped EXISTS / IN that is also a window or FILTER expression must not keep
        // muting the columns after it.
        ("SELECT concat(count(*) OVER (PARTITION BY EXISTS (SELECT 1)), ':', ssn) FROM customers", "public.customers.ssn"),
        ("SELECT sum(1) FILTER (WHERE EXISTS (SELECT 1)) || ssn FROM customers GROUP BY ssn", "public.customers.ssn"),
        ("SELECT row_number() OVER (ORDER BY id IN (SELECT 1)) || email FROM customers", "public.customers.email"),
        ("SELECT count(*) OVER (PARTITION BY id IN (SELECT 1), EXISTS (SELECT 2)) || phone FROM customers", "public.customers.phone"),
        // Under WITH RECURSIVE a CTE may name one defined after it.
        ("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT name, ssn FROM customers) SELECT * FROM a", "public.customers.ssn"),
        ("WITH RECURSIVE a(x) AS (SELECT y FROM b), b(y) AS (SELECT email FROM customers) SELECT x FROM a", "public.customers.email"),
        ("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT * FROM c), c AS (SELECT phone FROM customers) SELECT * FROM a", "public.customers.phone"),
        ("WITH RECURSIVE a AS (SELECT (SELECT ssn FROM b LIMIT 1) AS v), b AS (SELECT ssn FROM customers) SELECT v FROM a", "public.customers.ssn"),
        // A value handed along more columns than the old fixed number of rounds.
        (concat!(
            "WITH RECURSIVE r(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, n) AS (",
            "SELECT ssn, '', '', '', '', '', '', '', '', '', '', '', 0 FROM customers UNION ALL ",
            "SELECT '', a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, n + 1 FROM r WHERE n < 11) ",
            "SELECT a12 FROM r WHERE n = 11"
        ), "public.customers.ssn"),
    ];
    each_lists(&c, &cases, "output", |f| &f.output_columns);
}

/// `rel.name` that names no column of `rel` is the call `name(rel)` to PostgreSQL: it is
/// judged as a call (an unknown or unsafe function is held), while real columns, including
/// ones of derived sources and table functions, stay plain references.
#[test]
fn attribute_notation_is_judged_as_a_call() {
    let c = classifier();
    for sql in [
        "SELECT c.get_ssn FROM customers c",
        "SELECT o.pg_read_file FROM orders o",
        "SELECT o.no_such_thing FROM orders o",
    ] {
        let f = one(&c, sql);
        assert!(f.flags.unsafe_function, "{sql}: {f:#?}");
    }
    let f = one(&c, "SELECT o.to_jsonb FROM orders o");
    assert!(!f.flags.unsafe_function, "{f:#?}");
    assert!(
        f.functions.iter().any(|n| n.ends_with("to_jsonb")),
        "{f:#?}"
    );
    assert!(f.live_check.iter().any(|t| t.name == "orders"), "{f:#?}");
    for sql in [
        "SELECT o.total FROM orders o",
        "SELECT s.total FROM (SELECT total FROM orders) s",
        "SELECT j.key FROM json_each('{}') j",
        "SELECT g.x FROM generate_series(1, 3) AS g(x)",
    ] {
        let f = one(&c, sql);
        assert!(!f.flags.unsafe_function, "{sql}: {f:#?}");
        assert!(
            f.functions
                .iter()
                .all(|n| !n.ends_with("total") && !n.ends_with("key")),
            "{sql}: {f:#?}"
        );
    }
}

/// PII copied by a write into a column that is not PII comes back from the next plain read of
/// that column: the copy itself must be seen (`stored_columns`), whatever shape it takes.
#[test]
fn pii_copied_by_a_write_is_found() {
    let c = classifier();
    let cases = [
        ("INSERT INTO products (name, price) SELECT email, 1 FROM customers", "public.customers.email"),
        ("INSERT INTO products (name) VALUES ((SELECT ssn FROM customers LIMIT 1))", "public.customers.ssn"),
        ("INSERT INTO products SELECT id, ssn, 0 FROM customers", "public.customers.ssn"),
        ("INSERT INTO customers SELECT id, ssn FROM customers", "public.customers.ssn"),
        ("INSERT INTO customers (id) SELECT id, ssn FROM customers", "public.customers.ssn"),
        ("INSERT INTO products (name) SELECT c::text FROM customers c", "public.customers.ssn"),
        ("INSERT INTO products (name) SELECT email FROM contact_emails", "public.customers.email"),
        ("WITH x AS (SELECT ssn AS s FROM customers) INSERT INTO products (name) SELECT s FROM x", "public.customers.ssn"),
        ("UPDATE products SET name = (SELECT email FROM customers LIMIT 1) WHERE id = 1", "public.customers.email"),
        ("UPDATE customers SET name = ssn WHERE id = 1", "public.customers.ssn"),
        ("UPDATE customers SET email = email || ssn WHERE id = 1", "public.customers.ssn"),
        ("UPDATE customers SET (name, phone) = (SELECT email, phone FROM customers LIMIT 1) WHERE id = 1", "public.customers.email"),
        ("UPDATE products p SET name = c.email FROM customers c WHERE c.id = p.id", "public.customers.email"),
        ("UPDATE products p SET name = to_json(c)::text FROM customers c WHERE c.id = p.id", "public.customers.ssn"),
        ("INSERT INTO customers (id, email, ssn) SELECT id, ssn, email FROM customers WHERE id = 1", "public.customers.ssn"),
        ("INSERT INTO customers (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET name = excluded.ssn", "public.customers.ssn"),
        ("MERGE INTO products p USING customers c ON p.id = c.id WHEN MATCHED THEN UPDATE SET name = c.email", "public.customers.email"),
        ("MERGE INTO products p USING customers c ON p.id = c.id WHEN NOT MATCHED THEN INSERT (id, name) VALUES (c.id, c.phone)", "public.customers.phone"),
        ("MERGE INTO products p USING customers c ON p.id = c.id WHEN NOT MATCHED THEN INSERT VALUES (c.id, c.ssn, 0)", "public.customers.ssn"),
        ("PREPARE p AS INSERT INTO products (name) SELECT email FROM customers", "public.customers.email"),
        ("EXPLAIN ANALYZE INSERT INTO products (name) SELECT email FROM customers", "public.customers.email"),
        ("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT ssn FROM customers) UPDATE products SET name = (SELECT ssn FROM a) WHERE id = 1", "public.customers.ssn"),
    ];
    each_lists(&c, &cases, "stored", |f| &f.stored_columns);
    // A value written back into the column it came from moves nothing; a filter is not a copy.
    let harmless = [
        "UPDATE customers SET email = lower(email) WHERE id = 1",
        "UPDATE customers SET ssn = trim(ssn), email = email WHERE id = 1",
        "INSERT INTO customers SELECT * FROM customers WHERE id = 1",
        "INSERT INTO customers SELECT id + 1000, name, email FROM customers WHERE id = 1",
        "INSERT INTO customers (id, email) SELECT id + 1000, email FROM customers WHERE id = 1",
        "INSERT INTO customers (id, email) VALUES (1, 'a@b.c') ON CONFLICT (id) DO UPDATE SET email = excluded.email",
        "INSERT INTO orders (customer_id) SELECT id FROM customers WHERE ssn LIKE '1%'",
        "UPDATE products SET price = price * 2 WHERE id = 1",
        "INSERT INTO products (name, price) VALUES ('x', 2)",
        "EXPLAIN INSERT INTO products (name) SELECT email FROM customers",
    ];
    for sql in harmless {
        let f = one(&c, sql);
        assert!(
            !f.stored_columns
                .iter()
                .any(|c| PII.contains(&c.to_string().as_str())),
            "{sql:?}: stored {:?}",
            f.stored_columns
        );
    }
}

#[test]
fn fingerprint_groups_and_hides_literals() {
    let c = classifier();
    let a = c.classify("SELECT email FROM customers WHERE id = 1 AND name = 'Ann'");
    let b = c.classify("select email\n  from customers -- x\n where id = 2 and name = 'Bob';");
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_eq!(
        a.fingerprint,
        "select email from customers where id = ? and name = ?"
    );
    let cl = c.classify("ALTER ROLE bob PASSWORD 'hunter2'");
    assert!(!cl.fingerprint.contains("hunter2"));
    // Fingerprints work on text that does not parse.
    let cl = c.classify("VACUUM (VERBOSE) customers; DO $$ BEGIN END $$");
    assert_eq!(cl.fingerprint, "vacuum(verbose) customers; do ?");
}

#[test]
fn secrets_are_redacted_per_statement() {
    let c = classifier();
    let cl = c.classify("SELECT 1; CREATE ROLE agent LOGIN PASSWORD 'pw1'; ALTER USER x WITH ENCRYPTED PASSWORD 'pw2' VALID UNTIL 'infinity'");
    assert_eq!(
        cl.redacted,
        "SELECT 1; CREATE ROLE agent LOGIN PASSWORD '***'; ALTER USER x WITH ENCRYPTED PASSWORD '***' VALID UNTIL 'infinity'"
    );
    let flags: Vec<bool> = cl.statements.iter().map(|f| f.flags.has_secret).collect();
    assert_eq!(flags, vec![false, true, true]);
    let cl = c.classify("SELECT 1");
    assert_eq!(cl.redacted, "SELECT 1");
    // Even when the quoting is ambiguous, both readings are redacted.
    let cl = c.classify("ALTER ROLE x PASSWORD 'a\\'b'");
    assert!(!cl.redacted.contains("a\\"), "{}", cl.redacted);
    assert!(cl.statements[0].flags.has_secret);
}

/// The audit keeps the text the classifier redacted. A statement sqlparser does not read
/// (`START TRANSACTION READ WRITE, NOT DEFERRABLE`, allowed as a transaction statement) once
/// sent the whole text through the raw-text password rules, which took `password'` in a comment
/// for a secret and masked everything up to the next quote: the UPDATE ran, and the audit
/// showed only the START TRANSACTION.
#[test]
fn a_comment_or_an_unparsable_statement_hides_no_other_sql() {
    let c = classifier();
    let sql = "START TRANSACTION READ WRITE, NOT DEFERRABLE; /*password'*/ UPDATE products SET name = $$pwned2$$ WHERE id = 2; COMMIT /*'*/";
    let cl = c.classify(sql);
    let kinds: Vec<Kind> = cl.statements.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![Kind::Txn, Kind::Write, Kind::Txn]);
    assert_eq!(
        cl.redacted,
        "START TRANSACTION READ WRITE, NOT DEFERRABLE; /*password'***'*/ UPDATE products SET name = $$pwned2$$ WHERE id = 2; COMMIT /*'*/"
    );
    assert!(
        cl.fingerprint
            .contains("update products set name = ? where id = ?; commit"),
        "{}",
        cl.fingerprint
    );
    // All of it parses: the comment alone once cost the DELETE its look.
    let sql = "/*password*/DELETE FROM orders WHERE id = 1";
    assert_eq!(c.classify(sql).redacted, sql);
    // Raw-text rules stay inside the statement that needs them, and mask whole tokens there.
    let cl = c.classify(
        "VACUUM (VERBOSE, FREEZE) \"password'\"; DELETE FROM orders WHERE id = 1; SELECT 'x'",
    );
    assert_eq!(cl.statements[0].kind, Kind::Utility);
    assert_eq!(
        cl.redacted,
        "VACUUM (VERBOSE, FREEZE) '***'; DELETE FROM orders WHERE id = 1; SELECT 'x'"
    );
}

#[test]
fn secrets_stay_hidden_in_statements_that_do_not_parse() {
    let c = classifier();
    let cases = [
        "ALTER ROLE x PASSWORD 'hunter22'",
        "CREATE USER u WITH PASSWORD 'hunter22'",
        "ALTER USER \"u\" PASSWORD 'SCRAM-SHA-256$4096:hunter22'",
        "ALTER ROLE x WITH PASSWORD 'hunter22' BOGUS SYNTAX",
        "ALTER ROLE x PASSWORD hunter22",
        "ALTER ROLE x PASSWORD = hunter22 junk",
        "ALTER ROLE x PASSWORD /* c */ hunter22 junk",
        "ALTER ROLE x PASSWORD 'hun'\n'ter22'",
        "ALTER ROLE x PASSWORD 'hun'\n'ter22' junk",
        "ALTER ROLE x PASSWORD U&'hunter22' junk",
        "ALTER ROLE x PASSWORD E'hun\\'ter22' junk",
        "ALTER ROLE x PASSWORD $p$hunter22$p$ junk",
        "ALTER ROLE x WITH mypassword:hunter22",
        "SELECT 'ALTER ROLE x PASSWORD 'hunter22' junk",
        "SELECT 1 /* ALTER ROLE x PASSWORD 'hunter22' */",
        "SELECT 1 -- ALTER ROLE x PASSWORD 'hunter22",
        "SELECT 1; ALTER ROLE x PASSWORD hunter22 junk; DELETE FROM orders WHERE id = 1",
    ];
    for sql in cases {
        let cl = c.classify(sql);
        assert!(!cl.redacted.contains("hunter22"), "{sql}: {}", cl.redacted);
        assert!(!cl.redacted.contains("ter22"), "{sql}: {}", cl.redacted);
        assert!(
            !cl.fingerprint.contains("ter22"),
            "{sql}: {}",
            cl.fingerprint
        );
        // A secret in code marks its statement (one in a comment belongs to none).
        assert!(
            sql.contains("/*")
                || sql.contains("--")
                || cl.statements.iter().any(|f| f.flags.has_secret),
            "{sql}: {:?}",
            cl.statements
        );
    }
    let cl = c.classify(cases[cases.len() - 1]);
    assert_eq!(
        cl.redacted,
        "SELECT 1; ALTER ROLE x PASSWORD '***' junk; DELETE FROM orders WHERE id = 1"
    );
    let flags: Vec<bool> = cl.statements.iter().map(|f| f.flags.has_secret).collect();
    assert_eq!(flags, vec![false, true, false]);
    // A comment keeps its end, whatever the secret in it.
    let cl = c.classify("SELECT 1 /* PASSWORD 'hunter22 */, 2");
    assert_eq!(cl.redacted, "SELECT 1 /* PASSWORD '***'*/, 2");
}

#[test]
fn pii_kept_in_a_setting_is_found() {
    // A setting's value comes back from `current_setting`, `SHOW` and, for reported settings
    // such as application_name, the server's ParameterStatus: storing PII there copies it.
    let c = Classifier::new(
        Arc::new(super::demo_catalog()),
        ClassifierOptions {
            allowed_settings: vec!["application_name".into()],
            ..ClassifierOptions::default()
        },
    );
    let cases = [
        ("SELECT 1 FROM customers c WHERE set_config('application_name', c.ssn, false) IS NOT NULL", "public.customers.ssn"),
        ("SELECT count(*) FROM customers WHERE id = 3 AND set_config('application_name', email || '', true) <> ''", "public.customers.email"),
        ("SELECT set_config('application_name', (SELECT phone FROM customers LIMIT 1), false)", "public.customers.phone"),
        ("SELECT count(set_config('application_name', c::text, false)) FROM customers c", "public.customers.ssn"),
        ("UPDATE products SET price = 1 WHERE set_config('application_name', (SELECT ssn FROM customers LIMIT 1), false) <> ''", "public.customers.ssn"),
        ("SELECT 1 FROM customers WHERE id = 1 ORDER BY set_config('application_name', ssn || email, false)", "public.customers.ssn"),
        ("SELECT count(*) FROM products TABLESAMPLE BERNOULLI (length(set_config('application_name', (SELECT ssn FROM customers LIMIT 1), false)) * 0 + 100)", "public.customers.ssn"),
    ];
    each_lists(&c, &cases, "stored", |f| &f.stored_columns);
    for sql in [
        "SELECT set_config('application_name', 'report', false)",
        "SELECT set_config('application_name', $1, false)",
        "SELECT 1 FROM customers WHERE set_config('application_name', id::text, false) <> ''",
    ] {
        let f = one(&c, sql);
        let pii: Vec<String> = f
            .stored_columns
            .iter()
            .map(|c| c.to_string())
            .filter(|c| PII.contains(&c.as_str()))
            .collect();
        assert!(pii.is_empty(), "{sql:?}: stores {pii:?}");
    }
}

#[test]
fn columns_the_server_names_are_followed_out_of_subqueries() {
    // A subquery's unaliased column is named by the server (`?column?`, `case`, a type or
    // field name): a reference to that name from outside carries the column's lineage.
    let c = classifier();
    let cases = [
        ("SELECT ssn FROM (SELECT ssn COLLATE \"C\" FROM customers) s", "public.customers.ssn"),
        ("SELECT email FROM (SELECT email COLLATE \"C\" FROM customers) s", "public.customers.email"),
        ("SELECT \"?column?\" FROM (SELECT email || $$$$ FROM customers) s", "public.customers.email"),
        ("SELECT \"case\" FROM (SELECT CASE WHEN true THEN ssn END FROM customers) s", "public.customers.ssn"),
        ("SELECT email FROM (SELECT CASE WHEN false THEN ssn ELSE email END FROM customers) s", "public.customers.ssn"),
        ("WITH s AS (SELECT ssn || '' FROM customers) SELECT \"?column?\" FROM s", "public.customers.ssn"),
        ("SELECT \"text\" FROM (SELECT (phone || '')::text FROM customers) s", "public.customers.phone"),
        ("SELECT \"varchar\" FROM (SELECT CAST(phone || '' AS varchar(20)) FROM customers) s", "public.customers.phone"),
        ("SELECT ssn FROM (SELECT (c).ssn FROM customers c) s", "public.customers.ssn"),
        ("SELECT s.\"?column?\" FROM (SELECT phone || '' FROM customers) s", "public.customers.phone"),
        ("SELECT \"btrim\" FROM (SELECT trim(email) FROM customers) s", "public.customers.email"),
        ("SELECT \"timezone\" FROM (SELECT (ssn || '')::timestamp AT TIME ZONE 'UTC' FROM customers) s", "public.customers.ssn"),
        ("SELECT \"?column?\" FROM (SELECT (SELECT ssn || '' FROM customers LIMIT 1)) s", "public.customers.ssn"),
        ("SELECT s.ssn FROM (SELECT (SELECT ssn FROM customers LIMIT 1)) s", "public.customers.ssn"),
        ("SELECT \"row\" FROM (SELECT (ssn, 1) FROM customers) s", "public.customers.ssn"),
        ("SELECT \"array\" FROM (SELECT ARRAY[ssn] FROM customers) s", "public.customers.ssn"),
        ("SELECT (SELECT \"?column?\") FROM (SELECT ssn || '' FROM customers) s", "public.customers.ssn"),
        // A name the gateway would not give any column still denotes every derived column.
        ("SELECT \"bpchar\" FROM (SELECT (ssn || '')::nchar(20) FROM customers) s", "public.customers.ssn"),
        ("SELECT s.whatever FROM (SELECT ssn || '' AS x FROM customers) s", "public.customers.ssn"),
    ];
    each_lists(&c, &cases, "output", |f| &f.output_columns);
    let stored = [(
        "INSERT INTO products(name, price) SELECT \"?column?\", 0 FROM (SELECT ssn || '|' || email FROM customers WHERE id = 5) s",
        "public.customers.ssn",
    ), (
        "UPDATE products SET name = (SELECT \"?column?\" FROM (SELECT email || '' FROM customers LIMIT 1) s) WHERE id = 1",
        "public.customers.email",
    )];
    each_lists(&c, &stored, "stored", |f| &f.stored_columns);
    // Names that resolve keep their own lineage only.
    for sql in [
        "SELECT \"?column?\" FROM (SELECT id + 1, ssn || '' AS x FROM customers) s",
        "SELECT id FROM (SELECT id, ssn || '' FROM customers) s",
        "SELECT \"case\" FROM (SELECT CASE WHEN id > 1 THEN 1 END, ssn AS x FROM customers) s",
    ] {
        let f = one(&c, sql);
        let pii: Vec<String> = f
            .output_columns
            .iter()
            .map(|c| c.to_string())
            .filter(|c| PII.contains(&c.as_str()))
            .collect();
        assert!(pii.is_empty(), "{sql:?}: outputs {pii:?}");
    }
}

/// Redaction removes a secret, never the code around it: the word `password` in a DO body (in a
/// message, a comment, or with a real value) once turned the whole body into `'***'`, so the
/// approver was asked to approve code nobody could see, and the audit never showed what ran.
#[test]
fn a_secret_in_a_do_block_hides_only_the_value() {
    let c = classifier();
    let cl = c.classify("DO $$ BEGIN RAISE NOTICE 'no password= needed'; UPDATE payroll SET salary = salary * 10; EXECUTE 'GRANT ALL ON payroll TO PUBLIC'; END $$");
    assert!(
        cl.redacted
            .contains("UPDATE payroll SET salary = salary * 10"),
        "{}",
        cl.redacted
    );
    assert!(
        cl.redacted
            .contains("EXECUTE 'GRANT ALL ON payroll TO PUBLIC'"),
        "{}",
        cl.redacted
    );
    assert!(!cl.redacted.contains("needed"), "{}", cl.redacted);
    for sql in [
        "DO $$ BEGIN -- reset password later\n UPDATE payroll SET salary = 1; END $$",
        "DO $$ BEGIN RAISE NOTICE 'password reset'; UPDATE payroll SET salary = 1; END $$",
        "SELECT 1; -- reset password later\nUPDATE payroll SET salary = 1",
    ] {
        let cl = c.classify(sql);
        assert!(
            cl.redacted.contains("UPDATE payroll SET salary = 1"),
            "{sql}: {}",
            cl.redacted
        );
    }
    for sql in [
        "DO $$ BEGIN EXECUTE 'CREATE ROLE x PASSWORD ''s3cret'''; UPDATE payroll SET salary = 1; END $$",
        "DO $$ BEGIN PERFORM dblink_connect('host=h password=s3cret'); UPDATE payroll SET salary = 1; END $$",
        "DO $$ BEGIN PERFORM dblink_connect('host=h sslpassword=s3cret'); UPDATE payroll SET salary = 1; END $$",
        "DO $$ BEGIN PERFORM dblink_connect('postgres://u:s3cret@h/db'); UPDATE payroll SET salary = 1; END $$",
        "DO $$ BEGIN PERFORM dblink_connect('host=h pass' || 'word=s3cret'); UPDATE payroll SET salary = 1; END $$",
        "DO $$ BEGIN ALTER ROLE x PASSWORD 's3cret'; UPDATE payroll SET salary = 1; END $$",
        "DO $$ BEGIN UPDATE payroll SET salary = 1; END $$; ALTER ROLE x PASSWORD 's3cret'",
        "DO LANGUAGE plpgsql 'BEGIN EXECUTE ''ALTER ROLE x PASSWORD ''''s3cret''''''; UPDATE payroll SET salary = 1; END'",
    ] {
        let cl = c.classify(sql);
        assert!(!cl.redacted.contains("s3cret"), "{sql}: {}", cl.redacted);
        assert!(!cl.fingerprint.contains("s3cret"), "{sql}: {}", cl.fingerprint);
        assert!(
            cl.redacted.contains("UPDATE payroll SET salary = 1"),
            "{sql}: {}",
            cl.redacted
        );
        assert!(
            cl.statements.iter().any(|f| f.flags.has_secret),
            "{sql}: {:?}",
            cl.statements
        );
    }
}

/// Valid spellings of a password the redactor once missed: a quoted option name, a value split
/// over concatenated constants, a password setting made with set_config.
#[test]
fn passwords_in_other_spellings_are_redacted() {
    let c = classifier();
    let cases = [
        (
            "CREATE USER MAPPING FOR bob SERVER s OPTIONS (\"user\" 'etl', \"password\" 'SECRET')",
            "CREATE USER MAPPING FOR bob SERVER s OPTIONS (\"user\" 'etl', \"password\" '***')",
        ),
        (
            "ALTER SERVER s OPTIONS (ADD \"password\" 'SECRET')",
            "ALTER SERVER s OPTIONS (ADD \"password\" '***')",
        ),
        (
            "SELECT dblink_connect('b', concat('host=h password=', 'SECRET'))",
            "SELECT dblink_connect('b', concat('host=h password=', '***'))",
        ),
        (
            "SELECT dblink_connect('host=h pass' || 'word=SECRET')",
            "SELECT dblink_connect('host=h pass' || 'word=''***''')",
        ),
        (
            "SELECT set_config('app.password', 'SECRET', false)",
            "SELECT set_config('app.password', '***', false)",
        ),
        (
            "SELECT dblink_connect('host=h sslpassword=SECRET')",
            "SELECT dblink_connect('host=h sslpassword=''***''')",
        ),
    ];
    for (sql, want) in cases {
        let cl = c.classify(sql);
        assert_eq!(cl.redacted, want, "{sql}");
        assert!(
            !cl.fingerprint.contains("SECRET"),
            "{sql}: {}",
            cl.fingerprint
        );
        assert!(
            cl.statements.iter().any(|f| f.flags.has_secret),
            "{sql}: {:?}",
            cl.statements
        );
    }
    for sql in [
        "SELECT set_config('app.user', 'SECRET', false)",
        "SELECT dblink_connect('host=h user=etl')",
        "SELECT 'Reset password', 'SECRET'",
    ] {
        let cl = c.classify(sql);
        assert_eq!(cl.redacted, sql);
        assert!(cl.statements.iter().all(|f| !f.flags.has_secret), "{sql}");
    }
}

/// The ORDER BY of a SELECT reads its FROM items: PII there is referenced (so the server's
/// messages about it, which may quote the values, are withheld) as in WHERE; so is PII in a
/// sample amount or a window frame.
#[test]
fn pii_in_order_by_and_other_clauses_is_referenced() {
    let c = classifier();
    let cases = [
        ("SELECT count(*) FROM customers ORDER BY string_agg(ssn, ',')::int", "public.customers.ssn"),
        ("SELECT 1 FROM customers c WHERE id = 1 ORDER BY c::text::int", "public.customers.ssn"),
        ("SELECT id FROM customers ORDER BY email::int", "public.customers.email"),
        ("SELECT count(*) FROM products TABLESAMPLE SYSTEM ((SELECT string_agg(ssn, ',') FROM customers)::int)", "public.customers.ssn"),
        ("SELECT count(*) OVER w FROM products WINDOW w AS (ROWS BETWEEN (SELECT string_agg(email, ',') FROM customers)::int PRECEDING AND CURRENT ROW)", "public.customers.email"),
        ("SELECT x FROM (SELECT 1 AS x FROM customers ORDER BY ssn::date LIMIT 1) s", "public.customers.ssn"),
        ("UPDATE products SET price = 1 WHERE id = (SELECT 1 FROM customers ORDER BY ssn::date LIMIT 1)", "public.customers.ssn"),
    ];
    each_lists(&c, &cases, "referenced", |f| &f.columns);
    // Output names still resolve, and a set operation's ORDER BY sees only its outputs.
    let f = one(&c, "SELECT ssn AS s FROM customers ORDER BY s");
    assert!(f.output_columns.iter().any(|c| c.column == "ssn"), "{f:#?}");
    let f = one(
        &c,
        "SELECT id FROM orders UNION SELECT id FROM products ORDER BY id",
    );
    assert_eq!(f.kind, Kind::Read, "{f:#?}");
}

/// A clause the analysis skips would let whatever it calls pass unseen: a statement with a
/// part the analysis did not read is unknown. Every clause of these is read, so they are not.
#[test]
fn statements_are_read_whole() {
    let c = classifier();
    for sql in [
        "SELECT count(*) FROM products TABLESAMPLE BERNOULLI (10) REPEATABLE (42)",
        "SELECT sum(price) OVER w FROM products WINDOW w AS (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)",
        "SELECT id INTO TEMP t FROM products",
        "SELECT p.id FROM products p ORDER BY p.price DESC, name LIMIT 3 OFFSET 1",
        "UPDATE products SET price = price + 1 WHERE id = 1 RETURNING id",
        "INSERT INTO products (name, price) VALUES ('x', 1) ON CONFLICT (id) DO UPDATE SET price = excluded.price",
        "DELETE FROM orders o USING products p WHERE o.id = p.id AND p.price > 1",
        "MERGE INTO products p USING orders o ON p.id = o.id WHEN MATCHED THEN UPDATE SET price = 1",
        "EXPLAIN (FORMAT JSON) SELECT id FROM products ORDER BY id",
        "DECLARE c CURSOR FOR SELECT id FROM products ORDER BY name",
        "COPY (SELECT id FROM products ORDER BY price) TO STDOUT",
    ] {
        let f = one(&c, sql);
        assert_ne!(f.kind, Kind::Unknown, "{sql}: {f:#?}");
    }
}

/// A name longer than PostgreSQL keeps is the same name as its first 63 bytes: a longer
/// spelling of a PII column or table is that column or table.
#[test]
fn names_longer_than_the_server_keeps_are_cut_like_it() {
    let table = "customer_identity_documents_collected_during_kyc_onboarding_flo";
    let column = "social_security_number_of_the_customer_as_recorded_at_onboardin";
    assert_eq!((table.len(), column.len()), (63, 63));
    let cat = super::super::Catalog::builder()
        .search_path(&["public"])
        .table("public", table, &["id", column])
        .build();
    let c = Classifier::new(Arc::new(cat), ClassifierOptions::default());
    for sql in [
        format!("SELECT {column}_ignored_by_postgres FROM {table}"),
        format!("SELECT {column} FROM {table}_anything"),
        format!("SELECT \"{column}xyz\" FROM \"{table}xyz\""),
    ] {
        let f = one(&c, &sql);
        let out: Vec<String> = f.output_columns.iter().map(|c| c.to_string()).collect();
        assert_eq!(out, [format!("public.{table}.{column}")], "{sql}");
    }
}

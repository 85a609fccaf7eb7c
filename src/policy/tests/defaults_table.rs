//! The shipped `policies/default.toml`, statement by statement: facts as the classifier
//! reports them → the decision. Each row names the SQL it stands for.

use super::*;
use crate::policy::Action::{self, Allow, Hold};

struct Case {
    sql: &'static str,
    facts: Vec<F>,
    action: Action,
    rule: &'static str,
}

fn read(label: &'static str) -> F {
    F::new(Kind::Read, label)
}

fn cases() -> Vec<Case> {
    use Kind::*;
    let case = |sql, facts, action, rule| Case {
        sql,
        facts,
        action,
        rule,
    };
    vec![
        // --- reads without PII
        case("SELECT 1", vec![read("SELECT")], Allow, "default.read"),
        case(
            "SELECT id, total FROM orders",
            vec![read("SELECT")
                .reads(&["public.orders"])
                .out(&["public.orders.id", "public.orders.total"])],
            Allow,
            "default.read",
        ),
        case(
            "SELECT o.id, p.name FROM orders o JOIN products p ON p.id = o.product_id",
            vec![read("SELECT")
                .reads(&["public.orders", "public.products"])
                .cols(&["public.orders.product_id", "public.products.id"])
                .out(&["public.orders.id", "public.products.name"])],
            Allow,
            "default.read",
        ),
        case(
            "SELECT count(*) FROM customers",
            vec![read("SELECT")
                .reads(&["public.customers"])
                .funcs(&["pg_catalog.count"])],
            Allow,
            "default.read",
        ),
        case(
            "SELECT id FROM customers WHERE email = $1",
            vec![read("SELECT")
                .reads(&["public.customers"])
                .cols(&["public.customers.email"])
                .out(&["public.customers.id"])],
            Allow,
            "default.read",
        ),
        case(
            "SELECT name FROM customers ORDER BY ssn",
            vec![read("SELECT")
                .reads(&["public.customers"])
                .cols(&["public.customers.ssn"])
                .out(&["public.customers.name"])],
            Allow,
            "default.read",
        ),
        case(
            "SELECT now(), lower('X')",
            vec![read("SELECT").funcs(&["pg_catalog.now", "pg_catalog.lower"])],
            Allow,
            "default.read",
        ),
        case(
            "WITH t AS (SELECT id FROM orders) SELECT * FROM t",
            vec![read("SELECT")
                .reads(&["public.orders"])
                .out(&["public.orders.id"])],
            Allow,
            "default.read",
        ),
        case(
            "DECLARE c CURSOR FOR SELECT id FROM orders",
            vec![read("DECLARE CURSOR")
                .reads(&["public.orders"])
                .out(&["public.orders.id"])],
            Allow,
            "default.read",
        ),
        case(
            "EXPLAIN SELECT * FROM customers",
            vec![read("EXPLAIN").reads(&["public.customers"])],
            Allow,
            "default.read",
        ),
        // --- reads returning PII: exports
        case(
            "SELECT * FROM customers",
            vec![read("SELECT").reads(&["public.customers"]).out(&[
                "public.customers.id",
                "public.customers.name",
                "public.customers.email",
                "public.customers.ssn",
                "public.customers.phone",
                "public.customers.created_at",
            ])],
            Hold,
            "default.export",
        ),
        case(
            "SELECT email FROM customers",
            vec![read("SELECT")
                .reads(&["public.customers"])
                .out(&["public.customers.email"])],
            Hold,
            "default.export",
        ),
        case(
            "SELECT c FROM customers c",
            vec![read("SELECT")
                .reads(&["public.customers"])
                .out(&["public.customers.id", "public.customers.ssn"])],
            Hold,
            "default.export",
        ),
        case(
            "SELECT row_to_json(c) FROM customers c",
            vec![read("SELECT")
                .reads(&["public.customers"])
                .funcs(&["pg_catalog.row_to_json"])
                .out(&["public.customers.email"])],
            Hold,
            "default.export",
        ),
        case(
            "SELECT contact FROM customer_contacts",
            vec![read("SELECT")
                .reads(&["public.customer_contacts"])
                .out(&["public.customers.email"])],
            Hold,
            "default.export",
        ),
        case(
            "SELECT email_address FROM crm.leads",
            vec![read("SELECT")
                .reads(&["crm.leads"])
                .out(&["crm.leads.email_address"])],
            Hold,
            "default.export",
        ),
        case(
            "SELECT phone_number FROM hr.staff",
            vec![read("SELECT")
                .reads(&["hr.staff"])
                .out(&["hr.staff.phone_number"])],
            Hold,
            "default.export",
        ),
        case(
            "SELECT dob FROM hr.staff",
            vec![read("SELECT").reads(&["hr.staff"]).out(&["hr.staff.dob"])],
            Hold,
            "default.export",
        ),
        case(
            "SELECT password_hash FROM auth.users",
            vec![read("SELECT")
                .reads(&["auth.users"])
                .out(&["auth.users.password_hash"])],
            Hold,
            "default.export",
        ),
        case(
            "SELECT iban FROM billing.accounts",
            vec![read("SELECT")
                .reads(&["billing.accounts"])
                .out(&["billing.accounts.iban"])],
            Hold,
            "default.export",
        ),
        case(
            "COPY customers TO STDOUT",
            vec![F::new(Export, "COPY TO")
                .reads(&["public.customers"])
                .out(&["public.customers.email"])],
            Hold,
            "default.export",
        ),
        case(
            "COPY orders TO STDOUT",
            vec![F::new(Export, "COPY TO")
                .reads(&["public.orders"])
                .out(&["public.orders.id"])],
            Hold,
            "default.export",
        ),
        // --- catalog, transactions, session
        case(
            "SELECT version()",
            vec![F::new(Catalog, "SELECT").funcs(&["pg_catalog.version"])],
            Allow,
            "default.catalog",
        ),
        case(
            "SELECT oid, typname FROM pg_type",
            vec![F::new(Catalog, "SELECT").reads(&["pg_catalog.pg_type"])],
            Allow,
            "default.catalog",
        ),
        case(
            "SELECT * FROM information_schema.columns",
            vec![F::new(Catalog, "SELECT").reads(&["information_schema.columns"])],
            Allow,
            "default.catalog",
        ),
        case(
            "SHOW search_path",
            vec![F::new(Catalog, "SHOW")],
            Allow,
            "default.catalog",
        ),
        case("BEGIN", vec![F::new(Txn, "BEGIN")], Allow, "default.txn"),
        case("COMMIT", vec![F::new(Txn, "COMMIT")], Allow, "default.txn"),
        case(
            "SAVEPOINT a",
            vec![F::new(Txn, "SAVEPOINT")],
            Allow,
            "default.txn",
        ),
        case(
            "SET statement_timeout = 5000",
            vec![F::new(Session, "SET")],
            Allow,
            "default.session",
        ),
        // --- writes
        case(
            "INSERT INTO orders (id) VALUES (1)",
            vec![F::new(Write, "INSERT")
                .writes(&["public.orders"])
                .cols(&["public.orders.id"])],
            Allow,
            "default.write",
        ),
        case(
            "UPDATE orders SET status = 'x' WHERE id = 1",
            vec![F::new(Write, "UPDATE")
                .writes(&["public.orders"])
                .cols(&["public.orders.status", "public.orders.id"])],
            Allow,
            "default.write",
        ),
        case(
            "DELETE FROM orders WHERE id = 1",
            vec![F::new(Write, "DELETE")
                .writes(&["public.orders"])
                .cols(&["public.orders.id"])],
            Allow,
            "default.write",
        ),
        case(
            "UPDATE customers SET email = $1 WHERE id = $2",
            vec![F::new(Write, "UPDATE")
                .writes(&["public.customers"])
                .cols(&["public.customers.email", "public.customers.id"])],
            Allow,
            "default.write",
        ),
        case(
            "INSERT INTO orders (id) VALUES (1) RETURNING id",
            vec![F::new(Write, "INSERT")
                .writes(&["public.orders"])
                .out(&["public.orders.id"])],
            Allow,
            "default.write",
        ),
        case(
            "UPDATE orders SET status = 'x'",
            vec![F::new(Write, "UPDATE")
                .writes(&["public.orders"])
                .flag(|f| f.unbounded_write = true)],
            Hold,
            "flags.unbounded_write",
        ),
        case(
            "DELETE FROM orders",
            vec![F::new(Write, "DELETE")
                .writes(&["public.orders"])
                .flag(|f| f.unbounded_write = true)],
            Hold,
            "flags.unbounded_write",
        ),
        case(
            "TRUNCATE orders",
            vec![F::new(Ddl, "TRUNCATE")
                .writes(&["public.orders"])
                .flag(|f| f.truncate = true)],
            Hold,
            "default.ddl",
        ),
        case(
            "TRUNCATE orders (classified as a write)",
            vec![F::new(Write, "TRUNCATE")
                .writes(&["public.orders"])
                .flag(|f| f.truncate = true)],
            Hold,
            "flags.truncate",
        ),
        case(
            "UPDATE customers SET name = 'x' WHERE id = 1 RETURNING email",
            vec![F::new(Write, "UPDATE")
                .writes(&["public.customers"])
                .out(&["public.customers.email"])],
            Hold,
            "default.export",
        ),
        case(
            "DELETE FROM customers WHERE id = 1 RETURNING *",
            vec![F::new(Write, "DELETE")
                .writes(&["public.customers"])
                .out(&["public.customers.id", "public.customers.ssn"])],
            Hold,
            "default.export",
        ),
        // --- statements that do more than they look like
        case(
            "WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d",
            vec![read("SELECT")
                .reads(&["public.orders"])
                .writes(&["public.orders"])
                .flag(|f| f.data_modifying_cte = true)],
            Hold,
            "flags.data_modifying_cte",
        ),
        case(
            "EXPLAIN ANALYZE DELETE FROM orders WHERE id = 1",
            vec![F::new(Write, "EXPLAIN ANALYZE")
                .writes(&["public.orders"])
                .flag(|f| f.explain_analyze = true)],
            Hold,
            "flags.explain_analyze",
        ),
        case(
            "SELECT * INTO copy FROM orders",
            vec![read("SELECT INTO")
                .reads(&["public.orders"])
                .flag(|f| f.creates_table = true)],
            Hold,
            "flags.creates_table",
        ),
        case(
            "SELECT nextval('s')",
            vec![read("SELECT")
                .funcs(&["pg_catalog.nextval"])
                .flag(|f| f.unsafe_function = true)],
            Hold,
            "flags.unsafe_function",
        ),
        case(
            "SELECT pg_read_file('/etc/passwd')",
            vec![read("SELECT")
                .funcs(&["pg_catalog.pg_read_file"])
                .flag(|f| f.unsafe_function = true)],
            Hold,
            "flags.unsafe_function",
        ),
        case(
            "SELECT set_config('x', 'y', false)",
            vec![read("SELECT")
                .funcs(&["pg_catalog.set_config"])
                .flag(|f| f.unsafe_function = true)],
            Hold,
            "flags.unsafe_function",
        ),
        case(
            "COPY orders TO '/tmp/o.csv'",
            vec![F::new(Export, "COPY TO")
                .reads(&["public.orders"])
                .flag(|f| f.server_side_copy = true)],
            Hold,
            "default.export",
        ),
        case(
            "COPY orders FROM PROGRAM 'curl …'",
            vec![F::new(Write, "COPY FROM")
                .writes(&["public.orders"])
                .flag(|f| f.server_side_copy = true)],
            Hold,
            "flags.server_side_copy",
        ),
        // --- DDL, roles, utility, unknown
        case(
            "CREATE TABLE t (id int)",
            vec![F::new(Ddl, "CREATE TABLE").writes(&["public.t"])],
            Hold,
            "default.ddl",
        ),
        case(
            "DROP TABLE orders",
            vec![F::new(Ddl, "DROP TABLE").writes(&["public.orders"])],
            Hold,
            "default.ddl",
        ),
        case(
            "ALTER TABLE orders ADD COLUMN x int",
            vec![F::new(Ddl, "ALTER TABLE").writes(&["public.orders"])],
            Hold,
            "default.ddl",
        ),
        case(
            "CREATE TABLE c2 AS SELECT * FROM customers",
            vec![F::new(Ddl, "CREATE TABLE AS")
                .reads(&["public.customers"])
                .writes(&["public.c2"])
                .flag(|f| f.creates_table = true)],
            Hold,
            "default.ddl",
        ),
        case(
            "CREATE ROLE x LOGIN PASSWORD 'p'",
            vec![F::new(Role, "CREATE ROLE").flag(|f| f.has_secret = true)],
            Hold,
            "default.role",
        ),
        case(
            "GRANT SELECT ON customers TO x",
            vec![F::new(Role, "GRANT").reads(&["public.customers"])],
            Hold,
            "default.role",
        ),
        case(
            "SET ROLE postgres",
            vec![F::new(Role, "SET ROLE")],
            Hold,
            "default.role",
        ),
        case(
            "ALTER SYSTEM SET work_mem = '1GB'",
            vec![F::new(Role, "ALTER SYSTEM")],
            Hold,
            "default.role",
        ),
        case(
            "VACUUM orders",
            vec![F::new(Utility, "VACUUM").writes(&["public.orders"])],
            Hold,
            "default.utility",
        ),
        case(
            "LISTEN ch",
            vec![F::new(Utility, "LISTEN")],
            Hold,
            "default.utility",
        ),
        case(
            "LOCK orders",
            vec![F::new(Utility, "LOCK").writes(&["public.orders"])],
            Hold,
            "default.utility",
        ),
        case(
            "DO $$ BEGIN END $$",
            vec![F::new(Unknown, "DO block")],
            Hold,
            "default.unknown",
        ),
        case(
            "SELEKT 1",
            vec![F::new(Unknown, "SELEKT")],
            Hold,
            "default.unknown",
        ),
        case(
            "SET search_path = evil",
            vec![F::new(Unknown, "SET search_path")],
            Hold,
            "default.unknown",
        ),
        // --- several statements: the strictest wins
        case(
            "BEGIN; SELECT 1; COMMIT",
            vec![F::new(Txn, "BEGIN"), read("SELECT"), F::new(Txn, "COMMIT")],
            Allow,
            "default.txn",
        ),
        case(
            "SELECT 1; DROP TABLE orders",
            vec![
                read("SELECT"),
                F::new(Ddl, "DROP TABLE").writes(&["public.orders"]),
            ],
            Hold,
            "default.ddl",
        ),
        case(
            "SELECT id FROM orders; SELECT ssn FROM customers",
            vec![
                read("SELECT")
                    .reads(&["public.orders"])
                    .out(&["public.orders.id"]),
                read("SELECT")
                    .reads(&["public.customers"])
                    .out(&["public.customers.ssn"]),
            ],
            Hold,
            "default.export",
        ),
        case("", vec![], Allow, "built-in.empty"),
    ]
}

#[test]
fn shipped_default_policy_table() {
    let p = default_policy();
    let who = ctx("agent", "psql", "app");
    let cat = demo_catalog();
    let cases = cases();
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for case in &cases {
        let d = p.evaluate(&classified(case.facts.clone()), case.sql, &who, &cat);
        if d.action != case.action || d.rule_id != case.rule {
            failures.push(format!(
                "{:60} want {:?} {:28} got {:?} {} ({})",
                case.sql, case.action, case.rule, d.action, d.rule_id, d.reason
            ));
        }
        // Every decision names where its rule is written.
        if d.rule_id.starts_with("default.") || d.rule_id.starts_with("flags.") {
            assert!(
                d.rule_source.starts_with("policies/default.toml:"),
                "{}",
                d.rule_source
            );
            let line: usize = d.rule_source.rsplit(':').next().unwrap().parse().unwrap();
            let key = d.rule_id.split('.').nth(1).unwrap();
            let text = DEFAULT_TOML.lines().nth(line - 1).unwrap();
            assert!(
                text.starts_with(&format!("{key} = ")),
                "{} -> {text}",
                d.rule_source
            );
        }
        assert!(!d.reason.is_empty());
        if d.action == Hold {
            assert_eq!(d.quorum, 1, "{}", case.sql);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_shipped_default_and_flag_is_what_the_issue_says() {
    let p = default_policy();
    use Kind::*;
    let want = [
        (Read, Allow),
        (Write, Allow),
        (Catalog, Allow),
        (Txn, Allow),
        (Session, Allow),
        (Export, Hold),
        (Ddl, Hold),
        (Role, Hold),
        (Utility, Hold),
        (Unknown, Hold),
    ];
    for (kind, action) in want {
        let d = p.evaluate(
            &classified(vec![F::new(kind, "X")]),
            "",
            &ctx("a", "", ""),
            &Default::default(),
        );
        assert_eq!(
            (d.action, d.rule_id.clone()),
            (action, format!("default.{}", kind.as_str()))
        );
    }
    // No flag is ever allowed, whatever the kind.
    let flags: [fn(&mut Flags); 7] = [
        |f| f.data_modifying_cte = true,
        |f| f.explain_analyze = true,
        |f| f.creates_table = true,
        |f| f.unbounded_write = true,
        |f| f.truncate = true,
        |f| f.unsafe_function = true,
        |f| f.server_side_copy = true,
    ];
    for set in flags {
        for kind in [Read, Write, Catalog, Txn, Session] {
            let d = p.evaluate(
                &classified(vec![F::new(kind, "X").flag(set)]),
                "",
                &ctx("a", "", ""),
                &Default::default(),
            );
            assert_eq!(d.action, Hold, "{kind:?}");
            assert!(d.rule_id.starts_with("flags."), "{}", d.rule_id);
        }
    }
}

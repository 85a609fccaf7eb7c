//! Statements decided by the shipped policies, through the gateway, against real PostgreSQL:
//! held or denied statements leave no trace upstream, PII never leaks from a held case,
//! masked reads are masked, allowed reads are what a direct connection returns, and every
//! statement upstream ran was audited first.

mod common;

use airlock::policy::Action;
use common::*;

const DEMO_SCHEMA: &str = airlock::demo::DEMO_SCHEMA;

fn demo_db(label: &str) -> TestDb {
    let db = TestDb::new(label);
    db.exec(DEMO_SCHEMA);
    db
}

/// A gateway with the demo policy, where approver alice denies every held request at once.
fn demo_gw() -> Gw {
    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    gw.auto_deny("alice");
    gw
}

#[test]
fn held_statements_have_no_side_effect_upstream() {
    let db = demo_db("held_effects");
    let gw = demo_gw();
    let before = db.exec("SELECT count(*), sum(quantity) FROM orders");
    let cases = [
        "DROP TABLE orders",
        "TRUNCATE orders",
        "DELETE FROM orders",
        "UPDATE orders SET quantity = 0",
        "ALTER TABLE orders ADD COLUMN note text",
        "CREATE TABLE sneaky AS SELECT * FROM orders",
        "SELECT * INTO sneaky2 FROM orders",
        "WITH gone AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM gone",
        "EXPLAIN ANALYZE DELETE FROM orders",
        "GRANT ALL ON orders TO PUBLIC",
        "CREATE ROLE intruder LOGIN SUPERUSER PASSWORD 'hunter2'",
        "DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$",
        "/* harmless */ DROP /* really */ TABLE \"orders\"",
        "SELECT 1; DROP TABLE orders",
        "SELECT set_config('role', 'postgres', false)",
        "COPY orders TO PROGRAM 'cat > /tmp/airlock-leak'",
        "PREPARE wipe AS DELETE FROM orders; EXECUTE wipe",
    ];
    for sql in cases {
        let (out, err) = agent_sql(&gw, &db, sql);
        assert!(
            err.contains("airlock"),
            "{sql}: expected a refusal, got out={out:?} err={err:?}"
        );
    }
    assert_eq!(
        db.exec("SELECT count(*), sum(quantity) FROM orders"),
        before
    );
    assert_eq!(
        db.exec("SELECT count(*) FROM pg_class WHERE relname LIKE 'sneaky%'")
            .trim(),
        "0"
    );
    assert_eq!(
        db.exec("SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'")
            .trim(),
        "0"
    );
    assert_eq!(
        db.exec("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'").trim(),
        "0"
    );
    assert!(!std::path::Path::new("/tmp/airlock-leak").exists());
    // The audit never holds the password.
    let records = gw.decisions();
    assert!(records
        .iter()
        .any(|(_, d)| d.sql.contains("CREATE ROLE intruder")));
    assert!(records.iter().all(|(_, d)| !d.sql.contains("hunter2")));
    assert!(records
        .iter()
        .all(|(_, d)| d.decision.action != Action::Allow || !d.sql.contains("DROP TABLE")));
}

#[test]
fn refusal_inside_a_transaction_aborts_it_like_postgres() {
    let db = demo_db("held_tx");
    let gw = demo_gw();
    let script = "BEGIN;\nINSERT INTO products (name, price) VALUES ('tx-probe', 1);\nDROP TABLE orders;\nSELECT 1;\nROLLBACK;\nSELECT count(*) FROM products WHERE name = 'tx-probe';\n";
    let out = psql(&gw.url(&db.name), &["-At", "-f", "-"], Some(script));
    let err = stderr(&out);
    assert!(err.contains("airlock"), "{err}");
    assert!(err.contains("current transaction is aborted"), "{err}");
    assert!(stdout(&out).trim_end().ends_with('0'), "{}", stdout(&out));
    assert_eq!(
        db.exec("SELECT count(*) FROM products WHERE name = 'tx-probe'")
            .trim(),
        "0"
    );
}

#[tokio::test]
async fn extended_protocol_is_decided_too() {
    let db = demo_db("held_extended");
    let gw = demo_gw();
    let client = agent_client(&gw, &db).await;
    // A bounded DELETE is an allowed write; a WHERE that is always true is not bounded.
    assert_eq!(
        client
            .execute("DELETE FROM orders WHERE id = $1", &[&7i32])
            .await
            .unwrap(),
        1
    );
    let err = client
        .execute("DELETE FROM orders WHERE $1::int = 1 OR true", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err}");
    assert_eq!(db.exec("SELECT count(*) FROM orders").trim(), "199");
    let err = client.execute("DROP TABLE orders", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err}");
    let err = client
        .query("SELECT email FROM customers WHERE id = $1", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501");
    assert!(!err.to_string().contains("@example.com"));
    let rows = client
        .query("SELECT name FROM customers WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "Customer 1");
    assert_eq!(
        db.exec("SELECT count(*) FROM pg_class WHERE relname = 'orders'")
            .trim(),
        "1"
    );
}

#[test]
fn pii_never_appears_in_a_held_case() {
    let db = demo_db("pii_held");
    let gw = demo_gw();
    for sql in [
        "SELECT email FROM customers",
        "SELECT * FROM customers",
        "SELECT c FROM customers c",
        "SELECT row_to_json(c) FROM customers c",
        "SELECT * FROM customer_contacts",
        "SELECT lower(\"email\") FROM public.\"customers\"",
        "WITH x AS (SELECT ssn FROM customers) SELECT * FROM x",
        "COPY customers TO STDOUT",
        "COPY (SELECT phone FROM customers) TO STDOUT",
        "UPDATE customers SET name = name WHERE id = 1 RETURNING email",
        "SELECT name FROM customers UNION ALL SELECT email FROM customers",
    ] {
        let (out, err) = agent_sql(&gw, &db, sql);
        assert!(err.contains("airlock"), "{sql}: {err}");
        for leak in ["@example.com", "+1-555-", "100007919"] {
            assert!(
                !out.contains(leak) && !err.contains(leak),
                "{sql} leaked {leak}: {out} {err}"
            );
        }
    }
}

/// A write that copies PII into a column the policy does not declare would let the next plain
/// read of that column return it: such writes are exports, held (and here denied) before
/// anything is copied. Writing a PII column back into itself is an ordinary write.
#[test]
fn writes_that_copy_pii_elsewhere_are_held_and_copy_nothing() {
    let db = demo_db("pii_copy");
    let gw = demo_gw();
    const SNAPSHOT: &str = "SELECT (SELECT string_agg(name, ',' ORDER BY id) FROM products), (SELECT string_agg(city, ',' ORDER BY id) FROM customers)";
    let before = db.exec(SNAPSHOT);
    let cases = [
        "INSERT INTO products (name, price) SELECT email, 1 FROM customers",
        "INSERT INTO products (name, price) VALUES ((SELECT ssn FROM customers LIMIT 1), 1)",
        "UPDATE products SET name = (SELECT phone FROM customers WHERE id = 1) WHERE id = 1",
        "UPDATE customers SET city = ssn WHERE id > 0",
        "UPDATE products p SET name = c::text FROM customers c WHERE c.id = p.id",
        "MERGE INTO products p USING customers c ON p.id = c.id WHEN MATCHED THEN UPDATE SET name = c.email",
        "WITH x AS (SELECT email AS e FROM customers) INSERT INTO products (name, price) SELECT e, 2 FROM x",
    ];
    for sql in cases {
        let (out, err) = agent_sql(&gw, &db, sql);
        assert!(
            err.contains("airlock") && err.contains("copying PII"),
            "{sql}: expected a refusal naming the copy, got out={out:?} err={err:?}"
        );
        let d = gw.last_decision(sql);
        assert_eq!(d.decision.action, Action::Hold, "{sql}");
        assert!(
            d.facts.iter().any(|f| !f.stored_columns.is_empty()),
            "{sql}: audited facts show no copy: {:?}",
            d.facts
        );
    }
    assert_eq!(db.exec(SNAPSHOT), before);
    assert_eq!(
        db.exec("SELECT count(*) FROM products WHERE name LIKE '%@%' OR name ~ '^[0-9]+$' OR name LIKE '+1-%'")
            .trim(),
        "0"
    );
    let (out, err) = agent_sql(
        &gw,
        &db,
        "UPDATE customers SET email = upper(email) WHERE id = 1",
    );
    assert_eq!(out.trim(), "UPDATE 1", "{err}");
    assert_eq!(
        db.exec("SELECT email FROM customers WHERE id = 1").trim(),
        "CUSTOMER1@EXAMPLE.COM"
    );
}

#[test]
fn allowed_reads_match_a_direct_connection() {
    let db = demo_db("allowed_reads");
    let gw = demo_gw();
    for sql in [
        "SELECT id, name, city FROM customers ORDER BY id",
        "SELECT * FROM orders ORDER BY id LIMIT 20",
        "SELECT * FROM order_totals ORDER BY customer_id",
        "SELECT p.name, sum(o.quantity) FROM orders o JOIN products p ON p.id = o.product_id GROUP BY p.name ORDER BY 1",
        "SELECT count(*) FROM customers WHERE city = 'Oslo'",
        "SELECT version() IS NOT NULL, current_schema()",
    ] {
        let (via, err) = agent_sql(&gw, &db, sql);
        assert!(err.is_empty(), "{sql}: {err}");
        let direct = psql(&db.direct_url(), &["-At", "-c", sql], None);
        assert_eq!(via, stdout(&direct), "{sql}");
        assert!(!via.is_empty());
    }
}

#[test]
fn masked_reads_return_masked_values() {
    let db = demo_db("masked");
    let gw = demo_gw();
    let url = format!("{}&application_name=reporting-daily", gw.url(&db.name));
    let out = psql(
        &url,
        &[
            "-At",
            "-c",
            "SELECT name, email, phone FROM customers WHERE id = 1",
        ],
        None,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.starts_with("Customer 1|"), "{text}");
    assert!(!text.contains("customer1@example.com"), "{text}");
    assert!(!text.contains("+1-555-0001"), "{text}");
    let d = gw
        .decisions()
        .into_iter()
        .find(|(_, d)| d.sql.contains("SELECT name, email, phone"))
        .expect("audited");
    assert_eq!(d.1.decision.action, Action::Mask);
    let rewritten = d.1.rewritten_sql.expect("rewrite audited");
    assert_ne!(rewritten, d.1.sql);
}

/// Masked reads that differ only in a constant share one analysis, but each is rewritten with
/// its own constant, also when the session runs one of them again and reuses its rewrite.
#[test]
fn a_repeated_masked_read_is_rewritten_as_itself() {
    let db = demo_db("masked_repeat");
    let gw = demo_gw();
    let url = format!("{}&application_name=reporting-daily", gw.url(&db.name));
    let read = |id: u32| format!("SELECT name, email FROM customers WHERE id = {id}");
    // One psql session: every -c is a Query of its own on the same connection.
    let out = psql(
        &url,
        &["-At", "-c", &read(1), "-c", &read(2), "-c", &read(1)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.split('|').next().unwrap()).collect();
    assert_eq!(
        names,
        ["Customer 1", "Customer 2", "Customer 1"],
        "{rows:?}"
    );
    for (row, id) in rows.iter().zip([1, 2, 1]) {
        assert!(
            !row.contains(&format!("customer{id}@")),
            "not masked: {row}"
        );
        assert!(
            row.contains("@example.com"),
            "the mask keeps the domain: {row}"
        );
    }
    let runs: Vec<_> = gw
        .decisions()
        .into_iter()
        .filter(|(_, d)| d.sql.starts_with("SELECT name, email FROM customers"))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    for (d, id) in runs.iter().zip([1, 2, 1]) {
        assert_eq!(d.decision.action, Action::Mask, "{d:?}");
        let rewritten = d.rewritten_sql.as_deref().expect("rewrite audited");
        assert!(
            rewritten.ends_with(&format!("WHERE id = {id}")),
            "{rewritten}"
        );
    }
    assert_eq!(runs[0].rewritten_sql, runs[2].rewritten_sql);
}

/// A masked prepared statement runs again and again with the rewrite made when it was
/// decided first; every run is masked and answers for its own parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_prepared_statement_stays_masked_on_every_run() {
    let db = demo_db("masked_prepared");
    let gw = demo_gw();
    let url = format!("{}&application_name=reporting-daily", gw.url(&db.name));
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let statement = client
        .prepare("SELECT name, email FROM customers WHERE id = $1")
        .await
        .expect("prepare");
    for id in [1i32, 2, 1, 3] {
        let row = client.query_one(&statement, &[&id]).await.expect("masked");
        let (name, email): (String, String) = (row.get(0), row.get(1));
        assert_eq!(name, format!("Customer {id}"));
        assert_eq!(email, "c***@example.com");
    }
    let runs: Vec<_> = gw
        .decisions()
        .into_iter()
        .filter(|(_, d)| {
            d.sql.starts_with("SELECT name, email FROM customers") && !d.params.is_empty()
        })
        .map(|(_, d)| d)
        .collect();
    assert_eq!(runs.len(), 4, "{runs:?}");
    for d in &runs {
        assert_eq!(d.decision.action, Action::Mask, "{d:?}");
        assert!(d.rewritten_sql.is_some(), "{d:?}");
    }
}

#[test]
fn every_statement_upstream_ran_was_audited_first() {
    let db = demo_db("completeness");
    let gw = demo_gw();
    let app = format!("completeness-{}", std::process::id());
    let url = format!("{}&application_name={app}", gw.url(&db.name));
    // Simple protocol, allowed and refused, multi-statement, COPY.
    let script = "SELECT count(*) FROM orders;\nSELECT 1; SELECT 2;\nDROP TABLE orders;\nINSERT INTO products (name, price) VALUES ('x', 1);\n\\copy (SELECT id FROM products) TO STDOUT\nSELECT email FROM customers;\n";
    let _ = psql(&url, &["-f", "-"], Some(script));
    // Extended protocol via pgbench's prepared mode.
    let bench = std::process::Command::new(tool("pgbench", "postgresql-15"))
        .args(["-n", "-M", "prepared", "-t", "5", "-f", "-"])
        .arg(&url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(
                b"\\set pid random(1, 20)\nSELECT name FROM products WHERE id = :pid;\n",
            )?;
            c.wait()
        })
        .expect("pgbench");
    assert!(bench.success());

    let log = std::fs::read_to_string(cluster().log_file()).expect("postgres log");
    let executed: Vec<(i64, String)> = log
        .lines()
        .filter(|l| l.contains(&format!("|{}|{}|", db.name, app)))
        .filter_map(|l| {
            let (ts, rest) = l.split_once('|')?;
            let sql = rest
                .split_once("LOG:  statement: ")
                .map(|(_, s)| s)
                .or_else(|| {
                    rest.split_once("LOG:  execute ")
                        .and_then(|(_, s)| s.split_once(": "))
                        .map(|(_, s)| s)
                })?;
            Some((pg_time_us(ts), sql.to_string()))
        })
        .filter(|(_, sql)| {
            !sql.starts_with("/* airlock: catalog */") && !sql.starts_with("/* airlock: reset */")
        })
        .collect();
    assert!(executed.len() >= 10, "{executed:?}");
    let decisions = gw.decisions();
    for (pg_time, sql) in &executed {
        if sql.starts_with("/* airlock: refused */") {
            continue; // the gateway's stand-in for a refused statement: audited as refused
        }
        let found = decisions.iter().find(|(r, d)| {
            (d.sql.contains(sql.trim_end_matches(';')) || d.rewritten_sql.as_deref() == Some(sql))
                && airlock::audit::parse_time(&r.time).unwrap() <= pg_time + 1000
        });
        assert!(
            found.is_some(),
            "upstream ran {sql:?} without an earlier audit record"
        );
    }
    let refused = executed
        .iter()
        .filter(|(_, s)| s.starts_with("/* airlock: refused */"))
        .count();
    let not_allowed = decisions
        .iter()
        .filter(|(_, d)| d.session.application_name == app && d.decision.action != Action::Allow)
        .count();
    assert_eq!(refused, not_allowed);
}

/// `2026-11-24 06:05:35.674 UTC` → µs since the epoch.
fn pg_time_us(ts: &str) -> i64 {
    let t = ts.trim_end_matches(" UTC").replace(' ', "T") + "Z";
    airlock::audit::parse_time(&t).unwrap_or_else(|| panic!("bad log time {ts}"))
}

#[test]
fn policy_reload_applies_and_an_invalid_policy_keeps_the_old_one() {
    let db = demo_db("reload");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::copy(shipped_policy("demo.toml"), &path).unwrap();
    let gw = Gw::start(|c| c.policy.path = path.clone());
    gw.auto_deny("alice");
    let (_, err) = agent_sql(&gw, &db, "SELECT count(*) FROM orders");
    assert!(err.is_empty(), "{err}");
    // Deny reads of orders from now on.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[[rule]]\nid = \"no-orders\"\naction = \"deny\"\ntables = [\"public.orders\"]\nreason = \"orders are off limits\"\n");
    std::fs::write(&path, &text).unwrap();
    gw.reload_policy();
    let (_, err) = agent_sql(&gw, &db, "SELECT count(*) FROM orders");
    assert!(err.contains("no-orders"), "{err}");
    // A broken file is refused and the previous policy stays in force.
    std::fs::write(&path, "this is [not toml").unwrap();
    gw.reload_policy();
    let (_, err) = agent_sql(&gw, &db, "SELECT count(*) FROM orders");
    assert!(err.contains("no-orders"), "{err}");
    // The start and both reloads are in the chain, in order.
    let events: Vec<String> = gw
        .audit_records()
        .into_iter()
        .filter_map(|r| match r.entry {
            airlock::audit::Entry::Gateway(g) => Some(g.event),
            _ => None,
        })
        .collect();
    assert_eq!(events, ["started", "policy_reloaded", "policy_rejected"]);
}

/// A session that runs the same statement again reuses its last decision, and records every
/// run in full; a reloaded policy applies to the very next run of that session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_statement_is_recorded_in_full_and_follows_a_policy_reload() {
    let db = demo_db("repeat_reload");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::copy(shipped_policy("demo.toml"), &path).unwrap();
    let gw = Gw::start(|c| c.policy.path = path.clone());
    let client = agent_client(&gw, &db).await;
    let statement = client
        .prepare("SELECT count(*) FROM orders WHERE id > $1")
        .await
        .expect("prepare");
    // Each run is decided as itself, however the kept decisions interleave.
    for id in [1i32, 2] {
        let row = client.query_one(&statement, &[&id]).await.expect("allowed");
        let _: i64 = row.get(0);
        let err = client
            .simple_query("DROP TABLE orders")
            .await
            .expect_err("an agent never drops");
        let db_err = err.as_db_error().expect("a server error");
        assert!(db_err.message().contains("agent-no-drop"), "{db_err:?}");
    }
    let runs: Vec<_> = gw
        .decisions()
        .into_iter()
        .filter(|(_, d)| d.sql.starts_with("SELECT count(*) FROM orders") && !d.params.is_empty())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let ((r1, d1), (r2, d2)) = (&runs[0], &runs[1]);
    assert_ne!(r1.id, r2.id);
    // tokio-postgres binds binary int4s, which the audit shows as hex.
    let bound = |n: i32| [Some(format!("\\x{n:08x}"))];
    assert_eq!(d1.params, bound(1));
    assert_eq!(d2.params, bound(2));
    assert_eq!(d1.decision.action, Action::Allow);
    assert_eq!(
        (&d1.session, &d1.facts, &d1.decision),
        (&d2.session, &d2.facts, &d2.decision)
    );
    assert_eq!(
        d2.facts[0].tables_read[0].to_string(),
        "public.orders",
        "{d2:?}"
    );

    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[[rule]]\nid = \"no-orders\"\naction = \"deny\"\ntables = [\"public.orders\"]\nreason = \"orders are off limits\"\n");
    std::fs::write(&path, &text).unwrap();
    gw.reload_policy();
    let err = client
        .query_one(&statement, &[&3i32])
        .await
        .expect_err("denied after the reload");
    let db_err = err.as_db_error().expect("a server error");
    assert_eq!(db_err.code().code(), "42501", "{db_err:?}");
    assert!(db_err.message().contains("no-orders"), "{db_err:?}");
    let (_, d3) = gw
        .decisions()
        .into_iter()
        .rfind(|(_, d)| d.params == bound(3))
        .expect("the third run is audited");
    assert_eq!(d3.decision.action, Action::Deny);
    assert_eq!(d3.decision.rule_id, "no-orders");
}

/// A column added after the gateway read the catalog (a migration run directly on the server)
/// does not come back through a masked `*`: the rewrite lists the columns it masks and keeps.
#[test]
fn a_column_added_after_the_catalog_snapshot_does_not_leak_through_a_masked_star() {
    let db = demo_db("late_column");
    // Without city, `SELECT *` on customers is exactly what the reporting mask rule covers.
    db.exec("ALTER TABLE customers DROP COLUMN ssn, DROP COLUMN city");
    let gw = demo_gw();
    let url = format!("{}&application_name=reporting-daily", gw.url(&db.name));
    // The first session loads the catalog: customers has no ssn yet.
    let out = psql(
        &url,
        &["-At", "-c", "SELECT name FROM customers WHERE id = 1"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Out of band, straight on the server.
    db.exec("ALTER TABLE customers ADD COLUMN ssn text; UPDATE customers SET ssn = '123-45-6789'");
    let out = psql(
        &url,
        &["-At", "-c", "SELECT * FROM customers WHERE id = 1"],
        None,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.starts_with("1|Customer 1|"), "{text}");
    assert!(!text.contains("customer1@example.com"), "masked: {text}");
    assert!(!text.contains("123-45-6789"), "ssn leaked: {text}");
    let (_, d) = gw
        .decisions()
        .into_iter()
        .find(|(_, d)| d.sql.starts_with("SELECT * FROM customers"))
        .expect("audited");
    assert_eq!(d.decision.action, Action::Mask);
}

/// A gateway with the demo policy plus `extra`, where `public.orders.card_number` (a column the
/// demo schema does not have yet) is PII and alice denies every hold. Keep the directory.
fn card_number_gw(extra: &str) -> (tempfile::TempDir, Gw) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let mut text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    text.push_str("\n[[pii]]\ncolumns = [\"public.orders.card_number\"]\nmask = \"redact\"\n");
    text.push_str(extra);
    std::fs::write(&path, text).unwrap();
    let gw = Gw::start(|c| c.policy.path = path.clone());
    gw.auto_deny("alice");
    (dir, gw)
}

/// A migration straight on the server, behind the gateway's back.
fn add_card_number_out_of_band(db: &TestDb) {
    db.exec(
        "ALTER TABLE orders ADD COLUMN card_number text; \
         UPDATE orders SET card_number = '4111111111111111'",
    );
}

/// The agent's tokio-postgres connection through the gateway.
async fn agent_client(gw: &Gw, db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&gw.url(&db.name), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// An allowed `SELECT *` of a table that gained a column after the catalog snapshot: the
/// column was never inspected (here: PII the policy already names), so the result is refused
/// before any row reaches the client, and the next session decides with the current catalog.
#[test]
fn a_column_added_after_the_snapshot_is_refused_in_an_allowed_star() {
    let db = demo_db("late_declared");
    let (_policy, gw) = card_number_gw("");
    let (out, err) = agent_sql(&gw, &db, "SELECT * FROM orders WHERE id = 1");
    assert!(err.is_empty(), "{err}");
    assert!(out.starts_with("1|"), "{out}");
    // Out of band, straight on the server.
    add_card_number_out_of_band(&db);
    let out = verbose_sql(&gw, &db, "SELECT * FROM orders WHERE id = 1");
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(!out.status.success());
    assert!(!text.contains("4111111111111111"), "leaked: {text}");
    assert!(err.contains("AL002"), "{err}");
    assert!(err.contains("card_number"), "{err}");
    // The statement, its refusal and why are in the audit.
    let (_, d) = gw
        .decisions()
        .into_iter()
        .filter(|(_, d)| d.sql == "SELECT * FROM orders WHERE id = 1")
        .nth(1)
        .expect("audited");
    assert_eq!(d.decision.action, Action::Allow);
    let outcome_error = gw.audit_records().into_iter().find_map(|r| match r.entry {
        airlock::audit::Entry::Decision(e) if e.sql == d.sql => e
            .outcome
            .and_then(|o| o.error)
            .filter(|(code, _)| code == "AL002"),
        airlock::audit::Entry::Outcome(o) => o.result.error.filter(|(code, _)| code == "AL002"),
        _ => None,
    });
    assert!(
        outcome_error.is_some(),
        "the refusal is the statement's outcome"
    );
    // A new session reads the current catalog: the card number is PII now, so the same
    // statement is an export, held (and denied by the test approver), and still not returned.
    let (out, err) = agent_sql(&gw, &db, "SELECT * FROM orders WHERE id = 1");
    assert!(!out.contains("4111111111111111"), "leaked: {out}");
    assert!(err.contains("denied"), "{err}");
    let (_, d) = gw
        .decisions()
        .into_iter()
        .rfind(|(_, d)| d.sql == "SELECT * FROM orders WHERE id = 1")
        .unwrap();
    assert_eq!(d.decision.action, Action::Hold);
    // Columns the snapshot knows are untouched.
    let (out, err) = agent_sql(&gw, &db, "SELECT id, total FROM orders WHERE id = 1");
    assert!(err.is_empty(), "{err}");
    assert!(out.starts_with("1|"), "{out}");
}

/// The same through the extended protocol (the RowDescription answers Describe): the client
/// gets the error, no row; the connection stays usable and soon decides with the new column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_after_the_snapshot_is_refused_in_the_extended_protocol() {
    let db = demo_db("late_extended");
    let (_policy, gw) = card_number_gw("");
    let client = agent_client(&gw, &db).await;
    let rows = client
        .query("SELECT * FROM orders WHERE id = $1", &[&1i32])
        .await
        .expect("known columns");
    assert_eq!(rows.len(), 1);
    add_card_number_out_of_band(&db);
    let err = client
        .query("SELECT * FROM orders WHERE id = $1", &[&2i32])
        .await
        .expect_err("refused");
    let db_err = err.as_db_error().expect("a server error");
    assert_eq!(db_err.code().code(), "AL002", "{db_err:?}");
    assert!(db_err.message().contains("card_number"), "{db_err:?}");
    // The same session moves to the current snapshot once it is read (in the background):
    // the statement is then decided with the new column, an export of PII, held (and denied by
    // the test approver). Never a row with the card number.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let decided = loop {
        let err = client
            .query("SELECT * FROM orders WHERE id = $1", &[&2i32])
            .await
            .expect_err("never returned");
        let code = err
            .as_db_error()
            .expect("a server error")
            .code()
            .code()
            .to_owned();
        if code != "AL002" {
            break err;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session never moved to the current catalog"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let db_err = decided.as_db_error().unwrap();
    assert_eq!(db_err.code().code(), "42501", "{db_err:?}");
    assert!(db_err.message().contains("denied"), "{db_err:?}");
    // In step: the next statement on the same connection runs.
    let n: i64 = client
        .query_one("SELECT count(*) FROM orders WHERE id <= $1", &[&3i32])
        .await
        .expect("the connection is still usable")
        .get(0);
    assert_eq!(n, 3);
}

/// DDL that runs through the gateway drops the database's catalog snapshot, so the next session
/// knows the new column at once (it is PII here: the read is an export, held), instead of
/// meeting it in a result (`AL002`).
#[test]
fn ddl_through_the_gateway_refreshes_the_snapshot_for_the_next_session() {
    let db = demo_db("ddl_refresh");
    let (_policy, gw) = card_number_gw(
        "[[rule]]\nid = \"test-ddl\"\naction = \"allow\"\nkinds = [\"ddl\"]\nreason = \"test\"\n",
    );
    let (_, err) = agent_sql(&gw, &db, "SELECT * FROM orders WHERE id = 1");
    assert!(err.is_empty(), "{err}");
    let (_, err) = agent_sql(&gw, &db, "ALTER TABLE orders ADD COLUMN card_number text");
    assert!(err.is_empty(), "{err}");
    db.exec("UPDATE orders SET card_number = '4111111111111111'");
    let out = verbose_sql(&gw, &db, "SELECT * FROM orders WHERE id = 1");
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(!text.contains("4111111111111111"), "leaked: {text}");
    assert!(err.contains("denied"), "{err}");
    assert!(
        !err.contains("AL002"),
        "decided with the new column, not caught late: {err}"
    );
}

/// The audited facts of the last decision on `sql`.
fn last_facts(gw: &Gw, sql: &str) -> (Action, Vec<String>) {
    let d = gw.last_decision(sql);
    let outputs = d
        .facts
        .iter()
        .flat_map(|f| &f.output_columns)
        .map(|c| c.to_string())
        .collect();
    (d.decision.action, outputs)
}

/// Results whose row description names no source column — a whole-row value, a set
/// operation over `*` — cannot be checked by the relay. A column added out of band reaches
/// them all the same, so the gateway compares their tables with the server's catalog first:
/// the statement is decided with the new column (PII here: held, and denied by the test
/// approver) and nothing leaks.
#[test]
fn whole_rows_and_unions_are_decided_with_a_column_added_after_the_snapshot() {
    let db = demo_db("late_whole_row");
    let (_policy, gw) = card_number_gw("");
    let whole_row = "SELECT to_json(o) FROM orders o WHERE id = 1";
    let union = "SELECT * FROM orders WHERE id = 1 UNION ALL SELECT * FROM orders WHERE id = 2";
    // Before the change, both are plain reads, checked against an unchanged catalog.
    let (out, err) = agent_sql(&gw, &db, whole_row);
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("\"id\":1"), "{out}");
    let (out, err) = agent_sql(&gw, &db, union);
    assert!(err.is_empty(), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    add_card_number_out_of_band(&db);
    for sql in [whole_row, union] {
        let out = verbose_sql(&gw, &db, sql);
        let (text, err) = (stdout(&out), stderr(&out));
        assert!(!text.contains("4111111111111111"), "{sql} leaked: {text}");
        assert!(err.contains("denied"), "{sql}: {err}");
        let (action, outputs) = last_facts(&gw, sql);
        assert_eq!(action, Action::Hold, "{sql}");
        assert!(
            outputs.contains(&"public.orders.card_number".to_string()),
            "{sql} decided with the new column: {outputs:?}"
        );
    }
}

/// `COPY … TO STDOUT` sends no row description at all. It is an export (held), but the
/// approver must see every column that leaves, including one added after the snapshot.
#[test]
fn copy_to_shows_the_approver_a_column_added_after_the_snapshot() {
    let db = demo_db("late_copy");
    let (_policy, gw) = card_number_gw("");
    // The first session reads the snapshot.
    let (_, err) = agent_sql(&gw, &db, "SELECT 1");
    assert!(err.is_empty(), "{err}");
    add_card_number_out_of_band(&db);
    let sql = "COPY orders TO STDOUT";
    let out = verbose_sql(&gw, &db, sql);
    assert!(!stdout(&out).contains("4111111111111111"));
    let (action, outputs) = last_facts(&gw, sql);
    assert_eq!(action, Action::Hold);
    assert!(
        outputs.contains(&"public.orders.card_number".to_string()),
        "{outputs:?}"
    );
}

/// When the live comparison cannot be made, the statement is refused (fail closed), with the
/// reason, and audited; other statements of the session go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_row_read_is_refused_when_the_catalog_cannot_be_compared() {
    let db = demo_db("late_unverified");
    let (_policy, gw) = card_number_gw("");
    let client = agent_client(&gw, &db).await;
    client.simple_query("SELECT 1").await.expect("open");
    // Nobody may open a new connection to the database now; the open session goes on.
    cluster()
        .psql(
            "postgres",
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name),
        )
        .expect("block new connections");
    let sql = "SELECT to_json(o) FROM orders o WHERE id = 1";
    let err = client.simple_query(sql).await.expect_err("refused");
    let db_err = err.as_db_error().expect("a server error");
    assert_eq!(db_err.code().code(), "42501", "{db_err:?}");
    assert!(db_err.message().contains("could not compare"), "{db_err:?}");
    let (_, d) = gw
        .decisions()
        .into_iter()
        .rfind(|(_, d)| d.sql == sql)
        .expect("audited");
    assert_eq!(d.decision.action, Action::Deny);
    assert_eq!(d.decision.rule_id, "built-in.fail-closed");
    cluster()
        .psql(
            "postgres",
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name),
        )
        .expect("unblock");
    // The refusal was for want of a comparison, not kept for the statement: once the
    // comparison can be made, the same statement runs in the same session.
    let rows = client.simple_query(sql).await.expect("compared now");
    assert!(
        rows.iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))),
        "{rows:?}"
    );
    let rows = client
        .query("SELECT id FROM orders WHERE id = 1", &[])
        .await
        .expect("a checked read still runs");
    assert_eq!(rows.len(), 1);
}

/// Live checks and sessions share the upstream pool. After the server closed every pooled
/// connection, a whole-row read (session and live check both) still runs on new ones instead
/// of being refused.
#[test]
fn a_live_check_outlives_a_pooled_connection_the_server_closed() {
    let db = demo_db("live_pooled");
    let (_policy, gw) = card_number_gw("");
    let sql = "SELECT to_json(p) FROM products p ORDER BY id LIMIT 1";
    let (out, err) = agent_sql(&gw, &db, sql);
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("\"id\":"), "{out}");
    // Connections the pool keeps last ran its reset query; end them all.
    let pooled = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{}' AND query LIKE '/* airlock: reset */%'",
        db.name
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cluster()
        .psql("postgres", &pooled)
        .expect("terminate")
        .trim()
        == "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no connection was given back to the pool"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(gw.gateway.pool.as_ref().expect("pool on").idle_count() > 0);
    let (out, err) = agent_sql(&gw, &db, sql);
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("\"id\":"), "{out}");
}

/// A held whole-row read is compared with the server again when it is approved: a column
/// added while it waited (here PII) was never shown to the approver, so it does not run.
#[test]
fn a_held_whole_row_read_does_not_run_if_its_table_changed_while_it_waited() {
    let db = demo_db("late_while_held");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let mut text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    text.push_str(
        "\n[[pii]]\ncolumns = [\"public.orders.card_number\"]\nmask = \"redact\"\n\
         [[rule]]\nid = \"test-orders-wait\"\naction = \"hold\"\ntables = [\"public.orders\"]\n\
         kinds = [\"read\"]\napprovers = [\"alice\"]\nreason = \"test: reads of orders wait\"\n",
    );
    std::fs::write(&path, text).unwrap();
    let gw = Gw::start(|c| c.policy.path = path.clone());
    let sql = "SELECT to_json(o) FROM orders o WHERE id = 1";
    let agent = {
        let (url, sql) = (gw.url(&db.name), sql.to_owned());
        std::thread::spawn(move || {
            psql(&url, &["-At", "-v", "VERBOSITY=verbose", "-c", &sql], None)
        })
    };
    let registry = gw.gateway.registry.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let request = loop {
        let pending = rt.block_on(registry.list(airlock::approval::ListFilter::Pending));
        if let Some(v) = pending.into_iter().next() {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "never held");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    add_card_number_out_of_band(&db);
    rt.block_on(registry.approve(&request.id, "alice", airlock::approval::Channel::Api, None))
        .expect("approved");
    let out = agent.join().unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(!text.contains("4111111111111111"), "leaked: {text}");
    assert!(err.contains("AL002"), "{err}");
    assert!(err.contains("while request"), "{err}");
    let outcome_error = gw.audit_records().into_iter().find_map(|r| match r.entry {
        airlock::audit::Entry::Outcome(o) => o.result.error.filter(|(code, _)| code == "AL002"),
        airlock::audit::Entry::Decision(e) => e
            .outcome
            .and_then(|o| o.error)
            .filter(|(code, _)| code == "AL002"),
        _ => None,
    });
    assert!(outcome_error.is_some(), "the refusal is audited");
    // Run again, it is decided with the new column (and denied by the test approver).
    gw.auto_deny("alice");
    let out = verbose_sql(&gw, &db, sql);
    assert!(!stdout(&out).contains("4111111111111111"));
    assert!(stderr(&out).contains("denied"), "{}", stderr(&out));
    let (_, outputs) = last_facts(&gw, sql);
    assert!(
        outputs.contains(&"public.orders.card_number".to_string()),
        "{outputs:?}"
    );
}

/// The audit shows every statement that ran. When one statement of a text did not parse
/// (`START TRANSACTION READ WRITE, NOT DEFERRABLE`, allowed as transaction control), the whole
/// text went through raw-text password rules that took `password'` in a comment for a secret:
/// the UPDATE ran, and its decision record showed only the START TRANSACTION.
#[test]
fn a_comment_hides_no_statement_from_the_audit() {
    let db = demo_db("audit_fidelity");
    let gw = demo_gw();
    let sql = "START TRANSACTION READ WRITE, NOT DEFERRABLE; /*password'*/ UPDATE products SET name = $$pwned2$$ WHERE id = 2; COMMIT /*'*/";
    let (_, err) = agent_sql(&gw, &db, sql);
    assert!(!err.contains("ERROR"), "{err}");
    assert_eq!(
        db.exec("SELECT name FROM products WHERE id = 2").trim(),
        "pwned2"
    );
    // A real secret in a statement that does not parse stays out of the audit.
    let (_, err) = agent_sql(
        &gw,
        &db,
        "SELECT 1; ALTER ROLE nobody PASSWORD hunter22 BOGUS; SELECT 2",
    );
    assert!(err.contains("airlock"), "{err}");
    let decisions = gw.decisions();
    let (_, d) = decisions
        .iter()
        .find(|(_, d)| d.sql.starts_with("START TRANSACTION READ WRITE"))
        .expect("the text was audited");
    assert_eq!(d.decision.action, Action::Allow);
    assert!(
        d.sql
            .contains("UPDATE products SET name = $$pwned2$$ WHERE id = 2; COMMIT"),
        "{}",
        d.sql
    );
    assert!(
        d.fingerprint
            .contains("update products set name = ? where id = ?; commit"),
        "{}",
        d.fingerprint
    );
    let (_, d) = decisions
        .iter()
        .find(|(_, d)| d.sql.contains("ALTER ROLE nobody"))
        .expect("the secret's text was audited");
    assert_eq!(
        d.sql,
        "SELECT 1; ALTER ROLE nobody PASSWORD '********' BOGUS; SELECT 2"
    );
    assert!(!d.fingerprint.contains("hunter22"), "{}", d.fingerprint);
}

/// The server's own tables hold its schema, roles and settings. Rewriting their rows renames a
/// PII column out of the policy's sight, changes a role or a setting: each is held as the DDL
/// or role change it is (and denied here), and nothing changes upstream.
#[test]
fn system_catalog_rows_are_not_rewritten_around_the_policy() {
    let db = demo_db("catalog_writes");
    let gw = demo_gw();
    let constraints = db.exec("SELECT count(*) FROM pg_constraint");
    let cases = [
        ("UPDATE pg_catalog.pg_attribute SET attname = 'nickname' WHERE attrelid = 'public.customers'::regclass AND attname = 'ssn'", "ddl"),
        ("update pg_attribute set attname = 'nickname' where attrelid = 'customers'::regclass and attname = 'ssn'", "ddl"),
        ("DELETE FROM pg_constraint WHERE conrelid = 'orders'::regclass", "ddl"),
        ("UPDATE pg_authid SET rolconnlimit = 7 WHERE rolname = current_user", "role"),
        ("UPDATE pg_settings SET setting = 'replica' WHERE name = 'session_replication_role'", "role"),
        ("WITH x AS (UPDATE pg_settings SET setting = 'replica' WHERE name = 'session_replication_role' RETURNING 1) SELECT 1", "role"),
    ];
    for (sql, kind) in cases {
        let (out, err) = agent_sql(&gw, &db, sql);
        assert!(
            err.contains("airlock"),
            "{sql}: expected a refusal, got out={out:?} err={err:?}"
        );
        let (_, d) = gw
            .decisions()
            .into_iter()
            .rfind(|(_, d)| d.sql == sql)
            .unwrap_or_else(|| panic!("{sql} audited"));
        assert_eq!(d.facts[0].kind.as_str(), kind, "{sql}");
        assert_ne!(d.decision.action, Action::Allow, "{sql}");
    }
    assert_eq!(
        db.exec("SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'ssn'").trim(),
        "1"
    );
    assert_eq!(db.exec("SELECT count(*) FROM pg_constraint"), constraints);
    assert_eq!(
        db.exec("SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user")
            .trim(),
        "-1"
    );
    // An ordinary write still goes through.
    let (_, err) = agent_sql(&gw, &db, "UPDATE products SET price = 2 WHERE id = 1");
    assert!(err.is_empty(), "{err}");
}

/// `setseed` seeds the session's generator, and the first `random()` after it gives the seed
/// back exactly: a full-value channel out of any column it is fed. It is held.
#[test]
fn seeding_the_random_generator_with_a_column_is_held() {
    let db = demo_db("setseed");
    let gw = demo_gw();
    let sql = "SELECT id, random() FROM customers WHERE setseed(ssn::float8 / 1e10)::text <> 'x' AND id = 1";
    let (out, err) = agent_sql(&gw, &db, sql);
    assert!(err.contains("airlock"), "out={out:?} err={err:?}");
    assert!(out.is_empty(), "{out}");
    // The same query on a direct connection does return a value derived from the SSN.
    assert!(!db.exec(sql).trim().is_empty());
}

/// A kilobyte of SQL whose `*` doubles at every CTE would make the gateway expand 2^40
/// columns; PostgreSQL refuses any result over 1,664 columns, so the gateway stops there,
/// holds the statement as unknown, and keeps serving.
#[test]
fn a_star_that_doubles_through_ctes_is_held_at_once() {
    let db = demo_db("cte_blowup");
    let gw = demo_gw();
    let mut ctes = vec!["c0 AS (SELECT id, name FROM products)".to_string()];
    for i in 1..=40 {
        ctes.push(format!(
            "c{i} AS (SELECT * FROM c{} x JOIN c{} y USING (id))",
            i - 1,
            i - 1
        ));
    }
    let sql = format!("WITH {} SELECT id FROM c40 LIMIT 1", ctes.join(", "));
    let (out, err) = agent_sql(&gw, &db, &sql);
    assert!(err.contains("airlock"), "out={out:?} err={err:?}");
    let (_, d) = gw
        .decisions()
        .into_iter()
        .rfind(|(_, d)| d.sql == sql)
        .expect("audited");
    assert_eq!(d.facts[0].kind.as_str(), "unknown");
    assert!(
        d.facts[0].label.contains("more than 1664 result columns"),
        "{}",
        d.facts[0].label
    );
    assert_eq!(agent_sql(&gw, &db, "SELECT 1").0.trim(), "1");
}

/// The reporting mask rewrites a statement and sends the rewrite instead. Printed back,
/// `- -1` reads `--1`: a comment to the end of the line, after which the second line of a
/// string literal would run as SQL. Such a rewrite is held, and nothing of it runs.
#[test]
fn a_masked_rewrite_cannot_turn_a_literal_into_sql() {
    let db = demo_db("mask_injection");
    let gw = demo_gw();
    let url = format!("{}&application_name=reporting-daily", gw.url(&db.name));
    let payloads = [
        "ssn, phone FROM customers LIMIT 5; --",
        "1; ALTER TABLE orders ADD COLUMN pwned int; CREATE ROLE evil_mask LOGIN; --",
    ];
    for payload in payloads {
        let sql = format!("SELECT email, - -1 AS x, '\n{payload}' AS y FROM customers LIMIT 1");
        let out = psql(&url, &["-At", "-c", &sql], None);
        let (text, err) = (stdout(&out), stderr(&out));
        assert!(
            err.contains("airlock"),
            "{payload}: out={text:?} err={err:?}"
        );
        assert!(!text.contains("100007919"), "{text}");
        assert!(!text.contains("+1-555-"), "{text}");
        let (_, d) = gw
            .decisions()
            .into_iter()
            .rfind(|(_, d)| d.sql.contains("- -1 AS x"))
            .expect("audited");
        assert_eq!(d.decision.action, Action::Hold, "{payload}");
        assert!(d.rewritten_sql.is_none(), "{:?}", d.rewritten_sql);
        assert!(
            d.decision.reason.contains("cannot mask safely"),
            "{}",
            d.decision.reason
        );
    }
    assert_eq!(
        db.exec("SELECT count(*) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'pwned'").trim(),
        "0"
    );
    assert_eq!(
        db.exec("SELECT count(*) FROM pg_roles WHERE rolname = 'evil_mask'")
            .trim(),
        "0"
    );
    // Written without the ambiguity, the same shape is masked and answered.
    let out = psql(
        &url,
        &[
            "-At",
            "-c",
            "SELECT email, -(-1) AS x FROM customers WHERE id = 1",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out).trim().to_string();
    assert!(text.ends_with("|1"), "{text}");
    assert!(!text.contains("customer1@example.com"), "{text}");
}

/// Shapes that returned PII unnoticed: `rel.f` (PostgreSQL's attribute notation for `f(rel)`)
/// and an EXISTS inside a window or FILTER that muted the columns after it. A direct
/// connection returns the email; through the gateway each is held (and denied here).
#[test]
fn attribute_notation_and_muted_windows_do_not_hide_pii() {
    let db = demo_db("notation");
    let gw = demo_gw();
    let cases = [
        "SELECT c.to_jsonb FROM customers c WHERE id = 1",
        "SELECT customers.row_to_json FROM customers WHERE id = 1",
        "SELECT public.customers.to_json FROM customers WHERE id = 1",
        "SELECT v.to_json FROM customer_contacts v WHERE v.name = 'Customer 1'",
        "SELECT concat(count(*) OVER (PARTITION BY EXISTS (SELECT 1)), ':', email) FROM customers WHERE id = 1",
        "SELECT sum(1) FILTER (WHERE EXISTS (SELECT 1)) || email FROM customers WHERE id = 1 GROUP BY email",
        "SELECT row_number() OVER (ORDER BY id IN (SELECT 1)) || email FROM customers WHERE id = 1",
    ];
    for sql in cases {
        assert!(db.exec(sql).contains("customer1@example.com"), "{sql}");
        let (out, err) = agent_sql(&gw, &db, sql);
        assert!(err.contains("airlock"), "{sql}: out={out:?} err={err:?}");
        assert!(!out.contains("customer1@example.com"), "{sql}: {out}");
        let (_, d) = gw
            .decisions()
            .into_iter()
            .rfind(|(_, d)| d.sql == sql)
            .expect("audited");
        assert_ne!(d.decision.action, Action::Allow, "{sql}");
    }
    // A real column through the same notation is still an ordinary read.
    let (out, err) = agent_sql(&gw, &db, "SELECT o.total FROM orders o WHERE o.id = 1");
    assert!(err.is_empty(), "{err}");
    assert!(!out.trim().is_empty());
}

/// In reporting mode, the mask resolves names as PostgreSQL folds them: an unquoted `É` is
/// the column "É" (only ASCII letters are lowered), here the email.
#[test]
fn masking_folds_names_like_postgresql() {
    let db = demo_db("mask_fold");
    let gw = demo_gw();
    let url = format!("{}&application_name=reporting-daily", gw.url(&db.name));
    let sql = r#"SELECT É FROM (SELECT email AS "É", name AS "é" FROM customers WHERE id = 1) s"#;
    assert_eq!(db.exec(sql).trim(), "customer1@example.com");
    let out = psql(&url, &["-At", "-c", sql], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("customer1@example.com"), "{text}");
    assert_eq!(text.trim(), "c***@example.com");
}

/// Thousands of relations by hundreds of names cost quadratic time to analyze before; the
/// statement is now held at once as not understood, and the gateway keeps answering.
#[test]
fn a_statement_naming_thousands_of_relations_is_held_at_once() {
    let db = demo_db("many_relations");
    let gw = demo_gw();
    let from: Vec<String> = (0..16_000).map(|i| format!("x{i}")).collect();
    let sql = format!(
        "SELECT {} FROM {}",
        vec!["a"; 200].join(", "),
        from.join(", ")
    );
    let (out, err) = agent_sql(&gw, &db, &sql);
    assert!(err.contains("airlock"), "out={out:?} err={err:?}");
    let (_, d) = gw
        .decisions()
        .into_iter()
        .rfind(|(_, d)| d.sql.starts_with("SELECT a, a"))
        .expect("audited");
    assert_eq!(d.facts[0].kind.as_str(), "unknown");
    assert!(
        d.facts[0].label.contains("more than 1000 relations"),
        "{}",
        d.facts[0].label
    );
    assert_eq!(agent_sql(&gw, &db, "SELECT 1").0.trim(), "1");
}

/// `o.name` where the snapshot lists no column `name` is judged as the call `name(o)`; a
/// column added on the server since is found by the live comparison that asks for, and the
/// reference is then decided as the column it is: a plain column is read, a PII one held.
#[test]
fn a_qualified_column_added_after_the_snapshot_is_decided_as_a_column() {
    let db = demo_db("late_qualified");
    let (_policy, gw) = card_number_gw("");
    // The first session reads the snapshot.
    assert_eq!(agent_sql(&gw, &db, "SELECT 1").0.trim(), "1");
    db.exec("ALTER TABLE orders ADD COLUMN note text; UPDATE orders SET note = 'hello'");
    add_card_number_out_of_band(&db);

    let sql = "SELECT o.note FROM orders o WHERE o.id = 1";
    let (out, err) = agent_sql(&gw, &db, sql);
    assert!(err.is_empty(), "{err}");
    assert_eq!(out.trim(), "hello");
    let (action, outputs) = last_facts(&gw, sql);
    assert_eq!(action, Action::Allow);
    assert_eq!(outputs, ["public.orders.note"]);

    let sql = "SELECT o.card_number FROM orders o WHERE o.id = 1";
    let (out, err) = agent_sql(&gw, &db, sql);
    assert!(!out.contains("4111111111111111"), "{out}");
    assert!(err.contains("denied"), "{err}");
    let (_, d) = gw
        .decisions()
        .into_iter()
        .rfind(|(_, d)| d.sql == sql)
        .expect("audited");
    assert_eq!(d.decision.action, Action::Hold);
    assert!(!d.facts[0].flags.unsafe_function, "{:?}", d.facts[0]);
    let outputs: Vec<String> = d.facts[0]
        .output_columns
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(outputs, ["public.orders.card_number"]);
}

/// A recursive CTE nested `depth` times in the recursive term of another: each level needs
/// about nine rounds to settle, and the rounds of the levels multiply.
fn nested_recursive(depth: usize) -> String {
    let inner = if depth == 0 {
        "SELECT 1".to_owned()
    } else {
        nested_recursive(depth - 1)
    };
    format!(
        "WITH RECURSIVE r(a1, a2, a3, a4, a5, a6, a7, a8, n) AS (\
         SELECT name, '', '', '', '', '', '', '', 0 FROM products UNION ALL \
         SELECT '', a1, a2, a3, a4, a5, a6, a7, n + 1 FROM r WHERE n < 8 AND EXISTS ({inner})) \
         SELECT a8 FROM r"
    )
}

/// Under `WITH RECURSIVE` a CTE may name one defined after it, and a value may travel along
/// more columns than a fixed number of rounds follows: both returned SSNs as ordinary reads.
/// Nested recursive CTEs froze every session of the gateway (2 KB of SQL, minutes of
/// analysis, gigabytes of memory); four such statements at once are now held as too complex
/// while another session is answered.
#[test]
fn recursive_ctes_cannot_hide_pii_or_stall_the_gateway() {
    let db = demo_db("recursive_ctes");
    let gw = demo_gw();
    let ssn = db.exec("SELECT ssn FROM customers WHERE id = 1");
    let ssn = ssn.trim();
    let leaks = [
        "WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT name, ssn FROM customers WHERE id = 1) SELECT * FROM a",
        "WITH RECURSIVE r(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, n) AS (\
         SELECT ssn, '', '', '', '', '', '', '', '', '', '', '', 0 FROM customers WHERE id = 1 UNION ALL \
         SELECT '', a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, n + 1 FROM r WHERE n < 11) \
         SELECT a12 FROM r WHERE n = 11",
    ];
    for sql in leaks {
        assert!(db.exec(sql).contains(ssn), "{sql}");
        let (out, err) = agent_sql(&gw, &db, sql);
        assert!(err.contains("airlock"), "{sql}: out={out:?} err={err:?}");
        assert!(!out.contains(ssn), "{sql}: {out}");
        let (_, d) = gw
            .decisions()
            .into_iter()
            .rfind(|(_, d)| d.sql == sql)
            .expect("audited");
        assert_eq!(d.decision.action, Action::Hold, "{sql}");
        let outputs: Vec<String> = d.facts[0]
            .output_columns
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(
            outputs.contains(&"public.customers.ssn".to_owned()),
            "{outputs:?}"
        );
    }

    let nested = nested_recursive(10);
    let sessions: Vec<_> = (0..4)
        .map(|_| {
            let url = gw.url(&db.name);
            let sql = nested.clone();
            std::thread::spawn(move || {
                let out = psql(&url, &["-At", "-c", &sql], None);
                (stdout(&out), stderr(&out))
            })
        })
        .collect();
    assert_eq!(agent_sql(&gw, &db, "SELECT 1").0.trim(), "1");
    for s in sessions {
        let (out, err) = s.join().expect("session thread");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("airlock"), "{err}");
    }
    let held: Vec<_> = gw
        .decisions()
        .into_iter()
        .filter(|(_, d)| d.sql == nested)
        .collect();
    assert_eq!(held.len(), 4);
    for (_, d) in held {
        assert_eq!(d.facts[0].kind.as_str(), "unknown");
        assert!(
            d.facts[0].label.contains("too complex to analyze"),
            "{}",
            d.facts[0].label
        );
    }
    // Two levels are still analyzed to the end: an ordinary read of products.
    let (out, err) = agent_sql(&gw, &db, &nested_recursive(2));
    assert!(err.is_empty(), "{err}");
    assert!(!out.trim().is_empty());
}

/// A temporary relation shadows the catalog's relation of the same name for unqualified names
/// (PostgreSQL searches the session's temporary schema first), and the catalog snapshot never
/// holds it: after one approved `CREATE TEMP VIEW products AS SELECT … ssn …`, every plain
/// read of `products` returned SSNs as an allowed read of public.products. Such reads are now
/// held, and the approver is shown the temporary relation as the target of the CREATE.
#[test]
fn a_temporary_relation_cannot_pass_for_the_table_it_shadows() {
    let db = demo_db("temp_shadow");
    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    gw.auto_decide("alice", |sql| sql.starts_with("CREATE TEMP VIEW"));
    let ssn = db.exec("SELECT ssn FROM customers WHERE id = 1");
    let ssn = ssn.trim().to_owned();
    let create =
        "CREATE TEMP VIEW products AS SELECT id, ssn AS name, 1::numeric AS price FROM customers";
    let read = "SELECT name FROM products WHERE id = 1";
    let out = psql(
        &gw.url(&db.name),
        &[
            "-At",
            "-c",
            create,
            "-c",
            read,
            "-c",
            "SELECT id FROM orders WHERE id = 1",
            "-c",
            "SELECT 'temp:' || count(*) FROM pg_class WHERE relname = 'products' AND relpersistence = 't'",
        ],
        None,
    );
    let (out, err) = (stdout(&out), stderr(&out));
    assert!(!out.contains(&ssn), "out={out:?} err={err:?}");
    assert!(err.contains("airlock"), "{err}");
    // The CREATE ran (approved) and showed the approver the temporary view.
    let decisions = gw.decisions();
    let (_, made) = decisions
        .iter()
        .rfind(|(_, d)| d.sql == create)
        .expect("audited");
    let written: Vec<String> = made.facts[0]
        .tables_written
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(written, ["pg_temp.products"]);
    // The read through it was held, not allowed as a read of public.products.
    let (_, d) = decisions
        .iter()
        .rfind(|(_, d)| d.sql == read)
        .expect("audited");
    assert_eq!(d.decision.action, Action::Hold);
    assert_eq!(d.facts[0].kind.as_str(), "unknown");
    assert!(
        d.facts[0].label.contains("temporary relation"),
        "{}",
        d.facts[0].label
    );
    // Other tables of the same session are read as before, and the view was made.
    assert!(out.lines().any(|l| l == "1"), "{out}");
    assert!(out.lines().any(|l| l == "temp:1"), "{out} {err}");
    // In a new session, products is the catalog's table again.
    let (out, err) = agent_sql(&gw, &db, read);
    assert!(err.is_empty(), "{err}");
    assert!(!out.contains(&ssn));
}

/// A demo database with two plpgsql functions the policy lists as safe, each of which opens a
/// refcursor over customers' SSNs under the name its caller gives: `open_customers` opens it,
/// `reopen_customers` closes the cursor of that name first. The gateway denies what it holds.
struct RefcursorGw {
    db: TestDb,
    gw: Gw,
    /// The first customer's SSN, which must never come back through the gateway.
    ssn: String,
    _policy_dir: tempfile::TempDir,
}

fn refcursor_gateway(label: &str) -> RefcursorGw {
    let db = demo_db(label);
    db.exec(
        "CREATE FUNCTION open_customers(refcursor) RETURNS refcursor LANGUAGE plpgsql AS \
         $$ BEGIN OPEN $1 FOR SELECT ssn FROM customers; RETURN $1; END $$;",
    );
    db.exec(
        "CREATE FUNCTION reopen_customers(c refcursor) RETURNS refcursor LANGUAGE plpgsql AS \
         $$ BEGIN CLOSE c; OPEN c FOR SELECT ssn FROM customers; RETURN c; END $$;",
    );
    let ssn = db
        .exec("SELECT ssn FROM customers WHERE id = 1")
        .trim()
        .to_string();
    assert!(!ssn.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let mut text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    text.push_str(
        "\n[functions]\nsafe = [\"public.open_customers\", \"public.reopen_customers\"]\n",
    );
    std::fs::write(&policy, text).unwrap();
    let gw = Gw::start(|c| c.policy.path = policy.clone());
    gw.auto_deny("alice");
    RefcursorGw {
        db,
        gw,
        ssn,
        _policy_dir: dir,
    }
}

/// A cursor the session did not declare hides the query behind it: here a function the
/// policy lists as safe opens a refcursor over customers' SSNs. Calling it is allowed, but
/// reading the cursor is held (and denied), so no SSN comes back; a cursor the session
/// declared itself is read as its DECLARE was decided.
#[test]
fn reading_a_cursor_the_session_did_not_declare_is_held() {
    let RefcursorGw {
        db,
        gw,
        ssn,
        _policy_dir,
    } = refcursor_gateway("refcursor");
    let out = psql(
        &gw.url(&db.name),
        &[
            "-At",
            "-c",
            "BEGIN",
            "-c",
            "SELECT open_customers('leak')",
            "-c",
            "FETCH ALL FROM leak",
            "-c",
            "ROLLBACK",
            "-c",
            "BEGIN",
            "-c",
            "DECLARE mine CURSOR FOR SELECT id FROM orders ORDER BY id",
            "-c",
            "FETCH 1 FROM mine",
            "-c",
            "COMMIT",
        ],
        None,
    );
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    assert!(
        stdout.contains("leak"),
        "the call itself is allowed: {stdout} {stderr}"
    );
    assert!(!stdout.contains(&ssn), "an SSN came back: {stdout}");
    assert!(stderr.contains("airlock"), "{stderr}");
    let first_order = db.exec("SELECT min(id) FROM orders").trim().to_string();
    assert!(
        stdout.lines().any(|l| l == first_order),
        "the declared cursor is read: {stdout} {stderr}"
    );
    let decisions = gw.decisions();
    let fetch = decisions
        .iter()
        .find(|(_, d)| d.sql == "FETCH ALL FROM leak")
        .expect("the FETCH is audited");
    assert_eq!(fetch.1.facts[0].label, airlock::sql::UNVOUCHED_FETCH);
    assert_ne!(fetch.1.decision.action, Action::Allow);
    let mine = decisions
        .iter()
        .find(|(_, d)| d.sql == "FETCH 1 FROM mine")
        .expect("audited");
    assert_eq!(mine.1.decision.action, Action::Allow);
}

/// A name the session once declared is no proof of what a FETCH of it reads now. Each session
/// below frees or never takes the name `leak`, then has a function the policy lists as safe open
/// a refcursor over customers' SSNs under it: the DECLARE was refused, its transaction
/// committed, a savepoint it was declared after was rolled back, or a safe function closed
/// and reopened it. Every FETCH is held (and denied), and no SSN comes back.
#[test]
fn a_declared_name_does_not_vouch_for_a_cursor_that_replaced_it() {
    let RefcursorGw {
        db,
        gw,
        ssn,
        _policy_dir,
    } = refcursor_gateway("refcursor_reuse");
    let sessions: [&[&str]; 4] = [
        // The DECLARE is held and denied: it never took the name. (Refused inside a
        // transaction, it would fail the transaction.)
        &[
            "DECLARE leak CURSOR FOR SELECT ssn FROM customers",
            "BEGIN",
            "SELECT open_customers('leak')",
            "FETCH ALL FROM leak",
            "ROLLBACK",
        ],
        // The cursor closed with its transaction.
        &[
            "BEGIN",
            "DECLARE leak CURSOR FOR SELECT 1",
            "COMMIT",
            "BEGIN",
            "SELECT open_customers('leak')",
            "FETCH ALL FROM leak",
            "ROLLBACK",
        ],
        // Closed by the rollback to a savepoint, all in one Query.
        &[
            "BEGIN; SAVEPOINT s; DECLARE leak CURSOR FOR SELECT 1; ROLLBACK TO s; \
           SELECT open_customers('leak'); FETCH ALL FROM leak; COMMIT",
        ],
        // Replaced by a function.
        &[
            "BEGIN",
            "DECLARE leak CURSOR FOR SELECT 1",
            "SELECT reopen_customers('leak')",
            "FETCH ALL FROM leak",
            "ROLLBACK",
        ],
    ];
    for commands in sessions {
        let mut args = vec!["-At"];
        for c in commands {
            args.extend(["-c", c]);
        }
        let out = psql(&gw.url(&db.name), &args, None);
        let (stdout, stderr) = (stdout(&out), stderr(&out));
        assert!(
            !stdout.contains(&ssn),
            "an SSN came back after {commands:?}: {stdout}"
        );
        assert!(stderr.contains("airlock"), "{commands:?}: {stderr}");
    }
    // The function calls themselves were allowed: the FETCH is what was held.
    let decisions = gw.decisions();
    let calls = decisions
        .iter()
        .filter(|(_, d)| {
            d.sql.starts_with("SELECT open_customers")
                || d.sql.starts_with("SELECT reopen_customers")
        })
        .filter(|(_, d)| d.decision.action == Action::Allow)
        .count();
    assert_eq!(calls, 3, "{decisions:#?}");
    let fetches: Vec<_> = decisions
        .iter()
        .filter(|(_, d)| d.sql == "FETCH ALL FROM leak")
        .collect();
    assert_eq!(fetches.len(), 3, "{decisions:#?}");
    for (_, d) in &fetches {
        assert_eq!(d.facts[0].label, airlock::sql::UNVOUCHED_FETCH);
        assert_ne!(d.decision.action, Action::Allow);
    }
    let one_query = decisions
        .iter()
        .find(|(_, d)| d.sql.contains("ROLLBACK TO s"))
        .expect("the one-Query session is audited");
    assert_eq!(one_query.1.facts[5].label, airlock::sql::UNVOUCHED_FETCH);
    assert_ne!(one_query.1.decision.action, Action::Allow);
}

/// A `WITH HOLD` cursor outlives the transaction that declared it when that commits: it is
/// read as declared afterwards, until an error (which may have been the rollback of the
/// transaction that declared it) makes the gateway stop vouching for it.
#[test]
fn a_held_cursor_is_read_as_declared_after_its_transaction_commits() {
    let db = demo_db("held_cursor");
    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    gw.auto_deny("alice");
    let out = psql(
        &gw.url(&db.name),
        &[
            "-At",
            "-c",
            "DECLARE h CURSOR WITH HOLD FOR SELECT id FROM orders ORDER BY id",
            "-c",
            "FETCH 1 FROM h",
            "-c",
            "BEGIN",
            "-c",
            "COMMIT",
            "-c",
            "FETCH 1 FROM h",
            "-c",
            "SELECT 1/0",
            "-c",
            "FETCH 1 FROM h",
        ],
        None,
    );
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    let first_two = db.exec("SELECT id FROM orders ORDER BY id LIMIT 2");
    let ids: Vec<&str> = first_two.lines().map(str::trim).collect();
    assert!(
        stdout.lines().any(|l| l == ids[0]) && stdout.lines().any(|l| l == ids[1]),
        "both reads after the commit came back: {stdout} {stderr}"
    );
    assert!(stderr.contains("division by zero"), "{stderr}");
    let fetches: Vec<_> = gw
        .decisions()
        .into_iter()
        .filter(|(_, d)| d.sql == "FETCH 1 FROM h")
        .map(|(_, d)| d.decision.action)
        .collect();
    assert_eq!(fetches, [Action::Allow, Action::Allow, Action::Hold]);
}

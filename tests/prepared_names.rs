//! Parse and SQL `PREPARE` share one namespace on the server: a Bind may name a statement the
//! session prepared in SQL. Such a Bind runs the SQL definition, so it is decided and audited
//! as `EXECUTE name`, never as the text of a Parse the server refused, nor as nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn a_bind_to_a_statement_prepared_in_sql_is_decided_as_execute() {
    let db = TestDb::new("prepared_names");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let email = db
        .exec("SELECT email FROM customers ORDER BY id LIMIT 1")
        .trim()
        .to_string();
    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    let email3 = db
        .exec("SELECT email FROM customers WHERE id = 3")
        .trim()
        .to_string();
    // The approver lets the preparations through, and nothing else.
    gw.auto_decide("alice", |sql| {
        sql.starts_with("PREPARE export") || sql == "SELECT email FROM customers WHERE id = $1::int"
    });
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/psycopg_prepared_names.py");
    let out = Command::new(python_with("psycopg"))
        .arg(script)
        .arg(gw.url(&db.name))
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let text = v.to_string();
    assert_eq!(
        v["plain_bound"]["rows"],
        serde_json::json!([["Product 2"]]),
        "{text}"
    );
    assert_eq!(
        v["export_prepare"],
        serde_json::json!({"rows": []}),
        "{text}"
    );
    // Running the approved preparation is an export of its own, held and here denied.
    assert_eq!(v["export_bound"]["error"], "42501", "{text}");
    assert_eq!(v["export_reparse"]["error"], "42P05", "{text}");
    assert_eq!(v["export_bound_again"]["error"], "42501", "{text}");
    assert!(!text.contains(&email), "{email} returned: {text}");
    // A Parse refused because the name is taken does not replace the approved text.
    assert_eq!(v["byid_parse"], serde_json::json!({"rows": []}), "{text}");
    assert_eq!(v["byid_reparse"]["error"], "42P05", "{text}");
    assert_eq!(v["byid_bound"]["error"], "42501", "{text}");
    assert!(!text.contains(&email3), "{email3} returned: {text}");
    // Not prepared anywhere: held as unknown, denied.
    assert_eq!(v["nobody"]["error"], "42501", "{text}");
    // The audit names what ran.
    let sqls: Vec<String> = gw.decisions().into_iter().map(|(_, d)| d.sql).collect();
    for expected in [
        "EXECUTE \"plain\"",
        "EXECUTE \"export\"",
        "SELECT 1;\nEXECUTE \"export\"",
        "SELECT email FROM customers WHERE id = $1::int;\nSELECT 1",
    ] {
        assert!(
            sqls.iter().any(|s| s.contains(expected)),
            "{expected:?} not audited: {sqls:#?}"
        );
    }
    assert!(
        !sqls.iter().any(|s| s.is_empty()),
        "an empty statement audited: {sqls:#?}"
    );
}

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
    // The approver lets the preparations through, and nothing else: the protocol-level one
    // once (its later run is judged by the same text, and is a new request).
    static BYID_APPROVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    gw.auto_decide("alice", |sql| {
        sql.starts_with("PREPARE export")
            || (sql == "SELECT email FROM customers WHERE id = $1::int"
                && !BYID_APPROVED.swap(true, std::sync::atomic::Ordering::SeqCst))
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
    // The audit names what ran. The re-Parses the server refused (the names are taken) were
    // never confirmed, so the later Binds are judged (and audited) as what the names hold:
    // the SQL definition, and the approved text alone.
    let sqls: Vec<String> = gw.decisions().into_iter().map(|(_, d)| d.sql).collect();
    assert!(sqls.iter().any(|s| s == "EXECUTE \"plain\""), "{sqls:#?}");
    assert_eq!(
        sqls.iter().filter(|s| *s == "EXECUTE \"export\"").count(),
        2,
        "both runs of the export: {sqls:#?}"
    );
    let byid = "SELECT email FROM customers WHERE id = $1::int";
    assert_eq!(
        sqls.iter().filter(|s| *s == byid).count(),
        2,
        "the Parse and the later Bind: {sqls:#?}"
    );
    assert!(
        !sqls
            .iter()
            .any(|s| s.contains(byid) && s.contains("SELECT 1")),
        "the refused re-Parse was taken for the statement: {sqls:#?}"
    );
    assert!(
        !sqls.iter().any(|s| s.is_empty()),
        "an empty statement audited: {sqls:#?}"
    );
}

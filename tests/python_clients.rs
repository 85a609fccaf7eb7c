//! Python drivers (psycopg 3 and asyncpg) through the gateway see what they see directly.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn run(module: &str, script: &str, url: &str) -> serde_json::Value {
    let py = python_with(module);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = Command::new(py)
        .arg(path)
        .arg(url)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client prints JSON")
}

/// What the client saw (the same directly and through the gateway), and the gateway's
/// decision records.
fn compare(
    module: &str,
    script: &str,
    label: &str,
) -> (serde_json::Value, Vec<airlock::audit::DecisionEntry>) {
    let direct_db = TestDb::new(&format!("{label}_direct"));
    let gw_db = TestDb::new(&format!("{label}_gw"));
    let gw = Gw::start(|_| {});
    let direct = run(module, script, &direct_db.direct_url());
    let via = run(module, script, &gw.url(&gw_db.name));
    assert_eq!(via, direct);
    (via, gw.decisions().into_iter().map(|(_, d)| d).collect())
}

#[test]
fn psycopg3_parameters_prepare_and_copy() {
    let (out, decisions) = compare("psycopg", "psycopg_client.py", "psycopg");
    assert_eq!(out["count"], 70);
    assert_eq!(out["error"], "22012");
    assert_eq!(out["prepared"].as_array().unwrap().len(), 7);
    // The named cursor's FETCHes read the cursor its DECLARE declared: plain reads, which a
    // policy holding `unknown` would let through too (this one allows everything).
    assert_eq!(out["named_cursor"].as_array().unwrap().len(), 20);
    let fetches: Vec<_> = decisions
        .iter()
        .filter(|d| d.sql.starts_with("FETCH") && d.sql.contains("people_chunks"))
        .collect();
    assert!(fetches.len() >= 3, "{decisions:#?}");
    for f in &fetches {
        assert_eq!(f.facts[0].kind, airlock::sql::Kind::Read, "{f:#?}");
    }
    assert_eq!(out["copy_out"].as_array().unwrap().len(), 50);
    assert_eq!(
        out["extended_copy_in"],
        serde_json::json!(["COPY_IN", ["COMMAND_OK", "COPY 10"]])
    );
    let copied = out["extended_copy_out"].as_array().unwrap();
    assert_eq!(copied.first(), Some(&serde_json::json!("COPY_OUT")));
    assert_eq!(copied[1], "200\tlibpq 200\n");
    assert_eq!(
        copied.last(),
        Some(&serde_json::json!(["COMMAND_OK", "COPY 10"]))
    );
    assert_eq!(
        out["extended_copy_error"],
        serde_json::json!([["FATAL_ERROR", "23505"], "10"])
    );
    // libpq sent those COPYs over the extended protocol, and each was audited as such.
    let extended_copies = decisions
        .iter()
        .filter(|d| d.protocol == airlock::audit::Protocol::Extended && d.sql.starts_with("COPY"))
        .count();
    assert_eq!(extended_copies, 3, "{decisions:#?}");
}

#[test]
fn asyncpg_fetch_prepare_transactions() {
    let (out, _) = compare("asyncpg", "asyncpg_client.py", "asyncpg");
    assert_eq!(out["count"], 30);
    assert_eq!(out["error"], "22012");
    assert_eq!(out["labels"], serde_json::json!(["changed", "thing 2"]));
}

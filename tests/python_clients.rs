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

fn compare(module: &str, script: &str, label: &str) -> serde_json::Value {
    let direct_db = TestDb::new(&format!("{label}_direct"));
    let gw_db = TestDb::new(&format!("{label}_gw"));
    let gw = Gw::start(|_| {});
    let direct = run(module, script, &direct_db.direct_url());
    let via = run(module, script, &gw.url(&gw_db.name));
    assert_eq!(via, direct);
    via
}

#[test]
fn psycopg3_parameters_prepare_and_copy() {
    let out = compare("psycopg", "psycopg_client.py", "psycopg");
    assert_eq!(out["count"], 70);
    assert_eq!(out["error"], "22012");
    assert_eq!(out["prepared"].as_array().unwrap().len(), 7);
    assert_eq!(out["copy_out"].as_array().unwrap().len(), 50);
}

#[test]
fn asyncpg_fetch_prepare_transactions() {
    let out = compare("asyncpg", "asyncpg_client.py", "asyncpg");
    assert_eq!(out["count"], 30);
    assert_eq!(out["error"], "22012");
    assert_eq!(out["labels"], serde_json::json!(["changed", "thing 2"]));
}

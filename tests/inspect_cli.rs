//! The built `airlock audit` binary: exit codes, colour, and a closed pipe, over a store
//! generated through the library.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use airlock::audit::{
    Audit, AuditConfig, DecisionEntry, Durability, OutcomeEntry, Protocol, RunResult, SessionInfo,
    SledStore,
};
use airlock::policy::{Action, Decision};
use airlock::sql::{Facts, Kind, TableRef};

fn entry(i: usize) -> DecisionEntry {
    let mut facts = Facts::unknown("SELECT");
    facts.kind = Kind::Read;
    facts.tables_read.push(TableRef {
        schema: "public".into(),
        name: "orders".into(),
    });
    let mut decision = Decision::fail_closed("generated");
    decision.action = if i % 10 == 0 {
        Action::Hold
    } else {
        Action::Allow
    };
    decision.rule_id = "default.read".into();
    DecisionEntry {
        session: SessionInfo {
            session_id: format!("s{}", i % 7),
            client_addr: "127.0.0.1:40000".into(),
            user: if i % 2 == 0 { "alice" } else { "bob" }.into(),
            application_name: "agent".into(),
            database: "shop".into(),
        },
        protocol: Protocol::Extended,
        sql: format!("SELECT id, total FROM orders WHERE customer_id = {i}"),
        rewritten_sql: None,
        params: vec![],
        fingerprint: "SELECT id, total FROM orders WHERE customer_id = $1".into(),
        facts: vec![facts],
        decision,
        outcome: None,
    }
}

/// A stopped gateway's store with `n` statements and their outcomes.
fn generate(dir: &Path, n: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = AuditConfig {
            path: dir.to_owned(),
            durability: Durability::Batched,
            flush_interval_ms: 10,
            ..AuditConfig::default()
        };
        let (audit, writer) = Audit::open(&cfg).await.unwrap();
        for i in 0..n {
            let id = audit.decision(entry(i)).await.unwrap();
            // Appended before its outcome arrives, so every outcome is a record of its own
            // (otherwise it would be folded into a decision still queued, as timing allows).
            audit.settle().await;
            audit
                .outcome(&OutcomeEntry {
                    decision_id: id,
                    result: RunResult {
                        tags: vec!["SELECT 1".into()],
                        error: None,
                        rows: 1,
                        duration_us: 100,
                    },
                })
                .unwrap();
        }
        audit.shutdown().await;
        writer.wait().await.unwrap();
    });
}

fn airlock() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlock"));
    c.env_remove("NO_COLOR")
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_AUDIT_STORE")
        .env_remove("AIRLOCK_ADMIN_TOKEN")
        .env_remove("AIRLOCK_TOKEN");
    c
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = airlock().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_is_success() {
    let dir = tempfile::tempdir().unwrap();
    // Far more output than a pipe buffer holds, so writes keep failing after `head` exits.
    generate(dir.path(), 3000);
    let mut grep = airlock()
        .args([
            "audit",
            "--store",
            dir.path().to_str().unwrap(),
            "grep",
            "orders",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let head = Command::new("head")
        .arg("-1")
        .stdin(grep.stdout.take().unwrap())
        .output()
        .unwrap();
    let status = grep.wait().unwrap();
    let mut stderr = String::new();
    grep.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&head.stdout).lines().count(), 1);
    assert!(String::from_utf8_lossy(&head.stdout).contains("customer_id = 0"));
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn exit_codes_colour_and_json() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 50);
    let store = dir.path().to_str().unwrap();

    let (code, out, _) = run(&[
        "audit",
        "--store",
        store,
        "grep",
        "-c",
        "--decision",
        "hold",
        "orders",
    ]);
    assert_eq!((code, out.as_str()), (0, "5\n"));
    let (code, out, _) = run(&["audit", "--store", store, "grep", "nothing matches this"]);
    assert_eq!((code, out.as_str()), (1, ""));
    let (code, _, err) = run(&["audit", "--store", store, "grep", "("]);
    assert_eq!(code, 2);
    assert!(err.contains("pattern"), "{err}");
    let (code, _, _) = run(&["audit", "--store", store, "grep", "--no-such-flag", "x"]);
    assert_eq!(code, 2, "usage errors exit 2");

    // Piped output has no colour unless forced, and NO_COLOR does not beat --color always.
    let (_, plain, _) = run(&["audit", "--store", store, "grep", "customer_id = 7$"]);
    assert!(
        !plain.contains('\x1b') && plain.contains("customer_id = 7"),
        "{plain}"
    );
    let forced = airlock()
        .args([
            "audit",
            "--store",
            store,
            "--color",
            "always",
            "grep",
            "customer_id = 7$",
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&forced.stdout).contains("\x1b["));

    let (code, out, _) = run(&[
        "audit",
        "--store",
        store,
        "grep",
        "-o",
        "json",
        "--user",
        "bob",
        "customer_id = 1[0-9]$",
    ]);
    assert_eq!(code, 0);
    let users: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["user"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(users.len(), 5); // 11, 13, 15, 17, 19
    assert!(users.iter().all(|u| u == "bob"));

    let (code, out, _) = run(&["audit", "--store", store, "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 100 records"), "{out}");
}

#[test]
fn verify_through_the_binary_fails_on_a_deleted_record() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 20);
    {
        let store = SledStore::open_existing(dir.path()).unwrap();
        store.tamper_remove(17).unwrap();
    }
    let (code, out, _) = run(&["audit", "--store", dir.path().to_str().unwrap(), "verify"]);
    assert_eq!(code, 1);
    assert!(out.contains("BROKEN: missing at seq 17"), "{out}");
}

//! Invariant 6: a `kill -9` at any moment leaves an audit chain that verifies, and nothing the
//! writer reported durable is lost.
//!
//! The test re-runs its own binary as a child writer (the `#[ignore]`d `crash_child` below,
//! selected with an environment variable), kills it with SIGKILL while many tasks append, and
//! checks the store; three times, so recovery after a crash is itself crashed into.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use airlock::audit::{
    verify, Audit, AuditConfig, AuditStore, DecisionEntry, Durability, Protocol, SessionInfo,
    SledStore,
};
use airlock::policy::Decision;
use airlock::sql::Facts;

const CHILD_ENV: &str = "AIRLOCK_CRASH_CHILD_STORE";

fn entry(task: usize, i: usize) -> DecisionEntry {
    DecisionEntry {
        session: SessionInfo {
            session_id: format!("task{task}"),
            ..SessionInfo::default()
        },
        protocol: Protocol::Simple,
        sql: format!("INSERT INTO t VALUES ({task}, {i})"),
        rewritten_sql: None,
        params: vec![],
        fingerprint: "INSERT INTO t VALUES ($1, $2)".into(),
        facts: vec![Facts::unknown("INSERT")],
        decision: Decision::fail_closed("crash test"),
        outcome: None,
    }
}

/// The child: appends from 16 tasks until killed; after each explicit flush, prints the id it
/// knows to be durable.
#[test]
#[ignore = "child process of crash_at_any_moment_leaves_a_verifiable_chain"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let cfg = AuditConfig {
            path: dir.into(),
            durability: Durability::Batched,
            flush_interval_ms: 2,
            // The smallest page cache: sled evicts while it is being killed.
            cache_mb: 1,
        };
        let (audit, _writer) = Audit::open(&cfg).await.unwrap();
        for task in 0..16 {
            let audit = audit.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    if audit.decision(entry(task, i)).await.is_err() {
                        return;
                    }
                }
            });
        }
        loop {
            let id = audit.decision(entry(99, 0)).await.unwrap();
            audit.flush().await.unwrap();
            println!("durable {id}");
        }
    });
}

#[test]
fn crash_at_any_moment_leaves_a_verifiable_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut total_before = 0;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut durable = Vec::new();
        // Kill at a different point each round.
        while durable.len() < 20 + round * 15 {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(id) = line.strip_prefix("durable ") {
                durable.push(id.to_owned());
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = SledStore::open_existing(dir.path()).unwrap();
        let report = verify(&store).unwrap();
        assert!(report.ok(), "round {round}: {report:?}");
        for id in &durable {
            assert!(
                store.seq_of_id(id).unwrap().is_some(),
                "round {round}: {id} was reported durable and is gone"
            );
        }
        assert!(
            report.records > total_before,
            "round {round} appended nothing"
        );
        total_before = report.records;
        assert_eq!(store.last().unwrap().unwrap().seq, report.records);
    }
}

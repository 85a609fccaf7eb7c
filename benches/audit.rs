//! Audit benchmarks: appends through the writer (batched and strict group commit), and the
//! inspector's grep over a store of 1M records (`AIRLOCK_BENCH_RECORDS` to change the size).
//!
//! The 1M-record store is generated once through the real writer and kept under
//! `target/airlock-bench/` for later runs; generating it prints the sustained append rate.
//! Sample sizes are criterion's minimum so `cargo bench` stays short.

/// The allocator the `airlock` binary ships with, so the figures are the server's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use airlock::audit::{
    Audit, AuditConfig, AuditHandle, AuditStore, DecisionEntry, Durability, OutcomeEntry, Protocol,
    Record, RunResult, SessionInfo, SledStore,
};
use airlock::inspect::filter::{Filter, FilterSpec};
use airlock::inspect::query;
use airlock::policy::{Action, Decision};
use airlock::sql::{Facts, Kind, TableRef};

fn entry(i: u64) -> DecisionEntry {
    let mut facts = Facts::unknown("SELECT");
    facts.kind = Kind::Read;
    facts.tables_read.push(TableRef {
        schema: "public".into(),
        name: if i % 3 == 0 { "customers" } else { "orders" }.into(),
    });
    let mut decision = Decision::fail_closed("bench");
    decision.action = Action::Allow;
    decision.rule_id = "default.read".into();
    decision.rule_source = "policies/default.toml:12".into();
    decision.reason = "reads of non-PII tables are allowed".into();
    DecisionEntry {
        session: SessionInfo {
            session_id: format!("s{}", i % 97),
            client_addr: "10.1.2.3:54321".into(),
            user: format!("agent{}", i % 13),
            application_name: "langchain".into(),
            database: "shop".into(),
        },
        protocol: Protocol::Extended,
        sql: format!(
            "SELECT o.id, o.total, o.created_at FROM orders o WHERE o.customer_id = {i} ORDER BY o.created_at DESC LIMIT 20"
        ),
        rewritten_sql: None,
        params: vec![Some(i.to_string())],
        fingerprint: "SELECT o.id, o.total, o.created_at FROM orders o WHERE o.customer_id = $1 ORDER BY o.created_at DESC LIMIT $2".into(),
        facts: vec![facts],
        decision,
        outcome: None,
    }
}

fn outcome(decision_id: String) -> OutcomeEntry {
    OutcomeEntry {
        decision_id,
        result: RunResult {
            tags: vec!["SELECT 20".into()],
            error: None,
            rows: 20,
            duration_us: 812,
        },
    }
}

/// `tasks` sessions each append `per_task` decisions; returns the time until all are in the
/// store.
async fn append_burst(audit: &AuditHandle, tasks: u64, per_task: u64, base: u64) -> Duration {
    let start = Instant::now();
    let mut joins = Vec::new();
    for t in 0..tasks {
        let audit = audit.clone();
        joins.push(tokio::spawn(async move {
            for i in 0..per_task {
                audit
                    .decision(entry(base + t * per_task + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    // Batched decisions return once queued: the burst ends when the store has them all.
    audit.settle().await;
    start.elapsed()
}

fn bench_append(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("audit_append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_secs(1));
    const TASKS: u64 = 64;
    const PER_TASK: u64 = 64;
    group.throughput(Throughput::Elements(TASKS * PER_TASK));
    for (name, durability) in [
        ("batched", Durability::Batched),
        ("strict", Durability::Strict),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuditConfig {
            path: dir.path().to_owned(),
            durability,
            flush_interval_ms: 10,
            ..AuditConfig::default()
        };
        let (audit, writer) = rt.block_on(Audit::open(&cfg)).unwrap();
        let mut base = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(append_burst(&audit, TASKS, PER_TASK, base));
                    base += TASKS * PER_TASK;
                }
                total
            })
        });
        rt.block_on(async {
            audit.shutdown().await;
            writer.wait().await.unwrap();
        });
    }
    group.finish();
}

fn records_wanted() -> u64 {
    std::env::var("AIRLOCK_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A store of at least `n` records written the way a gateway writes them (64 sessions, each
/// statement's outcome sent right after its decision, so most are folded into it), generated
/// once and reused.
fn ensure_store(n: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("airlock-bench")
        .join(format!("statements-{n}"));
    if let Ok(store) = SledStore::open_existing(&dir) {
        if store.last().ok().flatten().is_some_and(|r| r.seq >= n) {
            return dir;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = AuditConfig {
            path: dir.clone(),
            durability: Durability::Batched,
            flush_interval_ms: 10,
            ..AuditConfig::default()
        };
        let (audit, writer) = Audit::open(&cfg).await.unwrap();
        let start = Instant::now();
        const TASKS: u64 = 64;
        const PER_ROUND: u64 = 1024;
        let (mut statements, mut records) = (0, 0);
        while records < n {
            let mut joins = Vec::new();
            for t in 0..TASKS {
                let audit = audit.clone();
                let base = statements + t * PER_ROUND;
                joins.push(tokio::spawn(async move {
                    for i in 0..PER_ROUND {
                        let id = audit.decision(entry(base + i)).await.unwrap();
                        audit.outcome(&outcome(id)).unwrap();
                    }
                }));
            }
            for j in joins {
                j.await.unwrap();
            }
            statements += TASKS * PER_ROUND;
            audit.settle().await;
            records = audit.store().last().unwrap().map_or(0, |r| r.seq);
        }
        audit.shutdown().await;
        writer.wait().await.unwrap();
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "generated {statements} statements as {records} audit records in {secs:.1}s: \
             {:.0} statements/s (batched, 64 sessions)",
            statements as f64 / secs
        );
    });
    dir
}

fn grep(store: &SledStore, spec: &FilterSpec) -> u64 {
    let filter = Filter::compile(spec, 0).unwrap();
    let mut out = std::io::sink();
    let mut n = 0;
    for v in query::statements(store, &filter, true).unwrap() {
        serde_json::to_writer(&mut out, &v.unwrap()).unwrap();
        n += 1;
    }
    n
}

fn bench_grep(c: &mut Criterion) {
    let wanted = records_wanted();
    let dir = ensure_store(wanted);
    let store = SledStore::open_existing(&dir).unwrap();
    let n = store.last().unwrap().unwrap().seq;
    eprintln!("grep over {n} records");
    // The time of the record 99% of the way in: `--since` that should read ~1% of the store.
    let late = store.get(n / 100 * 99).unwrap().unwrap();
    let late_time = Record::decode(late.seq, &late.bytes).unwrap().time;

    let mut group = c.benchmark_group("audit_grep");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(n));
    let rare = FilterSpec {
        pattern: Some(r"customer_id = 4242\d* ".into()),
        ..FilterSpec::default()
    };
    assert!(grep(&store, &rare) > 0);
    group.bench_function(format!("regex_{wanted}_records"), |b| {
        b.iter(|| grep(&store, &rare))
    });
    let filtered = FilterSpec {
        pattern: Some("ORDER BY".into()),
        user: Some("agent7".into()),
        table: Some("customers".into()),
        ..FilterSpec::default()
    };
    group.bench_function(format!("regex_user_table_{wanted}_records"), |b| {
        b.iter(|| grep(&store, &filtered))
    });
    let since = FilterSpec {
        pattern: Some("orders".into()),
        since: Some(late_time),
        ..FilterSpec::default()
    };
    assert!(grep(&store, &since) > 0);
    group.bench_function(format!("since_last_1pct_of_{wanted}_records"), |b| {
        b.iter(|| grep(&store, &since))
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_grep);
criterion_main!(benches);

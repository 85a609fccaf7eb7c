//! Policy evaluation on the statement path: [`Policy::evaluate`] of an already classified query
//! string, as the session calls it after the classifier, against the shipped policies.
//!
//! - `policies/default.toml`: an allowed read (pgbench -S), an allowed write (TPC-B UPDATE) and
//!   a DDL that is held (the hold fills in approvers, quorum and timeout);
//! - `policies/demo.toml`: a PII read from a `reporting` application that is masked, which
//!   parses the statement again to rewrite its select list.
//!
//! Classification is done once, outside the measurement (see the `classify` bench). Expected:
//! allow and hold around a microsecond at most (a scan over a handful of compiled rules); mask
//! parses the statement again, and each masking expression, and prints the rewrite: several
//! times a cold classification.

/// The allocator the `airlock` binary ships with, so the figures are the server's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use airlock::policy::{Action, Policy, RequestContext};
use airlock::sql::{Catalog, Classified, Classifier};

fn load(name: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(name);
    Policy::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn ctx(application_name: &str) -> RequestContext {
    RequestContext {
        user: "agent".into(),
        application_name: application_name.into(),
        database: "shop".into(),
    }
}

/// One measured evaluation, with the action it must come to.
struct Case {
    name: &'static str,
    policy: &'static str,
    app: &'static str,
    sql: &'static str,
    action: Action,
}

const CASES: &[Case] = &[
    Case {
        name: "default: allowed read (pgbench -S)",
        policy: "default.toml",
        app: "pgbench",
        sql: "SELECT abalance FROM pgbench_accounts WHERE aid = 12345",
        action: Action::Allow,
    },
    Case {
        name: "default: allowed write (TPC-B update)",
        policy: "default.toml",
        app: "pgbench",
        sql: "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 12345",
        action: Action::Allow,
    },
    Case {
        name: "default: held DDL (ALTER TABLE)",
        policy: "default.toml",
        app: "langchain",
        sql: "ALTER TABLE orders ADD COLUMN discount numeric(10,2) NOT NULL DEFAULT 0",
        action: Action::Hold,
    },
    Case {
        name: "demo: masked PII read (reporting)",
        policy: "demo.toml",
        app: "reporting",
        sql: "SELECT id, name, email, phone FROM customers WHERE created_at > '2024-01-01' \
              ORDER BY id LIMIT 50",
        action: Action::Mask,
    },
];

fn bench(c: &mut Criterion) {
    let catalog: Arc<Catalog> = Arc::new(common::catalog());
    let mut g = c.benchmark_group("policy/evaluate");
    for case in CASES {
        let policy = load(case.policy);
        let classifier = Classifier::new(catalog.clone(), policy.classifier_options());
        let classified: Arc<Classified> = classifier.classify(case.sql);
        let ctx = ctx(case.app);
        let d = policy.evaluate(&classified, case.sql, &ctx, &catalog);
        assert_eq!(d.action, case.action, "{}: {d:?}", case.name);
        if case.action == Action::Mask {
            assert!(d.rewritten.is_some(), "{}: {d:?}", case.name);
        }
        g.bench_function(case.name, |b| {
            b.iter(|| {
                policy.evaluate(
                    black_box(&classified),
                    black_box(case.sql),
                    black_box(&ctx),
                    &catalog,
                )
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

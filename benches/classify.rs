//! Classification cost on the statement path: text → [`Classified`] against a catalog that knows
//! the pgbench tables and the demo schema.
//!
//! Three situations, for a short OLTP statement (pgbench -S) and for a corpus of realistic
//! statements (pgbench -S/-N/TPC-B, an ORM-style join with LIMIT, INSERT … RETURNING, UPDATE
//! with WHERE, a CTE, BEGIN/COMMIT, SET application_name, ALTER TABLE, a SELECT calling
//! functions):
//! - `cold`: a fresh [`Classifier`] per iteration, so both caches miss: lex, parse, analysis
//!   and the cache inserts, as for the first sight of a text (also with the caches off, for
//!   the parse and analysis alone, and per statement of the corpus, to see where time goes);
//! - `cached`: the same text again (text-cache hit: a hash, a short lock, a compare, an `Arc`);
//! - `other constants`: the same statement with another constant each time (text-cache miss,
//!   fingerprint-cache hit: a lex, a redaction and a copy of the facts, no parse).
//!
//! Goals: cached classification <= 1 µs; cold parse + classify of a short OLTP statement
//! <= 10 µs. The corpus benches report per query string in elements/s.

/// The allocator the `airlock` binary ships with, so the figures are the server's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use airlock::sql::{Catalog, Classified, Classifier, ClassifierOptions, Kind};

const OLTP: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = 12345";

/// Realistic statements with the kind they must classify as (checked before measuring, so a
/// bench never times the `unknown` fallback by mistake).
const CORPUS: &[(&str, Kind)] = &[
    // pgbench -S
    (OLTP, Kind::Read),
    // pgbench TPC-B (-N skips the tellers and branches updates)
    ("BEGIN", Kind::Txn),
    (
        "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 12345",
        Kind::Write,
    ),
    (
        "UPDATE pgbench_tellers SET tbalance = tbalance + -4321 WHERE tid = 7",
        Kind::Write,
    ),
    (
        "UPDATE pgbench_branches SET bbalance = bbalance + -4321 WHERE bid = 1",
        Kind::Write,
    ),
    (
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) \
         VALUES (7, 1, 12345, -4321, CURRENT_TIMESTAMP)",
        Kind::Write,
    ),
    ("END", Kind::Txn),
    ("COMMIT", Kind::Txn),
    // What an ORM sends.
    (
        "SELECT o.id, o.quantity, o.total, o.status, o.created_at, p.name AS product_name \
         FROM orders o JOIN products p ON p.id = o.product_id \
         JOIN customers c ON c.id = o.customer_id \
         WHERE o.customer_id = 42 AND o.status = 'shipped' \
         ORDER BY o.created_at DESC LIMIT 20 OFFSET 40",
        Kind::Read,
    ),
    (
        "INSERT INTO orders (customer_id, product_id, quantity, total, status) \
         VALUES (42, 7, 3, 59.97, 'pending') RETURNING id, created_at",
        Kind::Write,
    ),
    (
        "UPDATE orders SET status = 'shipped', total = 59.97 WHERE id = 1001 AND status = 'pending'",
        Kind::Write,
    ),
    (
        "WITH recent AS (SELECT customer_id, sum(total) AS spent FROM orders \
         WHERE created_at > now() - interval '30 days' GROUP BY customer_id) \
         SELECT c.id, c.name, r.spent FROM recent r JOIN customers c ON c.id = r.customer_id \
         ORDER BY r.spent DESC LIMIT 10",
        Kind::Read,
    ),
    ("SET application_name = 'reporting'", Kind::Session),
    (
        "ALTER TABLE orders ADD COLUMN discount numeric(10,2) NOT NULL DEFAULT 0",
        Kind::Ddl,
    ),
    (
        "SELECT lower(name), round(price * 1.2, 2), date_trunc('day', now()) \
         FROM products WHERE id = 7",
        Kind::Read,
    ),
];

fn options() -> ClassifierOptions {
    ClassifierOptions::default()
}

fn kinds(c: &Classified) -> Vec<Kind> {
    c.statements.iter().map(|f| f.kind).collect()
}

/// Fails the bench when the corpus does not classify as expected.
fn check_corpus(catalog: &Arc<Catalog>) {
    let c = Classifier::new(catalog.clone(), options());
    for (sql, kind) in CORPUS {
        let got = c.classify(sql);
        assert_eq!(kinds(&got), [*kind], "{sql}");
        assert_eq!(got.statements[0].flags, Default::default(), "{sql}");
    }
    assert_eq!(
        c.analyses(),
        CORPUS.len(),
        "a corpus text hit another's cache"
    );
}

fn bench_cold(c: &mut Criterion, catalog: &Arc<Catalog>) {
    let fresh = || Classifier::new(catalog.clone(), options());
    let mut g = c.benchmark_group("classify/cold");
    g.throughput(Throughput::Elements(1));
    g.bench_function("oltp select (pgbench -S)", |b| {
        b.iter_batched_ref(
            fresh,
            |cl| cl.classify(black_box(OLTP)),
            BatchSize::NumIterations(64),
        )
    });
    // The same without caches: what the parse and the analysis alone cost.
    let uncached = Classifier::new(
        catalog.clone(),
        ClassifierOptions {
            cache_capacity: 0,
            ..options()
        },
    );
    g.bench_function("oltp select (pgbench -S), caches off", |b| {
        b.iter(|| uncached.classify(black_box(OLTP)))
    });
    g.throughput(Throughput::Elements(CORPUS.len() as u64));
    g.bench_function(format!("corpus ({} statements)", CORPUS.len()), |b| {
        b.iter_batched_ref(
            fresh,
            |cl| {
                for (sql, _) in CORPUS {
                    black_box(cl.classify(black_box(sql)));
                }
            },
            BatchSize::NumIterations(16),
        )
    });
    g.finish();

    // Which statements of the corpus make up its cold time.
    let mut g = c.benchmark_group("classify/cold per statement");
    g.sample_size(20).measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    for (i, (sql, kind)) in CORPUS.iter().enumerate() {
        g.bench_function(format!("{i:02} {}: {}", kind.as_str(), head(sql)), |b| {
            b.iter_batched_ref(
                fresh,
                |cl| cl.classify(black_box(sql)),
                BatchSize::NumIterations(64),
            )
        });
    }
    g.finish();
}

/// The first words of a statement, for a bench name.
fn head(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(4).collect();
    words.join(" ")
}

fn bench_cached(c: &mut Criterion, catalog: &Arc<Catalog>) {
    let cl = Classifier::new(catalog.clone(), options());
    for (sql, _) in CORPUS {
        cl.classify(sql);
    }
    let mut g = c.benchmark_group("classify/cached");
    g.throughput(Throughput::Elements(1));
    g.bench_function("oltp select (pgbench -S)", |b| {
        b.iter(|| cl.classify(black_box(OLTP)))
    });
    g.throughput(Throughput::Elements(CORPUS.len() as u64));
    g.bench_function(format!("corpus ({} statements)", CORPUS.len()), |b| {
        b.iter(|| {
            for (sql, _) in CORPUS {
                black_box(cl.classify(black_box(sql)));
            }
        })
    });
    g.finish();
    assert_eq!(
        cl.analyses(),
        CORPUS.len(),
        "a cached text was analysed again"
    );
}

/// 4096 texts of one statement, `{}` replaced by distinct constants; the first text (another
/// constant) is the one analysed.
fn variants(template: &str) -> (String, Vec<String>) {
    let text = |n: u32| template.replace("{}", &(1000 + n * 7).to_string());
    (text(0), (1..=4096).map(text).collect())
}

fn bench_other_constants(c: &mut Criterion, catalog: &Arc<Catalog>) {
    let cl = Classifier::new(catalog.clone(), options());
    let cases = [
        (
            "oltp select (pgbench -S)",
            "SELECT abalance FROM pgbench_accounts WHERE aid = {}",
        ),
        (
            "tpc-b update",
            "UPDATE pgbench_accounts SET abalance = abalance + -{} WHERE aid = {}",
        ),
        (
            "orm join with limit",
            "SELECT o.id, o.quantity, o.total, o.status, o.created_at, p.name AS product_name \
             FROM orders o JOIN products p ON p.id = o.product_id \
             JOIN customers c ON c.id = o.customer_id \
             WHERE o.customer_id = {} AND o.status = 'shipped' \
             ORDER BY o.created_at DESC LIMIT 20 OFFSET {}",
        ),
    ];
    let mut g = c.benchmark_group("classify/other constants");
    g.throughput(Throughput::Elements(1));
    for (name, template) in cases {
        let (seed, texts) = variants(template);
        let before = cl.analyses();
        let expected = cl.classify(&seed);
        assert_eq!(
            kinds(&cl.classify(&texts[0])),
            kinds(&expected),
            "{template}"
        );
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % texts.len();
                cl.classify(black_box(&texts[i]))
            })
        });
        assert_eq!(
            cl.analyses(),
            before + 1,
            "{name}: texts with other constants were parsed, not served by fingerprint"
        );
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    let catalog = Arc::new(common::catalog());
    check_corpus(&catalog);
    bench_cold(c, &catalog);
    bench_cached(c, &catalog);
    bench_other_constants(c, &catalog);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

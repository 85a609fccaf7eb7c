//! Building the Microsoft Teams Adaptive Cards for a held request and serializing them to the
//! JSON that goes over the wire: the Workflows webhook card (in its message envelope), the
//! bot's card for the channel, and the approver's card the bot returns on refresh.
//!
//! The request is what the approval registry hands the notifiers for a held DDL statement
//! (tables, PII columns, rule, reason, approvers, signed page link). Cards are built once per
//! held request, off the statement path, so the point is only that they stay cheap next to
//! the HTTP post that follows (milliseconds): expected in the tens of microseconds.

/// The allocator the `airlock` binary ships with, so the figures are the server's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use time::OffsetDateTime;

use airlock::approval::signed_url;
use airlock::notify::card::{bot_approver_card, bot_base_card, webhook_card, MAX_CARD_BYTES};
use airlock::notify::webhook::envelope;
use airlock::notify::CardRequest;

/// A held DDL statement, as `TeamsNotifier` turns a pending request into a card request.
fn request() -> CardRequest {
    let id = "01JC4W8Q6ZK7V3N2M5T9R1X0YB";
    let expires_at = OffsetDateTime::from_unix_timestamp(1_735_000_000).unwrap();
    CardRequest {
        request_id: id.into(),
        requester: "agent".into(),
        application_name: Some("langchain-sql-agent".into()),
        database: "shop".into(),
        sql: "ALTER TABLE public.customers\n  ALTER COLUMN email TYPE varchar(320),\n  \
              ADD COLUMN email_verified_at timestamptz,\n  \
              ADD CONSTRAINT customers_email_key UNIQUE (email);\n\
              CREATE INDEX CONCURRENTLY orders_customer_created_idx \
              ON public.orders (customer_id, created_at DESC);"
            .into(),
        params: Vec::new(),
        rule_id: "default.ddl".into(),
        reason: "statement 1 of 2: ALTER TABLE on public.customers: ddl is held by default".into(),
        kind: "ddl, ddl".into(),
        tables: vec!["public.customers".into(), "public.orders".into()],
        pii_columns: vec!["public.customers.email".into()],
        expires_at,
        approve_url: signed_url(
            "https://airlock.example.com",
            b"0123456789abcdef0123456789abcdef",
            id,
            expires_at.unix_timestamp() as u64,
        ),
        approver_aad_ids: vec![
            "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f".into(),
            "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d".into(),
        ],
    }
}

fn bench(c: &mut Criterion) {
    let req = request();
    for card in [webhook_card(&req), bot_base_card(&req, None)] {
        let len = serde_json::to_vec(&card).unwrap().len();
        assert!(len <= MAX_CARD_BYTES, "card of {len} bytes");
    }
    let mut g = c.benchmark_group("cards/build+serialize");
    g.bench_function("webhook card in envelope", |b| {
        b.iter(|| serde_json::to_vec(&envelope(&webhook_card(black_box(&req)))).unwrap())
    });
    g.bench_function("bot base card", |b| {
        b.iter(|| serde_json::to_vec(&bot_base_card(black_box(&req), None)).unwrap())
    });
    g.bench_function("bot approver card (refresh)", |b| {
        b.iter(|| serde_json::to_vec(&bot_approver_card(black_box(&req), None)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

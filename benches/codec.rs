//! Framing costs on the relay path: splitting client and backend messages, and decoding a copy
//! of the messages the gateway must look inside.

/// The allocator the `airlock` binary ships with, so the figures are the server's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::{BufMut, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use airlock::protocol::frame::{peek_frame_len, query_text, split_frame};
use airlock::protocol::messages::{command_tag, error_code_and_message, PgError};

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A pgbench -S style extended batch: Parse, Bind, Describe, Execute, Sync.
fn extended_batch() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(message(
        b'P',
        b"\0SELECT abalance FROM pgbench_accounts WHERE aid = $1;\0\0\0",
    ));
    let mut bind = BytesMut::new();
    bind.put_slice(b"\0\0");
    bind.put_i16(0);
    bind.put_i16(1);
    bind.put_i32(5);
    bind.put_slice(b"12345");
    bind.put_i16(0);
    b.extend(message(b'B', &bind));
    b.extend(message(b'D', b"P\0"));
    b.extend(message(b'E', b"\0\0\0\0\0"));
    b.extend(message(b'S', b""));
    b
}

/// A backend response: RowDescription, DataRow, CommandComplete, ReadyForQuery.
fn backend_response() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(message(
        b'T',
        b"\0\x01abalance\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
    ));
    b.extend(message(b'D', b"\0\x01\0\0\0\x011"));
    b.extend(message(b'C', b"SELECT 1\0"));
    b.extend(message(b'Z', b"I"));
    b
}

fn bench(c: &mut Criterion) {
    let batch = extended_batch();
    let mut g = c.benchmark_group("frames");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("split extended batch (5 messages)", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&batch[..]);
            let mut n = 0;
            while let Some(f) = split_frame(&mut buf, 1 << 20).unwrap() {
                n += f.len();
            }
            black_box(n)
        })
    });
    let resp = backend_response();
    g.bench_function("scan backend response (4 messages)", |b| {
        b.iter(|| {
            let mut pos = 0;
            let mut tags = 0u32;
            while let Ok(Some(len)) = peek_frame_len(&resp[pos..], usize::MAX) {
                tags += resp[pos] as u32;
                pos += len;
            }
            black_box(tags)
        })
    });
    g.finish();

    let q = message(
        b'Q',
        b"SELECT abalance FROM pgbench_accounts WHERE aid = 42;\0",
    );
    c.bench_function("query text of a simple Query", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&q[..]);
            let f = split_frame(&mut buf, 1 << 20).unwrap().unwrap();
            black_box(query_text(&f).unwrap().len())
        })
    });
    let cc = message(b'C', b"UPDATE 1\0");
    let err = PgError::error("42501", "denied").to_bytes();
    c.bench_function("command tag + error fields", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&cc[..]);
            let f = split_frame(&mut buf, 1 << 20).unwrap().unwrap();
            let mut e = BytesMut::from(&err[..]);
            let ef = split_frame(&mut e, 1 << 20).unwrap().unwrap();
            black_box((command_tag(&f).len(), error_code_and_message(&ef)))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);

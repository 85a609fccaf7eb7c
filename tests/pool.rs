//! Upstream connections are reused between sessions, reset in between, and never shared by
//! sessions that end mid-transaction.

mod common;

use common::*;
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

async fn backend_pid(c: &Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Waits (bounded) until the pool holds `n` idle connections.
async fn wait_idle(gw: &Gw, n: usize) {
    let pool = gw.gateway.pool.as_ref().expect("pool on");
    for _ in 0..500 {
        if pool.idle_count() == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "pool has {} idle connections, expected {n}",
        pool.idle_count()
    );
}

#[tokio::test]
async fn clean_session_end_reuses_and_resets_the_upstream_connection() {
    let db = TestDb::new("pool_reuse");
    let gw = Gw::start(|_| {});
    let url = gw.url(&db.name);
    let first = connect(&url).await;
    let pid = backend_pid(&first).await;
    first
        .batch_execute("SET statement_timeout = '1234ms'; CREATE TEMP TABLE scratch (x int)")
        .await
        .unwrap();
    drop(first);
    wait_idle(&gw, 1).await;

    let second = connect(&url).await;
    assert_eq!(
        backend_pid(&second).await,
        pid,
        "the upstream connection was not reused"
    );
    let timeout: String = second
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        timeout, "0",
        "session settings leaked into the next session"
    );
    let err = second
        .simple_query("SELECT * FROM scratch")
        .await
        .unwrap_err();
    assert_eq!(
        err.code().unwrap().code(),
        "42P01",
        "temp table leaked into the next session"
    );
}

#[tokio::test]
async fn session_ending_inside_a_transaction_is_not_reused() {
    let db = TestDb::new("pool_tx");
    db.exec("CREATE TABLE t (x int)");
    let gw = Gw::start(|_| {});
    let url = gw.url(&db.name);
    let c = connect(&url).await;
    let pid = backend_pid(&c).await;
    c.batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    drop(c);
    let next = connect(&url).await;
    assert_ne!(backend_pid(&next).await, pid);
    // The abandoned transaction did not commit.
    assert_eq!(db.exec("SELECT count(*) FROM t").trim(), "0");
    assert_eq!(gw.gateway.pool.as_ref().unwrap().idle_count(), 0);
}

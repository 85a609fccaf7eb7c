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

/// Ends an upstream backend from the server side, as an administrator or a restart would,
/// and waits until it is gone.
fn terminate_backend(db: &TestDb, pid: i32) {
    db.exec(&format!("SELECT pg_terminate_backend({pid})"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db
        .exec(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        ))
        .trim()
        != "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "backend {pid} lingers"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// An idle pooled connection the server has closed is thrown away, not handed to the next
/// session (which would fail at its first statement).
#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_not_handed_out() {
    let db = TestDb::new("pool_dead");
    let gw = Gw::start(|_| {});
    let url = gw.url(&db.name);
    let first = connect(&url).await;
    let pid = backend_pid(&first).await;
    drop(first);
    wait_idle(&gw, 1).await;
    terminate_backend(&db, pid);

    let second = connect(&url).await;
    let next = backend_pid(&second).await;
    assert_ne!(next, pid);
    assert_eq!(gw.gateway.pool.as_ref().unwrap().idle_count(), 0);
}

/// When the server ends a session's upstream connection, the client gets the server's error
/// and the session ends in order (its cancel key is released), however the two relay
/// directions finish.
#[tokio::test]
async fn a_session_whose_upstream_is_terminated_ends_in_order() {
    let db = TestDb::new("pool_killed");
    let gw = Gw::start(|_| {});
    let c = connect(&gw.url(&db.name)).await;
    let pid = backend_pid(&c).await;
    assert_eq!(gw.gateway.cancels.len(), 1);
    terminate_backend(&db, pid);
    let err = c.simple_query("SELECT 1").await.expect_err("upstream gone");
    if let Some(e) = err.as_db_error() {
        assert_eq!(e.code().code(), "57P01", "{e:?}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gw.gateway.cancels.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the session never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

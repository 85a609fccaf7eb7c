//! tokio-postgres (binary results, transactions, LISTEN/NOTIFY) through the gateway.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use tokio_postgres::{AsyncMessage, Client, NoTls};

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

const SETUP: &str = "CREATE TABLE typed (
    id int PRIMARY KEY, n numeric(20,6), ts timestamptz, doc jsonb, arr int[], u uuid, b bytea, f float8);
INSERT INTO typed VALUES
 (1, 12345.678901, '2024-02-29 12:34:56.789+00', '{\"a\": [1, 2, {\"b\": null}]}', '{1,2,3}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\xdeadbeef', 1.5e300),
 (2, -0.000001, '1999-12-31 23:59:59+05', '[]', '{}', NULL, '', 'NaN')";

type Row = (
    i32,
    rust_decimal::Decimal,
    chrono::DateTime<chrono::Utc>,
    serde_json::Value,
    Vec<i32>,
    Option<uuid::Uuid>,
    Vec<u8>,
    f64,
);

async fn typed_rows(client: &Client) -> Vec<Row> {
    client
        .query(
            "SELECT id, n, ts, doc, arr, u, b, f FROM typed WHERE id >= $1 ORDER BY id",
            &[&0i32],
        )
        .await
        .expect("query")
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
            )
        })
        .collect()
}

#[tokio::test]
async fn binary_results_match_direct() {
    let db = TestDb::new("tp_types");
    db.exec(SETUP);
    let gw = Gw::start(|_| {});
    let direct = connect(&db.direct_url()).await;
    let via = connect(&gw.url(&db.name)).await;
    let a = typed_rows(&direct).await;
    let b = typed_rows(&via).await;
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].4, vec![1, 2, 3]);
    assert_eq!(format!("{:?}", a), format!("{:?}", b));
}

#[tokio::test]
async fn transactions_commit_and_roll_back() {
    let db = TestDb::new("tp_tx");
    db.exec("CREATE TABLE acct (id int PRIMARY KEY, balance int)");
    let gw = Gw::start(|_| {});
    let mut client = connect(&gw.url(&db.name)).await;
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO acct VALUES ($1, $2)", &[&1i32, &100i32])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("UPDATE acct SET balance = 0 WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    // An error inside a transaction aborts it, as on a direct connection.
    let tx = client.transaction().await.unwrap();
    let err = tx
        .execute("INSERT INTO acct VALUES (1, 1)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "23505");
    let err = tx.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "25P02");
    drop(tx);
    let row = client
        .query_one("SELECT balance FROM acct WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 100);
    assert_eq!(db.exec("SELECT balance FROM acct").trim(), "100");
}

#[tokio::test]
async fn notifications_arrive_while_idle() {
    let db = TestDb::new("tp_listen");
    let gw = Gw::start(|_| {});
    let (listener, mut conn) = tokio_postgres::connect(&gw.url(&db.name), NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if let AsyncMessage::Notification(n) = msg {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    listener.batch_execute("LISTEN jobs").await.unwrap();
    // Notify from a direct connection: the listener is idle, nothing is being queried.
    let direct = connect(&db.direct_url()).await;
    direct.batch_execute("NOTIFY jobs, 'job-42'").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("notification within 10 s")
        .expect("channel open");
    assert_eq!(got, ("jobs".to_string(), "job-42".to_string()));
}

#[tokio::test]
async fn prepared_statements_are_reused() {
    let db = TestDb::new("tp_prep");
    let gw = Gw::start(|_| {});
    let client = connect(&gw.url(&db.name)).await;
    let stmt = client.prepare("SELECT $1::int * 2").await.unwrap();
    for i in 0..50i32 {
        let row = client.query_one(&stmt, &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i * 2);
    }
    let err = client
        .query("SELECT * FROM missing_table", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    // The session is still usable after an error in the extended protocol.
    let row = client.query_one(&stmt, &[&21i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}

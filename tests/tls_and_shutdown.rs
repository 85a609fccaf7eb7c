//! TLS towards clients (with SCRAM channel binding), required TLS, and graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio_postgres::NoTls;

fn write_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let c = dir.join("cert.pem");
    let k = dir.join("key.pem");
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    (c, k)
}

#[test]
fn tls_with_scram_channel_binding() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(dir.path());
    let gw = Gw::start(|c| {
        c.tls.cert = Some(cert.clone());
        c.tls.key = Some(key.clone());
        c.tls.require = true;
    });
    let base = format!(
        "postgres://{AGENT}:{AGENT_PASSWORD}@127.0.0.1:{}/postgres",
        gw.port()
    );
    // channel_binding=require makes libpq insist on SCRAM-SHA-256-PLUS.
    let out = psql(
        &format!("{base}?sslmode=require&channel_binding=require"),
        &["-At", "-c", "SELECT 'over tls'"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "over tls");
    // Without TLS the gateway refuses, as configured.
    let out = psql(
        &format!("{base}?sslmode=disable"),
        &["-c", "SELECT 1"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("requires an encrypted connection"),
        "{}",
        stderr(&out)
    );
    // A wrong password over TLS is still 28P01.
    let out = psql(
        &format!(
            "postgres://{AGENT}:nope@127.0.0.1:{}/postgres?sslmode=require",
            gw.port()
        ),
        &["-c", "SELECT 1"],
        None,
    );
    assert!(
        stderr(&out).contains("password authentication failed"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn shutdown_lets_running_queries_finish_then_refuses_new_clients() {
    let db = TestDb::new("shutdown_grace");
    let gw = Gw::start(|c| c.server.shutdown_grace_secs = 30);
    let (client, conn) = tokio_postgres::connect(&gw.url(&db.name), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let running = tokio::spawn(async move {
        let r = client
            .query_one("SELECT pg_sleep(1.5), 'finished'::text", &[])
            .await;
        r.map(|row| row.get::<_, String>(1))
    });
    // Wait until the query runs upstream, then stop accepting.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.exec("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(1.5)%' AND state = 'active'").trim() != "1" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.begin_shutdown();
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if tokio_postgres::connect(&gw.url(&db.name), NoTls)
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "new clients are still accepted after shutdown began"
    );
    assert_eq!(running.await.unwrap().unwrap(), "finished");
}

#[tokio::test]
async fn sessions_past_the_grace_period_are_closed_with_57p01() {
    let db = TestDb::new("shutdown_force");
    let gw = Gw::start(|c| c.server.shutdown_grace_secs = 1);
    let (client, conn) = tokio_postgres::connect(&gw.url(&db.name), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.simple_query("SELECT 1").await.unwrap();
    let started = Instant::now();
    gw.begin_shutdown();
    let err = client
        .simple_query("SELECT pg_sleep(30)")
        .await
        .expect_err("the long query must be cut off");
    assert!(started.elapsed() < Duration::from_secs(15));
    let msg = err.to_string();
    assert!(
        err.code().map(|c| c.code()) == Some("57P01") || msg.contains("closed"),
        "{msg}"
    );
}

/// The gateway's start and stop are records in the audit chain: a copy of the store put back,
/// or a chain cut short, shows in the trail of starts and stops.
#[test]
fn start_and_stop_are_audited() {
    let gw = Gw::start(|_| {});
    let store = gw.gateway.inspector.audit.store();
    let events = || -> Vec<String> {
        store
            .scan(0)
            .filter_map(|r| {
                let r = r.expect("audit read");
                match airlock::audit::Record::decode(r.seq, &r.bytes)
                    .expect("decode")
                    .entry
                {
                    airlock::audit::Entry::Gateway(g) => Some(g.event),
                    _ => None,
                }
            })
            .collect()
    };
    assert_eq!(events(), ["started"]);
    gw.begin_shutdown();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events().len() < 2 {
        assert!(Instant::now() < deadline, "no stop record: {:?}", events());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(events(), ["started", "stopping"]);
}

//! The audit API without a socket (tower `oneshot`), then the inspector against it over HTTP.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use tower::ServiceExt;

use super::*;
use crate::audit::{
    Audit, AuditConfig, Durability, Record, RecordKind, ShowView, SledStore, StatementView,
    VerifyReport,
};
use crate::inspect::tests::{fixture, run_cli};

const TOKEN: &str = "s3cr3t-token";

fn state(store: Arc<dyn AuditStore>) -> AuditApiState {
    AuditApiState::new(store, Arc::new(|t: &str| t == TOKEN))
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

async fn body_text(resp: Response) -> String {
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn open_fixture() -> (
    tempfile::TempDir,
    Arc<SledStore>,
    std::collections::BTreeMap<&'static str, String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let store = Arc::new(SledStore::open_existing(dir.path()).unwrap());
    (dir, store, ids)
}

#[tokio::test]
async fn every_route_wants_the_bearer_token() {
    let (_dir, store, ids) = open_fixture();
    let app = audit_routes(state(store));
    let show = format!("/api/audit/records/{}", ids["D1"]);
    for uri in ["/api/audit/records", show.as_str(), "/api/audit/verify"] {
        for token in [None, Some("wrong"), Some("")] {
            let resp = app.clone().oneshot(get(uri, token)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{uri} {token:?}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        }
        let ok = app.clone().oneshot(get(uri, Some(TOKEN))).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn statements_stream_as_json_lines_with_the_same_filters() {
    let (_dir, store, ids) = open_fixture();
    let app = audit_routes(state(store));
    let resp = app
        .clone()
        .oneshot(get(
            "/api/audit/records?user=alice&pattern=ORDERS&ignore_case=true",
            Some(TOKEN),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let got: Vec<StatementView> = body_text(resp)
        .await
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got_ids: Vec<&str> = got.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(got_ids, vec![ids["D1"].as_str(), ids["D6"].as_str()]);
    assert_eq!(got[0].outcome.as_ref().unwrap().tags, vec!["SELECT 3"]);

    let errors = body_text(
        app.clone()
            .oneshot(get(
                "/api/audit/records?errors=true&linked=false",
                Some(TOKEN),
            ))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(errors.lines().count(), 2);
}

#[tokio::test]
async fn bad_queries_are_400_with_a_reason() {
    let (_dir, store, _ids) = open_fixture();
    let app = audit_routes(state(store));
    for (uri, want) in [
        ("/api/audit/records?usr=alice", "unknown parameter `usr`"),
        ("/api/audit/records?pattern=md5(", "pattern"),
        ("/api/audit/records?decision=maybe", "--decision maybe"),
        ("/api/audit/records?tail=3", "tail applies to view=records"),
        (
            "/api/audit/records?view=records&user=bob",
            "view=records takes only",
        ),
        ("/api/audit/records?view=everything", "view=everything"),
        ("/api/audit/records?view=records&tail=x", "tail=x"),
    ] {
        let resp = app.clone().oneshot(get(uri, Some(TOKEN))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        let body: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(want), "{uri}: {msg}");
    }
}

#[tokio::test]
async fn records_view_tails_and_windows() {
    let (_dir, store, ids) = open_fixture();
    let app = audit_routes(state(store));
    let tail = body_text(
        app.clone()
            .oneshot(get("/api/audit/records?view=records&tail=2", Some(TOKEN)))
            .await
            .unwrap(),
    )
    .await;
    let records: Vec<Record> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].id, ids["D6"]);
    let window = body_text(
        app.clone()
            .oneshot(get(
                "/api/audit/records?view=records&since=2024-05-01T12:20:00Z&until=2024-05-01T12:21:00Z",
                Some(TOKEN),
            ))
            .await
            .unwrap(),
    )
    .await;
    let kinds: Vec<RecordKind> = window
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).unwrap().kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            RecordKind::Decision,
            RecordKind::Approval,
            RecordKind::Approval
        ]
    );
}

#[tokio::test]
async fn show_and_verify() {
    let (_dir, store, ids) = open_fixture();
    let app = audit_routes(state(store));
    let resp = app
        .clone()
        .oneshot(get(
            &format!("/api/audit/records/{}", ids["D3"]),
            Some(TOKEN),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let show: ShowView = serde_json::from_str(&body_text(resp).await).unwrap();
    assert_eq!(show.statement.unwrap().approvals.len(), 2);
    let missing = app
        .clone()
        .oneshot(get("/api/audit/records/01NOPE", Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let report: VerifyReport = serde_json::from_str(
        &body_text(
            app.oneshot(get("/api/audit/verify", Some(TOKEN)))
                .await
                .unwrap(),
        )
        .await,
    )
    .unwrap();
    assert!(report.ok());
    assert_eq!(report.records, 15);
}

#[tokio::test]
async fn follow_streams_new_records_as_the_writer_appends_them() {
    let (_dir, store, _ids) = open_fixture();
    let (audit, writer) = Audit::open_with_store(
        store.clone(),
        &AuditConfig {
            durability: Durability::Batched,
            ..AuditConfig::default()
        },
    )
    .await
    .unwrap();
    let app = audit_routes(state(audit.store()).with_live(audit.subscribe()));
    let resp = app
        .oneshot(get(
            "/api/audit/records?view=records&tail=1&follow=true",
            Some(TOKEN),
        ))
        .await
        .unwrap();
    let mut body = resp.into_body().into_data_stream();
    let next_line = |chunk: Option<Result<Bytes, axum::Error>>| -> Record {
        let chunk = chunk.expect("stream ended").unwrap();
        serde_json::from_slice(chunk.strip_suffix(b"\n").unwrap()).unwrap()
    };
    // A deadline so a bug fails the test instead of hanging it.
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .unwrap();
    assert_eq!(next_line(first).seq, 15);
    let id = audit
        .decision(crate::audit::tests::decision_entry("zoe", "SELECT 'live'"))
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .unwrap();
    let r = next_line(second);
    assert_eq!((r.seq, r.id), (16, id));
    drop(body);
    audit.shutdown().await;
    writer.wait().await.unwrap();
}

/// Serves the router on a loopback port from its own runtime thread (the inspector is a
/// blocking program and must not run inside a runtime).
fn serve(
    app: Router,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    (format!("http://{addr}"), stop_tx, thread)
}

#[test]
fn the_inspector_reads_a_running_gateway_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let path = dir.path().to_str().unwrap().to_owned();
    // What the stopped store says…
    let direct = run_cli(&["--store", &path, "grep", "-o", "json", "orders"]);
    assert_eq!(direct.code, 0, "{}", direct.err);

    // …and what the running gateway (holding the store's lock) says through its API.
    let store = Arc::new(SledStore::open_existing(dir.path()).unwrap());
    let (url, stop, thread) = serve(audit_routes(state(store)));
    let via_api = run_cli(&[
        "--admin", &url, "--token", TOKEN, "grep", "-o", "json", "orders",
    ]);
    assert_eq!(via_api.code, 0, "{}", via_api.err);
    assert_eq!(
        via_api.out, direct.out,
        "both sources must give the same answer"
    );

    // --store on a locked store falls back to the API, and -v says so.
    let fallback = run_cli(&[
        "--store", &path, "--admin", &url, "--token", TOKEN, "-v", "grep", "-c", "orders",
    ]);
    assert_eq!(
        (fallback.code, fallback.out.as_str()),
        (0, "3\n"),
        "{}",
        fallback.err
    );
    assert!(
        fallback.err.contains("in use by a running gateway") && fallback.err.contains(&url),
        "{}",
        fallback.err
    );

    let none = run_cli(&[
        "--admin",
        &url,
        "--token",
        TOKEN,
        "grep",
        "nothing like this",
    ]);
    assert_eq!(none.code, 1);
    let show = run_cli(&["--admin", &url, "--token", TOKEN, "show", &ids["D3"]]);
    assert!(show.out.contains("approve by dave"), "{}", show.out);
    let missing = run_cli(&["--admin", &url, "--token", TOKEN, "show", "nope"]);
    assert_eq!(missing.code, 1);
    let verify = run_cli(&["--admin", &url, "--token", TOKEN, "verify"]);
    assert_eq!(verify.code, 0);
    assert!(verify.out.starts_with("ok: 15 records"), "{}", verify.out);
    let tail = run_cli(&["--admin", &url, "--token", TOKEN, "tail", "-n", "4"]);
    assert_eq!(tail.out.lines().count(), 4);
    let export = run_cli(&[
        "--admin",
        &url,
        "--token",
        TOKEN,
        "export",
        "--format",
        "csv",
        "--decision",
        "deny",
    ]);
    assert_eq!(export.out.lines().count(), 2, "{}", export.out);
    let bad_token = run_cli(&["--admin", &url, "--token", "nope", "verify"]);
    assert_eq!(bad_token.code, 2);
    assert!(
        bad_token.err.contains("refused the token"),
        "{}",
        bad_token.err
    );
    let bad_filter = run_cli(&[
        "--admin", &url, "--token", TOKEN, "grep", "--kind", "nope", "x",
    ]);
    assert_eq!(bad_filter.code, 2);

    stop.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn config_picks_the_store_or_the_api_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let store = Arc::new(SledStore::open_existing(dir.path()).unwrap());
    let (url, stop, thread) = serve(audit_routes(state(store.clone())));
    let cfg_path = dir.path().join("airlock.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[audit]\npath = {:?}\n[admin]\nlisten = \"127.0.0.1:1\"\npublic_url = {:?}\n",
            dir.path(),
            url
        ),
    )
    .unwrap();
    let cfg = cfg_path.to_str().unwrap();
    // Running gateway: the store is locked, the config's admin API answers.
    let running = run_cli(&["--config", cfg, "--token", TOKEN, "-v", "grep", "-c", "."]);
    assert_eq!(
        (running.code, running.out.as_str()),
        (0, "6\n"),
        "{}",
        running.err
    );
    assert!(running.err.contains("admin API"), "{}", running.err);
    stop.send(()).unwrap();
    thread.join().unwrap();
    drop(store);
    // Stopped gateway: the store itself.
    let stopped = run_cli(&["--config", cfg, "-v", "grep", "-c", "."]);
    assert_eq!(
        (stopped.code, stopped.out.as_str()),
        (0, "6\n"),
        "{}",
        stopped.err
    );
    assert!(stopped.err.contains("directly"), "{}", stopped.err);
}

//! `airlock audit` over real traffic through the gateway against PostgreSQL: allowed, masked,
//! held then approved, held then denied, denied by policy, and failing statements. Every
//! filter is asserted with the gateway running (through its admin API) and stopped (on the
//! store directly), and both sources must give the same answers.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

const TOKEN: &str = "auditor-token-for-the-inspector-test";

/// A free loopback port for the admin listener (the harness does not report it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Plays the approvers: alice approves ALTER TABLE requests, bob denies everything else.
/// Runs until `stop` is set; join it before stopping the gateway (it holds the registry, and
/// through it the audit store).
fn approve_alters_deny_the_rest(gw: &Gw, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let registry = gw.gateway.registry.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            while !stop.load(Ordering::SeqCst) {
                for view in registry.list(airlock::approval::ListFilter::Pending).await {
                    let channel = airlock::approval::Channel::Api;
                    if view.sql.contains("ALTER TABLE") {
                        let _ = registry
                            .approve(&view.id, "alice", channel, Some("planned change".into()))
                            .await;
                    } else {
                        let _ = registry
                            .deny(&view.id, "bob", channel, Some("not today".into()))
                            .await;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        });
    })
}

fn agent_sql(gw: &Gw, db: &TestDb, app: &str, sql: &str) -> (String, String) {
    let out = Command::new(tool("psql", "postgresql-client"))
        .args([&gw.url(&db.name), "-At", "-c", sql])
        .env("PGAPPNAME", app)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    (stdout(&out), stderr(&out))
}

struct Inspect {
    code: i32,
    out: String,
    err: String,
}

fn inspect(source: &[&str], args: &[&str]) -> Inspect {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("audit")
        .args(source)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_AUDIT_STORE")
        .env_remove("AIRLOCK_ADMIN_TOKEN")
        .env_remove("AIRLOCK_TOKEN")
        .output()
        .unwrap();
    Inspect {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn statements(r: &Inspect) -> Vec<airlock::audit::StatementView> {
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.err);
    r.out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// The checks, run against one source; returns every JSON answer so the two sources can be
/// compared.
fn check_filters(source: &[&str], db: &str) -> Vec<String> {
    let mut answers = Vec::new();
    let mut json = |args: &[&str]| {
        let mut full = vec!["grep", "-o", "json"];
        full.extend_from_slice(args);
        let r = inspect(source, &full);
        answers.push(r.out.clone());
        statements(&r)
    };

    let all = json(&["--db", db, "."]);
    assert!(all.len() >= 6, "{all:#?}");
    assert!(all.iter().all(|s| s.user == "agent" && s.database == db));

    let allowed = json(&[
        "--db",
        db,
        "--decision",
        "allow",
        "count\\(\\*\\) FROM orders",
    ]);
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0].outcome.as_ref().unwrap().tags, vec!["SELECT 1"]);

    let masked = json(&["--db", db, "--decision", "mask", "."]);
    assert_eq!(masked.len(), 1, "{masked:#?}");
    assert_eq!(masked[0].application_name, "reporting-daily");
    assert!(masked[0].rewritten_sql.is_some());
    assert_eq!(masked[0].rule_id, "reporting-masked");
    let by_app = json(&["--db", db, "--app", "reporting*", "."]);
    assert_eq!(by_app.len(), 1);
    let by_table = json(&["--db", db, "--table", "customers", "."]);
    assert!(by_table
        .iter()
        .any(|s| s.decision == airlock::policy::Action::Mask));
    assert!(by_table
        .iter()
        .all(|s| s.tables.iter().any(|t| t == "public.customers")));

    let approved = json(&["--db", db, "--approver", "alice", "."]);
    assert_eq!(approved.len(), 1, "{approved:#?}");
    assert!(approved[0].sql.contains("ALTER TABLE orders"));
    assert!(approved[0]
        .approvals
        .iter()
        .any(|a| a.actor == "alice" && a.action == airlock::audit::ApprovalAction::Approve));
    assert_eq!(
        approved[0].outcome.as_ref().unwrap().tags,
        vec!["ALTER TABLE"]
    );

    let refused = json(&["--db", db, "--approver", "bob", "."]);
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(refused[0].sql.contains("CREATE TABLE scratch"));
    assert!(refused[0]
        .approvals
        .iter()
        .any(|a| a.actor == "bob" && a.action == airlock::audit::ApprovalAction::Deny));

    let ddl = json(&["--db", db, "--kind", "ddl", "."]);
    assert!(ddl.len() >= 2);
    assert!(ddl
        .iter()
        .all(|s| s.kinds.contains(&airlock::sql::Kind::Ddl)));

    let denied = json(&["--db", db, "--decision", "deny", "."]);
    assert!(
        denied.iter().any(|s| s.sql.contains("TO PROGRAM")),
        "{denied:#?}"
    );
    assert!(
        denied.iter().any(|s| s.rule_id == "agent-no-drop"),
        "{denied:#?}"
    );

    let errors = json(&["--db", db, "--errors", "."]);
    assert!(
        errors.iter().any(|s| s
            .outcome
            .as_ref()
            .and_then(|o| o.error.as_ref())
            .is_some_and(|e| e.sqlstate == "22012")),
        "{errors:#?}"
    );
    assert!(errors
        .iter()
        .all(|s| s.outcome.as_ref().unwrap().error.is_some()));

    let rule = json(&["--db", db, "--rule", "reporting-masked", "."]);
    assert_eq!(rule.len(), 1);
    let session = json(&["--session", &allowed[0].session_id, "."]);
    assert_eq!(session.len(), 1);
    let since = json(&["--db", db, "--since", "1h", "--until", "now", "."]);
    assert_eq!(since.len(), all.len());
    let inverted = json(&["--db", db, "-v", "-i", "orders"]);
    assert!(inverted
        .iter()
        .all(|s| !s.sql.to_lowercase().contains("orders")));

    // Text output, counts and exit codes.
    let count = inspect(
        source,
        &["grep", "-c", "--db", db, "--decision", "mask", "."],
    );
    assert_eq!(
        (count.code, count.out.as_str()),
        (0, "1\n"),
        "{}",
        count.err
    );
    let none = inspect(
        source,
        &["grep", "--db", db, "no statement looks like this"],
    );
    assert_eq!((none.code, none.out.as_str()), (1, ""));
    let show = inspect(source, &["show", &approved[0].id]);
    assert_eq!(show.code, 0, "{}", show.err);
    assert!(
        show.out.contains("approve by alice") && show.out.contains("link ok"),
        "{}",
        show.out
    );
    let verify = inspect(source, &["verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.out, verify.err);
    let tail = inspect(source, &["tail", "-n", "3"]);
    assert_eq!(tail.out.lines().count(), 3, "{}", tail.out);
    let csv = inspect(source, &["export", "--format", "csv", "--db", db]);
    assert_eq!(csv.out.lines().count(), all.len() + 1, "{}", csv.out);
    answers
}

#[test]
fn the_inspector_reads_real_traffic_running_and_stopped() {
    let db = TestDb::new("inspect_gateway");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let port = free_port();
    let gw = Gw::start(|c| {
        c.policy.path = shipped_policy("demo.toml");
        c.admin.listen = format!("127.0.0.1:{port}");
        c.admin.public_url = format!("http://127.0.0.1:{port}");
        c.admin
            .tokens
            .insert("auditor".into(), airlock::admin::hash_token(TOKEN));
    });
    let stop = Arc::new(AtomicBool::new(false));
    let approver = approve_alters_deny_the_rest(&gw, stop.clone());

    let (out, err) = agent_sql(&gw, &db, "psql", "SELECT count(*) FROM orders");
    assert!(err.is_empty(), "{err}");
    assert!(!out.is_empty());
    let (out, err) = agent_sql(
        &gw,
        &db,
        "reporting-daily",
        "SELECT email FROM customers LIMIT 1",
    );
    assert!(err.is_empty(), "{err}");
    assert!(!out.is_empty());
    let (_, err) = agent_sql(&gw, &db, "psql", "ALTER TABLE orders ADD COLUMN note text");
    // The agent sees the hold NOTICE, then the approved statement runs.
    assert!(
        err.contains("held for approval") && !err.contains("ERROR"),
        "{err}"
    );
    let (_, err) = agent_sql(&gw, &db, "psql", "CREATE TABLE scratch (id int)");
    assert!(err.contains("not today"), "held, then denied by bob: {err}");
    let (_, err) = agent_sql(&gw, &db, "psql", "DROP TABLE orders");
    assert!(err.contains("airlock"), "{err}");
    let (_, err) = agent_sql(&gw, &db, "psql", "COPY orders TO PROGRAM 'cat'");
    assert!(err.contains("airlock"), "{err}");
    let (_, err) = agent_sql(&gw, &db, "psql", "SELECT 1/0");
    assert!(err.contains("division by zero"), "{err}");

    // Running: the store is locked by the gateway; --store falls back to the admin API.
    let url = format!("http://127.0.0.1:{port}");
    let store = gw.audit_dir.path().join("audit");
    let store = store.to_str().unwrap().to_owned();
    let picked = inspect(
        &["--store", &store, "--admin", &url, "--token", TOKEN, "-v"],
        &["grep", "-c", "--db", &db.name, "."],
    );
    assert_eq!(picked.code, 0, "{}", picked.err);
    assert!(picked.err.contains("admin API"), "{}", picked.err);
    let bad_token = inspect(&["--admin", &url, "--token", "wrong"], &["verify"]);
    assert_eq!(bad_token.code, 2);
    // `airlock approvals`' variable works too: both take the same approver tokens.
    let via_env = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["audit", "--admin", &url, "verify"])
        .env_remove("AIRLOCK_ADMIN_TOKEN")
        .env("AIRLOCK_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(
        via_env.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&via_env.stderr)
    );
    // tail -f through the admin API shows a statement made after it started.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "audit", "--admin", &url, "--token", TOKEN, "tail", "-f", "-n", "1", "-o", "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(follower.stdout.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Its first line (the newest record so far) shows it is following: whatever is appended
    // from then on is after it. A deadline so a broken follow fails instead of hanging.
    let deadline = std::time::Duration::from_secs(20);
    let first = rx
        .recv_timeout(deadline)
        .expect("tail -f -n 1 printed no record");
    serde_json::from_str::<airlock::audit::Record>(&first).unwrap();
    let (_, err) = agent_sql(&gw, &db, "psql", "SELECT 'followed live'");
    assert!(err.is_empty(), "{err}");
    loop {
        let line = rx
            .recv_timeout(deadline)
            .expect("tail -f printed nothing new");
        let record: airlock::audit::Record = serde_json::from_str(&line).unwrap();
        if let airlock::audit::Entry::Decision(d) = &record.entry {
            if d.sql == "SELECT 'followed live'" {
                break;
            }
        }
    }
    follower.kill().unwrap();
    follower.wait().unwrap();

    let running = check_filters(&["--admin", &url, "--token", TOKEN], &db.name);

    // Stopped: the same answers straight from the store (kept past the gateway's drop).
    stop.store(true, Ordering::SeqCst);
    approver.join().unwrap();
    let mut gw = gw;
    let audit_dir = std::mem::replace(&mut gw.audit_dir, tempfile::tempdir().unwrap());
    drop(gw);
    let direct = inspect(
        &["--store", &store, "-v"],
        &["grep", "-c", "--db", &db.name, "."],
    );
    assert!(direct.err.contains("directly"), "{}", direct.err);
    let stopped = check_filters(&["--store", &store], &db.name);
    assert_eq!(running.len(), stopped.len());
    for (i, (r, s)) in running.iter().zip(&stopped).enumerate() {
        assert!(
            r == s,
            "query {i}: the sources differ:\nrunning: {r}\nstopped: {s}"
        );
    }
    drop(audit_dir);
}

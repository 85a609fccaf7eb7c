//! End to end: psql as the agent runs a held statement against real PostgreSQL, and a person
//! decides through each channel (API, CLI, web page in Chromium); deny, expiry, late approval
//! with a single-use grant, cancel, and self-approval.

mod approval_support;
mod common;

use std::process::{Child, Command};

use airlock::approval::{ListFilter, RequestState};
use approval_support::cdp::Browser;
use approval_support::{token, AdminServer};
use common::*;

fn demo_db(label: &str) -> TestDb {
    let db = TestDb::new(label);
    db.exec(airlock::demo::DEMO_SCHEMA);
    db
}

async fn finish(child: Child) -> (bool, String, String) {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn post(url: &str, who: &str, body: serde_json::Value) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token(who))
        .json(&body)
        .send()
        .await
        .expect("admin API")
        .status()
}

fn table_exists(db: &TestDb, name: &str) -> bool {
    db.exec(&format!(
        "SELECT count(*) FROM pg_class WHERE relname = '{name}'"
    ))
    .trim()
        == "1"
}

fn demo_gw() -> Gw {
    Gw::start(|c| c.policy.path = shipped_policy("demo.toml"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_waits_then_runs_after_approval_through_the_api() {
    let db = demo_db("e2e_api");
    let gw = demo_gw();
    let admin = AdminServer::start_with(gw.gateway.registry.clone(), &["alice", "agent"]).await;
    let mut child = spawn_psql(&gw.url(&db.name), "CREATE TABLE approved_api (x int)");
    let req = pending(&gw, "approved_api", &mut child).await;
    assert!(
        gw.audit_dir.path().join("audit.approvals/LOCK").exists(),
        "the open-request journal sits beside the audit store by default"
    );
    assert!(
        !table_exists(&db, "approved_api"),
        "nothing runs while held"
    );
    // The requester cannot approve its own statement.
    let status = post(
        &format!("{}/api/approvals/{}/approve", admin.url, req.id),
        "agent",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    let status = post(
        &format!("{}/api/approvals/{}/approve", admin.url, req.id),
        "alice",
        serde_json::json!({"rationale": "schema change reviewed"}),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let (ok, _, err) = finish(child).await;
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("request {}", req.id)),
        "the NOTICE names the request: {err}"
    );
    assert!(
        err.contains("/approvals/"),
        "the NOTICE says where to approve: {err}"
    );
    assert!(table_exists(&db, "approved_api"));
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_through_the_cli() {
    let db = demo_db("e2e_cli");
    let gw = demo_gw();
    let admin = AdminServer::start_with(gw.gateway.registry.clone(), &["bob"]).await;
    let mut child = spawn_psql(&gw.url(&db.name), "CREATE INDEX ON orders (created_at)");
    let req = pending(&gw, "CREATE INDEX", &mut child).await;
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "approvals",
            "approve",
            req.id.as_str(),
            "--reason",
            "index is fine",
        ])
        .args(["--admin", &admin.url, "--token", &token("bob")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, _, err) = finish(child).await;
    assert!(ok, "{err}");
    assert_eq!(
        db.exec("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'")
            .trim(),
        "2"
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_on_the_web_page_in_chromium() {
    let db = demo_db("e2e_web");
    let gw = demo_gw();
    let admin = AdminServer::start_with(gw.gateway.registry.clone(), &["alice"]).await;
    let mut child = spawn_psql(&gw.url(&db.name), "CREATE TABLE approved_web (x int)");
    let req = pending(&gw, "approved_web", &mut child).await;
    let url = format!("{}/approvals/{}", admin.url, req.id);
    tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch();
        b.navigate(&url);
        b.wait_for(
            "!document.getElementById('signin-section').hidden",
            "the sign-in form",
        );
        b.type_into("#token", &token("alice"));
        b.click("#signin-btn");
        b.wait_for(
            "!document.getElementById('verdict').hidden",
            "the verdict form",
        );
        b.type_into("#rationale", "looks right");
        b.click("#approve");
        b.wait_for(
            "document.getElementById('result').textContent.startsWith('Approved')",
            "the approval confirmation",
        );
    })
    .await
    .expect("browser steps");
    let (ok, _, err) = finish(child).await;
    assert!(ok, "{err}");
    assert!(table_exists(&db, "approved_web"));
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_returns_42501_with_the_rationale() {
    let db = demo_db("e2e_deny");
    let gw = demo_gw();
    let admin = AdminServer::start_with(gw.gateway.registry.clone(), &["alice"]).await;
    let mut child = spawn_psql(&gw.url(&db.name), "ALTER TABLE orders ADD COLUMN note text");
    let req = pending(&gw, "ADD COLUMN note", &mut child).await;
    // Deny needs a rationale.
    let status = post(
        &format!("{}/api/approvals/{}/deny", admin.url, req.id),
        "alice",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let status = post(
        &format!("{}/api/approvals/{}/deny", admin.url, req.id),
        "alice",
        serde_json::json!({"rationale": "orders are needed in production"}),
    )
    .await;
    assert!(status.is_success());
    let (ok, _, err) = finish(child).await;
    assert!(!ok);
    assert!(
        err.contains("denied by alice: orders are needed in production"),
        "{err}"
    );
    assert_eq!(
        db.exec("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'").trim(),
        "0"
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_then_late_approval_runs_the_same_statement_once() {
    let db = demo_db("e2e_expiry");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    std::fs::write(
        &policy,
        text.replace("hold_timeout_secs = 300", "hold_timeout_secs = 1"),
    )
    .unwrap();
    let gw = Gw::start(|c| c.policy.path = policy.clone());
    let admin = AdminServer::start_with(gw.gateway.registry.clone(), &["alice"]).await;
    let url = gw.url(&db.name);
    let sql = "CREATE TABLE late_table (x int)";
    let (ok, _, err) = finish(spawn_psql(&url, sql)).await;
    assert!(!ok);
    assert!(err.contains("was not decided in time"), "{err}");
    assert!(
        err.contains("Re-run the same statement after approval"),
        "{err}"
    );
    assert!(!table_exists(&db, "late_table"));
    // Approved after the client gave up: a grant for exactly this statement.
    let req = gw
        .gateway
        .registry
        .list(ListFilter::Pending)
        .await
        .into_iter()
        .find(|v| v.sql.contains("late_table"))
        .expect("still approvable after expiry");
    let status = post(
        &format!("{}/api/approvals/{}/approve", admin.url, req.id),
        "alice",
        serde_json::json!({}),
    )
    .await;
    assert!(status.is_success());
    // A different statement is a new request (it expires again)…
    let (ok, _, _) = finish(spawn_psql(&url, "CREATE TABLE late_table2 (x int)")).await;
    assert!(!ok);
    // …the same one runs without a new hold, once.
    let (ok, _, err) = finish(spawn_psql(&url, sql)).await;
    assert!(ok, "{err}");
    assert!(
        !err.contains("held for approval"),
        "a grant runs without a new hold: {err}"
    );
    assert!(table_exists(&db, "late_table"));
    db.exec("DROP TABLE late_table");
    let (ok, _, err) = finish(spawn_psql(&url, sql)).await;
    assert!(!ok, "the grant is single use");
    assert!(err.contains("was not decided in time"), "{err}");
    assert!(!table_exists(&db, "late_table"));
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_withdraws_the_request() {
    let db = demo_db("e2e_cancel");
    let gw = demo_gw();
    let mut child = spawn_psql(&gw.url(&db.name), "TRUNCATE orders");
    let req = pending(&gw, "TRUNCATE orders", &mut child).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (ok, _, err) = finish(child).await;
    assert!(!ok);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    let view = gw
        .gateway
        .registry
        .get(&req.id)
        .await
        .expect("request kept");
    assert_eq!(view.state, RequestState::Withdrawn);
    assert_eq!(db.exec("SELECT count(*) FROM orders").trim(), "200");
}

/// An approval covers the statement the approver saw, not its text: the same text that means
/// something else in another session (here a temporary view shadows the table it read) neither
/// re-attaches to the pending request nor runs on the grant its approval left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_does_not_cover_the_same_text_reading_something_else() {
    let db = demo_db("e2e_grant_facts");
    let ssn = db.exec("SELECT upper(ssn) FROM customers ORDER BY id LIMIT 1");
    let ssn = ssn.trim().to_owned();
    assert!(!ssn.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    assert!(text.contains("ddl = \"hold\"") && text.contains("hold_timeout_secs = 300"));
    let text = text
        .replace("ddl = \"hold\"", "ddl = \"allow\"")
        .replace("hold_timeout_secs = 300", "hold_timeout_secs = 1")
        + "\n[[rule]]\nid = \"products-need-a-look\"\naction = \"hold\"\n\
           tables = [\"public.products\"]\nreason = \"product reads are looked at\"\n";
    std::fs::write(&policy, text).unwrap();
    let gw = Gw::start(|c| c.policy.path = policy.clone());
    let admin = AdminServer::start_with(gw.gateway.registry.clone(), &["alice"]).await;
    let url = gw.url(&db.name);
    let sql = "SELECT name FROM products";
    // A session that reads the view, the statement with the same text: directly, the SSNs.
    let shadowed = |url: String| {
        tokio::task::spawn_blocking(move || {
            let out = psql(
                &url,
                &[
                    "-At",
                    "-c",
                    "CREATE TEMP VIEW products AS SELECT id, upper(ssn) AS name FROM customers",
                    "-c",
                    "SELECT name FROM products",
                ],
                None,
            );
            (stdout(&out), stderr(&out))
        })
    };
    let (out, _) = shadowed(db.direct_url()).await.unwrap();
    assert!(
        out.contains(&ssn),
        "directly, the text reads the SSNs: {out}"
    );
    let requests = |gw: &Gw| {
        let registry = gw.gateway.registry.clone();
        async move {
            registry
                .list(ListFilter::All)
                .await
                .into_iter()
                .filter(|v| v.sql == sql)
                .collect::<Vec<_>>()
        }
    };

    // The plain read is held, and the client gives up: the request stays approvable.
    let (ok, _, err) = finish(spawn_psql(&url, sql)).await;
    assert!(!ok && err.contains("was not decided in time"), "{err}");
    let first = requests(&gw).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].facts.tables, ["public.products"]);

    // The same text over the view does not re-attach to it: it is a request of its own.
    let (out, err) = shadowed(url.clone()).await.unwrap();
    assert!(!out.contains(&ssn), "no SSN before any approval: {out}");
    assert!(err.contains("was not decided in time"), "{err}");
    let both = requests(&gw).await;
    assert_eq!(both.len(), 2, "{both:#?}");
    let second = both.iter().find(|v| v.id != first[0].id).unwrap();
    assert_eq!(second.facts.kinds, [airlock::sql::Kind::Unknown]);

    // Approving the plain read leaves a grant for it; the view's read does not run on it.
    let status = post(
        &format!("{}/api/approvals/{}/approve", admin.url, first[0].id),
        "alice",
        serde_json::json!({}),
    )
    .await;
    assert!(status.is_success());
    let (out, err) = shadowed(url.clone()).await.unwrap();
    assert!(
        !out.contains(&ssn),
        "the grant for the plain read ran the read of the view: {out}"
    );
    assert!(err.contains("was not decided in time"), "{err}");
    // The grant is still there for what was approved, and runs it once.
    let (ok, out, err) = finish(spawn_psql(&url, sql)).await;
    assert!(ok, "{err}");
    assert!(!err.contains("held for approval"), "{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains("Product ")).count(),
        20,
        "{out}"
    );
    admin.stop().await;
}

/// An approver who also connects through the gateway (`database_users` in the policy) never
/// decides what that database user sent, whatever the case of the name; another approver does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_never_decides_what_their_own_database_user_sent() {
    let db = demo_db("e2e_alias");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    let alice = "email = \"alice@example.com\"\n";
    assert!(text.contains(alice));
    std::fs::write(
        &policy,
        text.replace(alice, &format!("{alice}database_users = [\"AGENT\"]\n")),
    )
    .unwrap();
    let gw = Gw::start(|c| c.policy.path = policy.clone());
    let admin = AdminServer::start_with(gw.gateway.registry.clone(), &["alice", "bob"]).await;
    let mut child = spawn_psql(&gw.url(&db.name), "CREATE TABLE alias_table (x int)");
    let req = pending(&gw, "alias_table", &mut child).await;
    let url = format!("{}/api/approvals/{}/approve", admin.url, req.id);
    let status = post(&url, "alice", serde_json::json!({})).await;
    assert_eq!(
        status,
        reqwest::StatusCode::FORBIDDEN,
        "alice is the agent too"
    );
    assert!(!table_exists(&db, "alias_table"));
    let status = post(&url, "bob", serde_json::json!({})).await;
    assert!(status.is_success(), "{status}");
    let (ok, _, err) = finish(child).await;
    assert!(ok, "{err}");
    assert!(table_exists(&db, "alias_table"));
    let view = gw.gateway.registry.get(&req.id).await.unwrap();
    assert_eq!(view.approvals.len(), 1);
    assert_eq!(view.approvals[0].approver, "bob");
    admin.stop().await;
}

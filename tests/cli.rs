//! The `airlock` binary itself: demo, passwd, config check.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn airlock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn demo_serves_psql_and_cleans_up_on_ctrl_c() {
    let _ = cluster(); // fail early, with instructions, if PostgreSQL is missing
    let port = free_port();
    let admin = free_port();
    let mut child = airlock()
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("airlock demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut psql_lines = Vec::new();
    let mut data_dir = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(i) = line.find("data in ") {
            data_dir = Some(line[i + 8..].trim().to_string());
        }
        if line.trim_start().starts_with("psql \"") {
            let url = line.trim().trim_start_matches("psql ").trim_matches('"');
            psql_lines.push(url.to_string());
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
        assert!(Instant::now() < deadline, "demo did not print its banner");
    }
    let [url, report_url] = &psql_lines[..] else {
        panic!("demo prints two psql commands (agent, report): {psql_lines:?}");
    };
    // The report's connection string masks what the banner says it masks.
    let out = psql(
        report_url,
        &[
            "-At",
            "-c",
            "SELECT name, email, phone FROM customers ORDER BY id LIMIT 3",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().next(),
        Some("Customer 1|c***@example.com|***0001"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("customer2@"), "{}", stdout(&out));
    let out = psql(url, &["-At", "-c", "SELECT count(*) FROM orders"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "200");
    // What passes the gateway runs as a role that owns the demo schema and nothing more.
    let out = psql(
        url,
        &[
            "-At",
            "-c",
            "SELECT current_user, current_setting('is_superuser'), \
             (SELECT rolcreaterole FROM pg_roles WHERE rolname = current_user), \
             (SELECT tableowner FROM pg_tables WHERE tablename = 'customers')",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "airlock_gateway|off|f|airlock_gateway");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let dir = data_dir.expect("demo prints its data directory");
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} was not removed"
    );
}

#[test]
fn passwd_prints_a_verifier_the_gateway_accepts() {
    let mut child = airlock()
        .args(["passwd", "robot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hunter2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("robot = "))
        .expect("config line");
    let verifier = line
        .trim_start_matches("robot = ")
        .trim_matches('"')
        .to_string();
    assert!(!text.contains("hunter2"));

    let gw = Gw::start(|c| {
        c.auth.users.insert("robot".into(), verifier.clone());
    });
    let ok = psql(
        &format!(
            "postgres://robot:hunter2@127.0.0.1:{}/postgres?sslmode=disable",
            gw.port()
        ),
        &["-At", "-c", "SELECT 7"],
        None,
    );
    assert_eq!(stdout(&ok).trim(), "7", "{}", stderr(&ok));
}

#[test]
fn config_check_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[server]\nlisten = \"127.0.0.1:7000\"\n[upstream]\nurl = \"postgres://svc@db:5432/app\"\n",
    )
    .unwrap();
    let out = airlock()
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"x:1\"\n\n[audit]\ndurabilty = \"strict\"\n",
    )
    .unwrap();
    let out = airlock()
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("line 5"), "{err}");
    assert!(err.contains("durabilty"), "{err}");

    // Environment overrides are validated too.
    let out = airlock()
        .args(["config", "check"])
        .arg(&good)
        .env("AIRLOCK_AUDIT__DURABILITY", "sometimes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AIRLOCK_"));
}

/// `explain --config` reads the catalog from the gateway's upstream, as `serve` would, and
/// decides with the config's policy; an unreachable upstream is an error (exit 2), never a
/// decision made without the catalog.
#[test]
fn explain_with_a_config_reads_the_live_catalog() {
    let db = TestDb::new("explain_live");
    db.exec(
        "CREATE TABLE customers (id int, name text, email text, ssn text, phone text, \
         created_at timestamptz, nickname text)",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    let write_config = |url: &str| {
        std::fs::write(
            &config,
            format!(
                "[upstream]\nurl = \"{url}\"\n[policy]\npath = \"{}\"\n",
                shipped_policy("demo.toml").display()
            ),
        )
        .unwrap()
    };
    write_config(&db.direct_url());
    let out = airlock()
        .args(["explain", "--as", "agent", "--config"])
        .arg(&config)
        .arg("SELECT * FROM customers")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The demo policy: SSNs wait for two DBAs.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ssn-two-approvals"), "{text}");
    // A column only the live table has: `*` was expanded from the server's catalog.
    assert!(text.contains("public.customers.nickname"), "{text}");

    write_config(&format!("postgres://nobody@127.0.0.1:{}/none", free_port()));
    let out = airlock()
        .args(["explain", "--config"])
        .arg(&config)
        .arg("SELECT 1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reading the catalog"), "{err}");
}

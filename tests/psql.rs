//! psql through the gateway gives exactly what it gives on a direct connection.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SCRIPT: &str = r#"
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(8,2), tags text[], meta jsonb);
INSERT INTO items VALUES (1, 'apple', 1.25, '{red,fruit}', '{"k": 1}'), (2, 'pear', 2.50, NULL, NULL);
SELECT * FROM items ORDER BY id;
SELECT 1/0;
BEGIN;
UPDATE items SET price = price * 2 WHERE id = 1 RETURNING *;
SELECT nosuchcolumn FROM items;
SELECT 1;
ROLLBACK;
SELECT price FROM items WHERE id = 1;
DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$;
SELECT 'multi' AS a; SELECT 'statement' AS b;
\d items
\dt
SELECT now() IS NOT NULL AS has_time, current_database() = :'DBNAME' AS same_db;
"#;

fn run_script(url: &str) -> (String, String) {
    let out = psql(url, &["-v", "ON_ERROR_STOP=0", "-f", "-"], Some(SCRIPT));
    (stdout(&out), stderr(&out))
}

#[test]
fn scripted_session_matches_direct_connection() {
    let db = TestDb::new("psql_script");
    let db2 = TestDb::new("psql_script_gw");
    let gw = Gw::start(|_| {});
    let (direct_out, direct_err) = run_script(&db.direct_url());
    let (gw_out, gw_err) = run_script(&gw.url(&db2.name));
    assert!(direct_out.contains("apple"), "{direct_out}");
    assert!(direct_err.contains("division by zero"), "{direct_err}");
    assert!(direct_err.contains("hello from plpgsql"), "{direct_err}");
    assert_eq!(gw_out, direct_out);
    assert_eq!(gw_err, direct_err);
}

#[test]
fn copy_both_ways() {
    let db = TestDb::new("psql_copy");
    db.exec("CREATE TABLE t (id int, label text)");
    let gw = Gw::start(|_| {});
    let url = gw.url(&db.name);
    let mut data = String::new();
    for i in 0..5000 {
        data.push_str(&format!("{i}\tlabel {i}\n"));
    }
    data.push_str("\\.\n");
    let out = psql(
        &url,
        &["-v", "ON_ERROR_STOP=1", "-c", "\\copy t FROM STDIN"],
        Some(&data),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        db.exec("SELECT count(*), sum(id) FROM t").trim(),
        "5000|12497500"
    );

    let via_gw = psql(
        &url,
        &["-c", "\\copy (SELECT * FROM t ORDER BY id) TO STDOUT"],
        None,
    );
    let direct = psql(
        &db.direct_url(),
        &["-c", "\\copy (SELECT * FROM t ORDER BY id) TO STDOUT"],
        None,
    );
    assert!(via_gw.status.success(), "{}", stderr(&via_gw));
    assert_eq!(stdout(&via_gw).lines().count(), 5000);
    assert_eq!(stdout(&via_gw), stdout(&direct));

    // A COPY that fails mid-way leaves the table as it was and the session usable.
    let bad = "1\tok\nnot-a-number\tbad\n\\.\n";
    let out = psql(
        &url,
        &["-c", "\\copy t FROM STDIN", "-c", "SELECT 42"],
        Some(bad),
    );
    assert!(
        stderr(&out).contains("invalid input syntax for type integer"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("42"), "{}", stdout(&out));
    assert_eq!(db.exec("SELECT count(*) FROM t").trim(), "5000");
}

#[test]
fn ctrl_c_cancels_the_running_query_upstream() {
    let db = TestDb::new("psql_cancel");
    let gw = Gw::start(|_| {});
    let mut child = Command::new(tool("psql", "postgresql-client-15"))
        .args([
            "-X",
            &gw.url(&db.name),
            "-c",
            "SELECT pg_sleep(60) /* cancel-me */",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    // Wait until the query is really running upstream.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = db.exec(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%cancel-me%' AND state = 'active' AND pid <> pg_backend_pid()",
        );
        if n.trim() == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "query never started upstream");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("signal psql");
    let out = loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            break child.wait_with_output().expect("output");
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "cancel did not take effect"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = stderr(&out);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn wrong_password_gets_28p01_like_postgres() {
    let gw = Gw::start(|_| {});
    let url = format!(
        "postgres://{AGENT}:wrong@127.0.0.1:{}/postgres?sslmode=disable",
        gw.port()
    );
    let out = psql(&url, &["-c", "SELECT 1"], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "password authentication failed for user \"{AGENT}\""
        )),
        "{}",
        stderr(&out)
    );
    let out = psql(
        &format!(
            "postgres://nobody:x@127.0.0.1:{}/postgres?sslmode=disable",
            gw.port()
        ),
        &["-c", "SELECT 1"],
        None,
    );
    assert!(stderr(&out).contains("password authentication failed for user \"nobody\""));
}

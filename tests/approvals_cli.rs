//! `airlock approvals …` against a real admin server on a loopback port: the library entry
//! point for output and errors, and the binary for exit codes and environment variables.

mod approval_support;

use airlock::approval::cli::{self, ApprovalsArgs, CliError};
use airlock::approval::{Channel, Outcome};
use approval_support::{hold, token, AdminServer};
use clap::Parser;

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: ApprovalsArgs,
}

async fn run(server: &AdminServer, who: &str, argv: &[&str]) -> Result<String, CliError> {
    let mut full = vec!["approvals", "--admin", &server.url];
    let tok = token(who);
    full.extend(["--token", &tok]);
    full.extend(argv);
    let args = Wrapper::try_parse_from(full).expect("arguments").args;
    let mut out = Vec::new();
    cli::run(args, None, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn list_show_and_approve() {
    let server = AdminServer::start(&["alice", "agent"]).await;
    let (id, mut waiter) = server
        .registry
        .submit(hold("agent", "DROP TABLE orders", &["alice", "agent"]))
        .await
        .unwrap();

    let ls = run(&server, "alice", &["ls"]).await.unwrap();
    let line = ls.lines().find(|l| l.starts_with(id.as_str())).expect(&ls);
    assert!(
        line.contains("pending") && line.contains("ddl.hold") && line.contains("DROP TABLE orders"),
        "{line}"
    );

    let show = run(&server, "alice", &["show", id.as_str()]).await.unwrap();
    assert!(
        show.contains("requester  agent (application test-agent"),
        "{show}"
    );
    assert!(show.contains("pii        public.customers.email"), "{show}");
    assert!(show.contains("param $1 (int4)   42\n"), "{show}");
    assert!(show.contains("param $2   NULL\n"), "{show}");
    assert!(show.contains("  DROP TABLE orders"), "{show}");

    let json = run(&server, "alice", &["show", id.as_str(), "-o", "json"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["id"], id.as_str());

    // The requester cannot approve from the CLI either.
    let err = run(&server, "agent", &["approve", id.as_str()])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CliError::Api { status: 403, code, .. } if code == "self_approval"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1);

    let out = run(
        &server,
        "alice",
        &["approve", id.as_str(), "--reason", "change ticket 12"],
    )
    .await
    .unwrap();
    assert_eq!(out, format!("approved {id}; the statement runs now\n"));
    match waiter.wait().await {
        Outcome::Approved { by } => {
            assert_eq!(by[0].channel, Channel::Cli);
            assert_eq!(by[0].rationale.as_deref(), Some("change ticket 12"));
        }
        other => panic!("{other:?}"),
    }

    let err = run(&server, "alice", &["deny", id.as_str(), "--reason", "late"])
        .await
        .unwrap_err();
    assert!(matches!(&err, CliError::Api { status: 409, .. }), "{err}");
    let ls = run(&server, "alice", &["ls"]).await.unwrap();
    assert_eq!(ls, "no requests\n");
    let all = run(&server, "alice", &["ls", "--all", "-o", "json"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(v["requests"][0]["state"], "approved");
    server.stop().await;
}

/// The agent writes the statement, its application name and its parameters; none of them may
/// move the approver's cursor or redraw the screen, in any text output.
#[tokio::test]
async fn agent_text_cannot_redraw_the_approvers_terminal() {
    let server = AdminServer::start(&["alice", "agent"]).await;
    let sql = "ALTER TABLE ledger DROP COLUMN amount -- \x1b[2K\x1b[1G\rCOMMENT ON TABLE ledger\x1b[7A\n  AND \u{202e}x\u{200b}";
    let mut request = hold("agent", sql, &["alice", "agent"]);
    request.session.application_name = "etl\x1b]0;title\x07\r".into();
    request.params = vec![Some("1\x1b[2K\r\u{9b}".into())];
    let (id, _waiter) = server.registry.submit(request).await.unwrap();

    let show = run(&server, "alice", &["show", id.as_str()]).await.unwrap();
    let ls = run(&server, "alice", &["ls"]).await.unwrap();
    for out in [&show, &ls] {
        assert!(
            !out.contains(['\x1b', '\r', '\x07', '\u{9b}', '\u{202e}', '\u{200b}']),
            "{out:?}"
        );
    }
    assert!(
        show.contains("  ALTER TABLE ledger DROP COLUMN amount -- \\x1b[2K\\x1b[1G\\rCOMMENT ON TABLE ledger\\x1b[7A\n    AND \\u{202e}x\\u{200b}\n"),
        "{show}"
    );
    assert!(
        show.contains("(application etl\\x1b]0;title\\x07\\r,"),
        "{show}"
    );
    assert!(
        show.contains("param $1 (int4)   1\\x1b[2K\\r\\x9b\n"),
        "{show}"
    );
    assert!(ls.contains("amount -- \\x1b[2K\\x1b[1G\\r"), "{ls}");

    // JSON is escaped by serde: the same statement, with ESC as \u001b.
    let json = run(&server, "alice", &["show", id.as_str(), "-o", "json"])
        .await
        .unwrap();
    assert!(!json.contains(['\x1b', '\r']), "{json:?}");
    assert!(json.contains("-- \\u001b[2K\\u001b[1G\\rCOMMENT"), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["sql"], sql);
    server.stop().await;
}

#[tokio::test]
async fn deny_needs_a_reason_and_bad_tokens_are_refused() {
    let server = AdminServer::start(&["alice"]).await;
    let (id, mut waiter) = server
        .registry
        .submit(hold("agent", "DROP TABLE orders", &["alice"]))
        .await
        .unwrap();
    let missing = Wrapper::try_parse_from(["approvals", "deny", id.as_str()]);
    assert!(missing.is_err(), "clap requires --reason for deny");

    let err = run(&server, "mallory", &["ls"]).await.unwrap_err();
    assert!(matches!(&err, CliError::Api { status: 401, .. }), "{err}");

    let out = run(
        &server,
        "alice",
        &["deny", id.as_str(), "-r", "not on a Friday"],
    )
    .await
    .unwrap();
    assert_eq!(out, format!("denied {id}\n"));
    assert_eq!(
        waiter.wait().await,
        Outcome::Denied {
            by: "alice".into(),
            rationale: "not on a Friday".into()
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn unreachable_gateway_is_exit_code_2() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = Wrapper::try_parse_from([
        "approvals",
        "--admin",
        &format!("http://127.0.0.1:{port}"),
        "--token",
        "x",
        "ls",
    ])
    .unwrap()
    .args;
    let err = cli::run(args, None, &mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, CliError::Http { .. }), "{err}");
    assert_eq!(err.exit_code(), 2);
}

#[tokio::test]
async fn the_binary_reads_its_environment_and_sets_exit_codes() {
    let server = AdminServer::start(&["alice"]).await;
    let (id, _waiter) = server
        .registry
        .submit(hold("agent", "DROP TABLE orders", &["alice"]))
        .await
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_airlock");
    let ok = tokio::process::Command::new(bin)
        .args(["approvals", "ls"])
        .env("AIRLOCK_ADMIN_URL", &server.url)
        .env("AIRLOCK_TOKEN", token("alice"))
        .output()
        .await
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains(id.as_str()));

    let refused = tokio::process::Command::new(bin)
        .args(["approvals", "show", "01NOTAREQUEST"])
        .env("AIRLOCK_ADMIN_URL", &server.url)
        .env("AIRLOCK_TOKEN", token("alice"))
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no such approval request"));

    // The inspector's variable works too: both commands take the same approver tokens.
    let other_var = tokio::process::Command::new(bin)
        .args(["approvals", "ls"])
        .env("AIRLOCK_ADMIN_URL", &server.url)
        .env_remove("AIRLOCK_TOKEN")
        .env("AIRLOCK_ADMIN_TOKEN", token("alice"))
        .output()
        .await
        .unwrap();
    assert_eq!(
        other_var.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&other_var.stderr)
    );
    assert!(String::from_utf8_lossy(&other_var.stdout).contains(id.as_str()));

    let no_token = tokio::process::Command::new(bin)
        .args(["approvals", "ls"])
        .env("AIRLOCK_ADMIN_URL", &server.url)
        .env_remove("AIRLOCK_TOKEN")
        .env_remove("AIRLOCK_ADMIN_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("AIRLOCK_TOKEN"));

    let token_cmd = tokio::process::Command::new(bin)
        .args(["approvals", "token", "dana", "-o", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(token_cmd.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&token_cmd.stdout).unwrap();
    assert_eq!(
        v["sha256"],
        airlock::admin::hash_token(v["token"].as_str().unwrap())
    );
    server.stop().await;
}

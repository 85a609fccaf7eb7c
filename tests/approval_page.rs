//! The approval page in a real headless Chromium, against a real admin server and registry:
//! sign in with a token, see the held statement, approve or deny, and the waiting session is
//! released with that verdict.
//!
//! Needs Debian's chromium (`apt-get install -y chromium`); fails saying so when missing.

mod approval_support;

use std::time::{SystemTime, UNIX_EPOCH};

use airlock::approval::{sign_link, ApprovalAction, Channel, Outcome};
use approval_support::cdp::Browser;
use approval_support::{hold, token, AdminServer, LINK_SECRET};

/// A signed link to request `id`, valid for ten more minutes, and its expiry.
fn signed_link(server: &AdminServer, id: &str) -> (String, u64) {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let sig = sign_link(LINK_SECRET.as_bytes(), id, exp);
    (
        format!("{}/approvals/{id}?exp={exp}&sig={sig}", server.url),
        exp,
    )
}

fn visible(id: &str) -> String {
    format!("!document.getElementById('{id}').hidden")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_signs_in_and_approves_in_the_browser() {
    let server = AdminServer::start(&["alice", "agent"]).await;
    // Markup in the statement must show up as text, never as markup.
    let sql = "DROP TABLE orders; -- </pre><img src=x onerror=\"window.pwned=1\"> 'x'";
    let (id, mut waiter) = server
        .registry
        .submit(hold("agent", sql, &["alice", "agent"]))
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { waiter.wait().await });
    let url = format!("{}/approvals/{}", server.url, id);
    let expected_sql = sql.to_owned();

    tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch();
        b.navigate(&url);
        b.wait_for(&visible("signin-section"), "the sign-in form");

        // The requester signs in and tries to approve its own request: refused.
        b.type_into("#token", &token("agent"));
        b.click("#signin-btn");
        b.wait_for(&visible("verdict"), "the verdict form");
        assert_eq!(b.text("#sql"), expected_sql, "statement shown verbatim");
        assert!(
            b.eval("document.querySelectorAll('#sql span.kw').length").as_u64() >= Some(2),
            "keywords highlighted"
        );
        assert_eq!(b.eval("document.querySelectorAll('img').length"), 0, "no injected markup");
        assert_eq!(b.eval("window.pwned === undefined"), true);
        assert_eq!(b.text("#f-requester"), "agent");
        assert_eq!(b.text("#f-app"), "test-agent");
        assert_eq!(b.text("#f-rule"), "ddl.hold");
        assert_eq!(b.text("#f-pii"), "public.customers.email");
        assert_eq!(b.text("#f-tables"), "public.orders");
        assert_eq!(b.eval("document.querySelectorAll('#params tbody tr').length"), 2);
        assert_eq!(b.text("#params tbody tr:nth-child(2) td:nth-child(3)"), "NULL");
        assert_eq!(b.text("#params tbody tr:nth-child(1) td:nth-child(2)"), "int4");
        assert_eq!(b.text("#params tbody tr:nth-child(2) td:nth-child(2)"), "—");
        assert!(b.text("#countdown").contains("left"), "{}", b.text("#countdown"));
        assert!(b.text("#who").contains("agent"));
        b.click("#approve");
        b.wait_for(
            "document.getElementById('result').textContent.includes('cannot decide its own request')",
            "the self-approval refusal",
        );

        // Sign out, sign in as the approver, approve with a rationale.
        b.click("#signout");
        b.wait_for("document.readyState === 'complete'", "reload");
        b.wait_for(&visible("signin-section"), "the sign-in form again");
        b.type_into("#token", &token("alice"));
        b.click("#signin-btn");
        b.wait_for(&visible("verdict"), "the verdict form for alice");
        assert!(b.text("#who").contains("alice"));
        b.type_into("#rationale", "reviewed in the browser");
        b.click("#approve");
        b.wait_for(
            "document.getElementById('result').textContent.startsWith('Approved')",
            "the approval confirmation",
        );
        assert_eq!(b.text("#req-state"), "approved");
        assert!(b.page_errors.is_empty(), "page errors: {:?}", b.page_errors);
    })
    .await
    .expect("browser steps");

    match waiting.await.unwrap() {
        Outcome::Approved { by } => {
            assert_eq!(by.len(), 1);
            assert_eq!(by[0].approver, "alice");
            assert_eq!(by[0].channel, Channel::Web);
            assert_eq!(by[0].rationale.as_deref(), Some("reviewed in the browser"));
        }
        other => panic!("expected approval, got {other:?}"),
    }
    let actions = server.audit.as_ref().unwrap().actions_for(id.as_str());
    assert_eq!(
        actions,
        vec![
            ApprovalAction::Requested,
            ApprovalAction::Refused,
            ApprovalAction::Approve
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_link_opens_the_request_and_a_tampered_one_is_refused() {
    let server = AdminServer::start(&["alice"]).await;
    let (id, mut waiter) = server
        .registry
        .submit(hold(
            "agent",
            "ALTER TABLE orders DROP COLUMN note",
            &["alice"],
        ))
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { waiter.wait().await });
    let (link, exp) = signed_link(&server, id.as_str());
    let tampered = link.replace(&format!("exp={exp}"), &format!("exp={}", exp + 60));

    tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch();
        b.navigate(&tampered);
        b.wait_for(
            "document.title.includes('link refused')",
            "the refusal page",
        );

        b.navigate(&link);
        b.wait_for(&visible("request-section"), "the read-only request");
        assert!(b.text("#sql").contains("ALTER TABLE orders"));
        assert_eq!(b.eval(&visible("readonly-note")), true);
        assert_eq!(
            b.eval(&visible("verdict")),
            false,
            "a link alone cannot decide"
        );

        b.type_into("#token", &token("alice"));
        b.click("#signin-btn");
        b.wait_for(&visible("verdict"), "the verdict form");
        b.click("#deny");
        b.wait_for(
            "document.getElementById('result').textContent.includes('rationale is required')",
            "the rationale prompt",
        );
        b.type_into("#rationale", "column is still read by billing");
        b.click("#deny");
        b.wait_for(
            "document.getElementById('result').textContent.startsWith('Denied')",
            "the denial confirmation",
        );
        assert!(b.page_errors.is_empty(), "page errors: {:?}", b.page_errors);
    })
    .await
    .expect("browser steps");

    assert_eq!(
        waiting.await.unwrap(),
        Outcome::Denied {
            by: "alice".into(),
            rationale: "column is still read by billing".into()
        }
    );
    server.stop().await;
}

/// Bidi controls, zero-width characters and terminal controls in what the agent sent are shown
/// as escapes on the page, so the statement cannot read differently from what runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_characters_are_shown_as_escapes() {
    let server = AdminServer::start(&["alice"]).await;
    let sql = "DROP TABLE orders -- \u{202e}\u{2066}elbat_tset\x1b[2K\r\n  ; -- café 東京 🙂";
    let mut request = hold("agent", sql, &["alice"]);
    request.session.application_name = "etl\u{200b}\u{1bca0}".into();
    request.params = vec![Some("4\u{feff}2".into())];
    let (id, _waiter) = server.registry.submit(request).await.unwrap();
    let (link, _) = signed_link(&server, id.as_str());

    tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch();
        b.navigate(&link);
        b.wait_for(&visible("request-section"), "the read-only request");
        assert_eq!(
            b.text("#sql"),
            "DROP TABLE orders -- \\u{202e}\\u{2066}elbat_tset\\x1b[2K\n  ; -- café 東京 🙂"
        );
        assert_eq!(b.text("#f-app"), "etl\\u{200b}\\u{1bca0}");
        assert_eq!(b.text("#params tbody tr td:nth-child(3)"), "4\\u{feff}2");
        assert!(b.page_errors.is_empty(), "page errors: {:?}", b.page_errors);
    })
    .await
    .expect("browser steps");
    server.stop().await;
}

/// The statement is coloured where PostgreSQL's lexer ends its tokens, so code cannot pass
/// for a string or a comment: a backslash does not escape a quote in a plain '…' string, a
/// `--` comment ends at a lone CR, block comments nest. A plain string with a backslash also
/// shows a warning, since a server configured with standard_conforming_strings off reads it
/// otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_is_coloured_as_the_server_reads_it() {
    let server = AdminServer::start(&["alice"]).await;
    let cases = [
        // (statement, keywords that must be painted as code, warning shown)
        (
            "SELECT 'C:\\tmp\\' ; DROP TABLE orders; -- ' AS dir;",
            &["SELECT", "DROP", "TABLE"][..],
            true,
        ),
        (
            "SELECT 1; -- tidy up\rALTER TABLE customers ADD COLUMN n3 text;",
            &["SELECT", "ALTER", "TABLE", "ADD", "COLUMN"][..],
            false,
        ),
        (
            "/* a /* nested */ still a comment */ DELETE FROM orders WHERE e'it\\'s' = $q$'$q$",
            &["DELETE", "FROM", "WHERE"][..],
            false,
        ),
    ];
    let mut links = Vec::new();
    for (sql, _, _) in &cases {
        let (id, _waiter) = server
            .registry
            .submit(hold("agent", sql, &["alice"]))
            .await
            .unwrap();
        links.push(signed_link(&server, id.as_str()).0);
    }

    tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch();
        for ((sql, keywords, warned), link) in cases.iter().zip(&links) {
            b.navigate(link);
            b.wait_for(&visible("request-section"), "the read-only request");
            let painted = b.eval(
                "Array.from(document.querySelectorAll('#sql span.kw')).map(s => s.textContent)",
            );
            let painted: Vec<String> = serde_json::from_value(painted).unwrap();
            assert_eq!(painted, *keywords, "{sql:?}");
            let hidden = b.eval(
                "Array.from(document.querySelectorAll('#sql span.str, #sql span.cmt')) \
                 .map(s => s.textContent).join(' ')",
            );
            let hidden = hidden.as_str().unwrap().to_owned();
            for k in *keywords {
                assert!(
                    !hidden.contains(k),
                    "{k} painted as a string or comment: {hidden}"
                );
            }
            assert_eq!(b.eval(&visible("sql-warning")), *warned, "{sql:?}");
            assert!(b.page_errors.is_empty(), "page errors: {:?}", b.page_errors);
        }
    })
    .await
    .expect("browser steps");
    server.stop().await;
}

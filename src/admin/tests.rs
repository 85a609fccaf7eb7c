//! The admin router, called without a socket: every route and every error status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;

use super::*;
use crate::approval::{
    sign_link, ApprovalConfig, Binding, Channel, FactsSummary, HoldRequest, MemoryAudit, Outcome,
    RequestId, Waiter,
};
use crate::audit::SessionInfo;
use crate::policy::{Action, Decision};
use crate::sql::Kind;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

struct Fixture {
    app: Router,
    registry: Arc<Registry>,
    audit: MemoryAudit,
    state: AdminState,
}

async fn fixture() -> Fixture {
    let audit = MemoryAudit::new();
    let metrics = Arc::new(Metrics::new());
    let registry = Registry::open(
        ApprovalConfig {
            hold_timeout_secs: 60,
            grant_ttl_secs: 600,
            state_dir: Default::default(),
            ..ApprovalConfig::default()
        },
        Arc::new(audit.clone()),
        vec![],
        metrics.clone(),
    )
    .await
    .unwrap();
    let mut tokens = BTreeMap::new();
    for name in ["alice", "bob", "agent", "mallory"] {
        tokens.insert(name.to_string(), hash_token(&format!("tok-{name}")));
    }
    let config = AdminConfig {
        tokens,
        link_secret: SECRET.into(),
        ..AdminConfig::default()
    };
    let state = AdminState::new(
        &config,
        registry.clone(),
        metrics,
        LinkSecret::from_config(&config.link_secret),
        None,
    )
    .unwrap();
    Fixture {
        app: router(state.clone()),
        registry,
        audit,
        state,
    }
}

fn hold(sql: &str, quorum: u32) -> HoldRequest {
    HoldRequest {
        decision_id: "dec-1".into(),
        session: SessionInfo {
            session_id: "s1".into(),
            client_addr: "10.0.0.5:40000".into(),
            user: "agent".into(),
            application_name: "claude-code".into(),
            database: "shop".into(),
        },
        requester_aliases: vec![],
        sql: sql.into(),
        params: vec![Some("42".into()), None],
        param_types: vec![Some("int4".into()), None],
        binding: Binding::builder("shop", "agent").sql(sql).build(),
        facts: FactsSummary {
            kinds: vec![Kind::Ddl],
            labels: vec!["DROP TABLE".into()],
            tables: vec!["public.orders".into()],
            pii_columns: vec!["public.customers.email".into()],
        },
        decision: Decision {
            action: Action::Hold,
            rule_id: "ddl.hold".into(),
            rule_source: "policies/default.toml:3".into(),
            reason: "DDL needs approval".into(),
            rewritten: None,
            hold_timeout: None,
            quorum,
            // The requester is listed too: separation of duties must still refuse it.
            approvers: vec!["alice".into(), "bob".into(), "agent".into()],
            pii_columns: vec![],
        },
    }
}

impl Fixture {
    async fn held(&self, sql: &str, quorum: u32) -> (RequestId, Waiter) {
        self.registry.submit(hold(sql, quorum)).await.unwrap()
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer tok-{t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_owned()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn json(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let (status, headers, text) = self.call(method, uri, token, body).await;
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{uri}: {headers:?}"
        );
        (status, serde_json::from_str(&text).unwrap())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn health_and_readiness() {
    let f = fixture().await;
    let (s, _, body) = f.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "ok\n"));
    let (s, _, _) = f.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    f.state.readiness().set_ready(true);
    let (s, _, body) = f.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "ready\n"));
}

#[tokio::test]
async fn metrics_are_prometheus_text_without_sql() {
    let f = fixture().await;
    let (id, _w) = f.held("DROP TABLE secret_orders", 1).await;
    f.state.metrics().statement(Kind::Ddl, Action::Hold);
    f.call(
        Method::POST,
        &format!("/api/approvals/{id}/approve"),
        Some("agent"),
        None,
    )
    .await;
    let (s, headers, body) = f.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(body.contains("\nairlock_holds_pending 1\n"), "{body}");
    assert!(body.contains("airlock_statements_total{kind=\"ddl\",action=\"hold\"} 1"));
    assert!(body.contains("airlock_verdicts_refused_total{reason=\"self_approval\"} 1"));
    assert!(body.contains("airlock_holds_total 1"));
    assert!(!body.contains("secret_orders"), "no SQL in metrics");
}

#[tokio::test]
async fn the_api_needs_a_valid_token() {
    let f = fixture().await;
    let (id, _w) = f.held("DROP TABLE a", 1).await;
    for uri in [
        "/api/approvals".to_string(),
        format!("/api/approvals/{id}"),
        "/api/whoami".into(),
    ] {
        let (s, h, text) = f.call(Method::GET, &uri, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer realm=\"airlock\"");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"], "unauthorized");
        let (s, _) = f.json(Method::GET, &uri, Some("nobody"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (s, v) = f
        .json(
            Method::POST,
            &format!("/api/approvals/{id}/approve"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    // A malformed Authorization header is a 401 too.
    let req = Request::builder()
        .uri("/api/approvals")
        .header(header::AUTHORIZATION, "Basic YWxpY2U6eA==")
        .body(Body::empty())
        .unwrap();
    let resp = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn whoami_names_the_token_owner() {
    let f = fixture().await;
    let (s, v) = f
        .json(Method::GET, "/api/whoami", Some("alice"), None)
        .await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("alice")));
}

#[tokio::test]
async fn list_and_show() {
    let f = fixture().await;
    let (id, _w) = f.held("DROP TABLE a", 1).await;
    let (other, _w2) = f.held("DROP TABLE b", 1).await;
    f.registry
        .deny(&other, "alice", Channel::Api, Some("no".into()))
        .await
        .unwrap();

    let (s, v) = f
        .json(Method::GET, "/api/approvals", Some("alice"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()], "pending only by default");

    let (_, v) = f
        .json(Method::GET, "/api/approvals?state=all", Some("alice"), None)
        .await;
    assert_eq!(v["requests"].as_array().unwrap().len(), 2);

    let (s, v) = f
        .json(
            Method::GET,
            "/api/approvals?state=bogus",
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );

    let (s, v) = f
        .json(
            Method::GET,
            &format!("/api/approvals/{id}"),
            Some("bob"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["sql"], "DROP TABLE a");
    assert_eq!(v["requester"], "agent");
    assert_eq!(v["application_name"], "claude-code");
    assert_eq!(v["rule_id"], "ddl.hold");
    assert_eq!(v["facts"]["pii_columns"][0], "public.customers.email");
    assert_eq!(v["params"], serde_json::json!(["42", null]));
    assert_eq!(v["param_types"], serde_json::json!(["int4", null]));
    assert_eq!(v["state"], "pending");
    assert_eq!(v["client_waiting"], true);

    let (s, v) = f
        .json(Method::GET, "/api/approvals/01NOPE", Some("bob"), None)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn signed_links_open_one_request_read_only() {
    let f = fixture().await;
    let (id, _w) = f.held("DROP TABLE a", 1).await;
    let exp = now_secs() + 600;
    let sig = sign_link(SECRET.as_bytes(), id.as_str(), exp);
    let (s, v) = f
        .json(
            Method::GET,
            &format!("/api/approvals/{id}?exp={exp}&sig={sig}"),
            None,
            None,
        )
        .await;
    assert_eq!((s, v["id"].as_str()), (StatusCode::OK, Some(id.as_str())));

    // Tampered expiry, or a link for another request: 403.
    let (s, v) = f
        .json(
            Method::GET,
            &format!("/api/approvals/{id}?exp={}&sig={sig}", exp + 1),
            None,
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("link_invalid"))
    );
    let (other, _w2) = f.held("DROP TABLE b", 1).await;
    let (s, _) = f
        .json(
            Method::GET,
            &format!("/api/approvals/{other}?exp={exp}&sig={sig}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Expired: 410.
    let old = now_secs() - 1;
    let old_sig = sign_link(SECRET.as_bytes(), id.as_str(), old);
    let (s, v) = f
        .json(
            Method::GET,
            &format!("/api/approvals/{id}?exp={old}&sig={old_sig}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::GONE, Some("link_expired"))
    );

    // A link never approves.
    let (s, _) = f
        .json(
            Method::POST,
            &format!("/api/approvals/{id}/approve?exp={exp}&sig={sig}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // And it does not list.
    let (s, _) = f
        .json(
            Method::GET,
            &format!("/api/approvals?exp={exp}&sig={sig}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A garbled expiry is a JSON 400, not a panic or a plain-text rejection.
    let (s, v) = f
        .json(
            Method::GET,
            &format!("/api/approvals/{id}?exp=soon&sig={sig}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
}

#[tokio::test]
async fn approve_through_the_api_releases_the_client() {
    let f = fixture().await;
    let (id, mut w) = f.held("DROP TABLE a", 1).await;
    let (s, v) = f
        .json(
            Method::POST,
            &format!("/api/approvals/{id}/approve"),
            Some("alice"),
            Some(r#"{"rationale":"ticket OPS-7","channel":"web"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"], "final");
    assert_eq!(v["delivery"], "client_released");
    assert_eq!(v["request"]["state"], "approved");
    match w.wait().await {
        Outcome::Approved { by } => {
            assert_eq!(by[0].approver, "alice");
            assert_eq!(by[0].channel, Channel::Web);
            assert_eq!(by[0].rationale.as_deref(), Some("ticket OPS-7"));
        }
        other => panic!("{other:?}"),
    }
    // Second click: 409.
    let (s, v) = f
        .json(
            Method::POST,
            &format!("/api/approvals/{id}/approve"),
            Some("bob"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_decided"))
    );
}

#[tokio::test]
async fn refusals_have_their_own_statuses() {
    let f = fixture().await;
    let (id, mut w) = f.held("DROP TABLE a", 2).await;
    let approve = format!("/api/approvals/{id}/approve");
    let deny = format!("/api/approvals/{id}/deny");

    let (s, v) = f.json(Method::POST, &approve, Some("agent"), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval"))
    );
    let (s, v) = f.json(Method::POST, &approve, Some("mallory"), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_an_approver"))
    );
    let (s, v) = f.json(Method::POST, &deny, Some("alice"), Some("{}")).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("rationale_required"))
    );
    let long = format!(r#"{{"rationale":"{}"}}"#, "x".repeat(4001));
    let (s, v) = f
        .json(Method::POST, &deny, Some("alice"), Some(&long))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("rationale_too_long"))
    );
    let (s, v) = f
        .json(Method::POST, &deny, Some("alice"), Some("{not json"))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let (s, _) = f
        .json(
            Method::POST,
            &deny,
            Some("alice"),
            Some(r#"{"rationale":"x","extra":1}"#),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = f
        .json(
            Method::POST,
            &approve,
            Some("alice"),
            Some(r#"{"channel":"teams"}"#),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "teams verdicts come from the bot, not the API"
    );

    let (s, v) = f
        .json(Method::POST, &approve, Some("alice"), Some(""))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["result"].as_str(), v["remaining"].as_u64()),
        (Some("recorded"), Some(1))
    );
    let (s, v) = f.json(Method::POST, &approve, Some("alice"), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_voted"))
    );
    let (s, v) = f
        .json(
            Method::POST,
            "/api/approvals/01NOPE/approve",
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let (s, v) = f
        .json(
            Method::POST,
            &deny,
            Some("bob"),
            Some(r#"{"rationale":"not now"}"#),
        )
        .await;
    assert_eq!((s, v["result"].as_str()), (StatusCode::OK, Some("final")));
    assert_eq!(
        w.wait().await,
        Outcome::Denied {
            by: "bob".into(),
            rationale: "not now".into()
        }
    );
    // Every refused attempt is in the audit.
    let refused = f
        .audit
        .entries()
        .iter()
        .filter(|e| e.action == crate::approval::ApprovalAction::Refused)
        .count();
    assert_eq!(refused, 4, "self, not approver, rationale, already voted");
}

#[tokio::test(start_paused = true)]
async fn expired_requests_are_gone() {
    let f = fixture().await;
    let (id, mut w) = f.held("DROP TABLE a", 1).await;
    assert_eq!(w.wait().await, Outcome::Expired);
    tokio::time::advance(Duration::from_secs(601)).await;
    let (s, v) = f
        .json(
            Method::POST,
            &format!("/api/approvals/{id}/approve"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::GONE, Some("expired"))
    );
}

#[tokio::test]
async fn an_unrecordable_verdict_is_a_503() {
    let f = fixture().await;
    let (id, mut w) = f.held("DROP TABLE a", 1).await;
    f.audit.set_failing(true);
    let (s, v) = f
        .json(
            Method::POST,
            &format!("/api/approvals/{id}/approve"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("audit_unavailable"))
    );
    assert!(matches!(w.wait().await, Outcome::Aborted { .. }));
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy() {
    let f = fixture().await;
    let (id, _w) = f.held("DROP TABLE a", 1).await;
    for uri in ["/approvals".to_string(), format!("/approvals/{id}")] {
        let (s, h, body) = f.call(Method::GET, &uri, None, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}");
        assert!(h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert!(body.contains("/approvals/assets/app.js"));
        assert!(
            !body.contains("DROP TABLE"),
            "the shell carries no request data"
        );
    }
    let (s, h, body) = f
        .call(Method::GET, "/approvals/assets/app.js", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(body.contains("function highlight"));
    let (s, h, _) = f
        .call(Method::GET, "/approvals/assets/app.css", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

#[tokio::test]
async fn the_page_refuses_tampered_and_expired_links() {
    let f = fixture().await;
    let (id, _w) = f.held("DROP TABLE a", 1).await;
    let exp = now_secs() + 600;
    let sig = sign_link(SECRET.as_bytes(), id.as_str(), exp);
    let (s, _, _) = f
        .call(
            Method::GET,
            &format!("/approvals/{id}?exp={exp}&sig={sig}&utm=x"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, body) = f
        .call(
            Method::GET,
            &format!("/approvals/{id}?exp={exp}&sig=AAAA{sig}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("not valid"));
    let (s, _, _) = f
        .call(
            Method::GET,
            &format!("/approvals/{id}?sig={sig}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a signature without expiry is not a link"
    );
    let old = now_secs() - 10;
    let old_sig = sign_link(SECRET.as_bytes(), id.as_str(), old);
    let (s, _, body) = f
        .call(
            Method::GET,
            &format!("/approvals/{id}?exp={old}&sig={old_sig}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert!(body.contains("expired"));
}

#[test]
fn config_validation_catches_plaintext_tokens_and_short_secrets() {
    let mut c = AdminConfig::default();
    assert!(c.validate().is_ok());
    c.tokens.insert("alice".into(), "hunter2".into());
    assert!(c.validate().unwrap_err().contains("alice"));
    c.tokens.insert("alice".into(), hash_token("x"));
    c.link_secret = "short".into();
    assert!(c.validate().unwrap_err().contains("link_secret"));
}

/// A client that sends half a request header (or nothing) is disconnected once the header
/// read timeout passes, and the connections served at once are capped: a request past the cap
/// waits for a slot, which here frees only when the timeout closes the idle ones.
#[tokio::test]
async fn slow_clients_are_cut_off_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let timeout = Duration::from_millis(400);
    let server = tokio::spawn(serve_bounded(
        listener,
        app,
        async {
            let _ = stopped.await;
        },
        2,
        timeout,
    ));
    let started = std::time::Instant::now();
    // Two clients take both slots: one sends half a header, one sends nothing.
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A third, complete request can only be served once a slot is free.
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(20), third.read_to_string(&mut answer))
        .await
        .expect("the third request is served once the slow ones are cut off")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("cache-control: no-store"), "{answer}");
    assert!(
        lower.contains("x-content-type-options: nosniff"),
        "{answer}"
    );
    assert!(
        started.elapsed() >= timeout,
        "served after {:?}, before the slow clients' timeout: the cap did not hold",
        started.elapsed()
    );
    // Both slow clients were disconnected (EOF or reset, never an answer to half a request).
    for (name, s) in [("half a header", &mut half), ("nothing", &mut silent)] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("the client that sent {name} is still connected"));
        let text = String::from_utf8_lossy(&rest);
        assert!(read.is_err() || !text.contains("200 OK"), "{name}: {text}");
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

//! Workflows webhook mode against a loopback Workflows endpoint that records what it receives.

mod teams_fakes;

use std::time::{Duration, Instant};

use airlock::notify::card::{self, CardOutcome, CardRequest, OutcomeState, MAX_CARD_BYTES};
use airlock::notify::config::RetryConfig;
use airlock::notify::{
    Channel, DeliveryKind, Notifier, Notifiers, NotifyConfig, Secret, WebhookNotifier,
};
use serde_json::Value;
use teams_fakes::*;

fn fast_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        initial_backoff_ms: 5,
        max_backoff_ms: 20,
        max_retry_after_secs: 5,
        request_timeout_secs: 5,
    }
}

fn request(id: &str) -> CardRequest {
    CardRequest {
        request_id: id.into(),
        requester: "agent_ci".into(),
        application_name: Some("nightly-migrations".into()),
        database: "shop".into(),
        sql: "ALTER TABLE customers ADD COLUMN loyalty_tier text".into(),
        params: vec![(Some("int4".into()), Some("2019".into())), (None, None)],
        rule_id: "ddl-needs-approval".into(),
        reason: "schema changes need a human".into(),
        kind: "ddl".into(),
        tables: vec!["public.customers".into()],
        pii_columns: vec!["public.customers.email".into()],
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::minutes(5),
        approve_url: format!("https://airlock.example/approvals/{id}?exp=1&sig=abc"),
        approver_aad_ids: vec![],
    }
}

/// Checks the Workflows envelope and returns the card inside it.
fn card_of(post: &Recorded) -> Value {
    assert_eq!(post.method, "POST");
    assert_eq!(
        post.headers.get("content-type").unwrap(),
        "application/json",
        "Workflows wants JSON"
    );
    assert!(
        post.body.len() <= 20 * 1024,
        "post is {} bytes",
        post.body.len()
    );
    let body = post.json();
    let top: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(top, ["attachments", "type"], "envelope keys");
    assert_eq!(body["type"], "message");
    let attachments = body["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = attachments[0]["content"].clone();
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.5");
    assert_valid_card(&card);
    card
}

#[tokio::test]
async fn held_request_is_posted_as_a_card_with_the_approval_link() {
    let mut hook = fake_webhook(vec![]).await;
    let (report, mut deliveries) = report();
    let n = WebhookNotifier::new(Secret::new(hook.url.clone()), fast_retry(3), report).unwrap();
    n.held(request("r-1"));

    let post = recv(&mut hook.posts, "the webhook post").await;
    assert!(
        post.uri.contains("sig=WEBHOOK-SIGNATURE"),
        "posted to the configured URL"
    );
    let card = card_of(&post);
    let actions = card["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["type"], "Action.OpenUrl");
    assert_eq!(
        actions[0]["url"],
        "https://airlock.example/approvals/r-1?exp=1&sig=abc"
    );
    let text = serde_json::to_string(&card).unwrap();
    for needle in [
        "ALTER TABLE customers ADD COLUMN loyalty_tier text",
        "agent_ci",
        "nightly-migrations",
        "shop",
        "ddl-needs-approval",
        "public.customers.email",
    ] {
        assert!(text.contains(needle), "card misses {needle}");
    }
    assert_eq!(
        recv(&mut deliveries, "delivery report").await,
        Delivery::Ok("r-1".into(), Channel::TeamsWebhook, DeliveryKind::Held)
    );
}

#[tokio::test]
async fn a_megabyte_statement_still_fits_and_validates() {
    let mut hook = fake_webhook(vec![]).await;
    let (report, _deliveries) = report();
    let n = WebhookNotifier::new(Secret::new(hook.url.clone()), fast_retry(1), report).unwrap();
    let mut r = request("r-big");
    r.sql = format!(
        "INSERT INTO t VALUES {}",
        "('quote\" backslash\\ tab\t newline\n é 𝄞'),".repeat(1024 * 1024 / 40)
    );
    assert!(r.sql.len() >= 1024 * 1024);
    n.held(r);
    let post = recv(&mut hook.posts, "the webhook post").await;
    let card = card_of(&post);
    let len = serde_json::to_vec(&card).unwrap().len();
    assert!(len <= MAX_CARD_BYTES, "card is {len} bytes");
    let text = serde_json::to_string(&card).unwrap();
    assert!(
        text.contains("Statement cut for Teams"),
        "the cut is announced"
    );
    assert!(
        text.contains("INSERT INTO t VALUES"),
        "the statement's start is shown"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_retry_after_is_honoured() {
    let mut hook = fake_webhook(vec![
        Answer::status(500),
        Answer::status(429).header("retry-after", "1"),
    ])
    .await;
    let (report, mut deliveries) = report();
    let n = WebhookNotifier::new(Secret::new(hook.url.clone()), fast_retry(5), report).unwrap();
    n.held(request("r-retry"));

    let first = recv(&mut hook.posts, "attempt 1").await;
    let second = recv(&mut hook.posts, "attempt 2").await;
    let at_second = Instant::now();
    let third = recv(&mut hook.posts, "attempt 3").await;
    let waited = at_second.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    assert_eq!(first.body, second.body, "the same card is re-sent");
    assert_eq!(second.body, third.body);
    assert_eq!(
        recv(&mut deliveries, "delivery report").await,
        Delivery::Ok("r-retry".into(), Channel::TeamsWebhook, DeliveryKind::Held)
    );
}

#[tokio::test]
async fn giving_up_is_reported_without_leaking_the_url() {
    let mut hook = fake_webhook(vec![Answer::status(503); 10]).await;
    let (report, mut deliveries) = report();
    let n = WebhookNotifier::new(Secret::new(hook.url.clone()), fast_retry(3), report).unwrap();
    n.held(request("r-down"));
    for i in 1..=3 {
        recv(&mut hook.posts, &format!("attempt {i}")).await;
    }
    match recv(&mut deliveries, "failure report").await {
        Delivery::Failed(f) => {
            assert_eq!(f.request_id, "r-down");
            assert_eq!(f.channel, Channel::TeamsWebhook);
            assert_eq!(f.kind, DeliveryKind::Held);
            assert_eq!(f.attempts, 3);
            assert!(f.error.contains("503"), "{}", f.error);
            assert!(!f.error.contains("WEBHOOK-SIGNATURE"), "{}", f.error);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(hook.posts.try_recv().is_err(), "no fourth attempt");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let mut hook = fake_webhook(vec![Answer::status(400)]).await;
    let (report, _d) = report();
    let n = WebhookNotifier::new(Secret::new(hook.url.clone()), fast_retry(5), report).unwrap();
    let err = n
        .post_card(&card::webhook_card(&request("r-400")))
        .await
        .unwrap_err();
    assert_eq!(err.attempts, 1);
    recv(&mut hook.posts, "the one attempt").await;
    assert!(hook.posts.try_recv().is_err());
}

#[tokio::test]
async fn a_long_retry_after_gives_up_instead_of_parking() {
    let mut hook = fake_webhook(vec![Answer::status(429).header("retry-after", "3600")]).await;
    let (report, _d) = report();
    let n = WebhookNotifier::new(Secret::new(hook.url.clone()), fast_retry(5), report).unwrap();
    let err = n
        .post_card(&card::webhook_card(&request("r-429")))
        .await
        .unwrap_err();
    assert_eq!(err.attempts, 1);
    assert!(err.error.contains("3600"), "{}", err.error);
    recv(&mut hook.posts, "the one attempt").await;
}

#[tokio::test]
async fn an_unreachable_webhook_is_reported() {
    // A port nothing listens on: bind, learn the port, close.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (report, mut deliveries) = report();
    let url = format!("http://{addr}/wf?sig=SECRET-SIG");
    let n = WebhookNotifier::new(Secret::new(url), fast_retry(2), report).unwrap();
    n.held(request("r-unreachable"));
    match recv(&mut deliveries, "failure report").await {
        Delivery::Failed(f) => {
            assert_eq!(f.attempts, 2);
            assert!(!f.error.contains("SECRET-SIG"), "{}", f.error);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn the_verdict_follows_the_request_card() {
    let mut hook = fake_webhook(vec![]).await;
    let (report, _d) = report();
    let n = WebhookNotifier::new(Secret::new(hook.url.clone()), fast_retry(3), report).unwrap();
    n.held(request("r-v"));
    n.settled(CardOutcome {
        request_id: "r-v".into(),
        state: OutcomeState::Denied,
        by: vec!["alice".into()],
        rationale: Some("not before the release freeze ends".into()),
        decided_at: time::OffsetDateTime::now_utc(),
    });
    let first = card_of(&recv(&mut hook.posts, "request card").await);
    let second = card_of(&recv(&mut hook.posts, "verdict card").await);
    assert_eq!(first["actions"][0]["type"], "Action.OpenUrl");
    assert!(second.get("actions").is_none(), "nothing left to click");
    let text = serde_json::to_string(&second).unwrap();
    assert!(text.contains("Denied") && text.contains("alice"));
    assert!(text.contains("not before the release freeze ends"));
    assert!(
        text.contains("ALTER TABLE customers"),
        "the verdict says what it is about"
    );
}

#[tokio::test]
async fn notifiers_from_config_read_the_url_from_the_environment() {
    let mut hook = fake_webhook(vec![]).await;
    let cfg: NotifyConfig = toml::from_str(
        "[webhook]\nurl_env = \"TEAMS_WORKFLOW_URL\"\n[retry]\nmax_attempts = 2\ninitial_backoff_ms = 5\nmax_backoff_ms = 10\n",
    )
    .unwrap();
    let (report, _d) = report();
    let url = hook.url.clone();
    let env = move |k: &str| (k == "TEAMS_WORKFLOW_URL").then(|| url.clone());
    let notifiers = Notifiers::from_config(&cfg, report.clone(), &env).unwrap();
    assert!(notifiers.webhook().is_some() && notifiers.bot().is_none());
    notifiers.held(request("r-cfg"));
    card_of(&recv(&mut hook.posts, "the webhook post").await);

    let missing = Notifiers::from_config(&cfg, report, &|_| None)
        .err()
        .unwrap();
    assert!(
        missing.to_string().contains("TEAMS_WORKFLOW_URL"),
        "{missing}"
    );
}

#[test]
fn the_schema_check_rejects_what_teams_would_reject() {
    let validator = schema_validator();
    let good = card::webhook_card(&request("r-schema"));
    let mut stripped = good.clone();
    stripped.as_object_mut().unwrap().remove("msteams");
    assert!(validator.is_valid(&stripped));
    let mut bad = stripped.clone();
    bad["body"][0]["inlines"][0]["fontType"] = serde_json::json!("Comic");
    assert!(!validator.is_valid(&bad), "unknown enum value");
    let mut bad = stripped.clone();
    bad["actions"][0]["verb"] = serde_json::json!("approve");
    assert!(!validator.is_valid(&bad), "OpenUrl has no verb");
    let mut bad = stripped;
    bad["body"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "TextBlock"}));
    assert!(!validator.is_valid(&bad), "TextBlock needs text");
}

#[test]
fn every_card_variant_validates() {
    let mut r = request("r-all");
    r.approver_aad_ids = vec!["aad-1".into()];
    r.application_name = None;
    r.tables.clear();
    assert_valid_card(&card::webhook_card(&r));
    assert_valid_card(&card::bot_base_card(&r, None));
    assert_valid_card(&card::bot_approver_card(&r, None));
    for tone in [card::Tone::Good, card::Tone::Warning, card::Tone::Attention] {
        let n = card::Notice {
            text: "notice".into(),
            tone,
        };
        assert_valid_card(&card::bot_approver_card(&r, Some(&n)));
        assert_valid_card(&card::bot_base_card(&r, Some(&n)));
        assert_valid_card(&card::notice_card("r-all", &n));
    }
    for state in [
        OutcomeState::Approved,
        OutcomeState::Denied,
        OutcomeState::Expired,
        OutcomeState::Withdrawn,
        OutcomeState::Abandoned,
        OutcomeState::Aborted,
    ] {
        let o = CardOutcome {
            request_id: "r-all".into(),
            state,
            by: vec!["alice".into(), "bob".into()],
            rationale: Some("why\nnot".into()),
            decided_at: time::OffsetDateTime::now_utc(),
        };
        assert_valid_card(&card::verdict_card(Some(&r), &o));
        assert_valid_card(&card::verdict_card(None, &o));
    }
}

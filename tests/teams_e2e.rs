//! End to end in Workflows webhook mode: psql holds a statement in the real gateway, the card
//! reaches a loopback Workflows endpoint, its signed link opens the page on the gateway's own
//! admin listener, and an approver's verdict through the admin API releases psql.

mod common;
mod teams_fakes;

use airlock::notify::WebhookConfig;
use common::*;
use serde_json::Value;
use teams_fakes::*;

const LINK_SECRET: &str = "teams-e2e-link-secret-0123456789abcdef";
/// Shorter than the demo policy's approval timeout, so the TTL decides the link's expiry.
const LINK_TTL_SECS: u64 = 120;

/// Every `Action.OpenUrl` target in a card, wherever it sits.
fn open_urls(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if m.get("type").and_then(Value::as_str) == Some("Action.OpenUrl") {
                if let Some(u) = m.get("url").and_then(Value::as_str) {
                    out.push(u.to_string());
                }
            }
            m.values().for_each(|x| open_urls(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| open_urls(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_card_link_opens_the_page_and_an_approval_releases_psql() {
    let db = TestDb::new("teams_e2e_webhook");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let mut hook = fake_webhook(vec![]).await;
    let hook_url = hook.url.clone();
    // The key comes from a file, as the README's deployment does.
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("link.key");
    std::fs::write(&key_file, format!("{LINK_SECRET}\n")).unwrap();
    let gw = Gw::start(move |c| {
        c.policy.path = shipped_policy("demo.toml");
        c.admin.listen = "127.0.0.1:0".into();
        c.admin.public_url = "https://airlock.example".into();
        c.notify.link_secret_file = Some(key_file);
        c.notify.link_ttl_secs = LINK_TTL_SECS;
        c.admin
            .tokens
            .insert("alice".into(), airlock::admin::hash_token("tok-alice"));
        c.notify.webhook = Some(WebhookConfig {
            url: Some(hook_url),
            ..WebhookConfig::default()
        });
    });
    let admin = format!("http://{}", gw.admin_addr.expect("admin listener"));

    let mut child = spawn_psql(&gw.url(&db.name), "ALTER TABLE orders ADD COLUMN note text");
    let req = pending(&gw, "ADD COLUMN note", &mut child).await;

    let post = recv(&mut hook.posts, "the held card").await;
    let body = post.json();
    let card = &body["attachments"][0]["content"];
    assert_valid_card(card);
    assert!(
        card.to_string().contains(req.id.as_str()),
        "the card names the request"
    );
    let mut links = Vec::new();
    open_urls(card, &mut links);
    let link = links
        .iter()
        .find(|u| u.contains(&format!("/approvals/{}?", req.id)))
        .unwrap_or_else(|| panic!("no approval link in {links:?}"))
        .clone();
    assert!(
        link.starts_with("https://airlock.example/approvals/"),
        "{link}"
    );
    assert!(link.contains("sig="), "the link is signed: {link}");
    // It expires after `link_ttl_secs`, not when the request does (minutes later here).
    let exp: u64 = link
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("exp="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exp in {link}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        exp <= now + LINK_TTL_SECS && exp + 60 > now + LINK_TTL_SECS,
        "exp {exp} is about now ({now}) + {LINK_TTL_SECS}s"
    );
    // Signed with the file's key (trailing newline dropped): it verifies under that key.
    let sig = link.split("sig=").nth(1).unwrap();
    airlock::approval::verify_link(
        LINK_SECRET.as_bytes(),
        req.id.as_str(),
        exp,
        sig,
        std::time::SystemTime::now(),
    )
    .expect("the link verifies under the configured key");

    // The public URL fronts the admin listener; open the same path and query there.
    let local = link.replacen("https://airlock.example", &admin, 1);
    let page = reqwest::get(&local).await.expect("page");
    assert_eq!(page.status(), reqwest::StatusCode::OK, "signed link opens");
    // A tampered signature is refused by the same listener (same key signs and verifies).
    let tampered = format!("{}x", local.trim_end_matches('='));
    let refused = reqwest::get(&tampered).await.expect("page");
    assert_eq!(
        refused.status(),
        reqwest::StatusCode::FORBIDDEN,
        "tampered link"
    );

    let status = reqwest::Client::new()
        .post(format!("{admin}/api/approvals/{}/approve", req.id))
        .bearer_auth("tok-alice")
        .json(&serde_json::json!({"rationale": "column is fine"}))
        .send()
        .await
        .expect("approve")
        .status();
    assert!(status.is_success(), "approve: {status}");

    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.exec(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_name = 'orders' AND column_name = 'note'"
        )
        .trim(),
        "1"
    );

    // The verdict follows as a second card.
    let verdict = recv(&mut hook.posts, "the verdict card").await;
    let text = verdict.json().to_string();
    assert!(
        text.contains(req.id.as_str()),
        "verdict card names the request"
    );
    assert!(text.to_lowercase().contains("approved"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_teams_refuses_is_audited_with_the_held_statement() {
    let db = TestDb::new("teams_e2e_failed_card");
    db.exec(airlock::demo::DEMO_SCHEMA);
    // Teams answers 400 (a client error): delivery gives up at once.
    let mut hook = fake_webhook(vec![Answer::status(400)]).await;
    let hook_url = hook.url.clone();
    let gw = Gw::start(move |c| {
        c.policy.path = shipped_policy("demo.toml");
        c.admin.listen = "127.0.0.1:0".into();
        c.notify.webhook = Some(WebhookConfig {
            url: Some(hook_url),
            ..WebhookConfig::default()
        });
    });
    let mut child = spawn_psql(&gw.url(&db.name), "ALTER TABLE orders ADD COLUMN memo text");
    let req = pending(&gw, "ADD COLUMN memo", &mut child).await;
    recv(&mut hook.posts, "the refused card").await;

    // The failure lands in the audit in the background; wait for it (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let failed = loop {
        let found = gw.audit_records().into_iter().find_map(|r| match r.entry {
            airlock::audit::Entry::Approval(a)
                if a.action == airlock::approval::ApprovalAction::NotifyFailed =>
            {
                Some(a)
            }
            _ => None,
        });
        if let Some(a) = found {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no notify_failed record"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(failed.request_id, req.id.as_str());
    assert!(!req.decision_id.is_empty());
    assert_eq!(
        failed.decision_id, req.decision_id,
        "linked to the held statement's decision"
    );
    assert!(
        !failed.rationale.unwrap_or_default().contains(&hook.url),
        "the webhook URL (a credential) is not audited"
    );

    gw.gateway
        .registry
        .deny(
            &req.id,
            "alice",
            airlock::approval::Channel::Web,
            Some("test over".into()),
        )
        .await
        .expect("deny");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success(), "denied statement fails in psql");
}

//! End to end in bot mode: psql holds a statement in the real gateway, the card is posted to a
//! loopback Bot Connector, and an approver's signed `adaptiveCard/action` invoke on the
//! gateway's messaging endpoint releases psql.

mod common;
mod teams_fakes;

use airlock::notify::config::BotConfig;
use common::*;
use serde_json::{json, Value};
use teams_fakes::*;

const APP_ID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "tenant-1";
const CHANNEL_ID: &str = "19:chan@thread.tacv2";

fn invoke(service_url: &str, verb: &str, request_id: &str, aad: &str, rationale: &str) -> Value {
    json!({
        "name": "adaptiveCard/action",
        "type": "invoke",
        "id": "f:1",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": { "id": "29:1xyz", "name": "Approver", "aadObjectId": aad },
        "conversation": { "isGroup": true, "conversationType": "channel", "tenantId": TENANT, "id": CREATED_CONVERSATION },
        "recipient": { "id": format!("28:{APP_ID}"), "name": "airlock" },
        "channelData": { "channel": { "id": CHANNEL_ID }, "tenant": { "id": TENANT } },
        "replyToId": CREATED_ACTIVITY,
        "value": {
            "action": { "type": "Action.Execute", "verb": verb, "data": { "requestId": request_id, "rationale": rationale } },
            "trigger": "manual",
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approve_click_in_teams_releases_psql() {
    let db = TestDb::new("teams_bot_e2e");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let teams = fake_teams().await;
    let key = TestKey::generate(KID_TEAMS, &["msteams"]);
    let openid = fake_openid(vec![key.jwk.clone()]).await;
    let service_url = format!("{}/teams/", teams.base);
    // The demo policy, with Entra object ids for its approvers.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    let text = text
        .replace("email = \"alice@example.com\"", "email = \"alice@example.com\"\naad_object_id = \"aaaaaaaa-0000-4000-8000-00000000a11c\"")
        .replace("email = \"bob@example.com\"", "email = \"bob@example.com\"\naad_object_id = \"bbbbbbbb-0000-4000-8000-000000000b0b\"");
    assert!(text.contains("00000000a11c"));
    std::fs::write(&policy, text).unwrap();
    std::env::set_var("AIRLOCK_E2E_BOT_SECRET", "bot-secret");
    let bot = BotConfig {
        app_id: APP_ID.into(),
        tenant_id: Some(TENANT.into()),
        client_secret_env: Some("AIRLOCK_E2E_BOT_SECRET".into()),
        token_url: Some(format!("{}/{TENANT}/oauth2/v2.0/token", teams.base)),
        openid_metadata_url: openid.metadata_url.clone(),
        service_url: service_url.clone(),
        channel_id: Some(CHANNEL_ID.into()),
        allowed_tenants: vec![TENANT.into()],
        ..BotConfig::default()
    };
    let gw = Gw::start(move |c| {
        c.policy.path = policy.clone();
        c.admin.listen = "127.0.0.1:0".into();
        c.notify.bot = Some(bot);
    });
    let endpoint = format!(
        "http://{}/api/teams/messages",
        gw.admin_addr.expect("admin listener")
    );

    let mut child = spawn_psql(&gw.url(&db.name), "ALTER TABLE orders ADD COLUMN note text");
    let req = pending(&gw, "ADD COLUMN note", &mut child).await;

    let token = key.sign(&connector_claims(APP_ID, &service_url));
    let http = reqwest::Client::new();
    // Someone who is not an approver in the policy is refused.
    let resp = http
        .post(&endpoint)
        .bearer_auth(&token)
        .json(&invoke(
            &service_url,
            "approve",
            req.id.as_str(),
            "cccccccc-0000-4000-8000-00000000dead",
            "",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(gw
        .gateway
        .registry
        .get(&req.id)
        .await
        .unwrap()
        .approvals
        .is_empty());
    // A forged token never reaches the registry.
    let other = TestKey::generate(KID_TEAMS, &["msteams"]);
    let forged = other.sign(&connector_claims(APP_ID, &service_url));
    let resp = http
        .post(&endpoint)
        .bearer_auth(&forged)
        .json(&invoke(
            &service_url,
            "approve",
            req.id.as_str(),
            "aaaaaaaa-0000-4000-8000-00000000a11c",
            "ok",
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    // Alice approves in the card.
    let resp = http
        .post(&endpoint)
        .bearer_auth(&token)
        .json(&invoke(
            &service_url,
            "approve",
            req.id.as_str(),
            "aaaaaaaa-0000-4000-8000-00000000a11c",
            "reviewed in Teams",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

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
        db.exec("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'").trim(),
        "1"
    );
    let view = gw.gateway.registry.get(&req.id).await.unwrap();
    assert_eq!(view.approvals.len(), 1);
    assert_eq!(view.approvals[0].approver, "alice");
    assert_eq!(view.approvals[0].channel, airlock::approval::Channel::Teams);

    // The refused click is part of the statement's trail: linked to its decision record.
    let refused: Vec<_> = gw
        .audit_records()
        .into_iter()
        .filter_map(|r| match r.entry {
            airlock::audit::Entry::Approval(a)
                if a.action == airlock::approval::ApprovalAction::Refused =>
            {
                Some(a)
            }
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].request_id, req.id.as_str());
    assert!(!view.decision_id.is_empty());
    assert_eq!(refused[0].decision_id, view.decision_id);
}

//! Bot mode against loopback fakes of Entra's token endpoint, the Bot Connector and the Bot
//! Framework OpenID metadata/JWKS, with RSA keys generated for the run.

mod teams_fakes;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use airlock::notify::bot::{RefusalReason, CHANNEL_TEAMS_BOT};
use airlock::notify::card::{CardOutcome, CardRequest, OutcomeState};
use airlock::notify::config::{BotConfig, RetryConfig};
use airlock::notify::{
    bot_routes, BotNotifier, BotState, Channel, DeliveryKind, Notifier, RefusedAttempt, Secret,
    VerdictAttempt, VerdictResult, VerdictSink,
};
use serde_json::{json, Value};
use teams_fakes::*;
use tokio::sync::mpsc;

const APP_ID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "tenant-1";
const CHANNEL_ID: &str = "19:chan@thread.tacv2";

/// The registry side, scripted: answers verdicts from a queue and records what it was given.
struct FakeRegistry {
    answers: Mutex<VecDeque<VerdictResult>>,
    attempts: mpsc::UnboundedSender<VerdictAttempt>,
    refusals: mpsc::UnboundedSender<RefusedAttempt>,
}

#[async_trait::async_trait]
impl VerdictSink for FakeRegistry {
    async fn verdict(&self, attempt: VerdictAttempt) -> VerdictResult {
        let _ = self.attempts.send(attempt);
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("the test scripted an answer for this verdict")
    }

    async fn refused(&self, attempt: RefusedAttempt) {
        let _ = self.refusals.send(attempt);
    }
}

struct Harness {
    teams: FakeTeams,
    openid: FakeOpenId,
    teams_key: TestKey,
    other_channel_key: TestKey,
    service_url: String,
    notifier: BotNotifier,
    registry: Arc<FakeRegistry>,
    attempts: mpsc::UnboundedReceiver<VerdictAttempt>,
    refusals: mpsc::UnboundedReceiver<RefusedAttempt>,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    endpoint: String,
    http: reqwest::Client,
    cfg: BotConfig,
}

fn retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 3,
        initial_backoff_ms: 5,
        max_backoff_ms: 20,
        max_retry_after_secs: 5,
        request_timeout_secs: 5,
    }
}

async fn harness(conversation_id: Option<&str>) -> Harness {
    let teams = fake_teams().await;
    let teams_key = TestKey::generate(KID_TEAMS, &["msteams", "skype"]);
    let other_channel_key = TestKey::generate(KID_OTHER_CHANNEL, &["webchat"]);
    let openid = fake_openid(vec![teams_key.jwk.clone(), other_channel_key.jwk.clone()]).await;
    let service_url = format!("{}/teams/", teams.base);
    let cfg = BotConfig {
        app_id: APP_ID.into(),
        tenant_id: Some(TENANT.into()),
        client_secret_env: Some("AIRLOCK_TEST_BOT_SECRET".into()),
        token_url: Some(format!("{}/{TENANT}/oauth2/v2.0/token", teams.base)),
        openid_metadata_url: openid.metadata_url.clone(),
        service_url: service_url.clone(),
        channel_id: conversation_id.is_none().then(|| CHANNEL_ID.to_string()),
        conversation_id: conversation_id.map(str::to_string),
        allowed_tenants: vec![TENANT.into()],
        ..BotConfig::default()
    };
    let (report, deliveries) = report();
    let notifier = BotNotifier::new(&cfg, Secret::new("bot-secret"), retry(), report).unwrap();
    let (atx, attempts) = mpsc::unbounded_channel();
    let (rtx, refusals) = mpsc::unbounded_channel();
    let registry = Arc::new(FakeRegistry {
        answers: Mutex::new(VecDeque::new()),
        attempts: atx,
        refusals: rtx,
    });
    let approvers = |aad: &str| match aad {
        "aad-alice" => Some("alice".to_string()),
        "aad-bob" => Some("bob".to_string()),
        _ => None,
    };
    let state = BotState::from_config(
        &cfg,
        &retry(),
        notifier.clone(),
        registry.clone(),
        Arc::new(approvers),
    )
    .unwrap();
    let addr = serve(bot_routes(state)).await;
    Harness {
        teams,
        openid,
        teams_key,
        other_channel_key,
        service_url,
        notifier,
        registry,
        attempts,
        refusals,
        deliveries,
        endpoint: format!("http://{addr}/api/teams/messages"),
        http: reqwest::Client::new(),
        cfg,
    }
}

fn request(id: &str) -> CardRequest {
    CardRequest {
        request_id: id.into(),
        requester: "agent_ci".into(),
        application_name: Some("nightly-migrations".into()),
        database: "shop".into(),
        sql: "DROP TABLE audit_2019".into(),
        params: vec![(Some("int4".into()), Some("2019".into())), (None, None)],
        rule_id: "ddl-needs-approval".into(),
        reason: "schema changes need a human".into(),
        kind: "ddl".into(),
        tables: vec!["public.audit_2019".into()],
        pii_columns: vec![],
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::minutes(5),
        approve_url: format!("https://airlock.example/approvals/{id}?exp=1&sig=abc"),
        approver_aad_ids: vec!["aad-alice".into(), "aad-bob".into()],
    }
}

/// An `adaptiveCard/action` invoke as Teams sends it for a click in a channel card.
fn invoke(service_url: &str, verb: &str, request_id: &str, aad: &str, rationale: &str) -> Value {
    json!({
        "name": "adaptiveCard/action",
        "type": "invoke",
        "timestamp": "2030-01-01T10:00:00.000Z",
        "localTimestamp": "2030-01-01T11:00:00.000+01:00",
        "id": "f:5012875226158069571",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": { "id": "29:1xyz", "name": "Alice Example", "aadObjectId": aad },
        "conversation": {
            "isGroup": true,
            "conversationType": "channel",
            "tenantId": TENANT,
            "id": CREATED_CONVERSATION,
        },
        "recipient": { "id": format!("28:{APP_ID}"), "name": "airlock" },
        "entities": [{ "locale": "en-US", "platform": "Web", "timezone": "Europe/Paris", "type": "clientInfo" }],
        "channelData": {
            "channel": { "id": CHANNEL_ID },
            "team": { "id": "19:team@thread.tacv2" },
            "tenant": { "id": TENANT },
            "source": { "name": "message" },
            "legacy": { "replyToId": "1:abc" },
        },
        "replyToId": CREATED_ACTIVITY,
        "value": {
            "action": {
                "type": "Action.Execute",
                "title": "Approve",
                "verb": verb,
                "data": { "requestId": request_id, "rationale": rationale },
            },
            "trigger": if verb == "refresh" { "automatic" } else { "manual" },
        },
        "locale": "en-US",
    })
}

impl Harness {
    fn token(&self) -> String {
        self.teams_key
            .sign(&connector_claims(APP_ID, &self.service_url))
    }

    async fn call(&self, token: Option<&str>, activity: &Value) -> (u16, Value) {
        let mut req = self.http.post(&self.endpoint).json(activity);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, body)
    }

    fn script(&self, answer: VerdictResult) {
        self.registry.answers.lock().unwrap().push_back(answer);
    }

    /// Announces a request and returns the conversation-create request the connector got.
    async fn post_request(&mut self, id: &str) -> Recorded {
        self.notifier.held(request(id));
        let created = recv(&mut self.teams.connector, "card post").await;
        assert_eq!(
            recv(&mut self.deliveries, "delivery report").await,
            Delivery::Ok(id.into(), Channel::TeamsBot, DeliveryKind::Held)
        );
        created
    }
}

/// The card in an invoke answer, after checking the universal-actions response shape.
fn response_card(status: u16, body: &Value) -> Value {
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["statusCode"], 200);
    assert_eq!(body["type"], "application/vnd.microsoft.card.adaptive");
    let card = body["value"].clone();
    assert_valid_card(&card);
    card
}

fn verbs(card: &Value) -> Vec<String> {
    card["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["verb"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn outcome(id: &str, state: OutcomeState, by: &str, rationale: Option<&str>) -> CardOutcome {
    CardOutcome {
        request_id: id.into(),
        state,
        by: vec![by.into()],
        rationale: rationale.map(str::to_string),
        decided_at: time::OffsetDateTime::now_utc(),
    }
}

#[tokio::test]
async fn card_is_posted_proactively_with_a_client_credentials_token() {
    let mut h = harness(None).await;
    let created = h.post_request("r-1").await;

    let token_req = recv(&mut h.teams.token_requests, "token request").await;
    assert_eq!(
        token_req.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token_req.body)
        .into_owned()
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("grant_type").as_deref(), Some("client_credentials"));
    assert_eq!(get("client_id").as_deref(), Some(APP_ID));
    assert_eq!(get("client_secret").as_deref(), Some("bot-secret"));
    assert_eq!(
        get("scope").as_deref(),
        Some("https://api.botframework.com/.default")
    );

    assert_eq!(created.method, "POST");
    assert_eq!(created.uri, "/teams/v3/conversations");
    assert_eq!(
        created.headers.get("authorization").unwrap(),
        &format!("Bearer {ACCESS_TOKEN}")
    );
    let body = created.json();
    assert_eq!(body["isGroup"], true);
    assert_eq!(body["channelData"]["channel"]["id"], CHANNEL_ID);
    assert_eq!(body["channelData"]["tenant"]["id"], TENANT);
    assert_eq!(body["activity"]["type"], "message");
    let att = &body["activity"]["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &att["content"];
    assert_valid_card(card);
    assert!(card.get("actions").is_none(), "no buttons for everyone");
    assert_eq!(card["refresh"]["userIds"], json!(["aad-alice", "aad-bob"]));
    assert_eq!(card["refresh"]["action"]["type"], "Action.Execute");
    assert_eq!(card["refresh"]["action"]["data"]["requestId"], "r-1");

    let posted = h.notifier.posted("r-1").await.expect("activity remembered");
    assert_eq!(posted.conversation_id, CREATED_CONVERSATION);
    assert_eq!(posted.activity_id, CREATED_ACTIVITY);

    // The token is cached: a second card does not ask Entra again.
    h.post_request("r-2").await;
    assert!(h.teams.token_requests.try_recv().is_err(), "token reused");
}

#[tokio::test]
async fn existing_conversation_mode_posts_into_it() {
    let mut h = harness(Some("19:meeting_abc@thread.v2")).await;
    h.notifier.held(request("r-conv"));
    let sent = recv(&mut h.teams.connector, "card post").await;
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.params, ["19:meeting_abc@thread.v2"]);
    assert!(
        sent.uri.contains("19%3Ameeting_abc%40thread.v2"),
        "{}",
        sent.uri
    );
    let body = sent.json();
    assert_eq!(body["type"], "message");
    assert_valid_card(&body["attachments"][0]["content"]);
    recv(&mut h.deliveries, "delivery report").await;
    let posted = h.notifier.posted("r-conv").await.unwrap();
    assert_eq!(posted.activity_id, "2002");
}

#[tokio::test]
async fn approver_click_reaches_the_registry_and_updates_the_card_for_everyone() {
    let mut h = harness(None).await;
    h.post_request("r-ok").await;
    h.script(VerdictResult::Decided(outcome(
        "r-ok",
        OutcomeState::Approved,
        "alice",
        Some("reviewed the migration"),
    )));
    let token = h.token();
    let (status, body) = h
        .call(
            Some(&token),
            &invoke(
                &h.service_url,
                "approve",
                "r-ok",
                "aad-alice",
                "  reviewed the migration ",
            ),
        )
        .await;
    let card = response_card(status, &body);
    let text = serde_json::to_string(&card).unwrap();
    assert!(
        text.contains("Approved") && text.contains("alice"),
        "{text}"
    );
    assert!(verbs(&card).is_empty(), "no buttons on a settled card");

    let attempt = recv(&mut h.attempts, "verdict attempt").await;
    assert_eq!(
        attempt,
        VerdictAttempt {
            request_id: "r-ok".into(),
            approver: "alice".into(),
            approve: true,
            rationale: Some("reviewed the migration".into()),
            channel: CHANNEL_TEAMS_BOT,
            aad_object_id: "aad-alice".into(),
        }
    );

    let update = recv(&mut h.teams.connector, "card update").await;
    assert_eq!(update.method, "PUT");
    assert_eq!(update.params, [CREATED_CONVERSATION, CREATED_ACTIVITY]);
    assert!(
        update
            .uri
            .contains("19%3Achan%40thread.tacv2%3Bmessageid%3D1001"),
        "{}",
        update.uri
    );
    assert_eq!(
        update.headers.get("authorization").unwrap(),
        &format!("Bearer {ACCESS_TOKEN}")
    );
    let activity = update.json();
    assert_eq!(activity["type"], "message");
    assert_eq!(activity["id"], CREATED_ACTIVITY);
    let updated = &activity["attachments"][0]["content"];
    assert_valid_card(updated);
    assert!(serde_json::to_string(updated)
        .unwrap()
        .contains("reviewed the migration"));
    assert!(updated.get("refresh").is_none());
    assert_eq!(
        recv(&mut h.deliveries, "update report").await,
        Delivery::Ok("r-ok".into(), Channel::TeamsBot, DeliveryKind::Settled)
    );
}

#[tokio::test]
async fn refresh_shows_buttons_to_approvers_only() {
    let mut h = harness(None).await;
    h.post_request("r-ref").await;
    let token = h.token();
    let (s, b) = h
        .call(
            Some(&token),
            &invoke(&h.service_url, "refresh", "r-ref", "aad-bob", ""),
        )
        .await;
    let card = response_card(s, &b);
    assert_eq!(verbs(&card), ["approve", "deny"]);
    assert!(serde_json::to_string(&card)
        .unwrap()
        .contains("\"Input.Text\""));

    let (s, b) = h
        .call(
            Some(&token),
            &invoke(&h.service_url, "refresh", "r-ref", "aad-mallory", ""),
        )
        .await;
    let card = response_card(s, &b);
    assert!(verbs(&card).is_empty(), "non-approvers get the plain card");
    assert!(h.attempts.try_recv().is_err(), "a refresh is not a verdict");
}

#[tokio::test]
async fn registry_refusals_are_shown_in_the_card() {
    let mut h = harness(None).await;
    h.post_request("r-no").await;
    let token = h.token();
    let cases = [
        (
            VerdictResult::SelfApproval,
            "approve",
            "cannot approve your own request",
        ),
        (
            VerdictResult::RationaleRequired,
            "deny",
            "rationale is required to deny",
        ),
        (VerdictResult::NotAnApprover, "approve", "not an approver"),
        (
            VerdictResult::Recorded { remaining: 1 },
            "approve",
            "1 more approver is needed",
        ),
        (
            VerdictResult::AlreadyVoted,
            "approve",
            "already approved this request",
        ),
    ];
    for (answer, verb, expected) in cases {
        h.script(answer.clone());
        let (s, b) = h
            .call(
                Some(&token),
                &invoke(&h.service_url, verb, "r-no", "aad-alice", ""),
            )
            .await;
        let card = response_card(s, &b);
        let text = serde_json::to_string(&card).unwrap();
        assert!(text.contains(expected), "{answer:?}: {text}");
        let attempt = recv(&mut h.attempts, "verdict attempt").await;
        assert_eq!(attempt.rationale, None, "blank rationale is None");
        assert_eq!(attempt.approve, verb == "approve");
    }
    // An already-decided request shows its final state and still gets its card updated.
    h.script(VerdictResult::AlreadyDecided(outcome(
        "r-no",
        OutcomeState::Denied,
        "bob",
        Some("too risky"),
    )));
    let (s, b) = h
        .call(
            Some(&token),
            &invoke(&h.service_url, "approve", "r-no", "aad-alice", ""),
        )
        .await;
    let text = serde_json::to_string(&response_card(s, &b)).unwrap();
    assert!(text.contains("Denied") && text.contains("bob") && text.contains("too risky"));
    let update = recv(&mut h.teams.connector, "card update").await;
    assert_eq!(update.method, "PUT");

    // The registry is down: an error, not a fake success.
    h.script(VerdictResult::Unavailable("audit unavailable".into()));
    let (s, b) = h
        .call(
            Some(&token),
            &invoke(&h.service_url, "deny", "r-no", "aad-bob", "no"),
        )
        .await;
    assert_eq!(s, 503);
    assert_eq!(b["type"], "application/vnd.microsoft.error");
}

#[tokio::test]
async fn unknown_people_are_refused_and_audited_without_reaching_the_verdict() {
    let mut h = harness(None).await;
    h.post_request("r-who").await;
    let token = h.token();
    let (s, b) = h
        .call(
            Some(&token),
            &invoke(&h.service_url, "approve", "r-who", "aad-mallory", "ok"),
        )
        .await;
    let card = response_card(s, &b);
    assert!(serde_json::to_string(&card)
        .unwrap()
        .contains("not an approver"));
    assert!(verbs(&card).is_empty());
    let refusal = recv(&mut h.refusals, "refusal").await;
    assert_eq!(refusal.request_id, "r-who");
    assert_eq!(refusal.aad_object_id, "aad-mallory");
    assert_eq!(refusal.reason, RefusalReason::NotAnApprover);
    assert_eq!(refusal.channel, "teams-bot");
    assert!(h.attempts.try_recv().is_err(), "no verdict attempted");
}

#[tokio::test]
async fn registry_settling_updates_the_card() {
    let mut h = harness(None).await;
    h.post_request("r-exp").await;
    h.notifier.settled(CardOutcome {
        request_id: "r-exp".into(),
        state: OutcomeState::Expired,
        by: vec![],
        rationale: None,
        decided_at: time::OffsetDateTime::now_utc(),
    });
    let update = recv(&mut h.teams.connector, "card update").await;
    assert_eq!(update.method, "PUT");
    assert_eq!(update.params, [CREATED_CONVERSATION, CREATED_ACTIVITY]);
    let card = &update.json()["attachments"][0]["content"];
    assert_valid_card(card);
    assert!(serde_json::to_string(card).unwrap().contains("Expired"));
    assert_eq!(
        recv(&mut h.deliveries, "update report").await,
        Delivery::Ok("r-exp".into(), Channel::TeamsBot, DeliveryKind::Settled)
    );

    // An approver's client refreshing the card now gets the final state, not buttons.
    let token = h.token();
    let (s, b) = h
        .call(
            Some(&token),
            &invoke(&h.service_url, "refresh", "r-exp", "aad-alice", ""),
        )
        .await;
    let card = response_card(s, &b);
    assert!(verbs(&card).is_empty());
    assert!(serde_json::to_string(&card).unwrap().contains("Expired"));

    // The registry announcing the same outcome again does not update the card twice.
    h.notifier.settled(CardOutcome {
        request_id: "r-exp".into(),
        state: OutcomeState::Expired,
        by: vec![],
        rationale: None,
        decided_at: time::OffsetDateTime::now_utc(),
    });
    h.notifier.held(request("r-after"));
    let next = recv(&mut h.teams.connector, "next connector call").await;
    assert_eq!(next.method, "POST", "no second PUT before the next post");
    recv(&mut h.deliveries, "next post report").await;
    assert!(
        h.teams.connector.try_recv().is_err(),
        "no second PUT at all"
    );
}

#[tokio::test]
async fn tokens_within_the_leeway_are_accepted() {
    let mut h = harness(None).await;
    h.post_request("r-skew").await;
    let mut claims = connector_claims(APP_ID, &h.service_url);
    claims["exp"] = json!(now() - 120);
    let token = h.teams_key.sign(&claims);
    h.script(VerdictResult::Expired);
    let (s, b) = h
        .call(
            Some(&token),
            &invoke(&h.service_url, "approve", "r-skew", "aad-alice", ""),
        )
        .await;
    let text = serde_json::to_string(&response_card(s, &b)).unwrap();
    assert!(text.contains("Expired"), "{text}");
    recv(&mut h.attempts, "verdict attempt").await;
}

#[tokio::test]
async fn forged_and_misdirected_requests_are_refused() {
    let mut h = harness(None).await;
    h.post_request("r-sec").await;
    let su = h.service_url.clone();
    let good = connector_claims(APP_ID, &su);
    let stranger = TestKey::generate(KID_TEAMS, &["msteams"]);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let approve = invoke(&su, "approve", "r-sec", "aad-alice", "fine");
    let mut evil_tenant = approve.clone();
    evil_tenant["conversation"]["tenantId"] = json!("tenant-evil");
    evil_tenant["channelData"]["tenant"]["id"] = json!("tenant-evil");
    let mut mixed_tenant = approve.clone();
    mixed_tenant["channelData"]["tenant"]["id"] = json!("tenant-evil");
    let mut evil_service = approve.clone();
    evil_service["serviceUrl"] = json!("https://attacker.example/teams/");
    let mut not_teams = approve.clone();
    not_teams["channelId"] = json!("webchat");
    let modulus = h.teams_key.jwk["n"].as_str().unwrap().as_bytes().to_vec();

    let cases: Vec<(&str, Option<String>, Value, u16)> = vec![
        ("no token", None, approve.clone(), 401),
        ("not a JWT", Some("garbage".into()), approve.clone(), 401),
        (
            "signed by another key under our kid",
            Some(h.teams_key.forge_with(&stranger, &good)),
            approve.clone(),
            401,
        ),
        (
            "expired beyond the leeway",
            Some(h.teams_key.sign(&with("exp", json!(now() - 600)))),
            approve.clone(),
            401,
        ),
        (
            "not yet valid beyond the leeway",
            Some(h.teams_key.sign(&with("nbf", json!(now() + 900)))),
            approve.clone(),
            401,
        ),
        (
            "audience is another bot",
            Some(
                h.teams_key
                    .sign(&with("aud", json!("99999999-0000-0000-0000-000000000000"))),
            ),
            approve.clone(),
            401,
        ),
        (
            "issuer is not the Bot Framework",
            Some(
                h.teams_key
                    .sign(&with("iss", json!("https://sts.windows.net/evil/"))),
            ),
            approve.clone(),
            401,
        ),
        (
            "key not endorsed for msteams",
            Some(h.other_channel_key.sign(&good)),
            approve.clone(),
            401,
        ),
        (
            "activity from another channel",
            Some(h.token()),
            not_teams,
            401,
        ),
        (
            "alg none",
            Some(unsigned_token(KID_TEAMS, &good)),
            approve.clone(),
            401,
        ),
        (
            "HS256 keyed with the public modulus",
            Some(hs256_token(KID_TEAMS, &modulus, &good)),
            approve.clone(),
            401,
        ),
        (
            "serviceurl claim differs from the activity",
            Some(h.token()),
            evil_service,
            401,
        ),
        (
            "serviceurl claim missing",
            Some(h.teams_key.sign(&{
                let mut c = good.clone();
                c.as_object_mut().unwrap().remove("serviceurl");
                c
            })),
            approve.clone(),
            401,
        ),
        ("tenant not allowed", Some(h.token()), evil_tenant, 403),
        ("tenant ids disagree", Some(h.token()), mixed_tenant, 403),
        (
            "unknown key id",
            Some(TestKey::generate("kid-nobody-knows", &["msteams"]).sign(&good)),
            approve.clone(),
            401,
        ),
    ];
    for (name, token, activity, expected) in cases {
        let (status, _) = h.call(token.as_deref(), &activity).await;
        assert_eq!(status, expected, "{name}");
    }
    assert!(
        h.attempts.try_recv().is_err(),
        "no refused request reached the registry"
    );
    assert!(h.refusals.try_recv().is_err());

    // Junk key ids do not make us refetch the JWKS on every request.
    let fetched_before = *h.openid.fetches.lock().unwrap();
    for i in 0..5 {
        let t = TestKey::generate(&format!("kid-junk-{i}"), &["msteams"]).sign(&good);
        let (status, _) = h.call(Some(&t), &approve).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        *h.openid.fetches.lock().unwrap(),
        fetched_before,
        "rate-limited refetch"
    );

    // And the same endpoint still accepts a genuine request.
    h.script(VerdictResult::Decided(outcome(
        "r-sec",
        OutcomeState::Approved,
        "alice",
        None,
    )));
    let (status, body) = h.call(Some(&h.token()), &approve).await;
    response_card(status, &body);
    recv(&mut h.attempts, "the genuine verdict").await;
}

#[tokio::test]
async fn other_activities_are_acknowledged_and_malformed_ones_refused() {
    let h = harness(None).await;
    let token = h.token();
    let message = json!({
        "type": "message",
        "text": "hello",
        "channelId": "msteams",
        "serviceUrl": h.service_url,
        "from": { "id": "29:1", "aadObjectId": "aad-alice" },
        "conversation": { "id": "a:1", "tenantId": TENANT },
    });
    assert_eq!(h.call(Some(&token), &message).await.0, 200);
    let mut other_invoke = message.clone();
    other_invoke["type"] = json!("invoke");
    other_invoke["name"] = json!("composeExtension/query");
    assert_eq!(h.call(Some(&token), &other_invoke).await.0, 501);
    let mut no_id = invoke(&h.service_url, "approve", "", "aad-alice", "");
    no_id["value"]["action"]["data"] = json!({});
    assert_eq!(h.call(Some(&token), &no_id).await.0, 400);
    let resp = h
        .http
        .post(&h.endpoint)
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn a_refused_client_secret_is_reported_once_and_never_leaked() {
    let mut h = harness(None).await;
    let (report, mut deliveries) = report();
    let wrong =
        BotNotifier::new(&h.cfg, Secret::new("wrong-secret-value"), retry(), report).unwrap();
    wrong.held(request("r-secret"));
    match recv(&mut deliveries, "failure report").await {
        Delivery::Failed(f) => {
            assert_eq!(f.channel, Channel::TeamsBot);
            assert_eq!(f.kind, DeliveryKind::Held);
            assert_eq!(f.attempts, 1, "a 401 from Entra is not retried");
            assert!(f.error.contains("token endpoint"), "{}", f.error);
            assert!(!f.error.contains("wrong-secret-value"), "{}", f.error);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    recv(&mut h.teams.token_requests, "the token request").await;
    assert!(
        h.teams.connector.try_recv().is_err(),
        "nothing posted without a token"
    );
}

/// An approval from the card is an approval of what the card showed. A request the card cannot
/// show whole (a statement cut to fit, a parameter value clipped) gets Deny and a link to the
/// approval page instead of Approve, and an Approve click sent for it anyway is refused and
/// audited without reaching the registry. Deny still works from the card.
#[tokio::test]
async fn a_request_the_card_cannot_show_whole_is_not_approved_from_it() {
    let mut h = harness(None).await;
    let long = request("r-long");
    let long = CardRequest {
        sql: format!(
            "DELETE FROM logs WHERE ts < now() - interval '1 year' /* {} */; DROP TABLE customers",
            "x".repeat(30_000)
        ),
        ..long
    };
    let clipped = CardRequest {
        params: vec![(Some("text".into()), Some("y".repeat(150)))],
        ..request("r-clip")
    };
    for req in [long, clipped] {
        let id = req.request_id.clone();
        h.notifier.held(req);
        recv(&mut h.teams.connector, "card post").await;
        recv(&mut h.deliveries, "delivery report").await;
        let token = h.token();
        let (s, b) = h
            .call(
                Some(&token),
                &invoke(&h.service_url, "refresh", &id, "aad-alice", ""),
            )
            .await;
        let card = response_card(s, &b);
        assert_eq!(
            verbs(&card),
            ["deny", ""],
            "{id}: Deny and the page, no Approve"
        );
        let text = serde_json::to_string(&card).unwrap();
        assert!(text.contains("Too long to approve from Teams"), "{text}");
        assert!(text.contains(&format!("https://airlock.example/approvals/{id}")));

        let (s, b) = h
            .call(
                Some(&token),
                &invoke(&h.service_url, "approve", &id, "aad-alice", "looks fine"),
            )
            .await;
        let text = serde_json::to_string(&response_card(s, &b)).unwrap();
        assert!(text.contains("approve it on the approval page"), "{text}");
        let refusal = recv(&mut h.refusals, "refusal").await;
        assert_eq!(refusal.request_id, id);
        assert_eq!(refusal.reason, RefusalReason::NotShownWhole);
        assert!(refusal.approve);
        assert!(h.attempts.try_recv().is_err(), "{id}: no verdict attempted");

        h.script(VerdictResult::Decided(outcome(
            &id,
            OutcomeState::Denied,
            "alice",
            Some("too long to read here"),
        )));
        let (s, b) = h
            .call(
                Some(&token),
                &invoke(
                    &h.service_url,
                    "deny",
                    &id,
                    "aad-alice",
                    "too long to read here",
                ),
            )
            .await;
        response_card(s, &b);
        let attempt = recv(&mut h.attempts, "verdict attempt").await;
        assert!(!attempt.approve);
        recv(&mut h.teams.connector, "card update").await;
    }
}

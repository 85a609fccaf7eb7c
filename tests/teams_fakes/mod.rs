//! Loopback stand-ins for the Teams side of the wire: a Workflows webhook, Entra's token
//! endpoint, the Bot Connector, and the Bot Framework OpenID metadata + JWKS. They speak the
//! real formats and record what they receive; airlock's own code runs unmodified against them.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock::notify::{Channel, DeliveryFailure, DeliveryKind, DeliveryReport};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Longest a test waits for something the code under test does in the background. Only hit
/// when the code is broken.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("channel closed waiting for {what}"))
}

/// Serves `router` on 127.0.0.1, port chosen by the OS.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// Adaptive Card schema

/// Where the shared fixtures live: `../shared/fixtures` next to the main checkout, or two
/// levels up from a worktree under `wt/`.
fn fixture_path() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../shared/fixtures/adaptive-card-1.5.schema.json"),
        manifest.join("../../shared/fixtures/adaptive-card-1.5.schema.json"),
    ];
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "the Adaptive Card 1.5 schema fixture is missing; looked at {:?}. It is \
         microsoft/AdaptiveCards schemas/1.5.0/adaptive-card.json, kept in \
         ../shared/fixtures/ (see its README).",
        candidates
    );
}

pub fn schema_validator() -> jsonschema::Validator {
    let path = fixture_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("schema fixture is JSON");
    jsonschema::draft6::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema fixture compiles")
}

/// Validates a card against the 1.5 schema after removing what Teams accepts but the schema
/// does not know: the root `msteams` property and `CodeBlock` elements (the fixture README
/// says so). Also checks that our cards never contain a `CodeBlock` in the first place.
pub fn assert_valid_card(card: &Value) {
    let text = serde_json::to_string(card).unwrap();
    assert!(!text.contains("CodeBlock"), "cards must not use CodeBlock");
    let mut c = card.clone();
    c.as_object_mut()
        .expect("card is an object")
        .remove("msteams");
    strip_code_blocks(&mut c);
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(schema_validator);
    let errors: Vec<String> = validator
        .iter_errors(&c)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "card does not validate against Adaptive Card 1.5:\n{}\ncard: {}",
        errors.join("\n"),
        text
    );
}

fn strip_code_blocks(v: &mut Value) {
    match v {
        Value::Array(items) => {
            items.retain(|i| i.get("type") != Some(&json!("CodeBlock")));
            items.iter_mut().for_each(strip_code_blocks);
        }
        Value::Object(m) => m.values_mut().for_each(strip_code_blocks),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Recording HTTP fake with scripted answers

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: String,
    /// Path parameters as axum decoded them.
    pub params: Vec<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// One scripted answer.
#[derive(Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

impl Answer {
    pub fn status(code: u16) -> Answer {
        Answer {
            status: StatusCode::from_u16(code).unwrap(),
            headers: Vec::new(),
            body: Value::Null,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Value) -> Answer {
        self.body = body;
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut resp = if self.body.is_null() {
            self.status.into_response()
        } else {
            (self.status, Json(self.body)).into_response()
        };
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v.parse().unwrap());
        }
        resp
    }
}

#[derive(Clone)]
struct Script {
    queue: Arc<Mutex<VecDeque<Answer>>>,
    default: Answer,
    tx: mpsc::UnboundedSender<Recorded>,
}

impl Script {
    fn next(&self) -> Answer {
        self.queue
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.default.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Workflows webhook

pub struct FakeWebhook {
    pub url: String,
    pub posts: mpsc::UnboundedReceiver<Recorded>,
}

/// A Workflows endpoint: answers from `script` in order, then 202 Accepted.
pub async fn fake_webhook(script: Vec<Answer>) -> FakeWebhook {
    let (tx, posts) = mpsc::unbounded_channel();
    let state = Script {
        queue: Arc::new(Mutex::new(script.into())),
        default: Answer::status(202),
        tx,
    };
    async fn handler(
        State(s): State<Script>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Answer {
        let _ = s.tx.send(Recorded {
            method,
            uri: uri.to_string(),
            params: Vec::new(),
            headers,
            body,
        });
        s.next()
    }
    let router = Router::new()
        .route(
            "/workflows/{id}/triggers/manual/paths/invoke",
            post(handler),
        )
        .with_state(state);
    let addr = serve(router).await;
    FakeWebhook {
        url: format!(
            "http://{addr}/workflows/wf1/triggers/manual/paths/invoke?api-version=1&sig=WEBHOOK-SIGNATURE"
        ),
        posts,
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery report

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Ok(String, Channel, DeliveryKind),
    Failed(DeliveryFailure),
}

pub struct ChannelReport(pub mpsc::UnboundedSender<Delivery>);

impl DeliveryReport for ChannelReport {
    fn failed(&self, failure: DeliveryFailure) {
        let _ = self.0.send(Delivery::Failed(failure));
    }

    fn delivered(&self, request_id: &str, channel: Channel, kind: DeliveryKind) {
        let _ = self
            .0
            .send(Delivery::Ok(request_id.to_string(), channel, kind));
    }
}

pub fn report() -> (Arc<ChannelReport>, mpsc::UnboundedReceiver<Delivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(ChannelReport(tx)), rx)
}

// ---------------------------------------------------------------------------------------------
// Entra token endpoint + Bot Connector

pub const ACCESS_TOKEN: &str = "connector-access-token";
pub const CREATED_CONVERSATION: &str = "19:chan@thread.tacv2;messageid=1001";
pub const CREATED_ACTIVITY: &str = "1001";

pub struct FakeTeams {
    pub base: String,
    pub token_requests: mpsc::UnboundedReceiver<Recorded>,
    pub connector: mpsc::UnboundedReceiver<Recorded>,
}

#[derive(Clone)]
struct TeamsState {
    tokens: mpsc::UnboundedSender<Recorded>,
    connector: mpsc::UnboundedSender<Recorded>,
}

fn record(
    method: Method,
    uri: &Uri,
    params: Vec<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Recorded {
    Recorded {
        method,
        uri: uri.to_string(),
        params,
        headers,
        body,
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {ACCESS_TOKEN}"))
}

/// Entra's `/oauth2/v2.0/token` and the Bot Connector's conversation API on one listener.
pub async fn fake_teams() -> FakeTeams {
    let (ttx, token_requests) = mpsc::unbounded_channel();
    let (ctx, connector) = mpsc::unbounded_channel();
    let state = TeamsState {
        tokens: ttx,
        connector: ctx,
    };

    async fn token(
        State(s): State<TeamsState>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Answer {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        let _ = s
            .tokens
            .send(record(Method::POST, &uri, Vec::new(), headers, body));
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("grant_type") != Some("client_credentials")
            || get("client_secret") != Some("bot-secret")
        {
            return Answer::status(401).body(json!({"error": "invalid_client"}));
        }
        Answer::status(200).body(json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": ACCESS_TOKEN,
        }))
    }

    async fn create(
        State(s): State<TeamsState>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Answer {
        let ok = authorized(&headers);
        let _ = s
            .connector
            .send(record(Method::POST, &uri, Vec::new(), headers, body));
        if !ok {
            return Answer::status(401);
        }
        Answer::status(201).body(json!({
            "id": CREATED_CONVERSATION,
            "activityId": CREATED_ACTIVITY,
        }))
    }

    async fn send(
        State(s): State<TeamsState>,
        Path(conv): Path<String>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Answer {
        let ok = authorized(&headers);
        let _ = s
            .connector
            .send(record(Method::POST, &uri, vec![conv], headers, body));
        if !ok {
            return Answer::status(401);
        }
        Answer::status(200).body(json!({ "id": "2002" }))
    }

    async fn update(
        State(s): State<TeamsState>,
        Path((conv, activity)): Path<(String, String)>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Answer {
        let ok = authorized(&headers);
        let _ = s.connector.send(record(
            Method::PUT,
            &uri,
            vec![conv, activity.clone()],
            headers,
            body,
        ));
        if !ok {
            return Answer::status(401);
        }
        Answer::status(200).body(json!({ "id": activity }))
    }

    let router = Router::new()
        .route("/tenant-1/oauth2/v2.0/token", post(token))
        .route("/teams/v3/conversations", post(create))
        .route("/teams/v3/conversations/{conv}/activities", post(send))
        .route(
            "/teams/v3/conversations/{conv}/activities/{activity}",
            put(update),
        )
        .with_state(state);
    let addr = serve(router).await;
    FakeTeams {
        base: format!("http://{addr}"),
        token_requests,
        connector,
    }
}

// ---------------------------------------------------------------------------------------------
// Bot Framework OpenID metadata + JWKS, and token minting

pub const KID_TEAMS: &str = "key-msteams";
pub const KID_OTHER_CHANNEL: &str = "key-webchat-only";

/// An RSA signing key generated for this test run.
pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl TestKey {
    pub fn generate(kid: &str, endorsements: &[&str]) -> TestKey {
        let pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key generation");
        let encoding = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["endorsements"] = json!(endorsements);
        TestKey {
            kid: kid.to_string(),
            encoding,
            jwk,
        }
    }

    /// Signs `claims` with RS256 under this key's id.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// Signs with another key but claims this key's id (a forgery).
    pub fn forge_with(&self, other: &TestKey, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &other.encoding).unwrap()
    }
}

pub struct FakeOpenId {
    pub metadata_url: String,
    pub fetches: Arc<Mutex<u32>>,
}

/// Serves `/.well-known/openidconfiguration` pointing at `/keys`, which lists `keys`.
pub async fn fake_openid(keys: Vec<Value>) -> FakeOpenId {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fetches = Arc::new(Mutex::new(0u32));
    let metadata = json!({
        "issuer": "https://api.botframework.com",
        "authorization_endpoint": "https://invalid.botframework.com",
        "jwks_uri": format!("http://{addr}/keys"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    });
    let jwks = json!({ "keys": keys });
    let f = fetches.clone();
    let router = Router::new()
        .route(
            "/v1/.well-known/openidconfiguration",
            get(move || async move { Json(metadata) }),
        )
        .route(
            "/keys",
            get(move || {
                *f.lock().unwrap() += 1;
                async move { Json(jwks) }
            }),
        );
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    FakeOpenId {
        metadata_url: format!("http://{addr}/v1/.well-known/openidconfiguration"),
        fetches,
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Claims the Bot Connector puts in tokens it sends to a bot.
pub fn connector_claims(app_id: &str, service_url: &str) -> Value {
    let now = now();
    json!({
        "serviceurl": service_url,
        "nbf": now - 10,
        "exp": now + 3600,
        "iss": "https://api.botframework.com",
        "aud": app_id,
    })
}

/// An `alg: none` token: header and claims, empty signature.
pub fn unsigned_token(kid: &str, claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!(
        "{}.{}.",
        b64.encode(serde_json::to_vec(&header).unwrap()),
        b64.encode(serde_json::to_vec(claims).unwrap())
    )
}

/// An HS256 token keyed with `secret` (e.g. the public modulus, the classic confusion attack).
pub fn hs256_token(kid: &str, secret: &[u8], claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

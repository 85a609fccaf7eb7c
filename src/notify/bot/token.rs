//! OAuth2 client-credentials token for calling the Bot Connector, cached until shortly before
//! it expires.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::notify::config::Secret;
use crate::notify::retry::{self, Attempt};

/// Refresh this long before the token's announced expiry, so a request never leaves with a
/// token that dies in flight.
const EARLY_REFRESH: Duration = Duration::from_secs(300);

pub(crate) struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    scope: String,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    expires_in: u64,
}

impl TokenSource {
    pub fn new(
        http: reqwest::Client,
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: String,
    ) -> TokenSource {
        TokenSource {
            http,
            token_url,
            client_id,
            client_secret,
            scope,
            cached: Mutex::new(None),
        }
    }

    /// A valid token, fetched when the cached one is missing or due. Concurrent callers wait
    /// for one fetch instead of each asking Entra.
    pub async fn token(&self) -> Result<Secret, Attempt<()>> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets the cached token (after the Connector refused it with 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<Cached, Attempt<()>> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .append_pair("scope", &self.scope)
            .finish();
        let resp = self
            .http
            .post(&self.token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| retag("token endpoint", retry::classify_transport(&e)))?;
        if let Err(a) = retry::classify_status(resp.status(), resp.headers()) {
            // 400/401 here mean a wrong secret or app id: not worth retrying.
            return Err(retag("token endpoint", a));
        }
        let parsed: TokenResponse = resp.json().await.map_err(|e| {
            Attempt::Fail(format!(
                "token endpoint: unreadable answer: {}",
                retry::describe_transport(&e)
            ))
        })?;
        if let Some(t) = &parsed.token_type {
            if !t.eq_ignore_ascii_case("bearer") {
                return Err(Attempt::Fail(format!(
                    "token endpoint: unexpected token_type {t}"
                )));
            }
        }
        if parsed.access_token.is_empty() {
            return Err(Attempt::Fail("token endpoint: empty access_token".into()));
        }
        let lifetime = Duration::from_secs(parsed.expires_in);
        // Short-lived tokens are reused for half their life instead of not at all.
        let margin = EARLY_REFRESH.min(lifetime / 2);
        Ok(Cached {
            token: Secret::new(parsed.access_token),
            refresh_at: Instant::now() + lifetime - margin,
        })
    }
}

fn retag(what: &str, a: Attempt<()>) -> Attempt<()> {
    match a {
        Attempt::Retry { error, after } => Attempt::Retry {
            error: format!("{what}: {error}"),
            after,
        },
        Attempt::Fail(e) => Attempt::Fail(format!("{what}: {e}")),
        Attempt::Done(()) => Attempt::Done(()),
    }
}

//! Checking that a request to the messaging endpoint really comes from Teams through the Bot
//! Connector, for this bot, in an allowed tenant.
//!
//! Anyone on the internet can POST to the messaging endpoint, and an approval is exactly what an
//! attacker wants, so every check is mandatory and fails closed:
//! - the token is RS256 (no `none`, no HMAC: the public key must never double as a secret);
//! - it is signed by a key from the JWKS named in the configured OpenID metadata, and that key
//!   is endorsed for the `msteams` channel (and the activity says it is from `msteams`);
//! - `iss` is the Bot Framework, `aud` is our app id, `exp`/`nbf` hold within the leeway;
//! - the `serviceurl` claim equals the activity's `serviceUrl` (else a token minted for one
//!   activity could carry another that makes us call an attacker's service URL);
//! - the activity's tenant is allowlisted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use super::activity::{Activity, TenantError};
use crate::notify::config::BotConfig;
use crate::notify::NotifyError;

/// The only channel whose activities airlock accepts.
pub const TEAMS_CHANNEL: &str = "msteams";

/// Why a request to the messaging endpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token algorithm {0} is not accepted (RS256 only)")]
    Algorithm(String),
    #[error("token signed with an unknown key")]
    UnknownKey,
    #[error("signing key is not endorsed for the msteams channel")]
    NotEndorsed,
    #[error("activity is not from the msteams channel")]
    NotTeams,
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("token serviceurl claim does not match the activity")]
    ServiceUrlMismatch,
    #[error("activity tenant is missing or ambiguous")]
    NoTenant,
    #[error("tenant is not allowed")]
    TenantNotAllowed,
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// Tenant refusals are authenticated but unauthorized (403); the rest is 401, except key
    /// fetching trouble, which is ours (503).
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AuthError::TenantNotAllowed | AuthError::NoTenant => StatusCode::FORBIDDEN,
            AuthError::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

#[derive(Clone)]
struct SigningKey {
    key: DecodingKey,
    endorsements: Vec<String>,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, SigningKey>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

#[derive(Deserialize)]
struct OpenIdMetadata {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<JwkEntry>,
}

#[derive(Deserialize)]
struct JwkEntry {
    #[serde(default)]
    kty: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    endorsements: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    serviceurl: Option<String>,
}

/// Verifies Bot Framework tokens. Keys are fetched lazily and cached.
pub struct BotAuth {
    http: reqwest::Client,
    metadata_url: String,
    app_id: String,
    issuer: String,
    leeway: u64,
    allowed_tenants: HashSet<String>,
    refresh_every: Duration,
    min_refetch: Duration,
    keys: RwLock<KeySet>,
    fetching: Mutex<()>,
}

impl BotAuth {
    pub fn new(cfg: &BotConfig, http: reqwest::Client) -> Result<BotAuth, NotifyError> {
        let allowed_tenants: HashSet<String> = cfg
            .allowed_tenants
            .iter()
            .filter(|t| !t.trim().is_empty())
            .cloned()
            .collect();
        if allowed_tenants.is_empty() || cfg.app_id.is_empty() {
            return Err(NotifyError::Config(
                "[notify.bot] needs `app_id` and `allowed_tenants`".into(),
            ));
        }
        Ok(BotAuth {
            http,
            metadata_url: cfg.openid_metadata_url.clone(),
            app_id: cfg.app_id.clone(),
            issuer: cfg.issuer.clone(),
            leeway: cfg.leeway_secs,
            allowed_tenants,
            refresh_every: Duration::from_secs(cfg.jwks_refresh_secs.max(60)),
            min_refetch: Duration::from_secs(cfg.jwks_min_refetch_secs),
            keys: RwLock::new(KeySet::default()),
            fetching: Mutex::new(()),
        })
    }

    /// Checks the `Authorization` header against the activity it came with.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        activity: &Activity,
    ) -> Result<(), AuthError> {
        let token = authorization
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::MissingToken)?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Malformed("no key id".into()))?;
        let key = self.key(&kid).await?;
        if activity.channel_id != TEAMS_CHANNEL {
            return Err(AuthError::NotTeams);
        }
        if !key.endorsements.iter().any(|e| e == TEAMS_CHANNEL) {
            return Err(AuthError::NotEndorsed);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.app_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| AuthError::Invalid(format!("{:?}", e.kind())))?;
        let claimed = data
            .claims
            .serviceurl
            .ok_or(AuthError::ServiceUrlMismatch)?;
        if claimed.trim_end_matches('/') != activity.service_url.trim_end_matches('/') {
            return Err(AuthError::ServiceUrlMismatch);
        }
        let tenant = activity.tenant_id().map_err(|e| match e {
            TenantError::Missing | TenantError::Conflicting => AuthError::NoTenant,
        })?;
        if !self.allowed_tenants.contains(tenant) {
            return Err(AuthError::TenantNotAllowed);
        }
        Ok(())
    }

    /// The signing key `kid`, from the cache or a fresh fetch. An unknown id triggers a fetch
    /// at most every `jwks_min_refetch_secs`, so junk tokens cannot make us hammer the JWKS.
    async fn key(&self, kid: &str) -> Result<SigningKey, AuthError> {
        if let Some(k) = self.cached(kid, true).await {
            return Ok(k);
        }
        let _one_fetch = self.fetching.lock().await;
        if let Some(k) = self.cached(kid, true).await {
            return Ok(k);
        }
        let (stale, may_fetch) = {
            let set = self.keys.read().await;
            let stale = set
                .fetched_at
                .is_none_or(|t| t.elapsed() >= self.refresh_every);
            let may_fetch = stale
                || set
                    .last_attempt
                    .is_none_or(|t| t.elapsed() >= self.min_refetch);
            (stale, may_fetch)
        };
        if !may_fetch {
            return Err(AuthError::UnknownKey);
        }
        self.keys.write().await.last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let mut set = self.keys.write().await;
                set.keys = keys;
                set.fetched_at = Some(Instant::now());
                set.keys.get(kid).cloned().ok_or(AuthError::UnknownKey)
            }
            Err(e) => {
                tracing::warn!(target: "airlock::notify", error = %e, "cannot fetch Bot Framework signing keys");
                // Keys rotate slowly: a known key stays usable while the metadata is down.
                if stale {
                    if let Some(k) = self.cached(kid, false).await {
                        return Ok(k);
                    }
                }
                Err(AuthError::KeysUnavailable(e))
            }
        }
    }

    async fn cached(&self, kid: &str, fresh_only: bool) -> Option<SigningKey> {
        let set = self.keys.read().await;
        let fresh = set
            .fetched_at
            .is_some_and(|t| t.elapsed() < self.refresh_every);
        if fresh_only && !fresh {
            return None;
        }
        set.keys.get(kid).cloned()
    }

    async fn fetch(&self) -> Result<HashMap<String, SigningKey>, String> {
        let meta: OpenIdMetadata = self.get_json(&self.metadata_url).await?;
        let jwks: Jwks = self.get_json(&meta.jwks_uri).await?;
        let mut keys = HashMap::new();
        for k in jwks.keys {
            let (Some(kid), Some(n), Some(e)) = (k.kid, k.n, k.e) else {
                continue;
            };
            if k.kty.as_deref() != Some("RSA") {
                continue;
            }
            match DecodingKey::from_rsa_components(&n, &e) {
                Ok(key) => {
                    keys.insert(
                        kid,
                        SigningKey {
                            key,
                            endorsements: k.endorsements,
                        },
                    );
                }
                Err(err) => {
                    tracing::warn!(target: "airlock::notify", %kid, error = %err, "skipping unusable signing key");
                }
            }
        }
        if keys.is_empty() {
            return Err("the JWKS has no usable RSA keys".into());
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| crate::notify::retry::describe_transport(&e))?;
        if !resp.status().is_success() {
            return Err(format!(
                "{}: HTTP {}",
                crate::notify::host_of(url),
                resp.status()
            ));
        }
        resp.json()
            .await
            .map_err(|e| format!("{}: {}", crate::notify::host_of(url), e))
    }
}

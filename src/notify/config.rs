//! `[notify]` configuration: the Teams Workflows webhook, the Teams bot, retry behaviour and the
//! secret that signs approval links.
//!
//! Secrets (the bot's client secret, the link-signing key, and the webhook URL, whose `sig=`
//! query parameter is a bearer credential) are read from an environment variable or a file, so
//! the config file itself can be shared and committed without leaking anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::NotifyError;

/// Entra's public OpenID metadata for tokens the Bot Connector sends to bots.
pub const BOT_OPENID_METADATA_URL: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";
/// Issuer of the tokens the Bot Connector sends to bots.
pub const BOT_TOKEN_ISSUER: &str = "https://api.botframework.com";
/// Scope a bot asks for to call the Bot Connector.
pub const BOT_CONNECTOR_SCOPE: &str = "https://api.botframework.com/.default";
/// Default path of the bot messaging endpoint on the admin listener.
pub const DEFAULT_MESSAGING_PATH: &str = "/api/teams/messages";

/// `[notify]` section: where held requests are announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Environment variable holding the key that signs approval-page links.
    pub link_secret_env: Option<String>,
    /// File holding the key that signs approval-page links (trailing newline ignored).
    pub link_secret_file: Option<PathBuf>,
    /// How long a signed approval link stays valid. The link never outlives the request: the
    /// page still checks the request's own state.
    pub link_ttl_secs: u64,
    /// Retry behaviour shared by the webhook and the bot.
    pub retry: RetryConfig,
    /// Teams Workflows webhook (card with a link to the approval page).
    pub webhook: Option<WebhookConfig>,
    /// Teams bot (card with in-card Approve/Deny).
    pub bot: Option<BotConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            link_secret_env: None,
            link_secret_file: None,
            link_ttl_secs: 900,
            retry: RetryConfig::default(),
            webhook: None,
            bot: None,
        }
    }
}

/// `[notify.retry]`: bounded exponential backoff for posts to Teams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in total, the first one included (at least 1).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled after each failure.
    pub initial_backoff_ms: u64,
    /// Upper bound of one wait.
    pub max_backoff_ms: u64,
    /// Upper bound honoured for a `Retry-After` header on 429/503; longer asks give up instead
    /// of parking the delivery for hours.
    pub max_retry_after_secs: u64,
    /// Timeout of one HTTP request.
    pub request_timeout_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_retry_after_secs: 120,
            request_timeout_secs: 10,
        }
    }
}

impl RetryConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// `[notify.webhook]`: a Teams Workflows "post to a channel when a webhook request is
/// received" URL. Exactly one of `url`, `url_env`, `url_file`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// The workflow URL inline. It carries a signature; prefer `url_env` or `url_file`.
    pub url: Option<String>,
    /// Environment variable holding the workflow URL.
    pub url_env: Option<String>,
    /// File holding the workflow URL.
    pub url_file: Option<PathBuf>,
}

/// `[notify.bot]`: an Azure Bot registered for Teams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotConfig {
    /// The bot's Microsoft App ID (the app registration's client id). Tokens the Bot Connector
    /// sends must have it as audience.
    pub app_id: String,
    /// Entra tenant of the app registration; used to build the default `token_url`.
    pub tenant_id: Option<String>,
    /// Environment variable holding the app registration's client secret.
    pub client_secret_env: Option<String>,
    /// File holding the app registration's client secret.
    pub client_secret_file: Option<PathBuf>,
    /// OAuth2 token endpoint; defaults to
    /// `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`.
    pub token_url: Option<String>,
    /// Scope requested with the client-credentials grant.
    pub scope: String,
    /// OpenID metadata document whose `jwks_uri` lists the keys that sign incoming tokens.
    pub openid_metadata_url: String,
    /// Expected `iss` of incoming tokens.
    pub issuer: String,
    /// Bot Connector base URL for proactive posts (the `serviceUrl` Teams reports for the
    /// team, e.g. `https://smba.trafficmanager.net/emea/`).
    pub service_url: String,
    /// Teams channel id (`19:…@thread.tacv2`): each request starts a new thread there.
    pub channel_id: Option<String>,
    /// Existing conversation id: each request is posted into it instead.
    pub conversation_id: Option<String>,
    /// Entra tenants whose Teams may call the messaging endpoint. Must not be empty.
    pub allowed_tenants: Vec<String>,
    /// Path of the messaging endpoint on the admin listener.
    pub messaging_path: String,
    /// Clock skew tolerated on `exp`/`nbf` of incoming tokens.
    pub leeway_secs: u64,
    /// How long fetched signing keys are trusted before being fetched again.
    pub jwks_refresh_secs: u64,
    /// A token signed with a key id we do not know triggers a refetch at most this often.
    pub jwks_min_refetch_secs: u64,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            app_id: String::new(),
            tenant_id: None,
            client_secret_env: None,
            client_secret_file: None,
            token_url: None,
            scope: BOT_CONNECTOR_SCOPE.into(),
            openid_metadata_url: BOT_OPENID_METADATA_URL.into(),
            issuer: BOT_TOKEN_ISSUER.into(),
            service_url: String::new(),
            channel_id: None,
            conversation_id: None,
            allowed_tenants: Vec::new(),
            messaging_path: DEFAULT_MESSAGING_PATH.into(),
            leeway_secs: 300,
            jwks_refresh_secs: 24 * 3600,
            jwks_min_refetch_secs: 300,
        }
    }
}

impl BotConfig {
    /// The token endpoint, derived from the tenant when not given.
    pub fn token_url(&self) -> Result<String, NotifyError> {
        match (&self.token_url, &self.tenant_id) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(tenant)) => Ok(format!(
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
            )),
            (None, None) => Err(NotifyError::Config(
                "[notify.bot] needs `token_url` or `tenant_id`".into(),
            )),
        }
    }

    /// Loads the client secret from its environment variable or file.
    pub fn client_secret(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, NotifyError> {
        load_secret(
            "[notify.bot] client_secret",
            self.client_secret_env.as_deref(),
            self.client_secret_file.as_deref(),
            env,
        )?
        .ok_or_else(|| {
            NotifyError::Config(
                "[notify.bot] needs `client_secret_env` or `client_secret_file`".into(),
            )
        })
    }
}

impl WebhookConfig {
    /// The workflow URL from wherever it is configured.
    pub fn resolve_url(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, NotifyError> {
        let from_elsewhere = load_secret(
            "[notify.webhook] url",
            self.url_env.as_deref(),
            self.url_file.as_deref(),
            env,
        )?;
        match (&self.url, from_elsewhere) {
            (Some(url), None) => Ok(Secret::new(url.clone())),
            (None, Some(url)) => Ok(url),
            (Some(_), Some(_)) => Err(NotifyError::Config(
                "[notify.webhook] set only one of `url`, `url_env`, `url_file`".into(),
            )),
            (None, None) => Err(NotifyError::Config(
                "[notify.webhook] needs `url`, `url_env` or `url_file`".into(),
            )),
        }
    }
}

impl NotifyConfig {
    /// The link-signing key, when one is configured.
    pub fn link_secret(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, NotifyError> {
        let secret = load_secret(
            "[notify] link_secret",
            self.link_secret_env.as_deref(),
            self.link_secret_file.as_deref(),
            env,
        )?;
        if let Some(s) = &secret {
            if s.expose().len() < 32 {
                return Err(NotifyError::Config(
                    "[notify] the link-signing secret must be at least 32 bytes".into(),
                ));
            }
        }
        Ok(secret)
    }

    /// Checks that go beyond types. Secrets are not read here (they may only exist at run
    /// time); [`crate::notify::Notifiers::from_config`] reads them and fails when missing.
    pub fn validate(&self) -> Result<(), String> {
        if self.link_secret_env.is_some() && self.link_secret_file.is_some() {
            return Err("set only one of `link_secret_env`, `link_secret_file`".into());
        }
        if self.link_ttl_secs == 0 {
            return Err("`link_ttl_secs` must be positive".into());
        }
        let r = &self.retry;
        if r.max_attempts == 0 || r.max_attempts > 20 {
            return Err("[notify.retry] max_attempts must be between 1 and 20".into());
        }
        if r.initial_backoff_ms == 0 || r.max_backoff_ms < r.initial_backoff_ms {
            return Err("[notify.retry] need 0 < initial_backoff_ms <= max_backoff_ms".into());
        }
        if r.request_timeout_secs == 0 {
            return Err("[notify.retry] request_timeout_secs must be positive".into());
        }
        if let Some(w) = &self.webhook {
            let set = [w.url.is_some(), w.url_env.is_some(), w.url_file.is_some()];
            if set.iter().filter(|b| **b).count() != 1 {
                return Err(
                    "[notify.webhook] set exactly one of `url`, `url_env`, `url_file`".into(),
                );
            }
            if let Some(u) = &w.url {
                check_http_url("[notify.webhook] url", u)?;
            }
        }
        if let Some(b) = &self.bot {
            b.validate()?;
        }
        Ok(())
    }
}

impl BotConfig {
    fn validate(&self) -> Result<(), String> {
        if self.app_id.trim().is_empty() {
            return Err("[notify.bot] `app_id` is required".into());
        }
        if self.client_secret_env.is_some() == self.client_secret_file.is_some() {
            return Err(
                "[notify.bot] set exactly one of `client_secret_env`, `client_secret_file`".into(),
            );
        }
        self.token_url().map_err(|e| e.to_string())?;
        if let Some(u) = &self.token_url {
            check_http_url("[notify.bot] token_url", u)?;
        }
        check_http_url(
            "[notify.bot] openid_metadata_url",
            &self.openid_metadata_url,
        )?;
        check_http_url("[notify.bot] service_url", &self.service_url)?;
        if self.channel_id.is_some() == self.conversation_id.is_some() {
            return Err("[notify.bot] set exactly one of `channel_id`, `conversation_id`".into());
        }
        if self.allowed_tenants.iter().all(|t| t.trim().is_empty()) {
            return Err("[notify.bot] `allowed_tenants` must list at least one tenant id".into());
        }
        if !self.messaging_path.starts_with('/') {
            return Err("[notify.bot] `messaging_path` must start with `/`".into());
        }
        if self.issuer.is_empty() {
            return Err("[notify.bot] `issuer` must not be empty".into());
        }
        if self.leeway_secs > 600 {
            return Err("[notify.bot] `leeway_secs` above 600 is not accepted".into());
        }
        Ok(())
    }
}

fn check_http_url(what: &str, raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{what}: {e}"))?;
    match url.scheme() {
        "https" | "http" => Ok(()),
        other => Err(format!("{what}: scheme `{other}` is not http(s)")),
    }
}

/// A secret value. `Debug` never shows it, so it cannot leak through `{:?}` in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself; call sites are easy to grep for.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Reads a secret from an environment variable or a file; `None` when neither is configured.
fn load_secret(
    what: &str,
    env_var: Option<&str>,
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, NotifyError> {
    let value = match (env_var, file) {
        (Some(_), Some(_)) => {
            return Err(NotifyError::Config(format!(
                "{what}: set the environment variable or the file, not both"
            )))
        }
        (Some(var), None) => env(var).ok_or_else(|| {
            NotifyError::Config(format!("{what}: environment variable {var} is not set"))
        })?,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            NotifyError::Config(format!("{what}: cannot read {}: {e}", path.display()))
        })?,
        (None, None) => return Ok(None),
    };
    let value = value.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(NotifyError::Config(format!("{what} is empty")));
    }
    Ok(Some(Secret(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn bot_toml(extra: &str) -> String {
        format!(
            "[bot]\napp_id = \"app\"\ntenant_id = \"t1\"\nclient_secret_env = \"BOT_SECRET\"\n\
             service_url = \"https://smba.trafficmanager.net/emea/\"\nchannel_id = \"19:c@thread.tacv2\"\n\
             allowed_tenants = [\"t1\"]\n{extra}"
        )
    }

    #[test]
    fn defaults_are_valid_and_disabled() {
        let c = NotifyConfig::default();
        c.validate().unwrap();
        assert!(c.webhook.is_none() && c.bot.is_none());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<NotifyConfig>("[webhook]\nurl = \"https://x\"\nsecret = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret"), "{err}");
        let err = toml::from_str::<NotifyConfig>(&bot_toml("client_secret = \"inline\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_secret"), "{err}");
    }

    #[test]
    fn bot_config_validates_and_derives_token_url() {
        let c: NotifyConfig = toml::from_str(&bot_toml("")).unwrap();
        c.validate().unwrap();
        let bot = c.bot.unwrap();
        assert_eq!(
            bot.token_url().unwrap(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        assert_eq!(bot.messaging_path, "/api/teams/messages");
        assert_eq!(bot.issuer, "https://api.botframework.com");
    }

    #[test]
    fn bot_config_needs_a_tenant_allowlist_and_one_target() {
        let mut c: NotifyConfig = toml::from_str(&bot_toml("")).unwrap();
        c.bot.as_mut().unwrap().allowed_tenants.clear();
        assert!(c.validate().unwrap_err().contains("allowed_tenants"));
        let mut c: NotifyConfig = toml::from_str(&bot_toml("")).unwrap();
        c.bot.as_mut().unwrap().conversation_id = Some("a:1".into());
        assert!(c.validate().unwrap_err().contains("channel_id"));
    }

    #[test]
    fn secrets_come_from_env_or_file_and_never_print() {
        let c: NotifyConfig = toml::from_str(&bot_toml("")).unwrap();
        let bot = c.bot.unwrap();
        let env = |k: &str| (k == "BOT_SECRET").then(|| "s3cr3t\n".to_string());
        let secret = bot.client_secret(&env).unwrap();
        assert_eq!(secret.expose(), "s3cr3t");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        let err = bot.client_secret(&no_env).unwrap_err().to_string();
        assert!(err.contains("BOT_SECRET"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link.key");
        std::fs::write(&path, "k".repeat(40) + "\n").unwrap();
        let c = NotifyConfig {
            link_secret_file: Some(path),
            ..Default::default()
        };
        assert_eq!(
            c.link_secret(&no_env).unwrap().unwrap().expose(),
            "k".repeat(40)
        );
    }

    #[test]
    fn short_link_secret_is_refused() {
        let c = NotifyConfig {
            link_secret_env: Some("K".into()),
            ..Default::default()
        };
        let env = |_: &str| Some("short".to_string());
        assert!(c.link_secret(&env).is_err());
    }

    #[test]
    fn webhook_url_sources_are_exclusive() {
        let c: NotifyConfig =
            toml::from_str("[webhook]\nurl = \"https://x.example/wf\"\nurl_env = \"U\"\n").unwrap();
        assert!(c.validate().is_err());
        let c: NotifyConfig = toml::from_str("[webhook]\nurl_env = \"U\"\n").unwrap();
        c.validate().unwrap();
        let env = |k: &str| (k == "U").then(|| "https://x.example/wf?sig=abc".to_string());
        let url = c.webhook.unwrap().resolve_url(&env).unwrap();
        assert!(url.expose().ends_with("sig=abc"));
    }
}

//! Announcing held requests in Microsoft Teams, in two modes:
//!
//! - **Workflows webhook** ([`WebhookNotifier`]): posts an Adaptive Card with a link to the
//!   signed approval page; the verdict follows as a second card.
//! - **Bot** ([`BotNotifier`] + [`bot_routes`]): posts the card through the Bot Connector;
//!   approvers decide in the card (`Action.Execute`), the messaging endpoint checks the Bot
//!   Framework token and hands the verdict to the approval registry through [`VerdictSink`],
//!   then updates the card for everyone.
//!
//! ```text
//! approval registry ──held(CardRequest)──► Notifier ──► card::* ──► Teams (retry, backoff)
//!        ▲          ──settled(CardOutcome)─►                   failures ──► DeliveryReport
//!        │
//!        └──VerdictSink::verdict◄── bot endpoint ◄── invoke adaptiveCard/action (JWT checked)
//! ```
//!
//! Notifying never blocks or loses a request: [`Notifier`] methods return at once, delivery
//! runs in the background with bounded retries, and a delivery that gives up is logged and
//! reported to [`DeliveryReport`] (for the audit) while the request stays pending and reachable
//! through the admin API and web page.

pub mod bot;
pub mod card;
pub mod config;
pub mod retry;
pub mod text;
mod tracker;
pub mod webhook;

use std::sync::Arc;

pub use bot::{
    bot_routes, ApproverDirectory, BotAuth, BotNotifier, BotState, RefusedAttempt, VerdictAttempt,
    VerdictResult, VerdictSink,
};
pub use card::{CardOutcome, CardRequest, OutcomeState};
pub use config::{BotConfig, NotifyConfig, RetryConfig, Secret, WebhookConfig};
pub use webhook::WebhookNotifier;

/// Errors of the notify module.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{0}")]
    Config(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("delivery failed: {0}")]
    Delivery(#[from] retry::GaveUp),
}

/// Where a notification went, as the audit names the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    TeamsWebhook,
    TeamsBot,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::TeamsWebhook => "teams-webhook",
            Channel::TeamsBot => "teams-bot",
        }
    }
}

/// What was being delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// The card announcing a held request.
    Held,
    /// The verdict (follow-up card or in-place update).
    Settled,
}

/// A delivery that gave up; the request itself is unaffected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    pub request_id: String,
    pub channel: Channel,
    pub kind: DeliveryKind,
    pub attempts: u32,
    /// Why, without URLs or tokens.
    pub error: String,
}

/// Receives delivery results so they reach the audit. Called from background tasks; must not
/// block (send to the audit writer's channel).
pub trait DeliveryReport: Send + Sync + 'static {
    fn failed(&self, failure: DeliveryFailure);
    fn delivered(&self, _request_id: &str, _channel: Channel, _kind: DeliveryKind) {}
}

/// Something that announces held requests and their outcome. Both methods return at once; the
/// work happens on the tokio runtime they are called from.
pub trait Notifier: Send + Sync {
    /// A request is held and waiting for a verdict.
    fn held(&self, request: CardRequest);
    /// A request reached its final state (approved, denied, expired, withdrawn, abandoned).
    fn settled(&self, outcome: CardOutcome);
}

/// Every configured notifier behind one [`Notifier`].
#[derive(Clone, Default)]
pub struct Notifiers {
    webhook: Option<WebhookNotifier>,
    bot: Option<BotNotifier>,
}

impl Notifiers {
    /// Builds the notifiers `[notify]` enables. `env` looks up environment variables (pass
    /// `|k| std::env::var(k).ok()`); secrets are read here, so a missing one fails at start.
    pub fn from_config(
        cfg: &NotifyConfig,
        report: Arc<dyn DeliveryReport>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Notifiers, NotifyError> {
        cfg.validate()
            .map_err(|e| NotifyError::Config(format!("[notify] {e}")))?;
        let webhook = match &cfg.webhook {
            Some(w) => Some(WebhookNotifier::new(
                w.resolve_url(env)?,
                cfg.retry.clone(),
                report.clone(),
            )?),
            None => None,
        };
        let bot = match &cfg.bot {
            Some(b) => Some(BotNotifier::new(
                b,
                b.client_secret(env)?,
                cfg.retry.clone(),
                report,
            )?),
            None => None,
        };
        Ok(Notifiers { webhook, bot })
    }

    /// The bot notifier, to build [`BotState`] for the messaging endpoint.
    pub fn bot(&self) -> Option<&BotNotifier> {
        self.bot.as_ref()
    }

    pub fn webhook(&self) -> Option<&WebhookNotifier> {
        self.webhook.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.bot.is_none()
    }
}

impl Notifier for Notifiers {
    fn held(&self, request: CardRequest) {
        if let Some(b) = &self.bot {
            b.held(request.clone());
        }
        if let Some(w) = &self.webhook {
            w.held(request);
        }
    }

    fn settled(&self, outcome: CardOutcome) {
        if let Some(b) = &self.bot {
            b.settled(outcome.clone());
        }
        if let Some(w) = &self.webhook {
            w.settled(outcome);
        }
    }
}

/// Host of a URL, for logs that must not print the URL (Workflows URLs carry a signature).
pub(crate) fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "<invalid url>".into())
}

/// One HTTP client for all of notify: timeouts from the retry config, no redirects (a token or
/// a card must never be replayed to another host).
pub(crate) fn http_client(retry: &RetryConfig) -> Result<reqwest::Client, NotifyError> {
    reqwest::Client::builder()
        .timeout(retry.request_timeout())
        .connect_timeout(retry.request_timeout())
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| NotifyError::Client(e.to_string()))
}

//! Proactive posting through the Bot Connector and in-place updates once a request settles.

use std::sync::Arc;

use super::connector::{Connector, PostedCard};
use super::token::TokenSource;
use crate::notify::card::{self, CardOutcome, CardRequest};
use crate::notify::config::{BotConfig, RetryConfig, Secret};
use crate::notify::tracker::Tracker;
use crate::notify::{
    http_client, Channel, DeliveryFailure, DeliveryKind, DeliveryReport, Notifier, NotifyError,
};

/// What the bot did for one request.
#[derive(Default)]
pub(crate) struct PostState {
    pub posted: Option<PostedCard>,
    pub settled: Option<CardOutcome>,
}

enum Target {
    /// Start a new thread per request in this channel.
    Channel(String),
    /// Post into this conversation.
    Conversation(String),
}

/// Posts request cards with the bot and updates them when requests settle. Cheap to clone.
#[derive(Clone)]
pub struct BotNotifier {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    service_url: String,
    target: Target,
    tenant_id: String,
    tracker: Tracker<PostState>,
    report: Arc<dyn DeliveryReport>,
}

impl BotNotifier {
    pub fn new(
        cfg: &BotConfig,
        client_secret: Secret,
        retry: RetryConfig,
        report: Arc<dyn DeliveryReport>,
    ) -> Result<BotNotifier, NotifyError> {
        let http = http_client(&retry)?;
        let tokens = TokenSource::new(
            http.clone(),
            cfg.token_url()?,
            cfg.app_id.clone(),
            client_secret,
            cfg.scope.clone(),
        );
        let target = match (&cfg.channel_id, &cfg.conversation_id) {
            (Some(c), None) => Target::Channel(c.clone()),
            (None, Some(c)) => Target::Conversation(c.clone()),
            _ => {
                return Err(NotifyError::Config(
                    "[notify.bot] set exactly one of `channel_id`, `conversation_id`".into(),
                ))
            }
        };
        let tenant_id = cfg
            .tenant_id
            .clone()
            .or_else(|| cfg.allowed_tenants.first().cloned())
            .ok_or_else(|| NotifyError::Config("[notify.bot] needs `tenant_id`".into()))?;
        Ok(BotNotifier {
            inner: Arc::new(Inner {
                connector: Connector::new(http, tokens, retry),
                service_url: cfg.service_url.clone(),
                target,
                tenant_id,
                tracker: Tracker::new(),
                report,
            }),
        })
    }

    /// The details of a request this notifier announced, when still remembered.
    pub fn request(&self, request_id: &str) -> Option<CardRequest> {
        self.inner.tracker.request(request_id)
    }

    /// Where the request's card was posted; waits for an announcement in flight to finish.
    pub async fn posted(&self, request_id: &str) -> Option<PostedCard> {
        let entry = self.inner.tracker.get(request_id)?;
        let state = entry.state.lock().await;
        state.posted.clone()
    }

    /// The final state the request's card shows, once updated. Never waits: an invoke must be
    /// answered within seconds, and a post or update in flight may be retrying; until it is
    /// done the request counts as not settled (a click then learns from the registry that it
    /// is already decided).
    pub(crate) fn outcome(&self, request_id: &str) -> Option<CardOutcome> {
        let entry = self.inner.tracker.get(request_id)?;
        let state = entry.state.try_lock().ok()?;
        state.settled.clone()
    }

    /// Replaces the request's card with the verdict card for everyone. `fallback` is where an
    /// approver clicked, used when this process did not post the card itself.
    pub(crate) fn settle(
        &self,
        outcome: CardOutcome,
        fallback: Option<PostedCard>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let entry = this.inner.tracker.entry(&outcome.request_id);
            let mut state = entry.state.lock().await;
            if state.settled.is_some() {
                return;
            }
            let Some(target) = state.posted.clone().or(fallback) else {
                tracing::warn!(
                    target: "airlock::notify",
                    request_id = %outcome.request_id,
                    "no posted Teams card to update with the verdict"
                );
                return;
            };
            let card = card::verdict_card(entry.request.as_ref(), &outcome);
            let id = outcome.request_id.as_str();
            match this.inner.connector.update(&target, &card).await {
                Ok(()) => {
                    state.settled = Some(outcome.clone());
                    state.posted = Some(target);
                    drop(state);
                    this.inner
                        .report
                        .delivered(id, Channel::TeamsBot, DeliveryKind::Settled);
                }
                Err(e) => this.failed(id, DeliveryKind::Settled, e),
            }
        })
    }

    fn failed(&self, request_id: &str, kind: DeliveryKind, e: crate::notify::retry::GaveUp) {
        tracing::error!(
            target: "airlock::notify",
            request_id,
            ?kind,
            attempts = e.attempts,
            error = %e.error,
            "teams bot delivery gave up; the request stays pending on the API and web page"
        );
        self.inner.report.failed(DeliveryFailure {
            request_id: request_id.to_string(),
            channel: Channel::TeamsBot,
            kind,
            attempts: e.attempts,
            error: e.error,
        });
    }
}

impl Notifier for BotNotifier {
    fn held(&self, request: CardRequest) {
        let card = card::bot_base_card(&request, None);
        let id = request.request_id.clone();
        let mut guard = self.inner.tracker.start(request);
        let this = self.clone();
        tokio::spawn(async move {
            let inner = &this.inner;
            let posted = match &inner.target {
                Target::Channel(channel) => {
                    inner
                        .connector
                        .create_thread(&inner.service_url, channel, &inner.tenant_id, &card)
                        .await
                }
                Target::Conversation(conv) => {
                    inner.connector.send(&inner.service_url, conv, &card).await
                }
            };
            match posted {
                Ok(p) => {
                    tracing::debug!(target: "airlock::notify", request_id = %id, activity_id = %p.activity_id, "teams bot card posted");
                    guard.posted = Some(p);
                    drop(guard);
                    inner
                        .report
                        .delivered(&id, Channel::TeamsBot, DeliveryKind::Held);
                }
                Err(e) => this.failed(&id, DeliveryKind::Held, e),
            }
        });
    }

    fn settled(&self, outcome: CardOutcome) {
        drop(self.settle(outcome, None));
    }
}

//! Teams Workflows webhook: the card goes to a workflow that posts it to a channel.
//!
//! Only `Action.OpenUrl` works in such a card, so approvers follow a signed link to the
//! approval page. The verdict is posted as a follow-up card.

use std::sync::Arc;

use serde_json::{json, Value};

use super::card::{self, CardOutcome, CardRequest};
use super::config::{RetryConfig, Secret};
use super::retry::{self, Attempt, GaveUp};
use super::tracker::Tracker;
use super::{
    host_of, http_client, Channel, DeliveryFailure, DeliveryKind, DeliveryReport, Notifier,
    NotifyError,
};

/// Content type of an Adaptive Card attachment.
pub const ADAPTIVE_CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

/// Posts cards to a Workflows webhook URL. Cheap to clone.
#[derive(Clone)]
pub struct WebhookNotifier {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    url: Secret,
    retry: RetryConfig,
    report: Arc<dyn DeliveryReport>,
    tracker: Tracker<()>,
}

/// The message Workflows expects: one Adaptive Card attachment.
pub fn envelope(card: &Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": ADAPTIVE_CARD_CONTENT_TYPE,
            "content": card,
        }],
    })
}

impl WebhookNotifier {
    pub fn new(
        url: Secret,
        retry: RetryConfig,
        report: Arc<dyn DeliveryReport>,
    ) -> Result<WebhookNotifier, NotifyError> {
        let parsed = url::Url::parse(url.expose())
            .map_err(|e| NotifyError::Config(format!("[notify.webhook] url: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(NotifyError::Config(
                "[notify.webhook] url must be http(s)".into(),
            ));
        }
        Ok(WebhookNotifier {
            inner: Arc::new(Inner {
                http: http_client(&retry)?,
                url,
                retry,
                report,
                tracker: Tracker::new(),
            }),
        })
    }

    /// Posts one card, retrying as configured. Returns when it is accepted or given up.
    pub async fn post_card(&self, card: &Value) -> Result<(), GaveUp> {
        let inner = &self.inner;
        let body = serde_json::to_vec(&envelope(card)).map_err(|e| GaveUp {
            attempts: 0,
            error: e.to_string(),
        })?;
        retry::run(&inner.retry, "teams webhook post", |_| {
            let req = inner
                .http
                .post(inner.url.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            async move {
                match req.send().await {
                    Ok(resp) => match retry::classify_status(resp.status(), resp.headers()) {
                        Ok(()) => Attempt::Done(()),
                        Err(a) => a,
                    },
                    Err(e) => retry::classify_transport(&e),
                }
            }
        })
        .await
    }

    async fn deliver(&self, request_id: &str, kind: DeliveryKind, card: Value) {
        let host = host_of(self.inner.url.expose());
        match self.post_card(&card).await {
            Ok(()) => {
                tracing::debug!(target: "airlock::notify", request_id, %host, ?kind, "teams webhook card posted");
                self.inner
                    .report
                    .delivered(request_id, Channel::TeamsWebhook, kind);
            }
            Err(e) => {
                tracing::error!(
                    target: "airlock::notify",
                    request_id,
                    %host,
                    ?kind,
                    attempts = e.attempts,
                    error = %e.error,
                    "teams webhook delivery gave up; the request stays pending on the API and web page"
                );
                self.inner.report.failed(DeliveryFailure {
                    request_id: request_id.to_string(),
                    channel: Channel::TeamsWebhook,
                    kind,
                    attempts: e.attempts,
                    error: e.error,
                });
            }
        }
    }
}

impl Notifier for WebhookNotifier {
    fn held(&self, request: CardRequest) {
        let card = card::webhook_card(&request);
        let id = request.request_id.clone();
        let guard = self.inner.tracker.start(request);
        let this = self.clone();
        tokio::spawn(async move {
            this.deliver(&id, DeliveryKind::Held, card).await;
            drop(guard);
        });
    }

    fn settled(&self, outcome: CardOutcome) {
        let entry = self.inner.tracker.entry(&outcome.request_id);
        let this = self.clone();
        tokio::spawn(async move {
            let _order = entry.state.lock().await;
            if entry.request.is_none() {
                tracing::warn!(
                    target: "airlock::notify",
                    request_id = %outcome.request_id,
                    "posting a verdict for a request this gateway no longer remembers"
                );
            }
            let card = card::verdict_card(entry.request.as_ref(), &outcome);
            this.deliver(&outcome.request_id, DeliveryKind::Settled, card)
                .await;
        });
    }
}

//! Bot Connector REST calls: start a channel thread, post into a conversation, update a posted
//! activity in place.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::token::TokenSource;
use crate::notify::config::RetryConfig;
use crate::notify::retry::{self, Attempt, GaveUp};
use crate::notify::webhook::ADAPTIVE_CARD_CONTENT_TYPE;

/// Where a card was posted, to update it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedCard {
    pub service_url: String,
    pub conversation_id: String,
    pub activity_id: String,
}

pub(crate) struct Connector {
    http: reqwest::Client,
    tokens: TokenSource,
    retry: RetryConfig,
}

/// A message activity carrying one card.
pub(crate) fn card_activity(card: &Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{ "contentType": ADAPTIVE_CARD_CONTENT_TYPE, "content": card }],
    })
}

impl Connector {
    pub fn new(http: reqwest::Client, tokens: TokenSource, retry: RetryConfig) -> Connector {
        Connector {
            http,
            tokens,
            retry,
        }
    }

    /// Starts a new thread in a Teams channel with the card: `POST /v3/conversations`.
    pub async fn create_thread(
        &self,
        service_url: &str,
        channel_id: &str,
        tenant_id: &str,
        card: &Value,
    ) -> Result<PostedCard, GaveUp> {
        let body = json!({
            "isGroup": true,
            "channelData": {
                "channel": { "id": channel_id },
                "tenant": { "id": tenant_id },
            },
            "tenantId": tenant_id,
            "activity": card_activity(card),
        });
        let url = format!("{}/v3/conversations", base(service_url));
        let answer = self.call(Method::POST, &url, &body).await?;
        let conversation_id = string_field(&answer, "id")?;
        let activity_id = string_field(&answer, "activityId")?;
        Ok(PostedCard {
            service_url: service_url.to_string(),
            conversation_id,
            activity_id,
        })
    }

    /// Posts the card into an existing conversation:
    /// `POST /v3/conversations/{id}/activities`.
    pub async fn send(
        &self,
        service_url: &str,
        conversation_id: &str,
        card: &Value,
    ) -> Result<PostedCard, GaveUp> {
        let url = format!(
            "{}/v3/conversations/{}/activities",
            base(service_url),
            encode_segment(conversation_id)
        );
        let answer = self.call(Method::POST, &url, &card_activity(card)).await?;
        Ok(PostedCard {
            service_url: service_url.to_string(),
            conversation_id: conversation_id.to_string(),
            activity_id: string_field(&answer, "id")?,
        })
    }

    /// Replaces a posted card for everyone:
    /// `PUT /v3/conversations/{id}/activities/{activityId}`.
    pub async fn update(&self, posted: &PostedCard, card: &Value) -> Result<(), GaveUp> {
        let url = format!(
            "{}/v3/conversations/{}/activities/{}",
            base(&posted.service_url),
            encode_segment(&posted.conversation_id),
            encode_segment(&posted.activity_id)
        );
        let mut activity = card_activity(card);
        activity["id"] = json!(posted.activity_id);
        self.call(Method::PUT, &url, &activity).await.map(|_| ())
    }

    async fn call(&self, method: Method, url: &str, body: &Value) -> Result<Value, GaveUp> {
        let body = serde_json::to_vec(body).map_err(|e| GaveUp {
            attempts: 0,
            error: e.to_string(),
        })?;
        retry::run(&self.retry, "bot connector call", |_| {
            let method = method.clone();
            let body = body.clone();
            async move {
                let token = match self.tokens.token().await {
                    Ok(t) => t,
                    Err(a) => return map_unit(a),
                };
                let sent = self
                    .http
                    .request(method, url)
                    .bearer_auth(token.expose())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                let resp = match sent {
                    Ok(r) => r,
                    Err(e) => return map_unit(retry::classify_transport(&e)),
                };
                if resp.status() == StatusCode::UNAUTHORIZED {
                    // The token was revoked or rotated early; fetch a new one and try again.
                    self.tokens.invalidate().await;
                    return Attempt::Retry {
                        error: "bot connector: HTTP 401".into(),
                        after: None,
                    };
                }
                if let Err(a) = retry::classify_status(resp.status(), resp.headers()) {
                    return map_unit(a);
                }
                let text = match resp.text().await {
                    Ok(t) => t,
                    Err(e) => return map_unit(retry::classify_transport(&e)),
                };
                if text.trim().is_empty() {
                    return Attempt::Done(Value::Null);
                }
                match serde_json::from_str(&text) {
                    Ok(v) => Attempt::Done(v),
                    Err(e) => Attempt::Fail(format!("bot connector: unreadable answer: {e}")),
                }
            }
        })
        .await
    }
}

fn map_unit<T>(a: Attempt<()>) -> Attempt<T> {
    match a {
        Attempt::Retry { error, after } => Attempt::Retry { error, after },
        Attempt::Fail(e) => Attempt::Fail(e),
        Attempt::Done(()) => Attempt::Fail("internal: unexpected success".into()),
    }
}

fn string_field(v: &Value, key: &str) -> Result<String, GaveUp> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| GaveUp {
            attempts: 1,
            error: format!("bot connector answered without `{key}`"),
        })
}

fn base(service_url: &str) -> &str {
    service_url.trim_end_matches('/')
}

/// Percent-encodes a path segment like JavaScript's `encodeURIComponent`, as the Bot Framework
/// SDKs do: Teams conversation ids contain `:`, `@` and `;`.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'!'
            | b'*'
            | b'\''
            | b'('
            | b')' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids_are_encoded() {
        assert_eq!(
            encode_segment("19:abc@thread.tacv2;messageid=17"),
            "19%3Aabc%40thread.tacv2%3Bmessageid%3D17"
        );
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(
            base("https://smba.example/emea/"),
            "https://smba.example/emea"
        );
    }
}

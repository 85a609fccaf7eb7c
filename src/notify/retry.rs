//! Bounded retries with exponential backoff for posts to Teams.
//!
//! Teams and the Bot Connector throttle with 429 + `Retry-After` and have transient 5xx; a
//! notification that gives up on the first hiccup leaves an agent waiting on a request nobody
//! saw. But a delivery must also end: after `max_attempts`, or when the service asks for a wait
//! longer than `max_retry_after_secs`, the caller reports the failure (it is audited) and the
//! request stays pending and reachable through the API and web page.

use std::future::Future;
use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use super::config::RetryConfig;

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<T> {
    Done(T),
    /// Worth trying again, after `after` when the service said so.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Trying again would not help (4xx other than 408/429, a malformed answer, …).
    Fail(String),
}

/// A delivery that did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gave up after {attempts} attempt(s): {error}")]
pub struct GaveUp {
    pub attempts: u32,
    pub error: String,
}

/// Runs `op` until it is done, fails for good, or the attempts run out.
pub async fn run<T, F, Fut>(cfg: &RetryConfig, what: &str, mut op: F) -> Result<T, GaveUp>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let max_after = Duration::from_secs(cfg.max_retry_after_secs);
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fail(error) => {
                return Err(GaveUp {
                    attempts: attempt,
                    error,
                })
            }
            Attempt::Retry { error, after } => {
                if attempt >= cfg.max_attempts {
                    return Err(GaveUp {
                        attempts: attempt,
                        error,
                    });
                }
                let wait = match after {
                    Some(a) if a > max_after => {
                        return Err(GaveUp {
                            attempts: attempt,
                            error: format!(
                                "{error}; asked to wait {}s, more than the {}s allowed",
                                a.as_secs(),
                                max_after.as_secs()
                            ),
                        })
                    }
                    Some(a) => a,
                    None => backoff(cfg, attempt),
                };
                tracing::warn!(
                    target: "airlock::notify",
                    what,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    %error,
                    "delivery failed, retrying"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Wait after the `attempt`-th failure: doubling from `initial_backoff_ms`, capped, with up to
/// 25% jitter so many held requests do not retry in lockstep.
pub fn backoff(cfg: &RetryConfig, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let base = cfg
        .initial_backoff_ms
        .saturating_mul(1u64 << exp)
        .min(cfg.max_backoff_ms);
    let jitter = rand::thread_rng().gen_range(0..=base / 4);
    Duration::from_millis(base.saturating_add(jitter).min(cfg.max_backoff_ms))
}

/// Sorts an HTTP answer: 2xx done; 408, 429 and 5xx worth retrying; anything else final.
pub fn classify_status(status: StatusCode, headers: &HeaderMap) -> Result<(), Attempt<()>> {
    if status.is_success() {
        return Ok(());
    }
    let error = format!("HTTP {status}");
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(Attempt::Retry {
            error,
            after: retry_after(headers, SystemTime::now()),
        })
    } else {
        Err(Attempt::Fail(error))
    }
}

/// Sorts a transport error: timeouts and connection failures are worth retrying. The message
/// never includes the URL: a Workflows URL carries its signature in the query.
pub fn classify_transport(e: &reqwest::Error) -> Attempt<()> {
    Attempt::Retry {
        error: describe_transport(e),
        after: None,
    }
}

/// A transport error without its URL.
pub fn describe_transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    // The innermost cause (an io or hyper error) names what went wrong without the URL.
    let mut source = std::error::Error::source(e);
    let mut detail = None;
    while let Some(s) = source {
        detail = Some(s.to_string());
        source = s.source();
    }
    match detail {
        Some(d) => format!("{kind}: {d}"),
        None => kind.to_string(),
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn cfg() -> RetryConfig {
        RetryConfig {
            max_attempts: 3,
            initial_backoff_ms: 1,
            max_backoff_ms: 4,
            max_retry_after_secs: 2,
            request_timeout_secs: 1,
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            ..cfg()
        };
        let ms = |a| backoff(&c, a).as_millis() as u64;
        assert!((100..=125).contains(&ms(1)));
        assert!((200..=250).contains(&ms(2)));
        assert!((400..=500).contains(&ms(3)));
        assert_eq!(ms(10), 1000);
        assert_eq!(ms(u32::MAX), 1000);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn statuses_are_sorted() {
        let h = HeaderMap::new();
        assert!(classify_status(StatusCode::ACCEPTED, &h).is_ok());
        for s in [500, 502, 503, 429, 408] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(
                matches!(classify_status(s, &h), Err(Attempt::Retry { .. })),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 413] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(
                matches!(classify_status(s, &h), Err(Attempt::Fail(_))),
                "{s}"
            );
        }
    }

    #[tokio::test]
    async fn run_retries_then_succeeds_or_gives_up() {
        let mut calls = 0;
        let r = run(&cfg(), "t", |n| {
            calls += 1;
            async move {
                if n < 3 {
                    Attempt::Retry {
                        error: "e".into(),
                        after: None,
                    }
                } else {
                    Attempt::Done(n)
                }
            }
        })
        .await;
        assert_eq!(r, Ok(3));
        assert_eq!(calls, 3);

        let r: Result<(), _> = run(&cfg(), "t", |_| async {
            Attempt::Retry {
                error: "boom".into(),
                after: None,
            }
        })
        .await;
        assert_eq!(
            r,
            Err(GaveUp {
                attempts: 3,
                error: "boom".into()
            })
        );

        let r: Result<(), _> = run(&cfg(), "t", |_| async { Attempt::Fail("400".into()) }).await;
        assert_eq!(r.unwrap_err().attempts, 1);

        let r: Result<(), _> = run(&cfg(), "t", |_| async {
            Attempt::Retry {
                error: "429".into(),
                after: Some(Duration::from_secs(3600)),
            }
        })
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.attempts, 1);
        assert!(e.error.contains("3600"), "{}", e.error);
    }
}

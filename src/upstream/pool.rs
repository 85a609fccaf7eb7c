//! Reuse of upstream connections between client sessions. A session that ends cleanly (idle,
//! nothing in flight) hands its connection back after the reset query; the next session for
//! the same database and startup parameters takes it instead of dialing and authenticating.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::UpstreamConn;
use crate::protocol::frame::split_frame;

/// Connections are pooled per database and the exact startup parameters they were opened with
/// (so ParameterStatus values and session defaults match what the client asked for).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub database: String,
    pub params: Vec<(String, String)>,
}

struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

/// The idle connections. One short lock per session start and end.
pub struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    reset_query: String,
}

impl Pool {
    pub fn new(max_idle: usize, idle_timeout: Duration, reset_query: String) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
            idle_timeout,
            reset_query,
        }
    }

    /// The most recently returned live connection for `key`, if any.
    pub fn take(&self, key: &PoolKey) -> Option<UpstreamConn> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(key)?;
        while let Some(c) = list.pop() {
            if c.since.elapsed() < self.idle_timeout {
                return Some(c.conn);
            }
        }
        None
    }

    /// Resets `conn` and keeps it if that succeeds cleanly. Runs off the session's path.
    pub async fn give_back(&self, key: PoolKey, mut conn: UpstreamConn) {
        if self.max_idle == 0 {
            return;
        }
        if tokio::time::timeout(Duration::from_secs(5), reset(&mut conn, &self.reset_query))
            .await
            .ok()
            .and_then(Result::ok)
            .is_none()
        {
            return;
        }
        let mut idle = self.idle.lock();
        let list = idle.entry(key).or_default();
        list.retain(|c| c.since.elapsed() < self.idle_timeout);
        if list.len() < self.max_idle {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().values().map(Vec::len).sum()
    }
}

/// Sends the reset query and reads to ReadyForQuery; any error or a non-idle status means the
/// connection is not reusable.
async fn reset(conn: &mut UpstreamConn, query: &str) -> std::io::Result<()> {
    let bad = |m: &str| std::io::Error::other(m.to_string());
    // Marked so the gateway's own statements are recognisable in upstream logs.
    let query = format!("/* airlock: reset */ {query}");
    if !conn.rest.is_empty() {
        return Err(bad("unread bytes on a returned connection"));
    }
    let mut q = BytesMut::with_capacity(query.len() + 6);
    q.extend_from_slice(b"Q");
    q.extend_from_slice(&((query.len() + 5) as i32).to_be_bytes());
    q.extend_from_slice(query.as_bytes());
    q.extend_from_slice(&[0]);
    conn.stream.write_all(&q).await?;
    let mut buf = BytesMut::with_capacity(256);
    loop {
        while let Some(f) = split_frame(&mut buf, 1 << 20).map_err(|e| bad(&e.to_string()))? {
            match f.tag() {
                b'E' => return Err(bad("reset query failed")),
                b'Z' if f.body() == b"I" => return Ok(()),
                b'Z' => return Err(bad("not idle after reset")),
                _ => {}
            }
        }
        if conn.stream.read_buf(&mut buf).await? == 0 {
            return Err(bad("closed during reset"));
        }
    }
}

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

    /// A live connection for `key`, if any: preferably one whose socket is registered on
    /// this thread's runtime, else the most recent plain one (moved to this runtime), else the
    /// most recent of any kind. Connections the server has closed meanwhile (a restart,
    /// `pg_terminate_backend`, `idle_session_timeout`) are dropped, not handed out. Must be
    /// called inside a tokio runtime.
    pub fn take(&self, key: &PoolKey) -> Option<UpstreamConn> {
        let here = std::thread::current().id();
        let mut conn = {
            let mut idle = self.idle.lock();
            let list = idle.get_mut(key)?;
            list.retain(|c| c.since.elapsed() < self.idle_timeout);
            loop {
                let pos = list
                    .iter()
                    .rposition(|c| c.conn.home == here)
                    .or_else(|| list.iter().rposition(|c| !c.conn.stream.is_tls()))
                    .or(list.len().checked_sub(1))?;
                let candidate = list.remove(pos).conn;
                if !candidate.stream.idle_peer_gone() {
                    break candidate;
                }
            }
        };
        if conn.home != here && !conn.stream.is_tls() {
            conn.stream = conn.stream.rehome().ok()?;
            conn.home = here;
        }
        Some(conn)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::stream::tests::runtime;
    use crate::protocol::stream::Stream;

    fn key() -> PoolKey {
        PoolKey {
            database: "app".into(),
            params: Vec::new(),
        }
    }

    /// A plain connection opened on another thread's runtime, which has stopped since.
    fn conn_from_another_thread(addr: std::net::SocketAddr) -> UpstreamConn {
        std::thread::spawn(move || {
            runtime().block_on(async move {
                UpstreamConn {
                    stream: Stream::Plain(tokio::net::TcpStream::connect(addr).await.unwrap()),
                    params: Vec::new(),
                    pid: 1,
                    secret: 2,
                    rest: BytesMut::new(),
                    home: std::thread::current().id(),
                }
            })
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_connection_taken_on_another_thread_moves_there_and_still_works() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = conn_from_another_thread(listener.local_addr().unwrap());
        let (mut peer, _) = listener.accept().unwrap();
        let pool = Pool::new(4, Duration::from_secs(60), "DISCARD ALL".into());
        pool.idle.lock().entry(key()).or_default().push(Idle {
            conn,
            since: Instant::now(),
        });
        runtime().block_on(async {
            let mut conn = pool.take(&key()).expect("the idle connection");
            assert_eq!(conn.home, std::thread::current().id());
            assert_eq!(pool.idle_count(), 0);
            conn.stream.write_all(b"Q").await.unwrap();
            let mut got = [0u8; 1];
            std::io::Read::read_exact(&mut peer, &mut got).unwrap();
            assert_eq!(&got, b"Q");
        });
    }

    #[test]
    fn expired_connections_are_not_taken() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = conn_from_another_thread(listener.local_addr().unwrap());
        let pool = Pool::new(4, Duration::from_millis(1), "DISCARD ALL".into());
        pool.idle.lock().entry(key()).or_default().push(Idle {
            conn,
            since: Instant::now() - Duration::from_secs(1),
        });
        runtime().block_on(async {
            assert!(pool.take(&key()).is_none());
            assert_eq!(pool.idle_count(), 0);
        });
    }
}

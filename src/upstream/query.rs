//! Plain text queries on the gateway's own upstream connection (catalog snapshots), before the
//! connection is handed to a client session.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::UpstreamConn;
use crate::protocol::frame::split_frame;
use crate::protocol::messages::error_code_and_message;

impl UpstreamConn {
    /// Runs one simple query and returns its rows as text (NULL as None).
    pub async fn simple_rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let mut q = BytesMut::with_capacity(sql.len() + 6);
        q.extend_from_slice(b"Q");
        q.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        q.extend_from_slice(sql.as_bytes());
        q.extend_from_slice(&[0]);
        self.stream.write_all(&q).await.map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            while let Some(f) = split_frame(&mut self.rest, 1 << 30).map_err(|e| e.to_string())? {
                match f.tag() {
                    b'D' => rows.push(data_row(f.body()).ok_or("malformed DataRow")?),
                    b'E' => {
                        let (code, msg) = error_code_and_message(&f);
                        error = Some(format!("{code} {msg}"));
                    }
                    b'Z' => {
                        return match error {
                            Some(e) => Err(e),
                            None => Ok(rows),
                        }
                    }
                    _ => {}
                }
            }
            if self
                .stream
                .read_buf(&mut self.rest)
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err("upstream closed the connection".into());
            }
        }
    }
}

fn data_row(body: &[u8]) -> Option<Vec<Option<String>>> {
    let n = i16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let mut pos = 2;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = i32::from_be_bytes(body.get(pos..pos + 4)?.try_into().ok()?);
        pos += 4;
        if len < 0 {
            out.push(None);
        } else {
            let v = body.get(pos..pos + len as usize)?;
            out.push(Some(String::from_utf8_lossy(v).into_owned()));
            pos += len as usize;
        }
    }
    Some(out)
}

/// Marks the gateway's own statements so they are recognisable in upstream logs.
pub const CATALOG_MARK: &str = "/* airlock: catalog */ ";

impl UpstreamConn {
    /// Ends the session politely (Terminate), so the server does not log an unexpected EOF.
    pub async fn terminate(mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.stream.write_all(&[b'X', 0, 0, 0, 4]).await;
        let _ = self.stream.shutdown().await;
    }
}

impl crate::sql::CatalogSource for UpstreamConn {
    async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        self.simple_rows(&format!("{CATALOG_MARK}{sql}")).await
    }
}

//! Upstream → client: relays backend messages as they are, in coalesced writes, while noting
//! the few things the gateway must know (ReadyForQuery with the transaction status,
//! command tags and errors for the audit's outcome records).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch, Mutex};

use crate::protocol::frame::peek_frame_len;
use crate::protocol::messages::{command_tag, error_code_and_message, tag_rows};
use crate::protocol::stream::Stream;
use crate::protocol::Frame;

/// One unit of client work forwarded upstream, waiting for its results.
#[derive(Debug)]
pub struct Pending {
    /// Audit id of the decision record, when one was written.
    pub decision_id: Option<String>,
    pub started: Instant,
    /// The unit ends with Query or Sync, so a ReadyForQuery will close it.
    pub ends_with_ready: bool,
    /// The unit is a gateway-made substitute: its first ErrorResponse is replaced by this one.
    pub replace_error: Option<Bytes>,
}

/// What a finished unit produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnitOutcome {
    pub tags: Vec<String>,
    pub error: Option<(String, String)>,
    pub rows: u64,
}

/// Receives finished units (the session hands them to the audit).
pub type OutcomeSink = Box<dyn FnMut(Pending, UnitOutcome) + Send>;

/// Shared between the two directions of one session.
pub struct Shared {
    /// Number of ReadyForQuery messages relayed so far.
    pub ready_count: watch::Sender<u64>,
    /// Last transaction status byte from upstream (`I`, `T`, `E`).
    pub tx_status: AtomicU8,
    pub client_wr: Mutex<WriteHalf<Stream>>,
}

impl Shared {
    pub fn tx_status(&self) -> u8 {
        self.tx_status.load(Ordering::Acquire)
    }
}

/// How the relay ended.
pub enum BackEnd {
    /// Upstream closed the connection.
    UpstreamClosed,
    /// Asked to stop between messages: the read half and unread bytes, for reuse.
    Stopped(ReadHalf<Stream>, BytesMut),
}

/// Runs until upstream closes, the client cannot be written to, or `stop` fires.
pub async fn run(
    mut up_rd: ReadHalf<Stream>,
    shared: Arc<Shared>,
    mut pending_rx: mpsc::UnboundedReceiver<Pending>,
    mut sink: OutcomeSink,
    initial: BytesMut,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<BackEnd> {
    let mut buf = initial;
    buf.reserve(16 * 1024);
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut current = UnitOutcome::default();
    let mut replaced = false;
    loop {
        if buf.is_empty() || peek_frame_len(&buf, usize::MAX).ok().flatten().is_none() {
            let n = tokio::select! {
                biased;
                r = up_rd.read_buf(&mut buf) => r?,
                _ = stop.cancelled() => return Ok(BackEnd::Stopped(up_rd, buf)),
            };
            if n == 0 {
                return Ok(BackEnd::UpstreamClosed);
            }
        }
        // Walk the complete frames at the front; forward them in one write.
        let mut end = 0;
        let mut out: Option<BytesMut> = None;
        let mut readies = 0u64;
        while let Ok(Some(len)) = peek_frame_len(&buf[end..], usize::MAX) {
            let tag = buf[end];
            match tag {
                b'C' | b'E' | b'Z' => {
                    let frame = Frame::from_bytes(Bytes::copy_from_slice(&buf[end..end + len]));
                    while let Ok(p) = pending_rx.try_recv() {
                        queue.push_back(p);
                    }
                    match tag {
                        b'C' => {
                            let t = command_tag(&frame).to_string();
                            current.rows += tag_rows(&t);
                            current.tags.push(t);
                        }
                        b'E' => {
                            if current.error.is_none() {
                                current.error = Some(error_code_and_message(&frame));
                            }
                            let substitute = queue
                                .front()
                                .and_then(|p| p.replace_error.clone())
                                .filter(|_| !replaced);
                            if let Some(sub) = substitute {
                                // Flush what came before, then swap the error.
                                let o = out.get_or_insert_with(BytesMut::new);
                                o.extend_from_slice(&buf[..end]);
                                o.extend_from_slice(&sub);
                                let _ = buf.split_to(end + len);
                                end = 0;
                                replaced = true;
                                current.error =
                                    Some(error_code_and_message(&Frame::from_bytes(sub)));
                                continue;
                            }
                        }
                        _ => {
                            shared.tx_status.store(frame.body()[0], Ordering::Release);
                            readies += 1;
                            replaced = false;
                            let outcome = std::mem::take(&mut current);
                            // Units ended by Flush share the outcome of the next Sync.
                            while let Some(p) = queue.pop_front() {
                                let last = p.ends_with_ready;
                                sink(p, outcome.clone());
                                if last {
                                    break;
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
            end += len;
        }
        let chunk = match out.take() {
            Some(mut o) => {
                o.extend_from_slice(&buf.split_to(end));
                o
            }
            None => buf.split_to(end),
        };
        if !chunk.is_empty() || readies > 0 {
            // Count the ReadyForQuery messages before the client can see them (it may answer
            // with Terminate at once, and the session must then know it is idle), but under
            // the writer lock, so a gateway NOTICE waiting for that count still goes after them.
            let mut w = shared.client_wr.lock().await;
            if readies > 0 {
                shared.ready_count.send_modify(|c| *c += readies);
            }
            w.write_all(&chunk).await?;
        }
    }
}

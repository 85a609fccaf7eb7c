//! Client → upstream: reads the client's messages, gathers them into units (a simple Query,
//! or an extended-protocol batch up to Sync or Flush), has each unit decided, and forwards it,
//! a substitute, or nothing.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use super::back::{Pending, Shared};
use super::cancel::CancelHandle;
use super::describe::with_describes;
use super::gate::{Gate, HeldUnit, HoldVerdict, Unit, UnitDecision, Withdrawal};
use crate::protocol::frame::{split_frame, FrameError};
use crate::protocol::messages::PgError;
use crate::protocol::sqlstate;
use crate::protocol::stream::Stream;
use crate::protocol::Frame;

/// Why the client side of a session ended.
#[derive(Debug)]
pub enum FrontEnd {
    /// Terminate, or the client closed the socket. Nothing has been sent upstream for it.
    ClientDone,
    /// The client broke the protocol; the FATAL has been sent.
    Violation(PgError),
    Io(std::io::Error),
}

pub struct Front {
    pub client_rd: ReadHalf<Stream>,
    pub up_wr: WriteHalf<Stream>,
    pub shared: Arc<Shared>,
    pub pending_tx: mpsc::UnboundedSender<Pending>,
    pub gate: Gate,
    pub cancel: Arc<CancelHandle>,
    pub max_message: usize,
    pub buf: BytesMut,
    /// ReadyForQuery messages the client should eventually see.
    pub expected_ready: u64,
    /// Something was forwarded after the last Sync/Query (a Flush-ended batch or COPY data):
    /// the upstream session is mid-conversation and cannot be reused.
    pub unsynced: bool,
    /// Extended-protocol messages went upstream since the last Sync: the server's segment is
    /// open, and a simple Query sent now would be skipped without an answer if the segment
    /// failed. The front sends a Sync of its own first.
    segment_open: bool,
    batch: Vec<Frame>,
    out: BytesMut,
}

impl Front {
    pub fn new(
        (client_rd, up_wr): (ReadHalf<Stream>, WriteHalf<Stream>),
        shared: Arc<Shared>,
        pending_tx: mpsc::UnboundedSender<Pending>,
        gate: Gate,
        cancel: Arc<CancelHandle>,
        max_message: usize,
        buf: BytesMut,
    ) -> Front {
        Front {
            client_rd,
            up_wr,
            shared,
            pending_tx,
            gate,
            cancel,
            max_message,
            buf,
            expected_ready: 0,
            unsynced: false,
            segment_open: false,
            batch: Vec::new(),
            out: BytesMut::with_capacity(8 * 1024),
        }
    }

    pub async fn run(&mut self) -> FrontEnd {
        loop {
            // Handle every complete message already buffered, then write once.
            loop {
                let frame = match split_frame(&mut self.buf, self.max_message) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return self.violation(frame_error(e)).await,
                };
                match self.on_frame(frame).await {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Err(e) = self.flush_upstream().await {
                            return FrontEnd::Io(e);
                        }
                        return FrontEnd::ClientDone;
                    }
                    Err(Stop::Violation(e)) => return self.violation(e).await,
                    Err(Stop::Io(e)) => return FrontEnd::Io(e),
                    Err(Stop::ClientGone) => return FrontEnd::ClientDone,
                }
            }
            if let Err(e) = self.flush_upstream().await {
                return FrontEnd::Io(e);
            }
            match self.client_rd.read_buf(&mut self.buf).await {
                Ok(0) => return FrontEnd::ClientDone,
                Ok(_) => {}
                Err(e) => return FrontEnd::Io(e),
            }
        }
    }

    /// Returns Ok(false) on Terminate.
    async fn on_frame(&mut self, frame: Frame) -> Result<bool, Stop> {
        if self.shared.copy.lock().in_copy() {
            match frame.tag() {
                b'd' | b'c' | b'f' | b'X' => {}
                // Ignored by the server during COPY-in: not sent, so not counted.
                b'S' | b'H' if self.batch.is_empty() => return Ok(true),
                other => return Err(Stop::Violation(copy_violation(other))),
            }
        }
        match frame.tag() {
            b'Q' => {
                if !self.batch.is_empty() {
                    // A Query ends any unsynced extended batch, as it does in PostgreSQL.
                    self.finish_batch(false).await?;
                }
                self.close_segment()?;
                let text = crate::protocol::frame::query_text(&frame).map_err(|e| {
                    Stop::Violation(PgError::fatal(sqlstate::PROTOCOL_VIOLATION, e.to_string()))
                })?;
                let unit = Unit::Simple {
                    text: text.to_string(),
                };
                let frames = vec![frame];
                let decision = self.decide(&unit, &frames).await;
                self.apply(decision, frames, true).await?;
            }
            b'P' | b'B' | b'D' | b'E' | b'C' => self.batch.push(frame),
            b'S' => {
                self.batch.push(frame);
                self.finish_batch(true).await?;
            }
            b'H' => {
                self.batch.push(frame);
                self.finish_batch(false).await?;
            }
            // COPY data flows only after upstream asked for it; it is data, not SQL.
            b'd' | b'c' | b'f' => {
                if !self.batch.is_empty() {
                    self.finish_batch(false).await?;
                }
                {
                    let mut c = self.shared.copy.lock();
                    match frame.tag() {
                        b'd' => c.data_sent += 1,
                        _ => c.ends_sent += 1,
                    }
                }
                self.out.extend_from_slice(frame.bytes());
                self.unsynced = frame.tag() == b'd';
                if self.out.len() > 64 * 1024 {
                    self.flush_upstream().await.map_err(Stop::Io)?;
                }
            }
            b'X' => return Ok(false),
            b'F' => {
                if !self.batch.is_empty() {
                    // Answers go out in the order the client sent: the batch before it first.
                    self.finish_batch(false).await?;
                }
                // Fastpath calls run a function by OID with no SQL to inspect.
                let err = PgError::error(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "fastpath function calls are not supported through airlock",
                )
                .with_hint("Call the function from SQL (SELECT fn(...)) so it can be inspected.");
                let decision_id = self.gate.refused_fastpath(&frame).await;
                self.substitute(decision_id, err.to_bytes()).await?;
            }
            other => {
                return Err(Stop::Violation(PgError::fatal(
                    sqlstate::PROTOCOL_VIOLATION,
                    format!("invalid frontend message type {}", other),
                )))
            }
        }
        Ok(true)
    }

    async fn finish_batch(&mut self, ends_with_sync: bool) -> Result<(), Stop> {
        let frames = std::mem::take(&mut self.batch);
        let unit = self.gate.extended_unit(&frames).map_err(Stop::Violation)?;
        let decision = match unit {
            Some(unit) => self.decide(&unit, &frames).await,
            // Nothing in the batch carries SQL (Sync alone, Describe of a known statement…).
            None => UnitDecision::forward_unaudited(),
        };
        self.apply(decision, frames, ends_with_sync).await
    }

    /// Has a unit decided. A cancel that arrives meanwhile is kept for the hold the decision
    /// may turn into (the request is visible to approvers before the wait starts); for a unit
    /// that is not held it is dropped, like a cancel that reaches PostgreSQL before its query.
    async fn decide(&mut self, unit: &Unit, frames: &[Frame]) -> UnitDecision {
        self.cancel.set_holding(true);
        let decision = self.gate.decide(unit, frames).await;
        if !matches!(decision, UnitDecision::Hold(_)) {
            self.cancel.set_holding(false);
            self.cancel.forget_hold_cancel();
        }
        decision
    }

    async fn apply(
        &mut self,
        decision: UnitDecision,
        frames: Vec<Frame>,
        ends_with_ready: bool,
    ) -> Result<(), Stop> {
        let decision = match decision {
            UnitDecision::Hold(held) => self.wait_for_verdict(held).await?,
            other => other,
        };
        match decision {
            UnitDecision::Hold(_) => unreachable!("holds are resolved above"),
            UnitDecision::Forward {
                decision_id,
                replacement,
            } => {
                let changes_schema = self.gate.take_changes_schema();
                let withhold_messages = self.gate.take_touches_pii();
                let catalog = Some(self.gate.catalog());
                let sent = self.gate.forwarded(&frames);
                // Written straight into the outgoing buffer; taken back if it is not sent.
                let mark = self.out.len();
                let wire = match &replacement {
                    Some(bytes) => with_describes(&mut self.out, [&bytes[..]]),
                    None => with_describes(&mut self.out, frames.iter().map(|f| &f.bytes()[..])),
                };
                let tags = wire.tags;
                let is_query = tags.first() == Some(&b'Q');
                let queued = self.push_pending(Pending {
                    decision_id,
                    ends_with_ready,
                    changes_schema,
                    catalog,
                    withhold_messages,
                    closes_segment: sent.closes_segment,
                    sql_effects: sent.sql_effects.into(),
                    describes: wire.describes,
                    ..Pending::plain(tags, ends_with_ready)
                })?;
                if !queued {
                    // Syncs and Flushes the server would ignore during COPY-in.
                    self.out.truncate(mark);
                    return Ok(());
                }
                if ends_with_ready {
                    self.expected_ready += 1;
                }
                self.unsynced = !ends_with_ready;
                if !is_query {
                    self.segment_open = !ends_with_ready;
                }
                Ok(())
            }
            UnitDecision::Refuse { decision_id, error } => {
                // Nothing the client sent runs; a failing statement upstream keeps the
                // transaction state exactly as PostgreSQL would have it after an error.
                self.gate.refused(ends_with_ready, REFUSAL_SQL);
                if ends_with_ready {
                    // The refusal is a simple Query: it must not land in an open segment.
                    self.close_segment()?;
                    let queued = self.push_pending(Pending {
                        decision_id,
                        replace_error: Some(error),
                        ..Pending::plain(b"Q".to_vec(), true)
                    })?;
                    if queued {
                        self.out.extend_from_slice(&refusal_query());
                        self.expected_ready += 1;
                    }
                    Ok(())
                } else {
                    // A Flush-terminated batch: the error must still reach the client now,
                    // and the rest up to Sync is discarded by upstream after its own error.
                    let parse = refusal_parse();
                    let queued = self.push_pending(Pending {
                        decision_id,
                        replace_error: Some(error),
                        ..Pending::plain(tags_of(&parse), false)
                    })?;
                    if queued {
                        self.out.extend_from_slice(&parse);
                        self.segment_open = true;
                    }
                    Ok(())
                }
            }
        }
    }

    /// Waits for a held unit's verdict with nothing sent upstream, while watching for the
    /// client's cancel or disconnect (which withdraw the request). The notice goes out once
    /// every result the client is still owed has been relayed; waiting for those is one
    /// branch of the same `select!`, so a verdict, a cancel or a disconnect is acted on even
    /// while earlier statements run (or never finish). The cancel is checked first: a
    /// cancelled statement never runs, whatever verdict arrives with it.
    ///
    /// Messages the client pipelines behind the held one wait in the buffer, up to
    /// `max_message` bytes; past that the session ends (`54000`) rather than hold an
    /// unbounded amount of the client's data in memory.
    async fn wait_for_verdict(&mut self, held: HeldUnit) -> Result<UnitDecision, Stop> {
        let HeldUnit {
            decision_id,
            notice,
            mut verdict,
            withdraw,
        } = held;
        self.cancel.set_withdraw(Some(withdraw));
        let outcome = self.await_verdict(&notice, &mut verdict).await;
        self.cancel.set_withdraw(None);
        self.cancel.set_awaiting_earlier(false);
        self.cancel.set_holding(false);
        self.cancel.forget_hold_cancel();
        Ok(match outcome? {
            HoldVerdict::Approved { replacement } => UnitDecision::Forward {
                decision_id,
                replacement,
            },
            HoldVerdict::Refused { error } => UnitDecision::Refuse { decision_id, error },
        })
    }

    async fn await_verdict(
        &mut self,
        notice: &[u8],
        verdict: &mut futures::future::BoxFuture<'static, HoldVerdict>,
    ) -> Result<HoldVerdict, Stop> {
        // The notice must follow every result the client is still owed.
        self.flush_upstream().await.map_err(Stop::Io)?;
        let mut ready = self.shared.ready_count.subscribe();
        let want = self.expected_ready;
        let mut owed = *ready.borrow() < want;
        self.cancel.set_awaiting_earlier(owed);
        if !owed {
            self.send_notice(notice).await?;
        }
        let limit = self.max_message;
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.hold_cancel.notified() => {
                    if !self.cancel.take_hold_cancel() {
                        continue; // a wakeup left over from an earlier unit
                    }
                    if let Some(w) = self.cancel.take_withdraw() {
                        w(Withdrawal::Cancelled).await;
                    }
                    let err = PgError::error(
                        sqlstate::QUERY_CANCELED,
                        "canceling statement due to user request",
                    )
                    .with_detail("The held request was withdrawn; nothing ran.");
                    return Ok(HoldVerdict::Refused { error: err.to_bytes() });
                }
                v = &mut *verdict => return Ok(v),
                done = async { ready.wait_for(|n| *n >= want).await.is_ok() }, if owed => {
                    if !done {
                        // The upstream side ended; the session is over.
                        self.withdraw(Withdrawal::Disconnected).await;
                        return Err(Stop::ClientGone);
                    }
                    owed = false;
                    self.cancel.set_awaiting_earlier(false);
                    self.send_notice(notice).await?;
                }
                r = self.client_rd.read_buf(&mut self.buf), if self.buf.len() <= limit => match r {
                    // Pipelined messages wait in the buffer until the verdict.
                    Ok(n) if n > 0 => {
                        if self.buf.len() > limit {
                            self.withdraw(Withdrawal::Disconnected).await;
                            return Err(Stop::Violation(PgError::fatal(
                                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                                format!(
                                    "terminating connection: more than {limit} bytes sent behind a statement held for approval"
                                ),
                            )));
                        }
                    }
                    _ => {
                        self.withdraw(Withdrawal::Disconnected).await;
                        return Err(Stop::ClientGone);
                    }
                },
            }
        }
    }

    async fn send_notice(&mut self, notice: &[u8]) -> Result<(), Stop> {
        let mut w = self.shared.client_wr.lock().await;
        w.write_all(notice).await.map_err(Stop::Io)?;
        w.flush().await.map_err(Stop::Io)
    }

    /// Withdraws the held request unless a cancel already did.
    async fn withdraw(&self, why: Withdrawal) {
        if let Some(w) = self.cancel.take_withdraw() {
            w(why).await;
        }
    }

    /// Refuses something outside the decided path (fastpath) the same way.
    async fn substitute(&mut self, decision_id: Option<String>, error: Bytes) -> Result<(), Stop> {
        self.apply(
            UnitDecision::Refuse { decision_id, error },
            Vec::new(),
            true,
        )
        .await
    }

    /// Queues a unit for the back direction before its messages go upstream; `Ok(false)`
    /// when it must not go at all. The server may have entered COPY-in since the unit's
    /// messages were read (see [`super::back::CopyState`]): a Sync or Flush is then ignored
    /// by the server, so it is not sent either, and anything else would end the COPY with an
    /// error the counts cannot follow, so it is refused as PostgreSQL refuses it.
    fn push_pending(&mut self, mut p: Pending) -> Result<bool, Stop> {
        let mut c = self.shared.copy.lock();
        if c.in_copy() {
            if p.tags.iter().all(|t| matches!(t, b'S' | b'H')) {
                return Ok(false);
            }
            let tag = p.tags.first().copied().unwrap_or(b'?');
            return Err(Stop::Violation(copy_violation(tag)));
        }
        p.seq = c.pushed;
        p.ends_at = c.ends_sent;
        p.data_at = c.data_sent;
        p.started = Instant::now();
        self.pending_tx.send(p).map_err(|_| {
            Stop::Io(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "upstream relay ended",
            ))
        })?;
        c.pushed += 1;
        Ok(true)
    }

    /// Before a simple Query (the client's, or the refusal standing in for a Sync-ended
    /// batch): if the extended segment is open, sends a Sync of the gateway's own, whose
    /// ReadyForQuery the back direction drops. PostgreSQL skips a Query inside a segment that
    /// failed without answering it at all; the relay, which expects one ReadyForQuery per
    /// Query, would then judge every later statement's messages by the one before it.
    fn close_segment(&mut self) -> Result<(), Stop> {
        if !self.segment_open {
            return Ok(());
        }
        let sync = Frame::from_bytes(Bytes::from_static(&[b'S', 0, 0, 0, 4]));
        let sent = self.gate.forwarded(std::slice::from_ref(&sync));
        let queued = self.push_pending(Pending {
            closes_segment: sent.closes_segment,
            absorb_ready: true,
            ..Pending::plain(vec![b'S'], true)
        })?;
        if queued {
            self.out.extend_from_slice(sync.bytes());
        }
        self.segment_open = false;
        Ok(())
    }

    async fn flush_upstream(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.up_wr.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends a FATAL after everything the client is owed, then ends.
    async fn violation(&mut self, e: PgError) -> FrontEnd {
        let _ = self.flush_upstream().await;
        let mut rx = self.shared.ready_count.subscribe();
        let want = self.expected_ready;
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            rx.wait_for(|n| *n >= want),
        )
        .await;
        let mut w = self.shared.client_wr.lock().await;
        let _ = w.write_all(&e.to_bytes()).await;
        let _ = w.flush().await;
        let _ = self.up_wr.write_all(&[b'X', 0, 0, 0, 4]).await;
        FrontEnd::Violation(e)
    }
}

enum Stop {
    Violation(PgError),
    Io(std::io::Error),
    /// The client went away while a request was held.
    ClientGone,
}

/// What PostgreSQL answers a message other than COPY data during COPY-in, as a FATAL: the
/// relay cannot follow the server's answers past it.
fn copy_violation(tag: u8) -> PgError {
    PgError::fatal(
        sqlstate::PROTOCOL_VIOLATION,
        format!(
            "unexpected message type 0x{tag:02X} during COPY from stdin: send CopyDone or CopyFail first"
        ),
    )
}

/// The message tags in `bytes` (whole frames, as the gateway builds them).
fn tags_of(bytes: &[u8]) -> Vec<u8> {
    let mut tags = Vec::new();
    let mut rest = bytes;
    while let Ok(Some(len)) = crate::protocol::frame::peek_frame_len(rest, usize::MAX) {
        tags.push(rest[0]);
        rest = &rest[len..];
    }
    tags
}

fn frame_error(e: FrameError) -> PgError {
    match e {
        FrameError::TooLarge { .. } => {
            PgError::fatal(sqlstate::PROGRAM_LIMIT_EXCEEDED, e.to_string())
        }
        _ => PgError::fatal(sqlstate::PROTOCOL_VIOLATION, e.to_string()),
    }
}

/// A statement that fails upstream without side effects, whose error the back half replaces
/// with the gateway's. Marked so it is recognisable in upstream logs.
const REFUSAL_SQL: &str =
    "/* airlock: refused */ DO $airlock$BEGIN RAISE EXCEPTION 'statement refused by airlock'; END$airlock$";

fn refusal_query() -> Bytes {
    let mut b = BytesMut::new();
    b.extend_from_slice(b"Q");
    b.extend_from_slice(&((REFUSAL_SQL.len() + 5) as i32).to_be_bytes());
    b.extend_from_slice(REFUSAL_SQL.as_bytes());
    b.extend_from_slice(&[0]);
    b.freeze()
}

/// The extended-protocol form, for batches that end in Flush: Parse + Bind + Execute of the
/// same statement on the unnamed statement/portal, then Flush.
fn refusal_parse() -> Bytes {
    let mut b = BytesMut::new();
    // Parse "" REFUSAL_SQL, 0 params
    let body_len = 4 + 1 + REFUSAL_SQL.len() + 1 + 2;
    b.extend_from_slice(b"P");
    b.extend_from_slice(&(body_len as i32).to_be_bytes());
    b.extend_from_slice(&[0]);
    b.extend_from_slice(REFUSAL_SQL.as_bytes());
    b.extend_from_slice(&[0, 0, 0]);
    // Bind "" "" no formats, no params, no result formats
    b.extend_from_slice(&[b'B', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Execute "" 0
    b.extend_from_slice(&[b'E', 0, 0, 0, 9, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&[b'H', 0, 0, 0, 4]);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_messages_frame_correctly() {
        let mut q = BytesMut::from(&refusal_query()[..]);
        let f = split_frame(&mut q, 1 << 20).unwrap().unwrap();
        assert_eq!(crate::protocol::frame::query_text(&f).unwrap(), REFUSAL_SQL);
        assert!(q.is_empty());
        let mut p = BytesMut::from(&refusal_parse()[..]);
        let tags: Vec<u8> = std::iter::from_fn(|| split_frame(&mut p, 1 << 20).unwrap())
            .map(|f| f.tag())
            .collect();
        assert_eq!(tags, b"PBEH");
    }
}

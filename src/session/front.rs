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
        match frame.tag() {
            b'Q' => {
                if !self.batch.is_empty() {
                    // A Query ends any unsynced extended batch, as it does in PostgreSQL.
                    self.finish_batch(false).await?;
                }
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
                self.out.extend_from_slice(frame.bytes());
                self.unsynced = frame.tag() == b'd';
                if self.out.len() > 64 * 1024 {
                    self.flush_upstream().await.map_err(Stop::Io)?;
                }
            }
            b'X' => return Ok(false),
            b'F' => {
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
                self.push_pending(Pending {
                    decision_id,
                    started: Instant::now(),
                    ends_with_ready,
                    replace_error: None,
                    changes_schema,
                    catalog,
                    withhold_messages,
                    closes_segment: sent.closes_segment,
                    sql_effects: sent.sql_effects.into(),
                })?;
                match replacement {
                    Some(bytes) => self.out.extend_from_slice(&bytes),
                    None => {
                        for f in &frames {
                            self.out.extend_from_slice(f.bytes());
                        }
                    }
                }
                if ends_with_ready {
                    self.expected_ready += 1;
                }
                self.unsynced = !ends_with_ready;
                Ok(())
            }
            UnitDecision::Refuse { decision_id, error } => {
                // Nothing the client sent runs; a failing statement upstream keeps the
                // transaction state exactly as PostgreSQL would have it after an error.
                self.gate.refused(ends_with_ready, REFUSAL_SQL);
                if ends_with_ready {
                    self.push_pending(Pending {
                        decision_id,
                        started: Instant::now(),
                        ends_with_ready: true,
                        replace_error: Some(error),
                        changes_schema: false,
                        catalog: None,
                        withhold_messages: false,
                        closes_segment: None,
                        sql_effects: Default::default(),
                    })?;
                    self.out.extend_from_slice(&refusal_query());
                    self.expected_ready += 1;
                    Ok(())
                } else {
                    // A Flush-terminated batch: the error must still reach the client now,
                    // and the rest up to Sync is discarded by upstream after its own error.
                    self.push_pending(Pending {
                        decision_id,
                        started: Instant::now(),
                        ends_with_ready: false,
                        replace_error: Some(error),
                        changes_schema: false,
                        catalog: None,
                        withhold_messages: false,
                        closes_segment: None,
                        sql_effects: Default::default(),
                    })?;
                    self.out.extend_from_slice(&refusal_parse());
                    Ok(())
                }
            }
        }
    }

    /// Waits for a held unit's verdict with nothing sent upstream, while watching for the
    /// client's cancel or disconnect (which withdraw the request).
    async fn wait_for_verdict(&mut self, held: HeldUnit) -> Result<UnitDecision, Stop> {
        let HeldUnit {
            decision_id,
            notice,
            mut verdict,
            withdraw,
        } = held;
        // The notice must follow every result the client is still owed.
        self.flush_upstream().await.map_err(Stop::Io)?;
        let mut ready = self.shared.ready_count.subscribe();
        let want = self.expected_ready;
        ready
            .wait_for(|n| *n >= want)
            .await
            .map_err(|_| Stop::ClientGone)?;
        {
            let mut w = self.shared.client_wr.lock().await;
            w.write_all(&notice).await.map_err(Stop::Io)?;
            w.flush().await.map_err(Stop::Io)?;
        }
        let outcome = loop {
            tokio::select! {
                v = &mut verdict => break Ok(v),
                _ = self.cancel.hold_cancel.notified() => {
                    if !self.cancel.take_hold_cancel() {
                        continue; // a wakeup left over from an earlier unit
                    }
                    withdraw(Withdrawal::Cancelled).await;
                    let err = PgError::error(
                        sqlstate::QUERY_CANCELED,
                        "canceling statement due to user request",
                    )
                    .with_detail("The held request was withdrawn; nothing ran.");
                    break Ok(HoldVerdict::Refused { error: err.to_bytes() });
                }
                r = self.client_rd.read_buf(&mut self.buf) => match r {
                    // Pipelined messages wait in the buffer until the verdict.
                    Ok(n) if n > 0 => {}
                    _ => {
                        withdraw(Withdrawal::Disconnected).await;
                        break Err(Stop::ClientGone);
                    }
                },
            }
        };
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

    /// Refuses something outside the decided path (fastpath) the same way.
    async fn substitute(&mut self, decision_id: Option<String>, error: Bytes) -> Result<(), Stop> {
        self.apply(
            UnitDecision::Refuse { decision_id, error },
            Vec::new(),
            true,
        )
        .await
    }

    fn push_pending(&mut self, p: Pending) -> Result<(), Stop> {
        self.pending_tx.send(p).map_err(|_| {
            Stop::Io(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "upstream relay ended",
            ))
        })
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

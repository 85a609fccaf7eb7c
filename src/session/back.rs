//! Upstream → client: relays backend messages as they are, in coalesced writes, while noting
//! the few things the gateway must know (ReadyForQuery with the transaction status,
//! command tags and errors for the audit's outcome records).
//!
//! It also checks every RowDescription against the catalog snapshot the statements were
//! classified with ([`ShapeGuard`]). `SELECT *` is judged by the columns the snapshot lists; a
//! column added on the server since then would come back uninspected (a PII column returned
//! by an allowed read). Such a result is replaced, up to its ReadyForQuery, by an error: no row
//! of it reaches the client, and a current snapshot is read for the sessions' next statements.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch, Mutex};

use super::confirm::Confirmations;
use crate::protocol::frame::peek_frame_len;
use crate::protocol::messages::{command_tag, error_code_and_message, tag_rows, PgError};
use crate::protocol::sqlstate;
use crate::protocol::stream::Stream;
use crate::protocol::Frame;
use crate::sql::{Catalog, Deferred};

/// Checks result shapes against the catalog snapshot each unit was classified with.
pub struct ShapeGuard {
    /// The session's first snapshot: for a result no queued unit claims.
    pub catalog: Arc<Catalog>,
    /// Called when a result was refused: the snapshot is stale, read a new one.
    pub on_stale: Box<dyn Fn() + Send>,
}

impl ShapeGuard {
    /// The error replacing a result whose RowDescription (`frame`, header included) names a
    /// column the snapshot does not know; `None` when every column is known.
    fn check(&self, catalog: &Catalog, frame: &[u8]) -> Option<PgError> {
        let (table, name, attnum) =
            row_description_fields(frame).find_map(|(name, oid, attnum)| {
                catalog
                    .unknown_column(oid, attnum)
                    .map(|t| (t.clone(), name, attnum))
            })?;
        Some(
            PgError::error(
                sqlstate::CATALOG_CHANGED,
                format!(
                    "airlock: {}.{} has a column the gateway has not inspected (\"{}\", attribute {attnum}): \
                     the table changed after the gateway read the catalog, so the result is not returned",
                    table.schema,
                    table.name,
                    String::from_utf8_lossy(name)
                ),
            )
            .with_hint("Run the statement again: the gateway is reading the current catalog and will decide it anew."),
        )
    }
}

/// `(name, table OID, attribute number)` of each field of a RowDescription frame. Stops at
/// the first malformed field (the client would fail on it too).
fn row_description_fields(frame: &[u8]) -> impl Iterator<Item = (&[u8], u32, i16)> {
    let body = frame.get(5..).unwrap_or_default();
    let count = body
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) as usize);
    let mut rest = body.get(2..).unwrap_or_default();
    (0..count).map_while(move |_| {
        let nul = rest.iter().position(|&b| b == 0)?;
        let name = &rest[..nul];
        // After the name: table OID (4), attnum (2), type OID (4), size (2), typmod (4), format (2).
        let fixed = rest.get(nul + 1..nul + 19)?;
        let oid = u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]);
        let attnum = i16::from_be_bytes([fixed[4], fixed[5]]);
        rest = &rest[nul + 19..];
        Some((name, oid, attnum))
    })
}

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
    /// The unit may change the schema: when it succeeds, the catalog snapshot is dropped.
    pub changes_schema: bool,
    /// The snapshot the unit was classified with: its results are checked against it.
    pub catalog: Option<Arc<Catalog>>,
    /// The unit touches PII: the server's errors and notices about it lose their text
    /// ([`super::withhold`]), and so do those of the rest of its transaction.
    pub withhold_messages: bool,
    /// The unit ends with the Sync of this extended segment: at its ReadyForQuery, the
    /// segment's Parses and Closes still unanswered were skipped ([`super::confirm`]).
    pub closes_segment: Option<u64>,
    /// Its SQL-level forgetting in statement order, each applied when a CommandComplete with
    /// its tag arrives for it.
    pub sql_effects: VecDeque<Deferred>,
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
    /// What the server confirmed, for the front's gate.
    pub book: Confirmations,
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

/// Whether the unit a server message belongs to touches PII: the oldest units up to the
/// first that ends with a ReadyForQuery share their messages (Flush-ended ones included).
fn withholds(queue: &VecDeque<Pending>) -> bool {
    for p in queue {
        if p.withhold_messages {
            return true;
        }
        if p.ends_with_ready {
            break;
        }
    }
    false
}

/// A CommandComplete with tag `tag`: when the oldest forgetting effect still waiting is
/// confirmed by it, the front gets it. Effects of a statement that failed or was skipped get no
/// such tag and are dropped with their unit at its ReadyForQuery; a tag that matches nothing
/// waiting (a statement the classifier did not read as forgetting) changes nothing, so the
/// names keep their candidates.
fn confirm_sql(queue: &mut VecDeque<Pending>, tag: &str, book: &Confirmations) {
    let Some(p) = queue.iter_mut().find(|p| !p.sql_effects.is_empty()) else {
        return;
    };
    if p.sql_effects
        .front()
        .is_some_and(|d| d.command_tag() == tag)
    {
        if let Some(d) = p.sql_effects.pop_front() {
            book.lock().sql_ran(d);
        }
    }
}

/// The new value when a ParameterStatus body reports a `client_encoding` other than UTF8.
fn foreign_encoding(body: &[u8]) -> Option<String> {
    let mut parts = body.split(|b| *b == 0);
    let name = parts.next()?;
    if name != b"client_encoding" {
        return None;
    }
    let value = String::from_utf8_lossy(parts.next().unwrap_or_default());
    (!crate::sql::is_utf8_encoding(&value)).then(|| value.into_owned())
}

/// Runs until upstream closes, the client cannot be written to, or `stop` fires.
pub async fn run(
    mut up_rd: ReadHalf<Stream>,
    shared: Arc<Shared>,
    mut pending_rx: mpsc::UnboundedReceiver<Pending>,
    mut sink: OutcomeSink,
    initial: BytesMut,
    stop: tokio_util::sync::CancellationToken,
    guard: Option<ShapeGuard>,
) -> std::io::Result<BackEnd> {
    let book = &shared.book;
    let mut buf = initial;
    buf.reserve(16 * 1024);
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut current = UnitOutcome::default();
    let mut replaced = false;
    // A refused result: everything up to the next ReadyForQuery is dropped (except messages
    // that may come at any time), then this error goes out before it.
    let mut refusing: Option<Bytes> = None;
    // A unit of the open transaction touched PII: until it ends, the server's messages are
    // withheld for every unit (a deferred constraint fails at COMMIT, a cursor at FETCH).
    let mut withhold_tx = false;
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
            // Before anything may drop the frame, and before the ReadyForQuery after it is
            // written: the client's next unit is decided with it.
            match tag {
                b'1' => book.lock().parse_complete(),
                b'3' => book.lock().close_complete(),
                _ => {}
            }
            if let Some(g) = guard.as_ref().filter(|_| tag == b'T' && refusing.is_none()) {
                while let Ok(p) = pending_rx.try_recv() {
                    queue.push_back(p);
                }
                // The oldest unit still waiting for its results owns this description or
                // precedes its owner; snapshots only grow newer, and an older one knows fewer
                // columns, so checking against it never lets an unknown column through.
                let catalog = queue
                    .front()
                    .and_then(|p| p.catalog.as_deref())
                    .unwrap_or(&g.catalog);
                if let Some(err) = g.check(catalog, &buf[end..end + len]) {
                    (g.on_stale)();
                    tracing::warn!(error = %err.message, "result refused: catalog snapshot is stale");
                    if current.error.is_none() {
                        current.error = Some((err.code.to_string(), err.message.clone()));
                    }
                    refusing = Some(err.to_bytes());
                }
            }
            if tag == b'S' {
                if let Some(enc) = foreign_encoding(&buf[end + 5..end + len]) {
                    // Statements already sent were read as UTF-8 here and may be read otherwise
                    // there: nothing more goes either way.
                    tracing::warn!(client_encoding = %enc, "session closed: the server switched it to an encoding other than UTF-8");
                    let e = PgError::fatal(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        format!("terminating connection: client_encoding became \"{enc}\", and airlock reads SQL as UTF-8 only"),
                    );
                    let mut w = shared.client_wr.lock().await;
                    if let Some(o) = out.take() {
                        w.write_all(&o).await?;
                    }
                    w.write_all(&buf[..end]).await?;
                    w.write_all(&e.to_bytes()).await?;
                    return Ok(BackEnd::UpstreamClosed);
                }
            }
            if refusing.is_some() && !matches!(tag, b'Z' | b'N' | b'S' | b'A') {
                // Drop this frame: keep what came before it, skip it.
                let o = out.get_or_insert_with(BytesMut::new);
                o.extend_from_slice(&buf[..end]);
                let _ = buf.split_to(end + len);
                end = 0;
                continue;
            }
            if tag == b'Z' {
                if let Some(err) = refusing.take() {
                    let o = out.get_or_insert_with(BytesMut::new);
                    o.extend_from_slice(&buf[..end]);
                    o.extend_from_slice(&err);
                    let _ = buf.split_to(end);
                    end = 0;
                }
            }
            if matches!(tag, b'E' | b'N') {
                while let Ok(p) = pending_rx.try_recv() {
                    queue.push_back(p);
                }
                let substituted = tag == b'E'
                    && !replaced
                    && queue.front().is_some_and(|p| p.replace_error.is_some());
                if !substituted && (withhold_tx || withholds(&queue)) {
                    let frame = Frame::from_bytes(Bytes::copy_from_slice(&buf[end..end + len]));
                    if let Some(w) = super::withhold::withhold(&frame) {
                        if tag == b'E' && current.error.is_none() {
                            current.error = Some((w.code, w.message));
                        }
                        let o = out.get_or_insert_with(BytesMut::new);
                        o.extend_from_slice(&buf[..end]);
                        o.extend_from_slice(&w.frame);
                        let _ = buf.split_to(end + len);
                        end = 0;
                        continue;
                    }
                }
            }
            match tag {
                b'C' | b'E' | b'Z' => {
                    let frame = Frame::from_bytes(Bytes::copy_from_slice(&buf[end..end + len]));
                    while let Ok(p) = pending_rx.try_recv() {
                        queue.push_back(p);
                    }
                    match tag {
                        b'C' => {
                            let t = command_tag(&frame).to_string();
                            confirm_sql(&mut queue, &t, book);
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
                            let status = frame.body()[0];
                            shared.tx_status.store(status, Ordering::Release);
                            readies += 1;
                            replaced = false;
                            let outcome = std::mem::take(&mut current);
                            let mut touched = false;
                            // Units ended by Flush share the outcome of the next Sync.
                            while let Some(p) = queue.pop_front() {
                                let last = p.ends_with_ready;
                                touched |= p.withhold_messages;
                                if let Some(segment) = p.closes_segment {
                                    book.lock().segment_closed(segment);
                                }
                                sink(p, outcome.clone());
                                if last {
                                    break;
                                }
                            }
                            withhold_tx = status != b'I' && (withhold_tx || touched);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Attributes, TableRef};

    /// A RowDescription frame with `(name, table OID, attnum)` fields (text format, int4).
    fn row_description(fields: &[(&str, u32, i16)]) -> Vec<u8> {
        let mut body = (fields.len() as u16).to_be_bytes().to_vec();
        for (name, oid, attnum) in fields {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(&oid.to_be_bytes());
            body.extend_from_slice(&attnum.to_be_bytes());
            body.extend_from_slice(&23u32.to_be_bytes());
            body.extend_from_slice(&4i16.to_be_bytes());
            body.extend_from_slice(&(-1i32).to_be_bytes());
            body.extend_from_slice(&0i16.to_be_bytes());
        }
        let mut frame = vec![b'T'];
        frame.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    }

    fn guard() -> ShapeGuard {
        let mut catalog = Catalog::default();
        catalog.attributes.insert(
            16_400,
            Attributes {
                table: TableRef {
                    schema: "public".into(),
                    name: "orders".into(),
                },
                attnums: vec![1, 2, 3],
            },
        );
        ShapeGuard {
            catalog: Arc::new(catalog),
            on_stale: Box::new(|| {}),
        }
    }

    #[test]
    fn known_columns_expressions_system_columns_and_unknown_relations_pass() {
        let g = guard();
        let frame = row_description(&[
            ("id", 16_400, 1),
            ("total", 16_400, 3),
            ("count", 0, 0),
            ("ctid", 16_400, -1),
            ("other", 16_999, 9),
        ]);
        assert_eq!(g.check(&g.catalog, &frame), None);
        assert_eq!(g.check(&g.catalog, &row_description(&[])), None);
    }

    #[test]
    fn a_column_the_snapshot_lacks_is_named_in_the_refusal() {
        let g = guard();
        let frame = row_description(&[("id", 16_400, 1), ("card_number", 16_400, 7)]);
        let err = g.check(&g.catalog, &frame).expect("refused");
        assert_eq!(err.code, sqlstate::CATALOG_CHANGED);
        assert!(err.message.contains("public.orders"), "{}", err.message);
        assert!(
            err.message.contains("\"card_number\", attribute 7"),
            "{}",
            err.message
        );
        assert!(err.hint.as_deref().unwrap_or_default().contains("again"));
    }

    #[test]
    fn malformed_descriptions_do_not_panic() {
        let g = guard();
        let frame = row_description(&[("id", 16_400, 1), ("card_number", 16_400, 7)]);
        for cut in 0..frame.len() {
            // Truncated anywhere: fields up to the cut are read, the rest ignored.
            let _ = g.check(&g.catalog, &frame[..cut]);
        }
        let mut lying = frame.clone();
        lying[5] = 0xff; // claims 65,280+ fields
        assert!(
            g.check(&g.catalog, &lying).is_some(),
            "fields present are still checked"
        );
    }
}

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

use super::confirm::{Confirmations, SqlNews};
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
    /// The tags of the messages that went upstream for it, in order: what the server will
    /// read, so the relay can tell which of them it reads during COPY-in (and ignores).
    pub tags: Vec<u8>,
    /// The gateway sent this Sync of its own (to close a segment before a simple Query): its
    /// ReadyForQuery is the gateway's, not relayed or counted.
    pub absorb_ready: bool,
    /// Position in the stream of forwarded units, and the CopyDone/CopyFail and CopyData
    /// messages forwarded before it (see [`CopyState`]). Set when it is queued.
    pub seq: u64,
    pub ends_at: u64,
    pub data_at: u64,
    /// Its Sync reached the server during COPY-in, which ignores it: it shares the
    /// ReadyForQuery of the next Sync.
    pub sync_ignored: bool,
    /// One entry per Describe it sent, in order: whether the gateway added it, so that its
    /// RowDescription or NoData is checked but not relayed ([`super::describe`]).
    pub describes: VecDeque<bool>,
}

impl Pending {
    /// A unit with nothing to audit or withhold: `tags` went upstream.
    pub fn plain(tags: Vec<u8>, ends_with_ready: bool) -> Pending {
        Pending {
            decision_id: None,
            started: Instant::now(),
            ends_with_ready,
            replace_error: None,
            changes_schema: false,
            catalog: None,
            withhold_messages: false,
            closes_segment: None,
            sql_effects: VecDeque::new(),
            tags,
            absorb_ready: false,
            seq: 0,
            ends_at: 0,
            data_at: 0,
            sync_ignored: false,
            describes: VecDeque::new(),
        }
    }
}

/// The front and back directions' shared view of COPY-in. PostgreSQL ignores Sync and Flush
/// while it reads COPY data (libpq's `PQsendQueryParams("COPY … FROM STDIN")` sends a Sync
/// before the data and one after CopyDone: two Syncs, one ReadyForQuery), so a relay that
/// expects one ReadyForQuery per Sync falls a unit behind the server and judges each
/// statement's messages as its predecessor's. The back direction marks the copy when the
/// server's CopyInResponse arrives; from then on the front holds back Sync and Flush and
/// refuses anything but COPY data until it has forwarded CopyDone or CopyFail. What the
/// front forwarded before it learnt of the copy is settled by the back direction from the
/// counters below (each queued unit records them), under this lock.
#[derive(Debug, Default)]
pub struct CopyState {
    /// Units queued so far (the next unit's `seq`).
    pub pushed: u64,
    /// CopyDone and CopyFail messages forwarded so far.
    pub ends_sent: u64,
    /// CopyData messages forwarded so far.
    pub data_sent: u64,
    /// The server is in COPY-in, which the `ends_sent`-th CopyDone/CopyFail ends.
    pub started_at: Option<u64>,
}

impl CopyState {
    /// The server reads COPY data and the front has not sent its end yet.
    pub fn in_copy(&self) -> bool {
        self.started_at == Some(self.ends_sent)
    }
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
    /// COPY-in as both directions see it.
    pub copy: parking_lot::Mutex<CopyState>,
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

/// Whether a server message may be about PII. It belongs to the oldest units up to the first
/// that ends with a ReadyForQuery (Flush-ended ones share their messages), but any queued unit
/// counts: should the queue ever fall behind the server, the message's own unit is still in
/// it, so a PII statement's error is never judged by an earlier statement alone.
fn withholds(queue: &VecDeque<Pending>) -> bool {
    queue.iter().any(|p| p.withhold_messages)
}

/// The relay can no longer tell which unit the server is answering.
#[derive(Debug, thiserror::Error)]
pub enum Desync {
    #[error("a ReadyForQuery arrived that no unit sent expects")]
    UnexpectedReady,
    #[error("a server message (type {0:?}) arrived with no unit waiting for it")]
    Unattributed(char),
    #[error(
        "COPY started by a unit with {0} statements to run; the gateway cannot tell which one"
    )]
    AmbiguousCopy(usize),
    #[error("messages other than COPY data went upstream while the server was reading COPY data")]
    MessagesDuringCopy,
}

/// Which Sync the server answers next, for the confirmation book's check.
fn answering(queue: &VecDeque<Pending>) -> super::confirm::Answering {
    use super::confirm::Answering;
    match queue.iter().find(|p| p.ends_with_ready) {
        Some(p) => match p.closes_segment {
            Some(segment) => Answering::Segment(segment),
            // A simple Query (or the refusal standing in for a Sync): no Parse is answered.
            None if p.tags.first() == Some(&b'Q') => Answering::Query,
            None => Answering::Unknown,
        },
        None => Answering::Unknown,
    }
}

/// A RowDescription or NoData arrived: whether it answers a Describe the gateway added. It
/// belongs to the oldest unit that can still send one: a simple Query (any number), or a unit
/// with Describes not yet answered. Describes a unit never got an answer for (the server
/// skipped them after an error) leave with the unit at its ReadyForQuery.
fn gateway_describe(queue: &mut VecDeque<Pending>) -> bool {
    for p in queue.iter_mut() {
        if p.tags.first() == Some(&b'Q') {
            return false;
        }
        if let Some(added) = p.describes.pop_front() {
            return added;
        }
    }
    false
}

/// Moves what the front queued into `queue`.
fn drain(rx: &mut mpsc::UnboundedReceiver<Pending>, queue: &mut VecDeque<Pending>) {
    while let Ok(p) = rx.try_recv() {
        queue.push_back(p);
    }
}

/// The server sent CopyInResponse. `copies` COPYs of the current unit ran before this one.
/// Marks the copy for the front, then settles what was forwarded before the front knew:
/// a Sync the server reads during COPY-in is ignored, so its unit shares the next
/// ReadyForQuery; anything else it reads there ends the COPY with an error and leaves
/// the counts unknowable, so the session ends (fail closed). Returns the copy's mark.
fn copy_started(
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<Pending>,
    queue: &mut VecDeque<Pending>,
    copies: u64,
) -> Result<u64, Desync> {
    drain(rx, queue);
    // The group being answered: the oldest units up to the first ending with ReadyForQuery.
    let group = queue
        .iter()
        .position(|p| p.ends_with_ready)
        .map_or(queue.len(), |i| i + 1);
    let runs: Vec<(usize, usize)> = queue
        .iter()
        .take(group)
        .enumerate()
        .flat_map(|(i, p)| {
            p.tags
                .iter()
                .enumerate()
                .filter(|(_, t)| matches!(t, b'E' | b'Q'))
                .map(move |(j, _)| (i, j))
        })
        .collect();
    let &[(unit, at)] = runs.as_slice() else {
        return Err(Desync::AmbiguousCopy(runs.len()));
    };
    let (g_seq, g_data) = (queue[unit].seq, queue[unit].data_at);
    let mark = queue[unit].ends_at + copies;
    let boundary = {
        let mut c = shared.copy.lock();
        c.started_at = Some(mark);
        c.pushed
    };
    // Everything queued before the front could see the mark is in the channel now.
    drain(rx, queue);
    let own = &mut queue[unit];
    if own.tags[at + 1..].iter().any(|t| !matches!(t, b'S' | b'H')) {
        return Err(Desync::MessagesDuringCopy);
    }
    if own.tags[at + 1..].contains(&b'S') {
        own.ends_with_ready = false;
        own.sync_ignored = true;
    }
    for p in queue.iter_mut().skip(unit + 1) {
        if p.seq < g_seq || p.seq >= boundary || p.ends_at != mark {
            continue;
        }
        if p.tags.iter().any(|t| !matches!(t, b'S' | b'H')) {
            return Err(Desync::MessagesDuringCopy);
        }
        if p.tags.contains(&b'S') {
            if p.data_at > g_data {
                // After COPY data, the server may have failed the COPY already and would
                // then answer this Sync: it cannot be told.
                return Err(Desync::MessagesDuringCopy);
            }
            p.ends_with_ready = false;
            p.sync_ignored = true;
        }
    }
    Ok(mark)
}

/// The server left COPY-in (its CommandComplete or ErrorResponse): the front no longer holds
/// Syncs back, even if the client has not sent CopyDone yet (the server then ignores it).
fn copy_ended(shared: &Shared, mark: u64) {
    let mut c = shared.copy.lock();
    if c.started_at == Some(mark) {
        c.started_at = None;
    }
}

/// Ends the session because the relay lost track of the server's answers: nothing more is
/// relayed (what the server sends next cannot be attributed, so it may be a PII statement's
/// error judged by another statement), and the confirmation book stops matching.
async fn fail_closed(shared: &Shared, relayed: &[u8], why: Desync) -> std::io::Result<BackEnd> {
    tracing::warn!(error = %why, "session closed: the relay lost track of the server's answers");
    shared
        .book
        .lock()
        .lose("the relay lost track of the server's answers");
    let e = PgError::fatal(
        sqlstate::PROTOCOL_VIOLATION,
        format!("terminating connection: airlock cannot attribute the server's answers: {why}"),
    );
    let mut w = shared.client_wr.lock().await;
    w.write_all(relayed).await?;
    w.write_all(&e.to_bytes()).await?;
    w.flush().await?;
    Ok(BackEnd::UpstreamClosed)
}

/// A CommandComplete with tag `tag`: when the oldest effect still waiting is confirmed by it,
/// the front gets it (a DECLARE at the next ReadyForQuery, see [`Declares`]). Effects of a
/// statement that failed or was skipped get no such tag and are dropped with their unit at its
/// ReadyForQuery; a tag that matches nothing waiting (a statement the classifier did not read
/// as having an effect) changes nothing, so the names keep their candidates.
fn confirm_sql(
    queue: &mut VecDeque<Pending>,
    tag: &str,
    book: &Confirmations,
    declares: &mut Declares,
) {
    let Some(p) = queue.iter_mut().find(|p| !p.sql_effects.is_empty()) else {
        return;
    };
    if p.sql_effects
        .front()
        .is_some_and(|d| d.command_tag() == tag)
    {
        match p.sql_effects.pop_front() {
            Some(d @ Deferred::Declare { .. }) => declares.ran.push(d),
            Some(d) => book.lock().sql_ran(SqlNews::Ran(d)),
            None => {}
        }
    }
}

/// DECLAREs the server ran, on their way to the front. A FETCH is read as its DECLARE was
/// decided only while the cursor is that one (see `crate::sql::cursors`), and a cursor lives
/// as long as its transaction, or past a commit when `WITH HOLD`. So at each ReadyForQuery
/// with no error since the previous one, the DECLAREs confirmed since are handed over when it
/// says a transaction is open, and only the `WITH HOLD` ones when it says none is; at any
/// other, none is. Once any was handed over, a ReadyForQuery outside a transaction tells the
/// front the transaction ended, and whether it committed.
#[derive(Default)]
pub(super) struct Declares {
    /// Confirmed by their CommandComplete since the last ReadyForQuery.
    pub(super) ran: Vec<Deferred>,
    /// The front may hold confirmed cursors.
    handed: bool,
    /// ... some of them `WITH HOLD`.
    held: bool,
}

impl Declares {
    /// A ReadyForQuery with transaction status `status`; `error` when an ErrorResponse came
    /// since the previous one.
    pub(super) fn ready(&mut self, status: u8, error: bool, book: &Confirmations) {
        if self.ran.is_empty() && !self.handed {
            return;
        }
        let ran = std::mem::take(&mut self.ran);
        let committed = !error && status == b'I';
        let mut news = Vec::new();
        if !error && status == b'T' {
            news.extend(ran.into_iter().map(SqlNews::Ran));
        } else if self.handed || committed {
            news.push(SqlNews::TransactionEnded { committed });
            if committed {
                news.extend(
                    ran.into_iter()
                        .filter(|d| matches!(d, Deferred::Declare { hold: true, .. }))
                        .map(SqlNews::Ran),
                );
            }
        }
        if news.is_empty() {
            return;
        }
        for n in &news {
            match n {
                SqlNews::Ran(Deferred::Declare { hold, .. }) => {
                    self.handed = true;
                    self.held |= *hold;
                }
                SqlNews::TransactionEnded { committed: true } => self.handed = self.held,
                SqlNews::TransactionEnded { committed: false } => {
                    self.handed = false;
                    self.held = false;
                }
                SqlNews::Ran(_) => {}
            }
        }
        let mut b = book.lock();
        for n in news {
            b.sql_ran(n);
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
    // The COPY-in the server is in (its mark, see [`copy_started`]), and how many COPYs the
    // unit being answered started (a simple Query may run several).
    let mut copy_mark: Option<u64> = None;
    let mut copies = 0u64;
    let mut declares = Declares::default();
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
            drain(&mut pending_rx, &mut queue);
            // Every answer belongs to a unit sent before it (units are queued before their
            // messages go upstream); one that does not fail closed.
            let attributed = match tag {
                b'N' | b'S' | b'A' | b'E' => None,
                b'Z' => {
                    (!queue.iter().any(|p| p.ends_with_ready)).then_some(Desync::UnexpectedReady)
                }
                other => queue
                    .is_empty()
                    .then_some(Desync::Unattributed(other as char)),
            };
            let copy = match tag {
                b'G' => copy_started(&shared, &mut pending_rx, &mut queue, copies).map(|mark| {
                    copy_mark = Some(mark);
                    copies += 1;
                }),
                b'C' | b'E' => {
                    if let Some(mark) = copy_mark.take() {
                        copy_ended(&shared, mark);
                    }
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Some(why) = attributed.or(copy.err()) {
                let mut relayed = out.take().unwrap_or_default();
                relayed.extend_from_slice(&buf[..end]);
                return fail_closed(&shared, &relayed, why).await;
            }
            // Before anything may drop the frame, and before the ReadyForQuery after it is
            // written: the client's next unit is decided with it.
            match tag {
                b'1' | b'3' => {
                    let mut b = book.lock();
                    b.answering(answering(&queue));
                    if tag == b'1' {
                        b.parse_complete()
                    } else {
                        b.close_complete()
                    }
                }
                _ => {}
            }
            let added = matches!(tag, b'T' | b'n') && gateway_describe(&mut queue);
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
            if added {
                // The gateway's own Describe: checked above, never relayed.
                let o = out.get_or_insert_with(BytesMut::new);
                o.extend_from_slice(&buf[..end]);
                let _ = buf.split_to(end + len);
                end = 0;
                continue;
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
                // A message no unit waits for (a FATAL while idle) is withheld too.
                if !substituted && (withhold_tx || queue.is_empty() || withholds(&queue)) {
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
                            confirm_sql(&mut queue, &t, book, &mut declares);
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
                            // A ReadyForQuery without a status (a broken server) counts as a failed
                            // transaction rather than panicking the session.
                            let status = frame.body().first().copied().unwrap_or(b'E');
                            shared.tx_status.store(status, Ordering::Release);
                            replaced = false;
                            copies = 0;
                            let outcome = std::mem::take(&mut current);
                            declares.ready(status, outcome.error.is_some(), book);
                            let mut touched = false;
                            let mut absorbed = false;
                            // Units ended by Flush, or by a Sync the server ignored during
                            // COPY-in, share the outcome of the next Sync.
                            while let Some(p) = queue.pop_front() {
                                let last = p.ends_with_ready;
                                touched |= p.withhold_messages;
                                // The client counts a ReadyForQuery for each of its Syncs.
                                readies += u64::from(p.sync_ignored);
                                absorbed = last && p.absorb_ready;
                                if let Some(segment) = p.closes_segment {
                                    book.lock().segment_closed(segment);
                                }
                                sink(p, outcome.clone());
                                if last {
                                    break;
                                }
                            }
                            withhold_tx = status != b'I' && (withhold_tx || touched);
                            if absorbed {
                                // The gateway's own Sync: the client never sent it.
                                let o = out.get_or_insert_with(BytesMut::new);
                                o.extend_from_slice(&buf[..end]);
                                let _ = buf.split_to(end + len);
                                end = 0;
                                continue;
                            }
                            readies += 1;
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

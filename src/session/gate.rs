//! The gate: turns client messages into units of SQL, has them decided, and says what to
//! forward. It keeps the session's prepared statements and portals so that an Execute is
//! judged by the statement it actually runs: what the server confirmed
//! ([`super::confirm`]), what it may still take, and what a Parse earlier in the same sync
//! segment made of the name.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pgwire::messages::extendedquery::{Bind, Close, Parse};
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};

use super::confirm::{Candidates, Confirmations, Op, SqlNews, Stmt};
use super::hold::{self, HoldContext};
use super::inspect::{query_message, simple_outcome, Decided, SessionInspector};
use crate::policy::Action;
use crate::protocol::messages::PgError;
use crate::protocol::sqlstate;
use crate::protocol::Frame;
use crate::sql::{Deferred, Kind};

/// SQL the client wants run, as one decision unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    Simple { text: String },
    Extended { statements: Vec<ExtStatement> },
}

/// One statement of an extended batch: parsed here, or executed here (or both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtStatement {
    pub text: String,
    /// The parameter type OIDs of the Parse this runs (see [`Stmt::types`]).
    pub types: Vec<u32>,
    /// Bound parameters in text form (binary ones hex-encoded as `\x…`), when executed.
    pub params: Vec<Option<String>>,
    /// Which of `params` were sent in binary: `\x41` sent as text is another value than the
    /// byte `A` sent in binary, though both display alike.
    pub binary: Vec<bool>,
    /// Parsed but not executed in this batch.
    pub parse_only: bool,
    /// A Bind of this batch gave it its parameters (a Parse alone has none yet).
    pub bound: bool,
}

/// What a portal runs: the texts its statement may be, with the parameters of its Bind.
#[derive(Debug, Clone)]
struct Bound {
    texts: Vec<Stmt>,
    params: Vec<Option<String>>,
    binary: Vec<bool>,
    /// A Close of the portal was sent (not necessarily run).
    closed: bool,
}

/// What to do with a unit.
pub enum UnitDecision {
    Forward {
        decision_id: Option<String>,
        /// Frames to send instead of the client's (a masked rewrite).
        replacement: Option<Bytes>,
    },
    Refuse {
        decision_id: Option<String>,
        /// The ErrorResponse the client gets.
        error: Bytes,
    },
    /// Wait for a human: nothing is sent upstream until the verdict.
    Hold(HeldUnit),
}

/// A unit waiting on an approval.
pub struct HeldUnit {
    pub decision_id: Option<String>,
    /// NoticeResponse sent to the client as soon as everything before it has been relayed.
    pub notice: Bytes,
    /// Resolves when the request is decided or expires.
    pub verdict: futures::future::BoxFuture<'static, HoldVerdict>,
    /// Called once when the client cancels or disconnects while waiting.
    pub withdraw: Box<dyn FnOnce(Withdrawal) -> futures::future::BoxFuture<'static, ()> + Send>,
}

/// How a hold ended.
pub enum HoldVerdict {
    /// Run the unit (or its replacement).
    Approved { replacement: Option<Bytes> },
    /// Do not run it; the client gets this error.
    Refused { error: Bytes },
}

/// Why a held request was withdrawn by its own session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    Cancelled,
    Disconnected,
}

impl UnitDecision {
    pub fn forward_unaudited() -> Self {
        UnitDecision::Forward {
            decision_id: None,
            replacement: None,
        }
    }
}

/// Portals kept per session, at most (see [`Gate::portals`]). PostgreSQL keeps every portal
/// to the end of its transaction, so a client never needs this many open at once.
const MAX_PORTALS: usize = 4096;

/// Per-session gate state.
pub struct Gate {
    inspector: SessionInspector,
    holds: Option<HoldContext>,
    /// Statement texts the server confirmed or may still take, shared with the back direction.
    book: Confirmations,
    /// Syncs sent upstream so far: the number of the sync segment being sent.
    segment: u64,
    /// Extended-protocol messages went upstream since the last Sync.
    segment_open: bool,
    /// The latest Parse (`Some`) or Close (`None`) of each statement name forwarded in the open
    /// segment. After an error the server skips everything up to the Sync, so a Bind that
    /// follows such a Parse in the same segment runs that text or nothing (see
    /// [`Gate::candidates`]).
    overlay: HashMap<String, Option<Stmt>>,
    /// The same for the unit being decided, merged into `overlay` when it is forwarded.
    unit_overlay: HashMap<String, Option<Stmt>>,
    /// The Parses and Closes of the unit being decided, recorded in `book` when forwarded.
    unit_ops: Vec<Op>,
    /// The SQL-level forgetting of the unit being decided, sent with it when forwarded.
    unit_deferred: Vec<Deferred>,
    /// The texts each portal was bound to, as its Bind was judged. A Bind the server refuses
    /// (the name is taken, or skipped after an error) fails its transaction or segment, and
    /// with it the portal that held the name, so the latest Bind is always the one an Execute
    /// can run; a SQL cursor is the exception (see Execute).
    ///
    /// A Close does not forget the portal: the Close may be refused with its unit, or skipped
    /// by the server after an error earlier in its segment, and then the portal still runs.
    /// The entry only marks it closed, and is dropped when room is needed.
    portals: HashMap<String, Bound>,
    /// The unit decided last may change the schema (DDL, or SQL the classifier could not
    /// read, such as a DO block): once it has run, the catalog snapshot is out of date.
    changes_schema: bool,
    /// The unit decided last touches PII: the server's messages about it are withheld.
    touches_pii: bool,
}

impl Bound {
    /// A text run without parameters (a SQL cursor's FETCH, or nothing bound).
    fn text(text: String) -> Bound {
        Bound {
            texts: vec![untyped(text)],
            params: Vec::new(),
            binary: Vec::new(),
            closed: false,
        }
    }
}

impl Gate {
    pub fn new(
        inspector: SessionInspector,
        holds: Option<HoldContext>,
        book: Confirmations,
    ) -> Gate {
        Gate {
            inspector,
            holds,
            book,
            segment: 0,
            segment_open: false,
            overlay: HashMap::new(),
            unit_overlay: HashMap::new(),
            unit_ops: Vec::new(),
            unit_deferred: Vec::new(),
            portals: HashMap::new(),
            changes_schema: false,
            touches_pii: false,
        }
    }

    /// The catalog snapshot the unit decided last was classified with.
    pub fn catalog(&self) -> Arc<crate::sql::Catalog> {
        self.inspector.catalog().clone()
    }

    /// Whether the unit decided last may change the schema; asking again says no until the
    /// next decision (a batch that is not decided, a lone Sync, changes nothing).
    pub fn take_changes_schema(&mut self) -> bool {
        std::mem::take(&mut self.changes_schema)
    }

    /// Whether the unit decided last touches PII (see [`super::withhold`]); asking again says
    /// no until the next decision.
    pub fn take_touches_pii(&mut self) -> bool {
        std::mem::take(&mut self.touches_pii)
    }

    /// Decides a unit: classify, policy, write-ahead audit; then what to forward.
    pub async fn decide(&mut self, unit: &Unit, frames: &[Frame]) -> UnitDecision {
        self.absorb();
        let decided = self.inspector.decide(unit).await;
        self.unit_deferred = self.inspector.take_deferred();
        self.changes_schema = decided
            .classified
            .statements
            .iter()
            .any(|f| matches!(f.kind, Kind::Ddl | Kind::Unknown));
        self.touches_pii = decided.touches_pii;
        let id = decided.id.clone();
        let decision = &decided.decision;
        match decision.action {
            Action::Allow | Action::Deny => simple_outcome(decision, id),
            Action::Hold => self.hold(unit, decided).await,
            Action::Mask => {
                let rewritten = decision.rewritten.clone();
                let replacement = match (unit, rewritten.as_deref()) {
                    (Unit::Simple { .. }, Some(sql)) => Some(query_message(sql)),
                    (Unit::Extended { .. }, Some(sql)) => self.rewrite_parse(frames, sql),
                    _ => None,
                };
                match replacement {
                    Some(replacement) => UnitDecision::Forward {
                        decision_id: id,
                        replacement: Some(replacement),
                    },
                    // A mask that cannot be applied safely becomes a hold, never an allow.
                    None => {
                        let mut decided = decided;
                        decided.decision.action = Action::Hold;
                        decided.decision.rewritten = None;
                        self.hold(unit, decided).await
                    }
                }
            }
        }
    }

    async fn hold(&mut self, unit: &Unit, d: Decided) -> UnitDecision {
        match &self.holds {
            Some(ctx) => {
                let recheck = self.inspector.live_check(&d.classified);
                let aliases = self.inspector.requester_aliases();
                hold::hold(ctx, unit, self.inspector.info(), aliases, d, recheck).await
            }
            None => simple_outcome(&d.decision, d.id),
        }
    }

    /// Rewrites the one Parse of a batch to the masked text; or, for a batch without Parse
    /// whose every Bind names a statement that was masked when parsed, forwards as is.
    fn rewrite_parse(&mut self, frames: &[Frame], sql: &str) -> Option<Bytes> {
        let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        let parses = frames.iter().filter(|f| f.tag() == b'P').count();
        let mut out = BytesMut::new();
        match parses {
            0 => {
                for f in frames.iter().filter(|f| f.tag() == b'B') {
                    let b = decode::<Bind>(f, &ctx)?;
                    if !self.all_masked(&b.statement_name.unwrap_or_default()) {
                        return None;
                    }
                }
                for f in frames {
                    out.extend_from_slice(f.bytes());
                }
            }
            1 => {
                for f in frames {
                    if f.tag() == b'P' {
                        let mut p = decode::<Parse>(f, &ctx)?;
                        p.query = sql.to_string();
                        self.parse_masked(&p.name.clone().unwrap_or_default());
                        p.encode(&mut out).ok()?;
                    } else {
                        out.extend_from_slice(f.bytes());
                    }
                }
            }
            _ => return None,
        }
        Some(out.freeze())
    }

    /// Records a refused fastpath call (`frame`, a FunctionCall) in the audit; returns the
    /// decision record's id.
    pub async fn refused_fastpath(&mut self, frame: &Frame) -> Option<String> {
        let oid = frame
            .body()
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        tracing::warn!(?oid, "refused a fastpath FunctionCall");
        self.inspector.refused_fastpath(oid).await
    }

    /// Gathers the SQL of an extended batch and the Parses, Closes and Binds it makes (applied
    /// to the session's bookkeeping only once the batch is forwarded, see [`Gate::forwarded`]).
    /// Returns None when the batch carries no SQL.
    pub fn extended_unit(&mut self, frames: &[Frame]) -> Result<Option<Unit>, PgError> {
        self.absorb();
        self.unit_ops.clear();
        self.unit_overlay.clear();
        let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        let mut statements = Vec::new();
        let malformed = |what: &str| {
            PgError::fatal(
                sqlstate::PROTOCOL_VIOLATION,
                format!("malformed {what} message"),
            )
        };
        for f in frames {
            match f.tag() {
                b'P' => {
                    let p = decode::<Parse>(f, &ctx).ok_or_else(|| malformed("Parse"))?;
                    let name = p.name.unwrap_or_default();
                    statements.push(ExtStatement {
                        text: p.query.clone(),
                        types: p.type_oids.clone(),
                        params: Vec::new(),
                        binary: Vec::new(),
                        parse_only: true,
                        bound: false,
                    });
                    let stmt = Stmt {
                        text: p.query,
                        types: p.type_oids,
                        masked: false,
                    };
                    self.unit_overlay.insert(name.clone(), Some(stmt.clone()));
                    self.unit_ops.push(Op::Parse { name, stmt });
                }
                b'B' => {
                    let b = decode::<Bind>(f, &ctx).ok_or_else(|| malformed("Bind"))?;
                    let stmt = b.statement_name.unwrap_or_default();
                    let (params, binary) = bind_params(&b.parameters, &b.parameter_format_codes);
                    let texts = self.texts_of(&stmt);
                    let portal = b.portal_name.clone().unwrap_or_default();
                    if !self.portals.contains_key(&portal) && self.portals.len() >= MAX_PORTALS {
                        self.portals.retain(|_, b| !b.closed);
                        if self.portals.len() >= MAX_PORTALS {
                            return Err(PgError::fatal(
                                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                                format!(
                                    "more than {MAX_PORTALS} portals bound and not closed in \
                                     one session"
                                ),
                            ));
                        }
                    }
                    self.portals.insert(
                        portal,
                        Bound {
                            texts: texts.clone(),
                            params: params.clone(),
                            binary: binary.clone(),
                            closed: false,
                        },
                    );
                    // Every Bind is a statement of its own with its own parameters: binding
                    // one statement twice in a batch runs both portals, and the approver must
                    // see both sets of values.
                    for t in texts {
                        match statements.iter_mut().rev().find(|s| {
                            s.text == t.text && s.types == t.types && s.parse_only && !s.bound
                        }) {
                            Some(s) => {
                                s.params = params.clone();
                                s.binary = binary.clone();
                                s.bound = true;
                            }
                            None => statements.push(ExtStatement {
                                text: t.text,
                                types: t.types,
                                params: params.clone(),
                                binary: binary.clone(),
                                parse_only: true,
                                bound: true,
                            }),
                        }
                    }
                }
                b'E' => {
                    let portal = execute_portal(f).ok_or_else(|| malformed("Execute"))?;
                    let fetch = || format!("FETCH ALL FROM {}", quote_ident(&portal));
                    let mut runs: Vec<Bound> = Vec::new();
                    match self.portals.get(&portal) {
                        Some(bound) => {
                            runs.push(bound.clone());
                            // The server refuses a Bind to a name a SQL cursor holds, and
                            // then this Execute runs the cursor.
                            if !portal.is_empty() && self.inspector.sql_cursor(&portal) {
                                runs.push(Bound::text(fetch()));
                            }
                        }
                        // Not bound here: a cursor the client declared in SQL, read as FETCH.
                        None if !portal.is_empty() => runs.push(Bound::text(fetch())),
                        None => runs.push(Bound::text(String::new())),
                    }
                    // The portal runs with the parameters of its Bind, however long ago that
                    // was; each Execute is a run of its own (a second one of the same portal
                    // runs it again).
                    for run in runs {
                        for t in run.texts {
                            match statements.iter_mut().rev().find(|s| {
                                s.text == t.text
                                    && s.types == t.types
                                    && s.parse_only
                                    && s.params == run.params
                                    && s.binary == run.binary
                            }) {
                                Some(s) => s.parse_only = false,
                                None => statements.push(ExtStatement {
                                    text: t.text,
                                    types: t.types,
                                    params: run.params.clone(),
                                    binary: run.binary.clone(),
                                    parse_only: false,
                                    bound: true,
                                }),
                            }
                        }
                    }
                }
                b'C' => {
                    let c = decode::<Close>(f, &ctx).ok_or_else(|| malformed("Close"))?;
                    let name = c.name.unwrap_or_default();
                    if c.target_type == b'S' {
                        self.unit_overlay.insert(name.clone(), None);
                        self.unit_ops.push(Op::CloseStatement(name));
                    } else {
                        if let Some(b) = self.portals.get_mut(&name) {
                            b.closed = true;
                        }
                        // It closes a SQL cursor of that name as well, freeing the name.
                        self.inspector.portal_closed(&name);
                        self.unit_ops.push(Op::ClosePortal);
                    }
                }
                _ => {}
            }
        }
        Ok((!statements.is_empty()).then_some(Unit::Extended { statements }))
    }

    /// The unit decided last went upstream as `frames` (or a rewrite of the same messages):
    /// its Parses and Closes now wait for the server's answers, and within its segment they
    /// decide what a later Bind of the same name runs. Returns what travels with the unit to
    /// the back direction.
    pub fn forwarded(&mut self, frames: &[Frame]) -> Forwarded {
        let ops = std::mem::take(&mut self.unit_ops);
        let overlay = std::mem::take(&mut self.unit_overlay);
        let sql_effects = std::mem::take(&mut self.unit_deferred);
        if frames.first().is_some_and(|f| f.tag() == b'Q') {
            if self.segment_open {
                // Skipped without any answer if the segment already failed: what the server
                // answers can no longer be matched to what was sent.
                self.book
                    .lock()
                    .lose("a simple Query inside an unsynced extended segment");
            }
            // It drops the unnamed statement, and its SQL may deallocate and prepare names.
            self.overlay.clear();
            return Forwarded {
                closes_segment: None,
                sql_effects,
            };
        }
        if !ops.is_empty() {
            self.book.lock().sent(self.segment, ops);
        }
        self.overlay.extend(overlay);
        self.segment_open = true;
        let mut closes_segment = None;
        if frames.last().is_some_and(|f| f.tag() == b'S') {
            closes_segment = Some(self.segment);
            self.segment += 1;
            self.segment_open = false;
            self.overlay.clear();
        }
        Forwarded {
            closes_segment,
            sql_effects,
        }
    }

    /// The unit decided last was refused: nothing of it went upstream, only the substitute the
    /// front sends instead — a simple Query when the unit ended with Sync, else the unnamed
    /// statement parsed as `refusal` (which fails when executed) and a Flush.
    pub fn refused(&mut self, ends_with_ready: bool, refusal: &str) {
        self.unit_ops.clear();
        self.unit_overlay.clear();
        self.unit_deferred.clear();
        if ends_with_ready {
            if self.segment_open {
                self.book
                    .lock()
                    .lose("a refused Sync replaced by a simple Query inside an extended segment");
            }
            self.overlay.clear();
            return;
        }
        let stmt = Stmt {
            text: refusal.to_string(),
            types: Vec::new(),
            masked: false,
        };
        self.book.lock().sent(
            self.segment,
            vec![Op::Parse {
                name: String::new(),
                stmt: stmt.clone(),
            }],
        );
        self.overlay.insert(String::new(), Some(stmt));
        self.segment_open = true;
    }

    /// Applies the SQL-level effects the server confirmed since the last unit.
    fn absorb(&mut self) {
        let ran = self.book.lock().take_sql_ran();
        for news in &ran {
            match news {
                SqlNews::Ran(d) => self.inspector.confirm_sql(d),
                SqlNews::TransactionEnded { committed } => {
                    self.inspector.transaction_ended(*committed)
                }
            }
        }
    }
}

/// What travels with a forwarded unit to the back direction.
pub struct Forwarded {
    /// The unit ends with the Sync of this segment.
    pub closes_segment: Option<u64>,
    /// Its SQL-level forgetting, applied when the server's CommandComplete says it ran.
    pub sql_effects: Vec<Deferred>,
}

impl Gate {
    /// What statement `name` may hold when a Bind of it runs: the latest Parse or Close of it
    /// earlier in the same sync segment if there is one (had that Parse failed or been
    /// skipped, the server would skip the Bind too); else every text the server confirmed or
    /// may still take (Parses of earlier segments not answered yet).
    fn candidates(&self, name: &str) -> Candidates {
        match self
            .unit_overlay
            .get(name)
            .or_else(|| self.overlay.get(name))
        {
            Some(Some(stmt)) => Candidates {
                stmts: vec![stmt.clone()],
                overflowed: false,
            },
            Some(None) => Candidates::default(),
            None => self.book.lock().candidates(name),
        }
    }

    /// What a Bind to statement `name` may run. Parse and SQL `PREPARE` share one namespace on
    /// the server, so a name prepared in SQL (or whose Parse the server refused because SQL had
    /// taken it, or whose SQL definition replaced a deallocated Parse) runs the SQL definition:
    /// that is decided as `EXECUTE name`, next to the Parse text when there is one. A name
    /// known to neither is decided as `EXECUTE name` too (not prepared in this session: held).
    /// A name with more candidate texts than are kept is decided with an `EXECUTE name` too,
    /// which is unknown unless SQL prepared it (and `EXECUTE ""` always is): held.
    fn texts_of(&self, name: &str) -> Vec<Stmt> {
        let c = self.candidates(name);
        let mut out = c.stmts;
        if c.overflowed
            || (!name.is_empty() && (out.is_empty() || self.inspector.sql_prepared(name)))
        {
            out.push(untyped(format!("EXECUTE {}", quote_ident(name))));
        }
        if out.is_empty() {
            // The unnamed statement, never parsed: the server refuses the Bind.
            out.push(untyped(String::new()));
        }
        out
    }

    /// Whether a Bind of `name` runs a text the gate rewrote by a mask, whatever the server
    /// holds.
    fn all_masked(&self, name: &str) -> bool {
        let c = self.candidates(name);
        !c.stmts.is_empty()
            && !c.overflowed
            && c.stmts.iter().all(|s| s.masked)
            && (name.is_empty() || !self.inspector.sql_prepared(name))
    }

    /// The unit's Parse of `name` goes upstream rewritten by a mask.
    fn parse_masked(&mut self, name: &str) {
        for op in &mut self.unit_ops {
            if let Op::Parse { name: n, stmt } = op {
                if n == name {
                    stmt.masked = true;
                }
            }
        }
        if let Some(Some(stmt)) = self.unit_overlay.get_mut(name) {
            stmt.masked = true;
        }
    }
}

/// `name` as a quoted SQL identifier (sqlparser doubles any quote inside it).
fn quote_ident(name: &str) -> String {
    sqlparser::ast::Ident::with_quote('"', name).to_string()
}

fn decode<M: Message>(f: &Frame, ctx: &DecodeContext) -> Option<M> {
    if !crate::protocol::frame::extended_body_complete(f.tag(), f.body()) {
        return None;
    }
    let mut b = BytesMut::from(&f.bytes()[..]);
    M::decode(&mut b, ctx).ok().flatten()
}

fn execute_portal(f: &Frame) -> Option<String> {
    crate::protocol::frame::read_cstr(f.body()).map(|(s, _)| s.to_string())
}

/// A text the gate makes up for a Bind or Execute (an `EXECUTE name`, a cursor's FETCH):
/// no Parse gave it parameter types.
fn untyped(text: String) -> Stmt {
    Stmt {
        text,
        types: Vec::new(),
        masked: false,
    }
}

#[cfg(test)]
#[test]
fn identifiers_are_quoted_as_postgresql_reads_them() {
    assert_eq!(quote_ident("plain"), "\"plain\"");
    assert_eq!(quote_ident("a\"b; DROP"), "\"a\"\"b; DROP\"");
}

/// Bound parameters as display text (binary ones hex-encoded as `\x…`), and which were
/// binary.
fn bind_params(values: &[Option<Bytes>], formats: &[i16]) -> (Vec<Option<String>>, Vec<bool>) {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let binary = match formats.len() {
                0 => false,
                1 => formats[0] == 1,
                _ => formats.get(i).copied() == Some(1),
            };
            let shown = v.as_ref().map(|b| {
                if binary {
                    format!("\\x{}", hex::encode(b))
                } else {
                    String::from_utf8_lossy(b).into_owned()
                }
            });
            (shown, binary)
        })
        .unzip()
}

//! The gate: turns client messages into units of SQL, has them decided, and says what to
//! forward. It keeps the session's prepared statements and portals so that an Execute is
//! judged by the statement it actually runs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pgwire::messages::extendedquery::{Bind, Close, Parse};
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};

use super::hold::{self, HoldContext};
use super::inspect::{query_message, simple_outcome, Decided, SessionInspector};
use crate::policy::Action;
use crate::protocol::messages::PgError;
use crate::protocol::sqlstate;
use crate::protocol::Frame;
use crate::sql::Kind;

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
    /// Bound parameters in text form (binary ones hex-encoded as `\x…`), when executed.
    pub params: Vec<Option<String>>,
    /// Parsed but not executed in this batch.
    pub parse_only: bool,
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

/// Per-session gate state.
pub struct Gate {
    inspector: SessionInspector,
    holds: Option<HoldContext>,
    /// Every text parsed under each statement name since its Close (see [`Gate::parsed`]).
    statements: HashMap<String, Vec<String>>,
    /// Names parsed with more distinct texts than are kept: a Bind to them is held.
    overflowed: HashSet<String>,
    /// The statement bound to each portal. A Bind the server refuses (the name is taken)
    /// fails its transaction, and with it the portal that held the name, so the latest Bind
    /// is always the one an Execute can run; a SQL cursor is the exception (see Execute).
    portals: HashMap<String, String>,
    /// Prepared statements whose Parse was rewritten by a mask: executing them later runs the
    /// masked text already upstream.
    masked: HashSet<String>,
    /// The unit decided last may change the schema (DDL, or SQL the classifier could not
    /// read, such as a DO block): once it has run, the catalog snapshot is out of date.
    changes_schema: bool,
    /// The unit decided last touches PII: the server's messages about it are withheld.
    touches_pii: bool,
}

impl Gate {
    pub fn new(inspector: SessionInspector, holds: Option<HoldContext>) -> Gate {
        Gate {
            inspector,
            holds,
            statements: HashMap::new(),
            overflowed: HashSet::new(),
            portals: HashMap::new(),
            masked: HashSet::new(),
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
        let decided = self.inspector.decide(unit).await;
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
                hold::hold(ctx, unit, &self.inspector.info, d, recheck).await
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
                    if !self.masked.contains(&b.statement_name.unwrap_or_default()) {
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
                        self.masked.insert(p.name.clone().unwrap_or_default());
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

    /// Records a refused fastpath call.
    pub async fn refused_fastpath(&mut self) {
        tracing::warn!("refused a fastpath FunctionCall");
    }

    /// Gathers the SQL of an extended batch and updates statement/portal bookkeeping.
    /// Returns None when the batch carries no SQL.
    pub fn extended_unit(&mut self, frames: &[Frame]) -> Result<Option<Unit>, PgError> {
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
                    self.masked.remove(&name);
                    statements.push(ExtStatement {
                        text: p.query.clone(),
                        params: Vec::new(),
                        parse_only: true,
                    });
                    self.parsed(name, p.query);
                }
                b'B' => {
                    let b = decode::<Bind>(f, &ctx).ok_or_else(|| malformed("Bind"))?;
                    let stmt = b.statement_name.unwrap_or_default();
                    let params = bind_params(&b.parameters, &b.parameter_format_codes);
                    self.portals
                        .insert(b.portal_name.clone().unwrap_or_default(), stmt.clone());
                    // The statement runs at Execute; remember its parameters with it.
                    for text in self.texts_of(&stmt) {
                        match statements
                            .iter_mut()
                            .rev()
                            .find(|s| s.text == text && s.parse_only)
                        {
                            Some(s) => s.params = params.clone(),
                            None => statements.push(ExtStatement {
                                text,
                                params: params.clone(),
                                parse_only: true,
                            }),
                        }
                    }
                }
                b'E' => {
                    let portal = execute_portal(f).ok_or_else(|| malformed("Execute"))?;
                    let fetch = || format!("FETCH ALL FROM {}", quote_ident(&portal));
                    let texts = match self.portals.get(&portal) {
                        Some(stmt) => {
                            let mut texts = self.texts_of(stmt);
                            // The server refuses a Bind to a name a SQL cursor holds, and
                            // then this Execute runs the cursor.
                            if !portal.is_empty() && self.inspector.sql_cursor(&portal) {
                                texts.push(fetch());
                            }
                            texts
                        }
                        // Not bound here: a cursor the client declared in SQL, read as FETCH.
                        None if !portal.is_empty() => vec![fetch()],
                        None => vec![String::new()],
                    };
                    for text in texts {
                        match statements.iter_mut().rev().find(|s| s.text == text) {
                            Some(s) => s.parse_only = false,
                            None => statements.push(ExtStatement {
                                text,
                                params: Vec::new(),
                                parse_only: false,
                            }),
                        }
                    }
                }
                b'C' => {
                    let c = decode::<Close>(f, &ctx).ok_or_else(|| malformed("Close"))?;
                    let name = c.name.unwrap_or_default();
                    if c.target_type == b'S' {
                        self.statements.remove(&name);
                        self.overflowed.remove(&name);
                    } else {
                        self.portals.remove(&name);
                    }
                }
                _ => {}
            }
        }
        Ok((!statements.is_empty()).then_some(Unit::Extended { statements }))
    }
}

impl Gate {
    /// What a Bind to statement `name` may run. Parse and SQL `PREPARE` share one namespace on
    /// the server, so a name prepared in SQL (or whose Parse the server refused because SQL had
    /// taken it, or whose SQL definition replaced a deallocated Parse) runs the SQL definition:
    /// that is decided as `EXECUTE name`, next to the Parse text when there is one. A name
    /// known to neither is decided as `EXECUTE name` too (not prepared in this session: held).
    /// A name parsed with too many texts is decided with an `EXECUTE name` too, which is
    /// unknown unless SQL prepared it: held.
    fn texts_of(&self, name: &str) -> Vec<String> {
        let parsed = self.statements.get(name);
        let mut out: Vec<String> = parsed.cloned().unwrap_or_default();
        if !name.is_empty()
            && (parsed.is_none()
                || self.overflowed.contains(name)
                || self.inspector.sql_prepared(name))
        {
            out.push(format!("EXECUTE {}", quote_ident(name)));
        }
        if out.is_empty() {
            // The unnamed statement, never parsed: the server refuses the Bind.
            out.push(String::new());
        }
        out
    }

    /// Records a Parse. The server refuses a Parse of a name it already holds (42P05), and
    /// accepts one whose earlier Parse it refused; the gate learns which only later. So a
    /// named statement keeps every distinct text parsed under it until its Close, and a Bind
    /// is decided as all of them: re-parsing a harmless text under the name of a statement
    /// approved once must not make later runs of it look harmless. The unnamed statement is
    /// replaced by every Parse, as on the server.
    fn parsed(&mut self, name: String, text: String) {
        if name.is_empty() {
            self.statements.insert(name, vec![text]);
            return;
        }
        let texts = self.statements.entry(name.clone()).or_default();
        if texts.contains(&text) {
            return;
        }
        if texts.len() >= MAX_TEXTS {
            self.overflowed.insert(name);
            return;
        }
        texts.push(text);
    }
}

/// Distinct texts kept per statement name.
const MAX_TEXTS: usize = 8;

/// `name` as a quoted SQL identifier (sqlparser doubles any quote inside it).
fn quote_ident(name: &str) -> String {
    sqlparser::ast::Ident::with_quote('"', name).to_string()
}

fn decode<M: Message>(f: &Frame, ctx: &DecodeContext) -> Option<M> {
    let mut b = BytesMut::from(&f.bytes()[..]);
    M::decode(&mut b, ctx).ok().flatten()
}

fn execute_portal(f: &Frame) -> Option<String> {
    crate::protocol::frame::read_cstr(f.body()).map(|(s, _)| s.to_string())
}

#[cfg(test)]
#[test]
fn identifiers_are_quoted_as_postgresql_reads_them() {
    assert_eq!(quote_ident("plain"), "\"plain\"");
    assert_eq!(quote_ident("a\"b; DROP"), "\"a\"\"b; DROP\"");
}

fn bind_params(values: &[Option<Bytes>], formats: &[i16]) -> Vec<Option<String>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let binary = match formats.len() {
                0 => false,
                1 => formats[0] == 1,
                _ => formats.get(i).copied() == Some(1),
            };
            v.as_ref().map(|b| {
                if binary {
                    format!("\\x{}", hex::encode(b))
                } else {
                    String::from_utf8_lossy(b).into_owned()
                }
            })
        })
        .collect()
}

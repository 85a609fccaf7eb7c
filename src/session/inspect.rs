//! Deciding one unit of client SQL: classify (cached by text), evaluate the policy, write the
//! decision ahead to the audit, and turn the decision into what the relay does. Everything the
//! sessions share lives in [`Inspector`]; what one session remembers lives in
//! [`SessionInspector`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;

use parking_lot::RwLock;

use super::gate::{ExtStatement, Unit, UnitDecision};
use super::kept::{KeptDecision, KEPT};
use crate::audit::{
    AuditError, AuditHandle, DecisionRecord, Part, Protocol, Serialized, SessionInfo,
};
use crate::policy::{Action, Decision, Policy, PolicyStore, RequestContext};
use crate::protocol::messages::PgError;
use crate::protocol::sqlstate;
use crate::sql::{Catalog, Classified, Classifier, SessionSqlState};
use crate::upstream::UpstreamConn;

/// What every session shares for decisions: the policy, the audit, and one classifier per
/// upstream database (each over that database's catalog snapshot, loaded by the first session
/// that opens it).
pub struct Inspector {
    classifiers: RwLock<HashMap<String, Arc<Classifier>>>,
    /// Bumped whenever `classifiers` changes, so a session notices a newer snapshot (or policy
    /// options) with one atomic load per statement.
    generation: AtomicU64,
    /// Databases whose catalog is being re-read in the background: one re-read at a time, however
    /// often a client retries a refused statement meanwhile.
    rereading: parking_lot::Mutex<std::collections::HashSet<String>>,
    /// Databases whose schema is watched for changes (see `session::watch`): one watcher each.
    watching: parking_lot::Mutex<std::collections::HashSet<String>>,
    pub policy: Arc<PolicyStore>,
    pub audit: AuditHandle,
    /// Counters for /metrics (statements by kind and decision).
    pub metrics: Option<Arc<crate::admin::Metrics>>,
}

impl Inspector {
    pub fn new(
        policy: Arc<PolicyStore>,
        audit: AuditHandle,
        metrics: Option<Arc<crate::admin::Metrics>>,
    ) -> Inspector {
        Inspector {
            classifiers: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            rereading: parking_lot::Mutex::new(std::collections::HashSet::new()),
            watching: parking_lot::Mutex::new(std::collections::HashSet::new()),
            policy,
            audit,
            metrics,
        }
    }

    /// The classifier for `database`, loading its catalog over `conn` the first time.
    pub async fn classifier_for(
        &self,
        database: &str,
        conn: &mut UpstreamConn,
    ) -> Result<Arc<Classifier>, String> {
        if let Some(c) = self.classifiers.read().get(database) {
            return Ok(c.clone());
        }
        let catalog = Catalog::load(conn).await.map_err(|e| e.to_string())?;
        let c = Arc::new(Classifier::new(
            Arc::new(catalog),
            self.policy.current().classifier_options(),
        ));
        let installed = self
            .classifiers
            .write()
            .entry(database.to_string())
            .or_insert(c)
            .clone();
        self.generation.fetch_add(1, Ordering::Release);
        Ok(installed)
    }

    /// The classifier new sessions of `database` get now, if one is loaded.
    pub fn current(&self, database: &str) -> Option<Arc<Classifier>> {
        self.classifiers.read().get(database).cloned()
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Makes `catalog` the snapshot of `database` for every session, open ones included (they
    /// move to it at their next statement).
    pub fn install_catalog(&self, database: &str, catalog: Catalog) -> Arc<Classifier> {
        let c = Arc::new(Classifier::new(
            Arc::new(catalog),
            self.policy.current().classifier_options(),
        ));
        self.classifiers
            .write()
            .insert(database.to_owned(), c.clone());
        self.changed();
        c
    }

    /// Forgets one database's catalog snapshot (a result showed it stale): the next session of
    /// that database reads a new one. Sessions already open keep theirs.
    pub fn invalidate_catalog(&self, database: &str) {
        self.classifiers.write().remove(database);
        self.changed();
    }

    /// Claims the background re-read of `database`'s catalog: false when one is under way.
    /// The claimant calls [`Inspector::reread_done`] when it ends, however it ends.
    pub fn begin_reread(&self, database: &str) -> bool {
        self.rereading.lock().insert(database.to_owned())
    }

    pub fn reread_done(&self, database: &str) {
        self.rereading.lock().remove(database);
    }

    /// Claims the watching of `database`'s schema: false when it is watched already.
    pub fn begin_watch(&self, database: &str) -> bool {
        self.watching.lock().insert(database.to_owned())
    }

    pub fn watch_done(&self, database: &str) {
        self.watching.lock().remove(database);
    }

    /// Forgets every catalog snapshot: the next session of each database reads a new one.
    pub fn invalidate_catalogs(&self) {
        self.classifiers.write().clear();
        self.changed();
    }

    /// Reloads the policy; on error the old one stays and the error is returned.
    pub fn reload_policy(&self, path: &std::path::Path) -> Result<(), crate::policy::PolicyError> {
        self.policy.reload(path)?;
        let opts = self.policy.current().classifier_options();
        let mut map = self.classifiers.write();
        for c in map.values_mut() {
            *c = Arc::new(c.with_options(opts.clone()));
        }
        drop(map);
        self.changed();
        Ok(())
    }

    /// Settings an agent may change without approval (startup parameters included).
    pub fn allowed_settings(&self) -> Vec<String> {
        self.policy.current().classifier_options().allowed_settings
    }
}

/// The outcome of deciding a unit.
pub struct Decided {
    pub decision: Decision,
    /// Audit id of the decision record (None when the audit failed: the unit is refused).
    pub id: Option<String>,
    pub classified: Arc<Classified>,
    /// Bound parameters as display text, redacted per policy.
    pub params: Vec<Option<String>>,
    /// The server's messages about this unit may quote PII: see [`super::withhold`].
    pub touches_pii: bool,
}

/// A connection being opened for a live catalog check.
pub type Opening<'a> = Pin<Box<dyn Future<Output = Result<UpstreamConn, String>> + Send + 'a>>;

/// Where a session gets a connection to its database for reading the live catalog (not its
/// own, which may be mid-transaction or mid-pipeline), and where it leaves it afterwards.
pub trait LiveCatalog: Send + Sync {
    fn open(&self) -> Opening<'_>;
    /// Gives back a connection that answered cleanly (`reusable`), or closes it.
    fn release(&self, conn: UpstreamConn, reusable: bool);
}

/// A comparison of some tables' columns in a snapshot with the server's, made before a
/// statement whose result would not show a newer column is decided, and again when a held one
/// is approved (the table may have changed while it waited).
pub struct LiveCheck {
    inspector: Arc<Inspector>,
    database: String,
    catalog: Arc<Catalog>,
    live: Arc<dyn LiveCatalog>,
    tables: Vec<crate::sql::TableRef>,
    /// Operators and types the snapshot does not hold ([`crate::sql::Facts::live_names`]).
    names: Vec<crate::sql::LiveName>,
}

impl LiveCheck {
    /// Compares, over a connection of its own (the session's may be mid-transaction or
    /// mid-pipeline). When the server differs, reads the whole catalog on that connection,
    /// installs it for every session and returns its classifier.
    pub async fn run(&self) -> Result<Option<Arc<Classifier>>, String> {
        let live = &self.live;
        let tables: Vec<&crate::sql::TableRef> = self.tables.iter().collect();
        let names: Vec<&crate::sql::LiveName> = self.names.iter().collect();
        let mut conn = live.open().await?;
        let result = match self.catalog.changed_on(&mut conn, &tables, &names).await {
            Ok(false) => Ok(None),
            Ok(true) => match Catalog::load(&mut conn).await {
                Ok(fresh) => {
                    tracing::info!(
                        database = %self.database,
                        "catalog snapshot re-read: a statement's tables changed on the server"
                    );
                    Ok(Some(self.inspector.install_catalog(&self.database, fresh)))
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        live.release(conn, result.is_ok());
        result
    }

    /// What is compared (tables) and looked up (operators, types), for messages.
    pub fn subjects(&self) -> String {
        let tables = self.tables.iter().map(|t| t.to_string());
        let names = self.names.iter().map(|n| n.to_string());
        tables.chain(names).collect::<Vec<_>>().join(", ")
    }
}

/// One session's view: who it is, its SQL-level state, and which prepared statements were
/// rewritten by a mask when they were parsed.
pub struct SessionInspector {
    inspector: Arc<Inspector>,
    classifier: Arc<Classifier>,
    /// For statements whose results the relay cannot check against the snapshot
    /// ([`crate::sql::Facts::live_check`]).
    live: Arc<dyn LiveCatalog>,
    /// The inspector's generation when `classifier` was last compared with its current one.
    seen: u64,
    /// Who the session is, with its JSON for every record it writes.
    info: Serialized<Box<SessionInfo>>,
    ctx: RequestContext,
    sql_state: SessionSqlState,
    /// Allow, deny and mask decisions of recent statements, oldest first (see [`super::kept`]).
    kept: Vec<KeptDecision>,
}

impl SessionInspector {
    pub fn new(
        inspector: Arc<Inspector>,
        classifier: Arc<Classifier>,
        info: SessionInfo,
        live: Arc<dyn LiveCatalog>,
    ) -> SessionInspector {
        let seen = inspector.generation.load(Ordering::Acquire);
        let sql_state = SessionSqlState::new(classifier.catalog());
        let ctx = RequestContext {
            user: info.user.clone(),
            application_name: info.application_name.clone(),
            database: info.database.clone(),
        };
        SessionInspector {
            inspector,
            classifier,
            live,
            seen,
            info: Serialized::new(Box::new(info)),
            ctx,
            sql_state,
            kept: Vec::new(),
        }
    }

    /// Who the session is.
    pub fn info(&self) -> &SessionInfo {
        self.info.held()
    }

    /// Approvers who also connect as this session's user (`database_users` in the policy):
    /// its requests are theirs too, so they may not decide them.
    pub fn requester_aliases(&self) -> Vec<String> {
        self.inspector
            .policy
            .current()
            .approvers_connecting_as(&self.info().user)
    }

    /// The catalog snapshot the session decides with now (results are checked against it).
    pub fn catalog(&self) -> &Arc<Catalog> {
        self.classifier.catalog()
    }

    /// Moves to the database's current classifier when there is a newer one (a snapshot read
    /// after a schema change, or a reloaded policy's options). The session's own SQL state
    /// (prepared statements, search_path) carries over.
    fn refresh(&mut self) {
        let generation = self.inspector.generation.load(Ordering::Acquire);
        if generation == self.seen {
            return;
        }
        self.seen = generation;
        if let Some(current) = self.inspector.current(&self.info().database) {
            self.classifier = current;
        }
    }

    /// Whether `name` may be a statement the session prepared with SQL `PREPARE` (every
    /// definition seen counts, including ones the server may have refused).
    pub fn sql_prepared(&self, name: &str) -> bool {
        self.sql_state.prepared.contains_key(name)
    }

    /// The SQL-level effects (`DECLARE`, `DEALLOCATE`, `CLOSE`, `DISCARD ALL`) of the unit
    /// decided last, to apply once the server confirms they ran ([`Self::confirm_sql`]).
    pub fn take_deferred(&mut self) -> Vec<crate::sql::Deferred> {
        self.sql_state.take_deferred()
    }

    /// Applies an effect the server confirmed.
    pub fn confirm_sql(&mut self, d: &crate::sql::Deferred) {
        self.sql_state.confirm(d);
    }

    /// The server's transaction ended: no cursor declared in SQL is open any more, except
    /// `WITH HOLD` ones when it `committed`.
    pub fn transaction_ended(&mut self, committed: bool) {
        self.sql_state.transaction_ended(committed);
    }

    /// A protocol Close of portal `name` was sent: whether or not it runs, a SQL cursor of that
    /// name is no longer the one its DECLARE declared.
    pub fn portal_closed(&mut self, name: &str) {
        self.sql_state.portal_closed(name);
    }

    /// Whether `name` may be a cursor the session declared in SQL.
    pub fn sql_cursor(&self, name: &str) -> bool {
        self.sql_state.cursors.contains_key(name)
    }

    /// Decides a unit. Any failure to decide or to audit refuses it: nothing runs unaudited.
    pub async fn decide(&mut self, unit: &Unit) -> Decided {
        self.refresh();
        let (mut classified, text, params, protocol) = self.classify(unit);
        let mut unverified = None;
        if let Some(check) = self.live_check(&classified) {
            match check.run().await {
                Ok(None) => {}
                Ok(Some(current)) => {
                    // Decided with the columns the server has now (this very snapshot: a
                    // background re-read may replace the shared one meanwhile).
                    self.classifier = current;
                    classified = self.classify(unit).0;
                }
                Err(e) => unverified = Some(e),
            }
        }
        let classifier = self.classifier.clone();
        let policy = self.inspector.policy.current();
        let written = Written {
            inspector: &self.inspector,
            info: self.info.part(),
            protocol,
        };
        let hit = match unverified {
            None => self
                .kept
                .iter()
                .position(|k| k.holds_for(&classified.statements, &text, &policy, &classifier)),
            Some(_) => None,
        };
        let at = match hit {
            Some(at) => at,
            None => {
                // A decision made without the live comparison is not kept: the next run may
                // well get the comparison.
                let verified = unverified.is_none();
                let (decision, touches_pii) = evaluate(
                    &policy,
                    &classifier,
                    &classified,
                    &text,
                    &self.ctx,
                    unverified,
                );
                if !verified || !KeptDecision::reusable(&decision) {
                    let facts = Part::new(&classified.statements[..]);
                    let (id, params) = written
                        .record(
                            unit,
                            &policy,
                            &classified,
                            params,
                            facts,
                            &Part::new(&decision),
                        )
                        .await;
                    return decided(decision, id, classified, params, touches_pii);
                }
                self.kept.retain(|k| k.made_under(&policy, &classifier));
                if self.kept.len() >= KEPT {
                    self.kept.remove(0);
                }
                self.kept.push(KeptDecision::keep(
                    decision,
                    touches_pii,
                    &text,
                    &classified.statements,
                    &policy,
                    &classifier,
                ));
                self.kept.len() - 1
            }
        };
        let kept = &self.kept[at];
        let (id, params) = written
            .record(
                unit,
                &policy,
                &classified,
                params,
                kept.facts(),
                &kept.decision(),
            )
            .await;
        let decision = Decision::clone(&kept.decision());
        decided(decision, id, classified, params, kept.touches_pii())
    }

    /// Audits a fastpath FunctionCall, which is always refused: it runs a function by OID
    /// with no SQL to classify. The record names the OID asked for (its arguments are not
    /// kept: they may be anything, secrets included). None if the audit could not be written.
    pub async fn refused_fastpath(&mut self, oid: Option<u32>) -> Option<String> {
        let label = match oid {
            Some(oid) => format!("fastpath FunctionCall of function OID {oid}"),
            None => "malformed fastpath FunctionCall".to_owned(),
        };
        let facts = [crate::sql::Facts::unknown(label.clone())];
        let decision = Decision {
            rule_id: "built-in.fastpath".into(),
            ..Decision::fail_closed(
                "fastpath function calls run a function by OID, with no SQL to inspect",
            )
        };
        let record = DecisionRecord {
            session: self.info.part(),
            protocol: Protocol::Fastpath,
            sql: &label,
            rewritten_sql: None,
            params: &[],
            fingerprint: &label,
            facts: Part::new(&facts),
            decision: Part::new(&decision),
            outcome: None,
        };
        match self.inspector.audit.decision_of(&record).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(error = %e, "audit write failed for a refused fastpath call");
                None
            }
        }
    }

    fn classify(
        &mut self,
        unit: &Unit,
    ) -> (Arc<Classified>, String, Vec<Option<String>>, Protocol) {
        let classifier = self.classifier.clone();
        // A unit classified again (after a live catalog check) defers its effects again.
        drop(self.sql_state.take_deferred());
        match unit {
            Unit::Simple { text } => (
                classifier.classify_in_session(&mut self.sql_state, text),
                text.clone(),
                Vec::new(),
                Protocol::Simple,
            ),
            Unit::Extended { statements } => {
                let (c, text, params) = self.classify_extended(&classifier, statements);
                (c, text, params, Protocol::Extended)
            }
        }
    }

    /// The live comparison `classified` needs before it runs (see
    /// [`crate::sql::Facts::live_check`]), or None when none of its tables has anything to
    /// compare in this session's snapshot.
    pub fn live_check(&self, classified: &Classified) -> Option<LiveCheck> {
        let tables: Vec<crate::sql::TableRef> = classified
            .statements
            .iter()
            .flat_map(|f| f.live_check.iter().cloned())
            .collect();
        let names: Vec<crate::sql::LiveName> = classified
            .statements
            .iter()
            .flat_map(|f| f.live_names.iter().cloned())
            .collect();
        let catalog = self.classifier.catalog();
        if (tables.is_empty() && names.is_empty())
            || !catalog.worth_comparing(
                &tables.iter().collect::<Vec<_>>(),
                &names.iter().collect::<Vec<_>>(),
            )
        {
            return None;
        }
        Some(LiveCheck {
            inspector: self.inspector.clone(),
            database: self.info().database.clone(),
            catalog: catalog.clone(),
            live: self.live.clone(),
            tables,
            names,
        })
    }

    /// One Classified for all statements of an extended batch.
    fn classify_extended(
        &mut self,
        classifier: &Classifier,
        statements: &[ExtStatement],
    ) -> (Arc<Classified>, String, Vec<Option<String>>) {
        if let [only] = statements {
            let c = classifier.classify_in_session(&mut self.sql_state, &only.text);
            let c = classifier.with_parameter_types(c, &only.types);
            return (c, only.text.clone(), only.params.clone());
        }
        let mut facts: Vec<crate::sql::Facts> = Vec::new();
        let mut all = Classified {
            statements: Arc::new(Vec::new()),
            fingerprint: String::new(),
            redacted: String::new(),
        };
        let mut texts = Vec::new();
        let mut params = Vec::new();
        for s in statements {
            let c = classifier.classify_in_session(&mut self.sql_state, &s.text);
            let c = classifier.with_parameter_types(c, &s.types);
            facts.extend(c.statements.iter().cloned());
            if !all.fingerprint.is_empty() {
                all.fingerprint.push_str(";\n");
                all.redacted.push_str(";\n");
            }
            all.fingerprint.push_str(&c.fingerprint);
            all.redacted.push_str(&c.redacted);
            texts.push(s.text.as_str());
            params.extend(s.params.iter().cloned());
        }
        all.statements = Arc::new(facts);
        (Arc::new(all), texts.join(";\n"), params)
    }
}

/// Writes a unit's decision record: what one run of a decided unit adds to its decision.
struct Written<'a> {
    inspector: &'a Inspector,
    info: Part<'a, SessionInfo>,
    protocol: Protocol,
}

impl Written<'_> {
    /// Redacts the run's parameters as the decision says and writes its record; returns the
    /// record's id (None when the audit failed) and the parameters as recorded.
    async fn record(
        &self,
        unit: &Unit,
        policy: &Policy,
        classified: &Classified,
        mut params: Vec<Option<String>>,
        facts: Part<'_, [crate::sql::Facts]>,
        decision: &Part<'_, Decision>,
    ) -> (Result<String, AuditError>, Vec<Option<String>>) {
        redact_secret_params(unit, &mut params);
        policy.param_redaction(decision).apply(&mut params);
        if let Some(m) = &self.inspector.metrics {
            for f in classified.statements.iter() {
                m.statement(f.kind, decision.action);
            }
        }
        let record = DecisionRecord {
            session: self.info,
            protocol: self.protocol,
            sql: &classified.redacted,
            rewritten_sql: decision.rewritten.as_deref(),
            params: &params,
            fingerprint: &classified.fingerprint,
            facts,
            decision: *decision,
            outcome: None,
        };
        let written = self.inspector.audit.decision_of(&record).await;
        if let Err(e) = &written {
            tracing::error!(error = %e, "audit write failed; refusing the statement");
        }
        (written, params)
    }
}

/// The outcome of deciding: a unit whose record could not be written is refused.
fn decided(
    decision: Decision,
    written: Result<String, AuditError>,
    classified: Arc<Classified>,
    params: Vec<Option<String>>,
    touches_pii: bool,
) -> Decided {
    let (decision, id) = match written {
        Ok(id) => (decision, Some(id)),
        Err(e) => (
            Decision::fail_closed(format!("the audit store is unavailable: {e}")),
            None,
        ),
    };
    Decided {
        decision,
        id,
        classified,
        params,
        touches_pii,
    }
}

/// The policy's decision for `classified`, and whether the server's messages about it may
/// quote PII. `unverified` is why its columns could not be compared with the server's.
fn evaluate(
    policy: &Policy,
    classifier: &Classifier,
    classified: &Classified,
    text: &str,
    ctx: &RequestContext,
    unverified: Option<String>,
) -> (Decision, bool) {
    let mut decision = match unverified {
        None => policy.evaluate(classified, text, ctx, classifier.catalog()),
        Some(e) => Decision::fail_closed(format!(
            "airlock could not compare the columns of this statement's tables (or look up \
             the operators and types it names) with the server's catalog, and its result \
             would not show a column added since: {e}"
        )),
    };
    if let Some(rewritten) = decision.rewritten.clone() {
        if let Err(why) = same_shape(classifier, classified, &rewritten) {
            tracing::warn!(%why, "a masked rewrite does not classify as its statement");
            policy.mask_failed(&mut decision, &why);
        }
    }
    // The server's errors quote the value they failed on; for a statement holding a secret
    // (a password in a connection string, cast to a number) that value is the secret, and the
    // audit keeps the error: withheld like PII, its code and object names stay.
    let touches_pii = classified.statements.iter().any(|f| f.flags.has_secret)
        || policy.messages_may_quote_pii(&classified.statements, &decision, classifier.catalog());
    (decision, touches_pii)
}

/// Bound parameters that carry secrets, redacted as the same value written as a literal would
/// be: a connection string's password, a URL's, or a parameter standing where a password goes
/// (see [`crate::sql::secret_params`]). `params` are the unit's, statement after statement, as
/// [`SessionInspector::decide`] lists them. The audit record and the approval request get
/// these; the grant binding is computed from the unit itself, so it still covers what runs.
fn redact_secret_params(unit: &Unit, params: &mut [Option<String>]) {
    let Unit::Extended { statements } = unit else {
        return;
    };
    let mut at = 0;
    for s in statements.iter().filter(|s| !s.params.is_empty()) {
        let places = crate::sql::secret_params(&s.text);
        for (i, shown) in s.params.iter().enumerate() {
            let Some(slot) = params.get_mut(at + i) else {
                return;
            };
            let binary = s.binary.get(i).copied().unwrap_or(false);
            let redacted = shown
                .as_deref()
                .and_then(|v| redact_param_shown(v, binary, places.contains(&(i + 1))));
            if let Some(r) = redacted {
                *slot = Some(r);
            }
        }
        at += s.params.len();
    }
}

/// One parameter as shown (a binary one as `\x…` hex, which hides nothing from a reader): what
/// it redacts to, if it carries a secret. A binary value goes whole.
fn redact_param_shown(shown: &str, binary: bool, secret_place: bool) -> Option<String> {
    if !binary {
        return crate::sql::redact_param(shown, secret_place);
    }
    let bytes = shown.strip_prefix("\\x").and_then(|h| hex::decode(h).ok());
    let text = bytes.map_or_else(
        || shown.to_owned(),
        |b| String::from_utf8_lossy(&b).into_owned(),
    );
    crate::sql::redact_param(&text, secret_place).map(|_| "***".to_owned())
}

/// The error a denied unit gets.
pub fn denied_error(d: &Decision) -> Bytes {
    PgError::error(
        sqlstate::INSUFFICIENT_PRIVILEGE,
        format!(
            "airlock denied this statement (rule {}): {}",
            d.rule_id, d.reason
        ),
    )
    .with_detail(format!("Rule {} at {}.", d.rule_id, d.rule_source))
    .to_bytes()
}

/// The error a held unit gets when no approval channel is configured.
pub fn held_without_approvals_error(d: &Decision, request: Option<&str>) -> Bytes {
    PgError::error(
        sqlstate::INSUFFICIENT_PRIVILEGE,
        format!(
            "airlock held this statement for approval (request {}, rule {}): {}",
            request.unwrap_or("-"),
            d.rule_id,
            d.reason
        ),
    )
    .with_hint("No approval channel is configured on this gateway, so nothing ran.")
    .to_bytes()
}

/// Builds a simple Query message for rewritten SQL.
pub fn query_message(sql: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(sql.len() + 6);
    b.extend_from_slice(b"Q");
    b.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
    b.extend_from_slice(sql.as_bytes());
    b.extend_from_slice(&[0]);
    b.freeze()
}

/// Turns a decision into relay instructions for units that are not held.
pub fn simple_outcome(decision: &Decision, decision_id: Option<String>) -> UnitDecision {
    match decision.action {
        Action::Allow => UnitDecision::Forward {
            decision_id,
            replacement: None,
        },
        Action::Deny => UnitDecision::Refuse {
            error: denied_error(decision),
            decision_id,
        },
        Action::Mask | Action::Hold => UnitDecision::Refuse {
            error: held_without_approvals_error(decision, decision_id.as_deref()),
            decision_id,
        },
    }
}

/// What runs instead of a masked statement must be the same statements to the classifier:
/// as many, each of the same kind over the same relations, with no risk the original lacked.
/// The rewrite is checked to read back as built (`policy::mask`); this second look, by the
/// classifier that judged the original, keeps a printing slip of any kind from sending text
/// nobody decided.
fn same_shape(
    classifier: &Classifier,
    original: &Classified,
    rewritten: &str,
) -> Result<(), String> {
    let again = classifier.classify(rewritten);
    if again.statements.len() != original.statements.len() {
        return Err(format!(
            "the rewrite has {} statement(s) where {} were decided",
            again.statements.len(),
            original.statements.len()
        ));
    }
    let sorted = |v: &[crate::sql::TableRef]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    for (a, o) in again.statements.iter().zip(original.statements.iter()) {
        if a.kind != o.kind
            || sorted(&a.tables_read) != sorted(&o.tables_read)
            || sorted(&a.tables_written) != sorted(&o.tables_written)
            || (a.flags.needs_review() && !o.flags.needs_review())
        {
            return Err(format!(
                "the rewrite classifies as {} where the statement was {}",
                a.label, o.label
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(text: &str, params: &[Option<&str>], binary: &[bool]) -> ExtStatement {
        ExtStatement {
            text: text.into(),
            types: Vec::new(),
            params: params.iter().map(|p| p.map(str::to_owned)).collect(),
            binary: binary.to_vec(),
            parse_only: false,
            bound: true,
        }
    }

    /// What the audit and the approval request get for a batch's parameters.
    fn redacted(statements: Vec<ExtStatement>) -> Vec<Option<String>> {
        let mut params: Vec<Option<String>> = statements
            .iter()
            .flat_map(|s| s.params.iter().cloned())
            .collect();
        redact_secret_params(&Unit::Extended { statements }, &mut params);
        params
    }

    /// A password sent as a bound parameter is redacted as the same literal would be.
    #[test]
    fn parameters_carrying_credentials_are_redacted() {
        let secret_url = format!("\\x{}", hex::encode("postgres://u:s3cret@h/db"));
        let got = redacted(vec![
            statement(
                "SELECT dblink_connect($1)",
                &[Some("host=10.0.0.5 user=etl password=Tr0ub4dor")],
                &[false],
            ),
            statement(
                "SELECT set_config('app.password', $1, false), $2",
                &[Some("hunter2"), Some("kept")],
                &[false, false],
            ),
            statement(
                "SELECT $1, $2, $3",
                &[Some(&secret_url), None, Some("\\x6869")],
                &[true, false, true],
            ),
        ]);
        assert_eq!(
            got,
            [
                Some("host=10.0.0.5 user=etl password='***'".to_owned()),
                Some("***".to_owned()),
                Some("kept".to_owned()),
                Some("***".to_owned()),
                None,
                Some("\\x6869".to_owned()),
            ]
        );
    }

    #[test]
    fn parameters_without_credentials_are_kept() {
        let params = [Some("Reset password"), Some("host=h user=etl"), None];
        let got = redacted(vec![statement(
            "SELECT $1, dblink_connect($2), $3",
            &params,
            &[false, false, false],
        )]);
        let want: Vec<Option<String>> = params.iter().map(|p| p.map(str::to_owned)).collect();
        assert_eq!(got, want);
    }
}

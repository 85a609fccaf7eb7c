//! Inspector tests over a fixture store with known times: filters, printers, exit codes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use clap::Parser;

use super::filter::{Filter, FilterSpec};
use super::*;
use crate::audit::tests::ChainBuilder;
use crate::audit::*;
use crate::policy::{Action, Decision};
use crate::sql::{Facts, Kind, TableRef};

/// 2024-05-01T12:00:00Z
pub(crate) const T0: i64 = 1_714_564_800_000_000;
pub(crate) const MIN: i64 = 60_000_000;

fn session(user: &str, app: &str, db: &str, sid: &str) -> SessionInfo {
    SessionInfo {
        session_id: sid.into(),
        client_addr: "10.0.0.7:51000".into(),
        user: user.into(),
        application_name: app.into(),
        database: db.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn decision(
    who: SessionInfo,
    sql: &str,
    rewritten: Option<&str>,
    kind: Kind,
    table: &str,
    action: Action,
    rule: &str,
) -> Entry {
    let mut facts = Facts::unknown("statement");
    facts.kind = kind;
    facts.tables_read.push(TableRef {
        schema: "public".into(),
        name: table.into(),
    });
    let mut d = Decision::fail_closed("fixture");
    d.action = action;
    d.rule_id = rule.into();
    d.rule_source = "policies/default.toml:1".into();
    d.rewritten = rewritten.map(String::from);
    Entry::Decision(DecisionEntry {
        session: who,
        protocol: Protocol::Simple,
        sql: sql.into(),
        rewritten_sql: rewritten.map(String::from),
        params: vec![Some("42".into()), None],
        fingerprint: sql.into(),
        facts: vec![facts],
        decision: d,
        outcome: None,
    })
}

fn outcome(decision_id: &str, tag: Option<&str>, error: Option<(&str, &str)>) -> Entry {
    Entry::Outcome(OutcomeEntry {
        decision_id: decision_id.into(),
        result: RunResult {
            tags: tag.map(|t| vec![t.to_owned()]).unwrap_or_default(),
            error: error.map(|(c, m)| (c.to_owned(), m.to_owned())),
            rows: 3,
            duration_us: 1_250,
        },
    })
}

fn approval(decision_id: &str, actor: &str, action: ApprovalAction) -> Entry {
    Entry::Approval(ApprovalEntry {
        request_id: "req-1".into(),
        decision_id: decision_id.into(),
        actor: actor.into(),
        channel: "teams".into(),
        action,
        rationale: Some("planned migration".into()),
        at: "2024-05-01T12:21:00Z".into(),
    })
}

/// Writes the fixture and closes the store. Returns the decision ids D1..D6 by name.
pub(crate) fn fixture(dir: &Path) -> BTreeMap<&'static str, String> {
    let store = Arc::new(SledStore::open(dir).unwrap());
    let mut c = ChainBuilder::new(store.clone());
    let mut ids = BTreeMap::new();
    let alice = session("alice", "psql", "shop", "s1");
    c.push(
        T0,
        Entry::Gateway(GatewayEvent {
            event: "started".into(),
            detail: "airlock 0.1.0".into(),
        }),
    );
    c.push(
        T0 + 1,
        Entry::Session(SessionEvent {
            session: alice.clone(),
            event: SessionEventKind::Connected,
            detail: String::new(),
        }),
    );
    let d1 = c.push(
        T0 + MIN,
        decision(
            alice.clone(),
            "SELECT * FROM orders",
            None,
            Kind::Read,
            "orders",
            Action::Allow,
            "default.read",
        ),
    );
    c.push(T0 + MIN + 5, outcome(&d1, Some("SELECT 3"), None));
    let d2 = c.push(
        T0 + 10 * MIN,
        decision(
            session("bob", "etl", "crm", "s3"),
            "SELECT email FROM customers",
            Some("SELECT md5(email) FROM customers"),
            Kind::Export,
            "customers",
            Action::Mask,
            "pii-mask",
        ),
    );
    c.push(T0 + 10 * MIN + 5, outcome(&d2, Some("SELECT 5"), None));
    let d3 = c.push(
        T0 + 20 * MIN,
        decision(
            session("carol", "agent", "shop", "s4"),
            "DROP TABLE orders",
            None,
            Kind::Ddl,
            "orders",
            Action::Hold,
            "default.ddl",
        ),
    );
    c.push(
        T0 + 20 * MIN + 1,
        approval(&d3, "airlock", ApprovalAction::Requested),
    );
    c.push(
        T0 + 21 * MIN,
        approval(&d3, "dave", ApprovalAction::Approve),
    );
    c.push(T0 + 21 * MIN + 5, outcome(&d3, Some("DROP TABLE"), None));
    let d4 = c.push(
        T0 + 30 * MIN,
        decision(
            session("eve", "agent", "shop", "s5"),
            "DELETE FROM orders",
            None,
            Kind::Write,
            "orders",
            Action::Deny,
            "no-unbounded-write",
        ),
    );
    c.push(
        T0 + 30 * MIN + 1,
        outcome(
            &d4,
            None,
            Some(("42501", "denied by rule no-unbounded-write")),
        ),
    );
    let d5 = c.push(
        T0 + 40 * MIN,
        decision(
            session("alice", "psql", "shop", "s2"),
            "SELECT 1/0",
            None,
            Kind::Read,
            "dual",
            Action::Allow,
            "default.read",
        ),
    );
    c.push(
        T0 + 40 * MIN + 1,
        outcome(&d5, None, Some(("22012", "division by zero"))),
    );
    // D6's outcome came while its decision was still queued: folded into the decision.
    let mut d6 = decision(
        alice,
        "select *\n  from ORDERS\n where note = 'a,\"b\"'",
        None,
        Kind::Read,
        "orders",
        Action::Allow,
        "default.read",
    );
    if let Entry::Decision(d) = &mut d6 {
        d.outcome = Some(RunResult {
            tags: vec!["SELECT 4".into()],
            error: None,
            rows: 4,
            duration_us: 800,
        });
    }
    let d6 = c.push(T0 + 50 * MIN, d6);
    for (k, v) in [
        ("D1", d1),
        ("D2", d2),
        ("D3", d3),
        ("D4", d4),
        ("D5", d5),
        ("D6", d6),
    ] {
        ids.insert(k, v);
    }
    store.flush().unwrap();
    drop(c);
    drop(store);
    ids
}

/// Names (D1…) of the statements a spec selects, straight from the store.
fn select(dir: &Path, ids: &BTreeMap<&'static str, String>, spec: FilterSpec) -> Vec<&'static str> {
    let store = SledStore::open_existing(dir).unwrap();
    let filter = Filter::compile(&spec, T0 + 60 * MIN).unwrap();
    query::statements(&store, &filter, false)
        .unwrap()
        .map(|v| {
            let v = v.unwrap();
            *ids.iter().find(|(_, id)| **id == v.id).unwrap().0
        })
        .collect()
}

fn spec(f: impl FnOnce(&mut FilterSpec)) -> FilterSpec {
    let mut s = FilterSpec::default();
    f(&mut s);
    s
}

#[test]
fn every_filter_selects_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let d = dir.path();
    let some = |s: &str| Some(s.to_owned());
    let cases: Vec<(FilterSpec, Vec<&str>)> = vec![
        (
            FilterSpec::default(),
            vec!["D1", "D2", "D3", "D4", "D5", "D6"],
        ),
        (spec(|s| s.pattern = some("orders")), vec!["D1", "D3", "D4"]),
        (
            spec(|s| {
                s.pattern = some("orders");
                s.ignore_case = true
            }),
            vec!["D1", "D3", "D4", "D6"],
        ),
        (
            spec(|s| {
                s.pattern = some("orders");
                s.invert = true
            }),
            vec!["D2", "D5", "D6"],
        ),
        (spec(|s| s.pattern = some(r"^SELECT \d")), vec!["D5"]),
        // Matches the rewritten SQL only.
        (
            spec(|s| {
                s.pattern = some("md5(");
                s.fixed_strings = true
            }),
            vec!["D2"],
        ),
        (spec(|s| s.user = some("alice")), vec!["D1", "D5", "D6"]),
        (
            spec(|s| s.user = some("[ab]*")),
            vec!["D1", "D2", "D5", "D6"],
        ),
        (spec(|s| s.app = some("etl")), vec!["D2"]),
        (spec(|s| s.db = some("crm")), vec!["D2"]),
        (spec(|s| s.kind = some("ddl")), vec!["D3"]),
        (spec(|s| s.kind = some("EXPORT")), vec!["D2"]),
        (spec(|s| s.decision = some("hold")), vec!["D3"]),
        (spec(|s| s.decision = some("mask")), vec!["D2"]),
        (spec(|s| s.decision = some("deny")), vec!["D4"]),
        (
            spec(|s| s.rule = some("default.*")),
            vec!["D1", "D3", "D5", "D6"],
        ),
        (spec(|s| s.rule = some("pii-mask")), vec!["D2"]),
        (
            spec(|s| s.table = some("orders")),
            vec!["D1", "D3", "D4", "D6"],
        ),
        (spec(|s| s.table = some("public.customers")), vec!["D2"]),
        (spec(|s| s.table = some("other.orders")), vec![]),
        (spec(|s| s.approver = some("dave")), vec!["D3"]),
        // Bookkeeping steps are not verdicts.
        (spec(|s| s.approver = some("airlock")), vec![]),
        (spec(|s| s.session = some("s2")), vec!["D5"]),
        (
            spec(|s| s.since = some("2024-05-01T12:25:00Z")),
            vec!["D4", "D5", "D6"],
        ),
        (
            spec(|s| s.until = some("2024-05-01T12:15:00Z")),
            vec!["D1", "D2"],
        ),
        (
            spec(|s| {
                s.since = some("2024-05-01T12:10:00Z");
                s.until = some("2024-05-01T12:30:00Z");
            }),
            vec!["D2", "D3", "D4"],
        ),
        // Relative to the "now" of `select` (T0 + 60 min).
        (spec(|s| s.since = some("15m")), vec!["D6"]),
        (spec(|s| s.errors = true), vec!["D4", "D5"]),
        (
            spec(|s| {
                s.errors = true;
                s.user = some("alice")
            }),
            vec!["D5"],
        ),
    ];
    for (s, want) in cases {
        assert_eq!(select(d, &ids, s.clone()), want, "{s:?}");
    }
}

#[test]
fn bad_filters_are_errors_not_empty_results() {
    let now = T0;
    let some = |s: &str| Some(s.to_owned());
    for s in [
        spec(|s| s.pattern = some("md5(")),
        spec(|s| s.kind = some("reads")),
        spec(|s| s.decision = some("maybe")),
        spec(|s| s.since = some("last tuesday")),
        spec(|s| s.table = some("[")),
    ] {
        assert!(
            matches!(Filter::compile(&s, now), Err(InspectError::BadFilter(_))),
            "{s:?}"
        );
    }
}

#[test]
fn filter_spec_round_trips_through_query_parameters() {
    let original = FilterSpec {
        pattern: Some("a b&c".into()),
        ignore_case: true,
        invert: true,
        user: Some("alice".into()),
        since: Some("2024-05-01T12:00:00.000000Z".into()),
        errors: true,
        ..FilterSpec::default()
    };
    let mut back = FilterSpec::default();
    for (k, v) in original.to_pairs() {
        assert!(back.set_param(k, &v).unwrap());
    }
    assert_eq!(back, original);
    assert!(!back.set_param("nope", "1").unwrap());
    assert!(back.set_param("errors", "perhaps").is_err());
}

// --- the command line, through `execute` -------------------------------------------------

#[derive(Parser)]
struct TestCli {
    #[command(flatten)]
    audit: AuditArgs,
}

pub(crate) struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

pub(crate) fn run_cli(args: &[&str]) -> Run {
    let mut argv = vec!["audit"];
    argv.extend_from_slice(args);
    let cli = TestCli::try_parse_from(argv).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = execute(&cli.audit, &mut out, &mut err, OutputOptions::default());
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

#[test]
fn grep_exit_codes_and_count() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let store = dir.path().to_str().unwrap();
    let hit = run_cli(&["--store", store, "grep", "orders"]);
    assert_eq!(hit.code, EXIT_MATCH, "{}", hit.err);
    assert_eq!(hit.out.lines().count(), 3);
    let none = run_cli(&["--store", store, "grep", "no such text"]);
    assert_eq!((none.code, none.out.as_str()), (EXIT_NONE, ""));
    let bad = run_cli(&["--store", store, "grep", "md5("]);
    assert_eq!(bad.code, EXIT_ERROR);
    assert!(bad.err.contains("pattern"), "{}", bad.err);
    let count = run_cli(&["--store", store, "grep", "-c", "-i", "orders"]);
    assert_eq!((count.code, count.out.as_str()), (EXIT_MATCH, "4\n"));
    let zero = run_cli(&["--store", store, "grep", "-c", "nothing"]);
    assert_eq!((zero.code, zero.out.as_str()), (EXIT_NONE, "0\n"));
    let missing = run_cli(&["--store", "/nonexistent/airlock", "grep", "x"]);
    assert_eq!(missing.code, EXIT_ERROR);
    assert!(missing.err.contains("no audit store"), "{}", missing.err);
    let nowhere = run_cli(&["grep", "x"]);
    assert_eq!(nowhere.code, EXIT_ERROR);
    assert!(nowhere.err.contains("--store"), "{}", nowhere.err);
}

#[test]
fn grep_text_output_is_one_readable_line_per_statement() {
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let store = dir.path().to_str().unwrap();
    let r = run_cli(&["--store", store, "grep", "-i", r"select \*\s+from orders"]);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.out); // D1 and the multi-line D6
    assert!(lines[0].contains(&ids["D1"]));
    assert!(lines[0].contains("ALLOW"));
    assert!(lines[0].contains("alice@shop"));
    assert!(
        lines[0].contains("-> SELECT 3 (3 rows, 1.2ms)"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("select * from ORDERS where note"),
        "{}",
        lines[1]
    );
    assert!(!r.out.contains('\x1b'), "no colour unless asked");
    let held = run_cli(&["--store", store, "grep", "DROP"]);
    assert!(held.out.contains("[approved by dave]"), "{}", held.out);
    let coloured = run_cli(&["--store", store, "--color", "always", "grep", "DROP"]);
    assert!(
        coloured.out.contains("\x1b[1;31mDROP\x1b[0m"),
        "{}",
        coloured.out
    );
}

#[test]
fn json_output_parses_back_with_stable_fields() {
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let store = dir.path().to_str().unwrap();
    let r = run_cli(&["--store", store, "grep", "-o", "json", "DROP"]);
    assert_eq!(r.code, EXIT_MATCH);
    let line = r.out.lines().next().unwrap();
    let v: StatementView = serde_json::from_str(line).unwrap();
    assert_eq!(v.id, ids["D3"]);
    assert_eq!(v.decision, Action::Hold);
    assert_eq!(v.approvals.len(), 2);
    assert_eq!(v.outcome.unwrap().tags, vec!["DROP TABLE"]);
    let raw: serde_json::Value = serde_json::from_str(line).unwrap();
    for field in [
        "id",
        "seq",
        "time",
        "session_id",
        "client_addr",
        "user",
        "application_name",
        "database",
        "protocol",
        "sql",
        "rewritten_sql",
        "params",
        "fingerprint",
        "kinds",
        "tables",
        "decision",
        "rule_id",
        "rule_source",
        "reason",
        "facts",
        "approvals",
        "outcome",
        "prev_hash",
        "hash",
    ] {
        assert!(raw.get(field).is_some(), "missing field {field}");
    }
    assert_eq!(raw["decision"], "hold");
    assert_eq!(raw["kinds"][0], "ddl");
}

#[test]
fn show_tells_the_whole_story() {
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let store = dir.path().to_str().unwrap();
    let r = run_cli(&["--store", store, "show", &ids["D3"]]);
    assert_eq!(r.code, EXIT_MATCH, "{}", r.err);
    for want in [
        "DROP TABLE orders",
        "HOLD by rule default.ddl",
        "requested by airlock",
        "approve by dave via teams",
        "planned migration",
        "DROP TABLE (3 rows)",
        "link ok",
        "s4 from 10.0.0.7:51000",
    ] {
        assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    }
    let json = run_cli(&["--store", store, "show", "-o", "json", &ids["D3"]]);
    let v: ShowView = serde_json::from_str(json.out.trim()).unwrap();
    assert_eq!(v.statement.unwrap().approvals[1].actor, "dave");
    let missing = run_cli(&["--store", store, "show", "01NOPE"]);
    assert_eq!(missing.code, EXIT_NONE);
    assert!(missing.err.contains("01NOPE"));
}

#[test]
fn tail_prints_the_latest_records_of_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let store = dir.path().to_str().unwrap();
    let r = run_cli(&["--store", store, "tail", "-n", "3"]);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.out);
    assert!(lines[0].contains("decision") && lines[0].contains("SELECT 1/0"));
    assert!(lines[1].contains("outcome") && lines[1].contains("22012"));
    assert!(lines[2].contains(&ids["D6"]));
    assert!(
        lines[2].contains("-> SELECT 4 (4 rows) 0.8ms"),
        "{}",
        lines[2]
    );
    let shown = run_cli(&["--store", store, "show", &ids["D6"], "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&shown.out).unwrap();
    assert_eq!(
        v["statement"]["outcome"]["tags"][0], "SELECT 4",
        "{}",
        shown.out
    );
    assert_eq!(v["statement"]["outcome"]["id"], ids["D6"].as_str());
    // D6's SQL has three lines: the later ones are marked as its continuation, so stored text
    // cannot print lines that pass for fields of their own.
    let text = run_cli(&["--store", store, "show", &ids["D6"]]).out;
    let at = text
        .lines()
        .position(|l| l.starts_with("  sql "))
        .expect(&text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[at + 1],
        format!("  {:<12} │   from ORDERS", ""),
        "{text}"
    );
    assert_eq!(
        lines[at + 2],
        format!("  {:<12} │  where note = 'a,\"b\"'", ""),
        "{text}"
    );
    let all = run_cli(&["--store", store, "tail", "-n", "100", "-o", "json"]);
    let records: Vec<Record> = all
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 15);
    assert_eq!(records[0].kind, RecordKind::Gateway);
    assert_eq!(records[1].kind, RecordKind::Session);
}

#[test]
fn verify_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let store = dir.path().to_str().unwrap();
    let ok = run_cli(&["--store", store, "verify"]);
    assert_eq!(ok.code, EXIT_MATCH, "{}{}", ok.out, ok.err);
    assert!(ok.out.starts_with("ok: 15 records"), "{}", ok.out);
    {
        let s = SledStore::open_existing(dir.path()).unwrap();
        s.tamper_remove(s.seq_of_id(&ids["D4"]).unwrap().unwrap())
            .unwrap();
    }
    let broken = run_cli(&["--store", store, "verify", "-o", "json"]);
    assert_eq!(broken.code, EXIT_NONE);
    let report: VerifyReport = serde_json::from_str(broken.out.trim()).unwrap();
    let b = report.broken.unwrap();
    assert_eq!(b.kind, BreakKind::Missing);
    assert_eq!(b.id.as_deref(), Some(ids["D4"].as_str()));
}

#[test]
fn export_csv_and_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let store = dir.path().to_str().unwrap();
    let csv = run_cli(&[
        "--store", store, "export", "--format", "csv", "--user", "alice",
    ]);
    assert_eq!(csv.code, EXIT_MATCH, "{}", csv.err);
    assert!(csv.out.starts_with("id,seq,time,"));
    // D6's SQL holds a newline, a comma and quotes: one quoted field.
    assert!(
        csv.out
            .contains("\"select *\n  from ORDERS\n where note = 'a,\"\"b\"\"'\""),
        "{}",
        csv.out
    );
    let jsonl = run_cli(&["--store", store, "export", "--format", "jsonl", "--errors"]);
    let n = jsonl
        .out
        .lines()
        .map(|l| serde_json::from_str::<StatementView>(l).unwrap())
        .filter(|v| v.outcome.as_ref().unwrap().error.is_some())
        .count();
    assert_eq!(n, 2);
    let raw = run_cli(&[
        "--store",
        store,
        "export",
        "--format",
        "jsonl",
        "--raw",
        "--since",
        "2024-05-01T12:40:00Z",
    ]);
    let kinds: Vec<RecordKind> = raw
        .out
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).unwrap().kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            RecordKind::Decision,
            RecordKind::Outcome,
            RecordKind::Decision
        ]
    );
    let refused = run_cli(&["--store", store, "export", "--format", "csv", "--raw"]);
    assert_eq!(refused.code, EXIT_ERROR);
}

/// A writer whose reader has gone away.
struct ClosedPipe;

impl std::io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
}

#[test]
fn a_closed_pipe_is_success() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let cli = TestCli::try_parse_from([
        "audit",
        "--store",
        dir.path().to_str().unwrap(),
        "grep",
        ".",
    ])
    .unwrap();
    let mut err = Vec::new();
    let code = execute(
        &cli.audit,
        &mut ClosedPipe,
        &mut err,
        OutputOptions::default(),
    );
    assert_eq!(code, EXIT_MATCH);
    assert!(err.is_empty());
}

#[test]
fn a_locked_store_without_an_api_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let _gateway = SledStore::open(dir.path()).unwrap();
    let r = run_cli(&["--store", dir.path().to_str().unwrap(), "verify"]);
    assert_eq!(r.code, EXIT_ERROR);
    assert!(
        r.err.contains("in use by a running gateway") && r.err.contains("--admin"),
        "{}",
        r.err
    );
}

#[test]
fn verbose_says_which_source_was_used() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let r = run_cli(&["--store", dir.path().to_str().unwrap(), "-v", "verify"]);
    assert_eq!(r.code, EXIT_MATCH);
    assert!(r.err.contains("directly"), "{}", r.err);
    let quiet = run_cli(&["--store", dir.path().to_str().unwrap(), "verify"]);
    assert!(quiet.err.is_empty());
}

#[test]
fn show_names_the_columns_a_write_copies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let mut c = ChainBuilder::new(store.clone());
    let mut entry = decision(
        session("alice", "psql", "shop", "s1"),
        "INSERT INTO notes (body) SELECT email FROM customers",
        None,
        Kind::Write,
        "customers",
        Action::Hold,
        "default.export",
    );
    if let Entry::Decision(d) = &mut entry {
        d.facts[0].stored_columns.push(crate::sql::ColumnRef {
            table: TableRef {
                schema: "public".into(),
                name: "customers".into(),
            },
            column: "email".into(),
        });
    }
    let id = c.push(T0, entry);
    drop(c);
    drop(store);
    let r = run_cli(&["--store", dir.path().to_str().unwrap(), "show", &id]);
    assert_eq!(r.code, EXIT_MATCH, "{}", r.err);
    assert!(r.out.contains("copies public.customers.email"), "{}", r.out);
}

/// Appends `payload` to every string in `value` that can take it and still decode as `T`
/// (enum names and other fixed vocabulary cannot), so each printable field carries it.
fn poison<T: serde::de::DeserializeOwned>(value: &mut serde_json::Value, payload: &str) {
    fn paths(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(_) => out.push(at),
            serde_json::Value::Array(xs) => {
                for (i, x) in xs.iter().enumerate() {
                    paths(x, format!("{at}/{i}"), out);
                }
            }
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    paths(x, format!("{at}/{k}"), out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    paths(value, String::new(), &mut all);
    let mut poisoned = 0;
    for path in all {
        let before = value.pointer(&path).unwrap().clone();
        let s = before.as_str().unwrap();
        *value.pointer_mut(&path).unwrap() = format!("{s}{payload}").into();
        if serde_json::from_value::<T>(value.clone()).is_ok() {
            poisoned += 1;
        } else {
            *value.pointer_mut(&path).unwrap() = before;
        }
    }
    assert!(poisoned > 0);
}

/// Text output in which the only escape sequences are the printer's own colours.
fn assert_terminal_safe(out: &str, colour: bool) {
    let colours = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
    let rest = colours.replace_all(out, "");
    for c in [
        '\x1b', '\r', '\u{7}', '\u{9b}', '\u{202e}', '\u{2066}', '\u{200b}', '\u{feff}',
    ] {
        assert!(!rest.contains(c), "raw {c:?} in\n{out:?}");
    }
    assert!(
        out.contains("\\x1b[2K") && out.contains("\\u{202e}"),
        "{out:?}"
    );
    assert_eq!(colour, out.contains('\x1b'), "{out:?}");
}

#[test]
fn text_output_shows_control_and_invisible_characters_as_escapes() {
    use printer::text;
    let payload = "\x1b[2K\x1b[1G\r\u{7}\u{9b}1A\u{202e}\u{2066}\u{200b}\u{feff}";
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let store = dir.path().to_str().unwrap();
    let grep = run_cli(&["--store", store, "grep", "-o", "json", "."]);
    let tail = run_cli(&["--store", store, "tail", "-n", "100", "-o", "json"]);
    let mut shows: Vec<String> = ["D2", "D3", "D4"]
        .iter()
        .map(|d| run_cli(&["--store", store, "show", "-o", "json", &ids[d]]).out)
        .collect();
    let first: Record = serde_json::from_str(tail.out.lines().next().unwrap()).unwrap();
    shows.push(run_cli(&["--store", store, "show", "-o", "json", &first.id]).out);
    let hl = regex::Regex::new("DROP").unwrap();
    for colour in [false, true] {
        let st = Style { color: colour };
        let mut out = Vec::new();
        for line in grep.out.lines() {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            poison::<StatementView>(&mut v, payload);
            let v: StatementView = serde_json::from_value(v).unwrap();
            text::statement_line(&mut out, &v, &st, Some(&hl)).unwrap();
        }
        for line in tail.out.lines() {
            let mut r: serde_json::Value = serde_json::from_str(line).unwrap();
            poison::<Record>(&mut r, payload);
            let r: Record = serde_json::from_value(r).unwrap();
            text::record_line(&mut out, &r, &st).unwrap();
        }
        for show in &shows {
            let mut s: serde_json::Value = serde_json::from_str(show).unwrap();
            poison::<ShowView>(&mut s, payload);
            let s: ShowView = serde_json::from_value(s).unwrap();
            text::show(&mut out, &s, &st).unwrap();
        }
        assert_terminal_safe(&String::from_utf8(out).unwrap(), colour);
    }
}

#[test]
fn json_output_escapes_terminal_controls() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let mut c = ChainBuilder::new(store.clone());
    c.push(
        T0,
        decision(
            session("mallory", "agent\x1b[2K", "shop", "s9"),
            "ALTER TABLE ledger DROP COLUMN amount -- \x1b[2K\rCOMMENT ON TABLE ledger",
            None,
            Kind::Ddl,
            "ledger",
            Action::Hold,
            "default.ddl",
        ),
    );
    store.flush().unwrap();
    drop(c);
    drop(store);
    let store = dir.path().to_str().unwrap();
    let json = run_cli(&["--store", store, "grep", "-o", "json", "ledger"]);
    assert!(!json.out.contains(['\x1b', '\r']), "{:?}", json.out);
    assert!(json.out.contains("-- \\u001b[2K\\rCOMMENT"), "{}", json.out);
    let text = run_cli(&["--store", store, "grep", "ledger"]);
    assert!(!text.out.contains(['\x1b', '\r']), "{:?}", text.out);
    assert!(
        text.out
            .contains("amount -- \\x1b[2K\\rCOMMENT ON TABLE ledger"),
        "{}",
        text.out
    );
}

/// The link index is not in the hash chain. An index edited to list another statement's
/// approval under D1 must not make `show D1` claim that approval.
#[test]
fn an_edited_link_index_cannot_lend_a_statement_another_ones_approval() {
    let dir = tempfile::tempdir().unwrap();
    let ids = fixture(dir.path());
    let store = SledStore::open(dir.path()).unwrap();
    let d1 = store.seq_of_id(&ids["D1"]).unwrap().unwrap();
    let d3 = store.seq_of_id(&ids["D3"]).unwrap().unwrap();
    let d3_view = crate::audit::view::show(&store, &ids["D3"])
        .unwrap()
        .unwrap();
    assert!(
        d3_view
            .statement
            .unwrap()
            .approvals
            .iter()
            .any(|a| a.actor == "dave"),
        "the fixture's D3 was approved by dave"
    );
    let before = store.linked(d1).unwrap().len();
    for seq in store.linked(d3).unwrap() {
        store.tamper_add_link(d1, seq).unwrap();
    }
    assert!(
        store.linked(d1).unwrap().len() > before,
        "the edited index lists D3's records under D1"
    );
    let shown = crate::audit::view::show(&store, &ids["D1"])
        .unwrap()
        .unwrap()
        .statement
        .unwrap();
    assert!(
        shown.approvals.iter().all(|a| a.actor != "dave"),
        "D1 shows D3's approval: {:?}",
        shown.approvals
    );
}

/// `verify` prints the id and detail of a break, which can come from the damaged record: a
/// stored escape sequence must not redraw the report.
#[test]
fn verify_output_is_terminal_safe() {
    use printer::text;
    let report = crate::audit::VerifyReport {
        records: 3,
        last_seq: Some(3),
        last_id: Some("01ABC".into()),
        last_hash: Some("ab".repeat(32)),
        broken: Some(crate::audit::Break {
            kind: crate::audit::BreakKind::Missing,
            seq: 4,
            id: Some("01X\r\x1b[2Kok: 9 records verified".into()),
            detail: "gap\x1b[1A\u{202e}".into(),
        }),
    };
    for colour in [false, true] {
        let mut out = Vec::new();
        text::verify(&mut out, &report, &Style { color: colour }).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("BROKEN"), "{out}");
        assert_terminal_safe(&out, colour);
    }
}

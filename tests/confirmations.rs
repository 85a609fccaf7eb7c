//! The gate's record of prepared statements follows what the server confirmed, not what the
//! client sent: a Parse or Close the server skipped after an error, or a SQL `DEALLOCATE` that
//! was refused or failed, must not change what a later Bind or EXECUTE is judged (and audited)
//! as. Raw protocol against the demo schema and policy, through the gateway.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use airlock::config::AuthMethod;
use common::*;

/// A PII query that returns only ids (an allowed read), whose cast fails on a customer's
/// email and SSN: the server's error quotes them unless the gateway withholds the text.
const PII_FILTER: &str =
    "SELECT id FROM customers WHERE id = $1::int AND (email || ' ssn=' || ssn)::int = 0";

fn demo() -> (TestDb, Gw, String) {
    let db = TestDb::new("confirmations");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let email = db
        .exec("SELECT email FROM customers WHERE id = 1")
        .trim()
        .to_string();
    let gw = Gw::start(|c| {
        c.auth.method = AuthMethod::Trust;
        c.policy.path = shipped_policy("demo.toml");
    });
    (db, gw, email)
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(sql));
    b.extend_from_slice(&0i16.to_be_bytes());
    message(b'P', &b)
}

/// Bind portal "" to `stmt` with text parameters.
fn bind(stmt: &str, params: &[&str]) -> Vec<u8> {
    let mut b = cstr("");
    b.extend(cstr(stmt));
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        b.extend_from_slice(&(p.len() as i32).to_be_bytes());
        b.extend_from_slice(p.as_bytes());
    }
    b.extend_from_slice(&0i16.to_be_bytes());
    message(b'B', &b)
}

fn execute() -> Vec<u8> {
    message(b'E', b"\0\0\0\0\0")
}

fn describe_statement(name: &str) -> Vec<u8> {
    let mut b = vec![b'S'];
    b.extend(cstr(name));
    message(b'D', &b)
}

fn close_statement(name: &str) -> Vec<u8> {
    let mut b = vec![b'S'];
    b.extend(cstr(name));
    message(b'C', &b)
}

fn sync() -> Vec<u8> {
    message(b'S', b"")
}

fn flush() -> Vec<u8> {
    message(b'H', b"")
}

fn query(sql: &str) -> Vec<u8> {
    message(b'Q', &cstr(sql))
}

struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(gw: &Gw, db: &str) -> Raw {
        let s = TcpStream::connect(gw.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut body = 196608i32.to_be_bytes().to_vec();
        for (k, v) in [("user", AGENT), ("database", db)] {
            body.extend(cstr(k));
            body.extend(cstr(v));
        }
        body.push(0);
        let mut p = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        p.extend(body);
        let mut raw = Raw { s, buf: Vec::new() };
        raw.s.write_all(&p).unwrap();
        let (tags, _) = raw.until(b'Z', 1);
        assert_eq!(tags.first(), Some(&b'R'));
        raw
    }

    fn send(&mut self, parts: &[Vec<u8>]) {
        self.s.write_all(&parts.concat()).unwrap();
    }

    /// Reads until `n` messages tagged `stop` came; returns every tag and the raw bytes.
    fn until(&mut self, stop: u8, n: usize) -> (Vec<u8>, String) {
        let mut chunk = [0u8; 8192];
        loop {
            let mut pos = 0;
            let mut tags = Vec::new();
            let mut seen = 0;
            while self.buf.len() >= pos + 5 {
                let len = i32::from_be_bytes(self.buf[pos + 1..pos + 5].try_into().unwrap());
                let end = pos + 1 + len as usize;
                if self.buf.len() < end {
                    break;
                }
                tags.push(self.buf[pos]);
                if self.buf[pos] == stop {
                    seen += 1;
                    if seen == n {
                        let raw: Vec<u8> = self.buf.drain(..end).collect();
                        return (tags, String::from_utf8_lossy(&raw).into_owned());
                    }
                }
                pos = end;
            }
            let got = self.s.read(&mut chunk).expect("read");
            assert!(got > 0, "closed: {}", String::from_utf8_lossy(&self.buf));
            self.buf.extend_from_slice(&chunk[..got]);
        }
    }

    /// Sends `parts` and reads up to the ReadyForQuery.
    fn round(&mut self, parts: &[Vec<u8>]) -> (Vec<u8>, String) {
        self.send(parts);
        self.until(b'Z', 1)
    }
}

fn last_sql(gw: &Gw) -> String {
    gw.decisions()
        .last()
        .map(|(_, d)| d.sql.clone())
        .unwrap_or_default()
}

/// `[Describe 'nope'; Parse '' harmless; Sync]`: the Describe fails and the server skips the
/// Parse. A Bind of the unnamed statement then runs the PII query parsed before, and must be
/// judged as it: the server's error about it is withheld, and the audit names it.
#[test]
fn a_skipped_unnamed_parse_does_not_replace_the_statement() {
    let (db, gw, email) = demo();
    let mut c = Raw::connect(&gw, &db.name);
    let (tags, raw) = c.round(&[parse("", PII_FILTER), sync()]);
    assert_eq!(tags, b"1Z", "{raw}");
    let (tags, raw) = c.round(&[
        describe_statement("nope"),
        parse("", "SELECT $1::int"),
        sync(),
    ]);
    assert_eq!(tags, b"EZ", "{raw}");
    let (tags, raw) = c.round(&[bind("", &["1"]), execute(), sync()]);
    assert!(tags.contains(&b'E'), "{raw}");
    assert!(!raw.contains(&email), "PII in the error text: {raw}");
    assert!(!raw.contains("ssn="), "{raw}");
    assert_eq!(last_sql(&gw), PII_FILTER);
    // Parsed again in a segment of its own, the new text is the statement.
    let (tags, raw) = c.round(&[parse("", "SELECT $1::int"), sync()]);
    assert_eq!(tags, b"1Z", "{raw}");
    let (tags, raw) = c.round(&[bind("", &["5"]), execute(), sync()]);
    assert_eq!(tags, b"2DCZ", "{raw}");
    assert_eq!(last_sql(&gw), "SELECT $1::int");
}

/// A Close the server skipped leaves the statement in place; the Parse of its name that
/// follows is refused (42P05), and a Bind still runs the old text.
#[test]
fn a_skipped_close_then_a_refused_parse_keep_the_old_text() {
    let (db, gw, email) = demo();
    let mut c = Raw::connect(&gw, &db.name);
    let (tags, raw) = c.round(&[parse("s", PII_FILTER), sync()]);
    assert_eq!(tags, b"1Z", "{raw}");
    let (tags, raw) = c.round(&[describe_statement("nope"), close_statement("s"), sync()]);
    assert_eq!(tags, b"EZ", "{raw}");
    let (tags, raw) = c.round(&[parse("s", "SELECT $1::int"), sync()]);
    assert!(tags.contains(&b'E') && raw.contains("42P05"), "{raw}");
    let (tags, raw) = c.round(&[bind("s", &["1"]), execute(), sync()]);
    assert!(tags.contains(&b'E'), "{raw}");
    assert!(!raw.contains(&email), "PII in the error text: {raw}");
    assert_eq!(last_sql(&gw), PII_FILTER);
    // A Close the server did forgets it: the name takes a new text.
    let (tags, raw) = c.round(&[close_statement("s"), sync()]);
    assert_eq!(tags, b"3Z", "{raw}");
    let (tags, raw) = c.round(&[parse("s", "SELECT $1::int"), sync()]);
    assert_eq!(tags, b"1Z", "{raw}");
    let (tags, raw) = c.round(&[bind("s", &["5"]), execute(), sync()]);
    assert_eq!(tags, b"2DCZ", "{raw}");
    assert_eq!(last_sql(&gw), "SELECT $1::int");
}

/// The write the server runs is what the audit records, not the skipped SELECT.
#[test]
fn a_write_is_not_audited_as_the_skipped_select() {
    let (db, gw, _) = demo();
    let delete = "DELETE FROM orders WHERE id = $1::int";
    let mut c = Raw::connect(&gw, &db.name);
    let (tags, raw) = c.round(&[parse("", delete), sync()]);
    assert_eq!(tags, b"1Z", "{raw}");
    let (tags, raw) = c.round(&[
        describe_statement("nope"),
        parse("", "SELECT $1::int"),
        sync(),
    ]);
    assert_eq!(tags, b"EZ", "{raw}");
    let (_, raw) = c.round(&[bind("", &["1"]), execute(), sync()]);
    assert!(raw.contains("DELETE 1"), "{raw}");
    let decisions = gw.decisions();
    let (_, last) = decisions.last().expect("decisions");
    assert_eq!(last.sql, delete);
    assert!(
        !decisions
            .iter()
            .any(|(_, d)| d.sql == "SELECT $1::int" && !d.params.is_empty()),
        "a run audited as the skipped SELECT"
    );
}

/// A segment spread over several units (Parse + Flush, then Bind + Execute + Sync) and
/// segments sent before earlier ones are answered: the normal flows still run, and once the
/// answers are in, a Bind is judged by the confirmed text alone.
#[test]
fn flushed_and_pipelined_segments_resolve() {
    let (db, gw, _) = demo();
    let mut c = Raw::connect(&gw, &db.name);
    c.send(&[parse("", "SELECT 'flushed'"), flush()]);
    let (tags, _) = c.until(b'1', 1);
    assert_eq!(tags, b"1");
    let (tags, raw) = c.round(&[bind("", &[]), execute(), sync()]);
    assert_eq!(tags, b"2DCZ", "{raw}");
    assert!(raw.contains("flushed"), "{raw}");
    assert_eq!(last_sql(&gw), "SELECT 'flushed'");
    // Three segments at once; the first two may be judged before any is answered.
    c.send(&[
        parse("", "SELECT 'one'"),
        sync(),
        bind("", &[]),
        execute(),
        sync(),
        parse("", "SELECT 'two'"),
        bind("", &[]),
        execute(),
        sync(),
    ]);
    let (tags, raw) = c.until(b'Z', 3);
    assert_eq!(tags, b"1Z2DCZ12DCZ", "{raw}");
    assert!(raw.contains("one") && raw.contains("two"), "{raw}");
    let (tags, raw) = c.round(&[bind("", &[]), execute(), sync()]);
    assert_eq!(tags, b"2DCZ", "{raw}");
    assert!(raw.contains("two"), "{raw}");
    assert_eq!(last_sql(&gw), "SELECT 'two'");
    // Re-parsed with every query, as drivers do: each is judged by its own text.
    for i in 0..12 {
        let sql = format!("SELECT {i} AS n");
        let (tags, raw) = c.round(&[parse("", &sql), bind("", &[]), execute(), sync()]);
        assert_eq!(tags, b"12DCZ", "{raw}");
        assert_eq!(last_sql(&gw), sql);
    }
}

/// A `DEALLOCATE` denied, or approved but failing, never ran: the name keeps its export, a
/// `PREPARE` of a harmless text under it is refused by the server, and `EXECUTE` is still
/// judged as the export (held, here denied: no email reaches the client). One that ran lets
/// the name take the new text.
#[test]
fn an_unconfirmed_deallocate_keeps_the_prepared_statement() {
    let (db, gw, email) = demo();
    gw.auto_decide("alice", |sql| {
        sql.starts_with("PREPARE p") && sql.contains("email")
            || sql == "DEALLOCATE p3"
            || sql == "DEALLOCATE p4"
    });
    let export = "AS SELECT email FROM customers WHERE id = $1";
    let mut c = Raw::connect(&gw, &db.name);
    for name in ["p2", "p3", "p4"] {
        let (tags, raw) = c.round(&[query(&format!("PREPARE {name} {export}"))]);
        assert!(!tags.contains(&b'E'), "{raw}");
    }
    // Denied.
    let (tags, raw) = c.round(&[query("DEALLOCATE p2")]);
    assert!(tags.contains(&b'E') && raw.contains("42501"), "{raw}");
    // Approved, but fails: its transaction is aborted.
    c.round(&[query("BEGIN")]);
    c.round(&[query("SELECT 1/0")]);
    let (tags, raw) = c.round(&[query("DEALLOCATE p3")]);
    assert!(tags.contains(&b'E') && raw.contains("25P02"), "{raw}");
    c.round(&[query("ROLLBACK")]);
    for name in ["p2", "p3"] {
        let (_, raw) = c.round(&[query(&format!("PREPARE {name} AS SELECT $1::int"))]);
        assert!(raw.contains("42P05"), "{raw}");
        let (tags, raw) = c.round(&[query(&format!("EXECUTE {name}(1)"))]);
        assert!(tags.contains(&b'E') && raw.contains("42501"), "{raw}");
        assert!(!raw.contains(&email), "{email} returned: {raw}");
        let decisions = gw.decisions();
        let (_, last) = decisions.last().expect("decisions");
        assert_eq!(last.sql, format!("EXECUTE {name}(1)"));
        assert!(
            format!("{:?}", last.facts).contains("email"),
            "not judged as the export: {:?}",
            last.facts
        );
    }
    // Approved and run: the new definition is the only one.
    let (tags, raw) = c.round(&[query("DEALLOCATE p4")]);
    assert!(!tags.contains(&b'E'), "{raw}");
    let (tags, raw) = c.round(&[query("PREPARE p4 AS SELECT $1::int")]);
    assert!(!tags.contains(&b'E'), "{raw}");
    let (tags, raw) = c.round(&[query("EXECUTE p4(5)")]);
    assert!(!tags.contains(&b'E') && tags.contains(&b'D'), "{raw}");
    let decisions = gw.decisions();
    let (_, last) = decisions.last().expect("decisions");
    assert!(
        !format!("{:?}", last.facts).contains("email"),
        "{:?}",
        last.facts
    );
}

/// Bind portal `portal` to `stmt` with one parameter, in text or binary format.
fn bind_portal(portal: &str, stmt: &str, param: &[u8], binary: bool) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(cstr(stmt));
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&i16::from(binary).to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&(param.len() as i32).to_be_bytes());
    b.extend_from_slice(param);
    b.extend_from_slice(&0i16.to_be_bytes());
    message(b'B', &b)
}

fn execute_portal(portal: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend_from_slice(&0i32.to_be_bytes());
    message(b'E', &b)
}

/// The parameters the audit recorded for the latest decision.
fn last_params(gw: &Gw) -> Vec<Option<String>> {
    gw.decisions()
        .last()
        .map(|(_, d)| d.params.clone())
        .unwrap_or_default()
}

/// Two Binds of one statement run two portals: the decision (and so the audit, the approval
/// request and its binding) must carry both sets of values, not only the last Bind's. A portal
/// bound in one batch and executed in a later one runs with its own Bind's values.
#[test]
fn every_bound_portal_is_decided_with_its_own_parameters() {
    let (db, gw, _) = demo();
    let mut raw = Raw::connect(&gw, &db.name);
    let sql = "SELECT id FROM orders WHERE id = $1::int";
    let (tags, _) = raw.round(&[
        parse("s", sql),
        bind_portal("a", "s", b"1", false),
        bind_portal("b", "s", b"2", false),
        execute_portal("a"),
        execute_portal("b"),
        sync(),
    ]);
    assert_eq!(tags.iter().filter(|t| **t == b'C').count(), 2, "{tags:?}");
    assert_eq!(
        last_params(&gw),
        [Some("1".to_owned()), Some("2".to_owned())]
    );
    assert_eq!(last_sql(&gw), format!("{sql};\n{sql}"));

    // Bound in one batch (inside a transaction, so the portal lives on), run in the next
    // alongside a Bind of other values.
    raw.round(&[query("BEGIN")]);
    raw.round(&[bind_portal("c", "s", b"3", false), sync()]);
    let (tags, _) = raw.round(&[
        bind_portal("d", "s", b"4", false),
        execute_portal("c"),
        sync(),
    ]);
    assert_eq!(tags.iter().filter(|t| **t == b'C').count(), 1, "{tags:?}");
    let params = last_params(&gw);
    assert!(params.contains(&Some("3".to_owned())), "{params:?}");
    assert!(params.contains(&Some("4".to_owned())), "{params:?}");
    raw.round(&[query("COMMIT")]);
}

/// A password sent as a bound parameter (a connection string as text, a URL in binary) is
/// redacted in the audit as the same literal would be; the statement still runs with it.
#[test]
fn credentials_in_bound_parameters_are_redacted_in_the_audit() {
    let (db, gw, _) = demo();
    let mut raw = Raw::connect(&gw, &db.name);
    let (tags, _) = raw.round(&[
        parse("s", "SELECT length($1::text)"),
        bind_portal(
            "a",
            "s",
            b"host=10.0.0.5 user=etl password=Tr0ub4dor-x",
            false,
        ),
        bind_portal("b", "s", b"postgres://etl:Tr0ub4dor-y@db/x", true),
        execute_portal("a"),
        execute_portal("b"),
        sync(),
    ]);
    assert_eq!(tags.iter().filter(|t| **t == b'C').count(), 2, "{tags:?}");
    assert_eq!(
        last_params(&gw),
        [
            Some("host=10.0.0.5 user=etl password='***'".to_owned()),
            Some("***".to_owned())
        ]
    );
    let audit = format!("{:?}", gw.decisions());
    assert!(!audit.contains("Tr0ub4dor"), "{audit}");
}

/// Parse with declared parameter types (OIDs; empty leaves them to the server).
fn parse_typed(name: &str, sql: &str, types: &[u32]) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(sql));
    b.extend_from_slice(&(types.len() as i16).to_be_bytes());
    for t in types {
        b.extend_from_slice(&t.to_be_bytes());
    }
    message(b'P', &b)
}

/// The types a Parse declares choose the overload a call runs, so an approval granted for
/// one typing of a statement does not run another typing of the same text and values.
#[test]
fn a_grant_is_bound_to_the_declared_parameter_types() {
    const TEXT: u32 = 25;
    const INT4: u32 = 23;
    let db = TestDb::new("typed_grant");
    db.exec(airlock::demo::DEMO_SCHEMA);
    db.exec(
        "CREATE FUNCTION probe(int) RETURNS text VOLATILE LANGUAGE sql AS $$ SELECT 'int:' || $1 $$;
         CREATE FUNCTION probe(text) RETURNS text VOLATILE LANGUAGE sql AS $$ SELECT 'text:' || $1 $$;",
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    std::fs::write(
        &policy,
        text.replace("hold_timeout_secs = 300", "hold_timeout_secs = 1"),
    )
    .unwrap();
    let gw = Gw::start(|c| {
        c.auth.method = AuthMethod::Trust;
        c.policy.path = policy.clone();
    });
    let mut raw = Raw::connect(&gw, &db.name);
    let mut run = |types: &[u32]| {
        raw.round(&[
            parse_typed("", "SELECT probe($1)", types),
            bind("", &["5"]),
            execute(),
            sync(),
        ])
    };
    let (tags, out) = run(&[TEXT]);
    assert!(!tags.contains(&b'D'), "a volatile call is held: {out}");
    assert!(out.contains("was not decided in time"), "{out}");

    // Approved after the client gave up: a grant for this batch.
    let registry = gw.gateway.registry.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pending = rt.block_on(registry.list(airlock::approval::ListFilter::Pending));
    let request = pending
        .into_iter()
        .find(|v| v.sql.contains("probe"))
        .expect("still approvable after expiry");
    rt.block_on(registry.approve(&request.id, "alice", airlock::approval::Channel::Api, None))
        .expect("approved");

    // Same text and value, declared int: the other overload, so a request of its own.
    let (tags, out) = run(&[INT4]);
    assert!(
        !tags.contains(&b'D'),
        "ran under another typing's grant: {out}"
    );
    assert!(!out.contains("int:5"), "{out}");
    assert!(out.contains("was not decided in time"), "{out}");
    // Left to the server to infer is another typing too.
    let (tags, out) = run(&[]);
    assert!(!tags.contains(&b'D'), "{out}");
    // The approved typing runs, once.
    let (tags, out) = run(&[TEXT]);
    assert!(tags.contains(&b'D'), "{out}");
    assert!(out.contains("text:5"), "{out}");
    let (tags, out) = run(&[TEXT]);
    assert!(!tags.contains(&b'D'), "the grant is single use: {out}");
}

fn execute_rows(portal: &str, rows: i32) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend_from_slice(&rows.to_be_bytes());
    message(b'E', &b)
}

/// Bind portal `portal` to `stmt`, no parameters.
fn bind_bare(portal: &str, stmt: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(cstr(stmt));
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    message(b'B', &b)
}

fn close_portal(name: &str) -> Vec<u8> {
    let mut b = vec![b'P'];
    b.extend(cstr(name));
    message(b'C', &b)
}

/// A Close the server never ran (its unit was refused, or an error earlier in its segment
/// made the server skip it) leaves the portal open: its next Execute is still decided by the
/// statement it was bound to, not as a FETCH from a cursor the gateway does not know.
#[test]
fn a_close_that_did_not_run_does_not_forget_the_portal() {
    let (db, gw, _) = demo();
    let mut raw = Raw::connect(&gw, &db.name);
    let sql = "SELECT id FROM orders ORDER BY id";
    raw.round(&[query("BEGIN")]);
    let (tags, _) = raw.round(&[
        parse("s", sql),
        bind_bare("p", "s"),
        execute_rows("p", 1),
        sync(),
    ]);
    assert!(tags.contains(&b's'), "suspended after one row: {tags:?}");
    // Refused with its unit: the Close never reaches the server. (A refusal fails the
    // transaction as an error would; the savepoint brings it back, with the portal.)
    raw.round(&[query("SAVEPOINT r")]);
    let (tags, out) = raw.round(&[close_portal("p"), parse("x", "DROP TABLE orders"), sync()]);
    assert!(tags.contains(&b'E'), "{out}");
    raw.round(&[query("ROLLBACK TO SAVEPOINT r")]);
    let (tags, _) = raw.round(&[execute_rows("p", 1), sync()]);
    assert!(tags.contains(&b'D'), "{tags:?}");
    assert_eq!(last_sql(&gw), sql);
    // Skipped by the server after an error earlier in its segment; rolling back to a
    // savepoint taken after the portal was made keeps the portal.
    raw.round(&[query("SAVEPOINT a")]);
    let (tags, _) = raw.round(&[
        parse("", "SELECT 1/0"),
        bind("", &[]),
        execute(),
        close_portal("p"),
        sync(),
    ]);
    assert!(tags.contains(&b'E'), "{tags:?}");
    raw.round(&[query("ROLLBACK TO SAVEPOINT a")]);
    let (tags, _) = raw.round(&[execute_rows("p", 1), sync()]);
    assert!(tags.contains(&b'D'), "the portal is still open: {tags:?}");
    assert_eq!(last_sql(&gw), sql);
    raw.round(&[query("ROLLBACK")]);
    let fetches: Vec<String> = gw
        .decisions()
        .into_iter()
        .map(|(_, d)| d.sql)
        .filter(|s| s.starts_with("FETCH"))
        .collect();
    assert!(fetches.is_empty(), "{fetches:?}");
    drop(db);
}

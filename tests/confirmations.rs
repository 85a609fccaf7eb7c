//! The gate's record of prepared statements follows what the server confirmed, not what the
//! client sent: a Parse or Close the server skipped after an error, or a SQL `DEALLOCATE` that
//! was refused or failed, must not change what a later Bind or EXECUTE is judged (and audited)
//! as. The relay attributes each server answer to the unit it belongs to, however the server
//! skips or ignores messages (Sync during COPY-in, a Query inside a failed segment), and a
//! held statement reacts to its client whatever runs before it. Raw protocol against the demo
//! schema and policy, through the gateway.

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
    /// The gateway's cancel key for this session (BackendKeyData).
    key: [u8; 8],
    /// The bytes [`Raw::until`] returned last.
    last: Vec<u8>,
}

impl Raw {
    fn connect(gw: &Gw, db: &str) -> Raw {
        Raw::connect_as(gw, db, "raw")
    }

    /// Connects with `application_name` set to `app` (it names the upstream session too).
    fn connect_as(gw: &Gw, db: &str, app: &str) -> Raw {
        let s = TcpStream::connect(gw.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut body = 196608i32.to_be_bytes().to_vec();
        for (k, v) in [("user", AGENT), ("database", db), ("application_name", app)] {
            body.extend(cstr(k));
            body.extend(cstr(v));
        }
        body.push(0);
        let mut p = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        p.extend(body);
        let mut raw = Raw {
            s,
            buf: Vec::new(),
            key: [0; 8],
            last: Vec::new(),
        };
        raw.s.write_all(&p).unwrap();
        let startup = raw.buf_until(b'Z', 1);
        assert_eq!(startup.first(), Some(&b'R'));
        let mut pos = 0;
        while pos + 5 <= startup.len() {
            let len = i32::from_be_bytes(startup[pos + 1..pos + 5].try_into().unwrap()) as usize;
            if startup[pos] == b'K' {
                raw.key.copy_from_slice(&startup[pos + 5..pos + 13]);
            }
            pos += 1 + len;
        }
        raw
    }

    /// Sends a CancelRequest with this session's key, as libpq's PQcancel does.
    fn cancel(&self, gw: &Gw) {
        let mut s = TcpStream::connect(gw.addr).expect("connect");
        let mut m = 16i32.to_be_bytes().to_vec();
        m.extend_from_slice(&80877102i32.to_be_bytes());
        m.extend_from_slice(&self.key);
        s.write_all(&m).unwrap();
        // The gateway closes the connection once it has acted on it.
        let _ = s.read(&mut [0u8; 1]);
    }

    /// Like [`Raw::until`], returning the raw bytes.
    fn buf_until(&mut self, stop: u8, n: usize) -> Vec<u8> {
        let (tags, _) = self.until(stop, n);
        let mut out = Vec::new();
        std::mem::swap(&mut out, &mut self.last);
        assert!(!tags.is_empty());
        out
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
                        let text = String::from_utf8_lossy(&raw).into_owned();
                        self.last = raw;
                        return (tags, text);
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
    // Approvers see the declared type next to the value.
    assert_eq!(request.params, [Some("5".to_string())]);
    assert_eq!(request.param_types, [Some("text".to_string())]);
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

// ---------------------------------------------------------------------------------------------
// The relay in step with the server's answers.

fn copy_data(row: &str) -> Vec<u8> {
    message(b'd', row.as_bytes())
}

fn copy_done() -> Vec<u8> {
    message(b'c', b"")
}

/// An allowed write whose cast fails on customer 8's SSN: the server's error quotes it unless
/// the gateway withholds the text.
const SSN_PROBE: &str = "UPDATE customers SET name = name WHERE id = 8 AND ('x' || ssn)::int = 0";

fn ssn_of_8(db: &TestDb) -> String {
    let ssn = db
        .exec("SELECT ssn FROM customers WHERE id = 8")
        .trim()
        .to_string();
    assert!(ssn.len() > 5, "{ssn}");
    ssn
}

/// The PII statement's error, judged as its own: withheld, and audited with its decision.
fn assert_probe_withheld(c: &mut Raw, gw: &Gw, ssn: &str) {
    let (tags, raw) = c.round(&[query(SSN_PROBE)]);
    assert_eq!(tags, b"EZ", "{raw}");
    assert!(!raw.contains(ssn), "the SSN reached the client: {raw}");
    assert!(raw.contains("withheld"), "{raw}");
    // In step afterwards: a plain read gets its own rows.
    let (tags, raw) = c.round(&[query("SELECT 'in step'")]);
    assert_eq!(tags, b"TDCZ", "{raw}");
    assert!(raw.contains("in step"), "{raw}");
    let records = format!("{:?}", gw.audit_records());
    assert!(!records.contains(ssn), "the SSN is in the audit");
}

/// libpq's `PQsendQueryParams("COPY … FROM STDIN")`: Parse, Bind, Execute and Sync, then the
/// data, CopyDone and another Sync. The server ignores the Sync it reads during COPY-in, so
/// both Syncs get one ReadyForQuery; the relay must not expect two.
#[test]
fn an_extended_copy_keeps_the_relay_in_step() {
    let (db, gw, _) = demo();
    let ssn = ssn_of_8(&db);
    let mut c = Raw::connect(&gw, &db.name);
    c.send(&[
        parse("", "COPY products (name, price) FROM STDIN"),
        bind("", &[]),
        execute(),
        sync(),
    ]);
    let (tags, raw) = c.until(b'G', 1);
    assert_eq!(tags, b"12G", "{raw}");
    let (tags, raw) = c.round(&[copy_data("widget\t2.00\n"), copy_done(), sync()]);
    assert_eq!(tags, b"CZ", "{raw}");
    assert!(raw.contains("COPY 1"), "{raw}");
    assert_probe_withheld(&mut c, &gw, &ssn);
}

/// A Sync sent while a simple-Query COPY reads its data is ignored by the server, and so not
/// forwarded.
#[test]
fn a_sync_during_a_simple_copy_is_not_counted() {
    let (db, gw, _) = demo();
    let ssn = ssn_of_8(&db);
    let mut c = Raw::connect(&gw, &db.name);
    c.send(&[query("COPY products (name, price) FROM STDIN")]);
    let (tags, raw) = c.until(b'G', 1);
    assert_eq!(tags, b"G", "{raw}");
    let (tags, raw) = c.round(&[sync(), flush(), copy_data("gadget\t3.00\n"), copy_done()]);
    assert_eq!(tags, b"CZ", "{raw}");
    assert_probe_withheld(&mut c, &gw, &ssn);
}

/// PostgreSQL skips a simple Query sent inside an extended segment that failed, without any
/// answer. The gateway closes the segment with a Sync of its own first, so the Query runs,
/// is answered, and its error is judged as its own.
#[test]
fn a_query_inside_a_failed_segment_is_answered_and_judged_as_itself() {
    let (db, gw, _) = demo();
    let ssn = ssn_of_8(&db);
    let mut c = Raw::connect(&gw, &db.name);
    c.send(&[describe_statement("nope"), flush()]);
    let (tags, raw) = c.until(b'E', 1);
    assert_eq!(tags, b"E", "{raw}");
    let (tags, raw) = c.round(&[query(SSN_PROBE)]);
    assert_eq!(tags, b"EZ", "{raw}");
    assert!(!raw.contains(&ssn), "the SSN reached the client: {raw}");
    let (tags, raw) = c.round(&[sync()]);
    assert_eq!(tags, b"Z", "{raw}");
    assert_probe_withheld(&mut c, &gw, &ssn);
    let decisions = gw.decisions();
    let probe = decisions.iter().filter(|(_, d)| d.sql == SSN_PROBE).count();
    assert_eq!(probe, 2, "both runs decided as the probe");
}

/// SQL sent while the server reads COPY data would end the COPY with an error the relay
/// cannot follow: it is refused, as PostgreSQL refuses it, and the session ends.
#[test]
fn sql_during_copy_in_ends_the_session() {
    let (db, gw, _) = demo();
    let mut c = Raw::connect(&gw, &db.name);
    c.send(&[query("COPY products (name, price) FROM STDIN")]);
    let (tags, _) = c.until(b'G', 1);
    assert_eq!(tags, b"G");
    c.send(&[query("SELECT 1")]);
    let (tags, raw) = c.until(b'E', 1);
    assert_eq!(tags, b"E", "{raw}");
    assert!(raw.contains("08P01") && raw.contains("FATAL"), "{raw}");
    let mut rest = Vec::new();
    let _ = c.s.read_to_end(&mut rest);
    assert!(!rest.contains(&b'Z'), "{}", String::from_utf8_lossy(&rest));
}

/// After one COPY, a Parse skipped in a failed segment must not be credited with the next
/// segment's ParseComplete: the unnamed statement then runs the PII query, and is judged and
/// audited as it.
#[test]
fn a_copy_does_not_shift_parse_confirmations() {
    let (db, gw, email) = demo();
    let mut c = Raw::connect(&gw, &db.name);
    c.send(&[
        parse("", "COPY products (name, price) FROM STDIN"),
        bind("", &[]),
        execute(),
        sync(),
    ]);
    c.until(b'G', 1);
    let (tags, raw) = c.round(&[copy_data("gizmo\t4.00\n"), copy_done(), sync()]);
    assert_eq!(tags, b"CZ", "{raw}");
    let (tags, raw) = c.round(&[
        describe_statement("nope"),
        parse("", "SELECT $1::int"),
        sync(),
    ]);
    assert_eq!(tags, b"EZ", "{raw}");
    let (tags, raw) = c.round(&[parse("", PII_FILTER), sync()]);
    assert_eq!(tags, b"1Z", "{raw}");
    let (tags, raw) = c.round(&[sync()]);
    assert_eq!(tags, b"Z", "{raw}");
    let (tags, raw) = c.round(&[bind("", &["1"]), execute(), sync()]);
    assert!(tags.contains(&b'E'), "{raw}");
    assert!(!raw.contains(&email), "PII in the error text: {raw}");
    assert_eq!(last_sql(&gw), PII_FILTER);
}

// ---------------------------------------------------------------------------------------------
// Held statements behind a statement that is still running.

/// A direct session holding an exclusive lock on `orders` until dropped: a statement through
/// the gateway that reads `orders` waits for it, for as long as the test needs.
struct Locker {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Locker {
    fn lock(db: &TestDb) -> Locker {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (client, conn) = rt
            .block_on(tokio_postgres::connect(
                &db.direct_url(),
                tokio_postgres::NoTls,
            ))
            .expect("direct connection");
        rt.spawn(conn);
        rt.block_on(client.batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"))
            .expect("lock");
        Locker { rt, client }
    }

    fn query(&self, sql: &str) -> String {
        let rows = self.rt.block_on(self.client.simple_query(sql)).expect(sql);
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Waits until a gateway session of `app` waits for the lock.
    fn wait_for_waiter(&self, app: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' AND wait_event_type = 'Lock'"
        );
        while self.query(&sql) != "1" {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing waits for the lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Pipelines a read that waits for the lock and a DDL that is held; returns the request once
/// the read waits upstream and the DDL waits for approval.
fn held_behind_a_running_read(
    gw: &Gw,
    c: &mut Raw,
    locker: &Locker,
    app: &str,
    column: &str,
) -> airlock::approval::RequestView {
    c.send(&[
        query("SELECT count(*) FROM orders"),
        query(&format!("ALTER TABLE orders ADD COLUMN {column} int")),
    ]);
    locker.wait_for_waiter(app);
    wait_for_request(gw, column, |v| {
        v.state == airlock::approval::RequestState::Pending && v.client_waiting
    })
}

fn wait_for_request(
    gw: &Gw,
    needle: &str,
    cond: impl Fn(&airlock::approval::RequestView) -> bool,
) -> airlock::approval::RequestView {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let all = rt.block_on(gw.gateway.registry.list(airlock::approval::ListFilter::All));
        if let Some(v) = all.iter().find(|v| v.sql.contains(needle) && cond(v)) {
            return v.clone();
        }
        let seen: Vec<_> = all
            .iter()
            .map(|v| (&v.sql, v.state, v.client_waiting))
            .collect();
        assert!(
            std::time::Instant::now() < deadline,
            "no such request for {needle}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn column_exists(db: &TestDb, column: &str) -> bool {
    db.exec(&format!(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = '{column}'"
    ))
    .trim()
        == "1"
}

/// A client that goes away while its held statement waits behind a statement that never
/// finishes withdraws the request at once: the wait for earlier results does not stop the
/// session from noticing.
#[test]
fn a_disconnect_behind_a_running_statement_withdraws_the_request() {
    let (db, gw, _) = demo();
    // Connected first: the gateway reads the catalog as the session starts.
    let mut c = Raw::connect_as(&gw, &db.name, "m1-probe");
    let locker = Locker::lock(&db);
    held_behind_a_running_read(&gw, &mut c, &locker, "m1-probe", "m1_col");
    drop(c);
    wait_for_request(&gw, "m1_col", |v| {
        v.state == airlock::approval::RequestState::Withdrawn
    });
    locker.query("ROLLBACK");
    assert!(!column_exists(&db, "m1_col"));
}

/// A cancel while the held statement waits behind a running one withdraws the request at
/// once (a later approval is refused and nothing runs) and cancels the running statement.
#[test]
fn a_cancel_behind_a_running_statement_withdraws_and_cancels_it() {
    let (db, gw, _) = demo();
    // Connected first: the gateway reads the catalog as the session starts.
    let mut c = Raw::connect_as(&gw, &db.name, "m4-probe");
    let locker = Locker::lock(&db);
    let request = held_behind_a_running_read(&gw, &mut c, &locker, "m4-probe", "m4_col");
    c.cancel(&gw);
    wait_for_request(&gw, "m4_col", |v| {
        v.state == airlock::approval::RequestState::Withdrawn
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let approved = rt.block_on(gw.gateway.registry.approve(
        &request.id,
        "alice",
        airlock::approval::Channel::Api,
        None,
    ));
    assert!(
        matches!(
            approved,
            Ok(airlock::approval::VerdictResult::AlreadyDecided(
                airlock::approval::RequestState::Withdrawn
            ))
        ),
        "{approved:?}"
    );
    // The running read was cancelled upstream while the lock is still held.
    let (tags, raw) = c.until(b'Z', 1);
    assert!(tags.contains(&b'E') && raw.contains("57014"), "{raw}");
    let (tags, raw) = c.until(b'Z', 1);
    assert!(tags.contains(&b'E') && raw.contains("57014"), "{raw}");
    locker.query("ROLLBACK");
    assert!(!column_exists(&db, "m4_col"));
}

/// Messages pipelined behind a held statement wait in the gateway's memory only up to
/// `max_message_bytes`; past that the session ends with `54000` and the request is
/// withdrawn.
#[test]
fn data_piled_behind_a_held_statement_is_bounded() {
    let db = TestDb::new("hold_buffer");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let gw = Gw::start(|c| {
        c.auth.method = AuthMethod::Trust;
        c.policy.path = shipped_policy("demo.toml");
        c.server.max_message_bytes = 64 * 1024;
    });
    let mut c = Raw::connect(&gw, &db.name);
    c.send(&[query("ALTER TABLE orders ADD COLUMN m3_col int")]);
    let (tags, raw) = c.until(b'N', 1);
    assert_eq!(tags, b"N", "{raw}");
    // Small pipelined messages are kept for after the verdict.
    c.send(&[query("SELECT 1")]);
    let pile = query(&"x".repeat(1000)).repeat(200);
    // The gateway may close the socket while this is still being written.
    let _ = c.s.write_all(&pile);
    let (tags, raw) = c.until(b'E', 1);
    assert_eq!(tags, b"E", "{raw}");
    assert!(raw.contains("54000") && raw.contains("FATAL"), "{raw}");
    wait_for_request(&gw, "m3_col", |v| {
        v.state == airlock::approval::RequestState::Withdrawn
    });
    assert!(!column_exists(&db, "m3_col"));
}

/// A session the gateway ends on its own (here for a Parse message cut short, a protocol
/// violation) releases its upstream connection and closes the client's socket. The guard that
/// aborts the upstream task if a session task panics is not exercised here: no input is known
/// to panic a session, and a test would need an injected fault.
#[test]
fn a_session_ended_by_a_malformed_message_releases_its_upstream_connection() {
    let (db, gw, _) = demo();
    let locker = Locker::lock(&db);
    locker.query("ROLLBACK");
    let count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'm2-probe'";
    let mut c = Raw::connect_as(&gw, &db.name, "m2-probe");
    assert_eq!(locker.query(count), "1");
    // Parse with an empty name and text and no parameter count.
    c.send(&[vec![b'P', 0, 0, 0, 6, 0, 0], sync()]);
    let mut rest = Vec::new();
    let _ = c.s.read_to_end(&mut rest);
    let raw = String::from_utf8_lossy(&rest);
    assert!(raw.contains("08P01") && raw.contains("FATAL"), "{raw}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while locker.query(count) != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream connection outlived the session"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

//! Bad input never takes the gateway down: each case gets a PostgreSQL error where the
//! protocol allows one, and a new client is served normally afterwards.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use airlock::config::AuthMethod;
use common::*;

fn trust_gw(max_message: usize) -> Gw {
    Gw::start(|c| {
        c.auth.method = AuthMethod::Trust;
        c.server.max_message_bytes = max_message;
    })
}

fn startup_packet(user: &str, db: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608i32.to_be_bytes());
    for (k, v) in [("user", user), ("database", db)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut p = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn connect(gw: &Gw) -> TcpStream {
    let s = TcpStream::connect(gw.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until EOF (or timeout) and returns everything.
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads messages until ReadyForQuery; returns their tags and the raw bytes.
fn read_until_ready(s: &mut TcpStream) -> (Vec<u8>, Vec<u8>) {
    let mut raw = Vec::new();
    let mut tags = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let mut pos = 0;
        tags.clear();
        while raw.len() >= pos + 5 {
            let len = i32::from_be_bytes([raw[pos + 1], raw[pos + 2], raw[pos + 3], raw[pos + 4]])
                as usize;
            if raw.len() < pos + 1 + len {
                break;
            }
            tags.push(raw[pos]);
            if raw[pos] == b'Z' {
                return (tags, raw);
            }
            pos += 1 + len;
        }
        let n = s.read(&mut buf).expect("read before ReadyForQuery");
        assert!(
            n > 0,
            "closed before ReadyForQuery: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A logged-in raw session (trust auth).
fn session(gw: &Gw) -> TcpStream {
    let mut s = connect(gw);
    s.write_all(&startup_packet(AGENT, "postgres")).unwrap();
    let (tags, _) = read_until_ready(&mut s);
    assert_eq!(tags.first(), Some(&b'R'));
    s
}

fn sqlstate_of(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    text.find("\0C").map(|i| text[i + 2..i + 7].to_string())
}

/// The messages in `raw`, as (tag, body).
fn frames(raw: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while raw.len() >= pos + 5 {
        let len =
            i32::from_be_bytes([raw[pos + 1], raw[pos + 2], raw[pos + 3], raw[pos + 4]]) as usize;
        let end = (pos + 1 + len).min(raw.len());
        out.push((raw[pos], &raw[pos + 5..end]));
        pos = end;
    }
    out
}

fn still_serves(gw: &Gw) {
    let mut s = session(gw);
    s.write_all(&message(b'Q', b"SELECT 'alive'\0")).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    assert!(tags.contains(&b'D'), "{tags:?}");
    assert!(String::from_utf8_lossy(&raw).contains("alive"));
}

#[test]
fn truncated_frame_then_close() {
    let gw = trust_gw(1 << 20);
    let mut s = session(&gw);
    let mut m = message(b'Q', b"SELECT 1\0");
    m[4] = 100; // claims more than is sent
    s.write_all(&m).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = read_all(&mut s);
    still_serves(&gw);
}

#[test]
fn oversized_frame_is_refused() {
    let gw = trust_gw(4096);
    let mut s = session(&gw);
    let big = vec![b'x'; 10_000];
    let mut body = b"SELECT '".to_vec();
    body.extend(&big);
    body.extend(b"'\0");
    let _ = s.write_all(&message(b'Q', &body));
    let raw = read_all(&mut s);
    assert_eq!(
        sqlstate_of(&raw).as_deref(),
        Some("54000"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(String::from_utf8_lossy(&raw).contains("exceeds the maximum"));
    still_serves(&gw);
}

#[test]
fn impossible_length_is_a_protocol_violation() {
    let gw = trust_gw(1 << 20);
    let mut s = session(&gw);
    s.write_all(&[b'Q', 0, 0, 0, 2]).unwrap();
    let raw = read_all(&mut s);
    assert_eq!(sqlstate_of(&raw).as_deref(), Some("08P01"));
    still_serves(&gw);
}

#[test]
fn unknown_message_type_is_refused() {
    let gw = trust_gw(1 << 20);
    let mut s = session(&gw);
    s.write_all(&message(b'z', b"whatever")).unwrap();
    let raw = read_all(&mut s);
    assert_eq!(sqlstate_of(&raw).as_deref(), Some("08P01"));
    assert!(String::from_utf8_lossy(&raw).contains("invalid frontend message type"));
    still_serves(&gw);
}

#[test]
fn garbage_before_startup_gets_an_error() {
    let gw = trust_gw(1 << 20);
    let mut s = connect(&gw);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let raw = read_all(&mut s);
    assert_eq!(
        sqlstate_of(&raw).as_deref(),
        Some("08P01"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    // Protocol version 2 is refused too.
    let mut s = connect(&gw);
    let mut p = startup_packet(AGENT, "postgres");
    p[4..8].copy_from_slice(&0x0002_0000i32.to_be_bytes());
    s.write_all(&p).unwrap();
    let raw = read_all(&mut s);
    assert!(String::from_utf8_lossy(&raw).contains("unsupported frontend protocol 2.0"));
    still_serves(&gw);
}

#[test]
fn plaintext_after_ssl_request_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(dir.path());
    let gw = Gw::start(|c| {
        c.auth.method = AuthMethod::Trust;
        c.tls.cert = Some(cert);
        c.tls.key = Some(key);
    });
    let mut s = connect(&gw);
    let mut req = 8i32.to_be_bytes().to_vec();
    req.extend_from_slice(&80877103i32.to_be_bytes());
    req.extend(startup_packet(AGENT, "postgres"));
    s.write_all(&req).unwrap();
    let raw = read_all(&mut s);
    assert!(
        String::from_utf8_lossy(&raw).contains("unencrypted data after SSL request"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    still_serves(&gw);
}

#[test]
fn gssenc_request_is_declined_and_startup_continues() {
    let gw = trust_gw(1 << 20);
    let mut s = connect(&gw);
    let mut req = 8i32.to_be_bytes().to_vec();
    req.extend_from_slice(&80877104i32.to_be_bytes());
    s.write_all(&req).unwrap();
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"N");
    s.write_all(&startup_packet(AGENT, "postgres")).unwrap();
    let (tags, _) = read_until_ready(&mut s);
    assert!(tags.contains(&b'K'));
}

#[test]
fn fastpath_function_call_is_refused_and_session_continues() {
    let gw = trust_gw(1 << 20);
    let mut s = session(&gw);
    // FunctionCall: oid 1 (nonsense), no args formats, no args, result format text.
    let mut body = 1i32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    s.write_all(&message(b'F', &body)).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    assert_eq!(tags, vec![b'E', b'Z']);
    assert_eq!(sqlstate_of(&raw).as_deref(), Some("0A000"));
    assert!(String::from_utf8_lossy(&raw).contains("fastpath function calls are not supported"));
    s.write_all(&message(b'Q', b"SELECT 'after'\0")).unwrap();
    let (tags, _) = read_until_ready(&mut s);
    assert!(tags.contains(&b'D'));
    // The attempt is in the audit, denied, with the function it asked for.
    let refused: Vec<_> = gw
        .decisions()
        .into_iter()
        .filter(|(_, d)| d.sql == "fastpath FunctionCall of function OID 1")
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", gw.decisions());
    assert_eq!(refused[0].1.decision.action, airlock::policy::Action::Deny);

    // Behind an unsynced batch, the refusal comes after the batch's own answers.
    let mut batch = message(b'P', b"\0SELECT 'first'\0\0\0");
    batch.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    batch.extend(message(b'E', b"\0\0\0\0\0"));
    batch.extend(message(b'F', &body));
    batch.extend(message(b'S', b""));
    s.write_all(&batch).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    let text = String::from_utf8_lossy(&raw);
    let row = text.find("first").expect("the batch ran");
    let refusal = text
        .find("fastpath function calls")
        .expect("the call was refused");
    assert!(row < refusal, "answers out of order: {tags:?} {text}");
}

#[test]
fn unknown_cancel_key_is_ignored() {
    let gw = trust_gw(1 << 20);
    let mut s = connect(&gw);
    let mut req = 16i32.to_be_bytes().to_vec();
    req.extend_from_slice(&80877102i32.to_be_bytes());
    req.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    s.write_all(&req).unwrap();
    assert!(read_all(&mut s).is_empty());
    still_serves(&gw);
}

#[test]
fn role_changing_startup_parameters_are_refused() {
    let gw = trust_gw(1 << 20);
    let out = psql(
        &format!(
            "postgres://{AGENT}@127.0.0.1:{}/postgres?options=-c%20role%3Dpg_read_all_data",
            gw.port()
        ),
        &["-c", "SELECT 1"],
        None,
    );
    assert!(
        stderr(&out).contains("not allowed through airlock"),
        "{}",
        stderr(&out)
    );
    still_serves(&gw);
}

#[test]
fn unreachable_upstream_is_08006_and_gateway_keeps_serving() {
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Gw::start(|c| {
        c.auth.method = AuthMethod::Trust;
        c.upstream.url =
            format!("postgres://svc:s3cr3t-pw@127.0.0.1:{dead_port}/db?sslmode=disable");
    });
    for _ in 0..2 {
        let mut s = connect(&gw);
        s.write_all(&startup_packet(AGENT, "postgres")).unwrap();
        let raw = read_all(&mut s);
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(sqlstate_of(&raw).as_deref(), Some("08006"), "{text}");
        assert!(
            text.contains(&format!("upstream 127.0.0.1:{dead_port}")),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}

#[test]
fn too_many_connections_is_53300() {
    let gw = Gw::start(|c| {
        c.auth.method = AuthMethod::Trust;
        c.server.max_connections = 1;
    });
    let _first = session(&gw);
    let mut second = connect(&gw);
    let raw = read_all(&mut second);
    assert_eq!(sqlstate_of(&raw).as_deref(), Some("53300"));
}

/// A client that starts SCRAM and then says nothing is cut off at the startup time limit
/// (as PostgreSQL's authentication_timeout does), so it cannot hold a connection slot.
#[test]
fn a_client_silent_during_authentication_is_cut_off() {
    let gw = Gw::start(|c| {
        c.auth.method = AuthMethod::ScramSha256;
        c.server.startup_timeout_secs = 1;
        c.server.max_connections = 1;
    });
    let mut s = connect(&gw);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&startup_packet(AGENT, "postgres")).unwrap();
    let raw = read_all(&mut s);
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(raw.first(), Some(&b'R'), "SASL offered first: {text}");
    assert!(
        text.contains("canceling authentication due to timeout"),
        "{text}"
    );
    let error = frames(&raw)
        .into_iter()
        .find(|(t, _)| *t == b'E')
        .expect("an error");
    assert_eq!(sqlstate_of(error.1).as_deref(), Some("57014"));
    // Its slot is given back (the session ends just after the client sees the error, so a
    // client arriving meanwhile may still be turned away with 53300).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut next = connect(&gw);
        next.write_all(&startup_packet(AGENT, "postgres")).unwrap();
        let mut first = [0u8; 1];
        next.read_exact(&mut first).unwrap();
        if &first == b"R" {
            break;
        }
        let raw = read_all(&mut next);
        assert_eq!(sqlstate_of(&raw).as_deref(), Some("53300"), "{raw:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never given back"
        );
    }
}

/// A self-signed certificate for 127.0.0.1/localhost.
pub fn write_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let c = dir.join("cert.pem");
    let k = dir.join("key.pem");
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    (c, k)
}

/// An Execute may name a portal no Bind created: a cursor declared in SQL. It is decided and
/// audited as the FETCH it amounts to, not as an empty statement.
#[test]
fn executing_a_cursor_declared_in_sql_is_decided_as_fetch() {
    let gw = trust_gw(1 << 20);
    let mut s = session(&gw);
    s.write_all(&message(
        b'Q',
        b"BEGIN; DECLARE c CURSOR FOR SELECT g FROM generate_series(1, 3) g\0",
    ))
    .unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    assert!(!tags.contains(&b'E'), "{}", String::from_utf8_lossy(&raw));
    // Execute portal "c", at most 2 rows; then Sync.
    let mut batch = message(b'E', b"c\0\0\0\0\x02");
    batch.extend(message(b'S', b""));
    s.write_all(&batch).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    assert_eq!(
        tags,
        vec![b'D', b'D', b's', b'Z'],
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let sqls: Vec<String> = gw.decisions().into_iter().map(|(_, d)| d.sql).collect();
    assert!(
        sqls.iter().any(|q| q == "FETCH ALL FROM \"c\""),
        "{sqls:#?}"
    );
    assert!(!sqls.iter().any(|q| q.is_empty()), "{sqls:#?}");
}

/// A Bind to a portal name a SQL cursor holds is refused by the server, and a later Execute
/// of the name runs the cursor. The gate cannot see the refusal in advance, so it decides and
/// audits that Execute as both what was bound and the FETCH.
#[test]
fn executing_a_portal_name_a_cursor_holds_is_decided_as_fetch_too() {
    let gw = trust_gw(1 << 20);
    let mut s = session(&gw);
    s.write_all(&message(
        b'Q',
        b"DECLARE c CURSOR WITH HOLD FOR SELECT g FROM generate_series(7, 9) g\0",
    ))
    .unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    assert!(!tags.contains(&b'E'), "{}", String::from_utf8_lossy(&raw));
    // Parse "SELECT 42" unnamed, Bind it to portal "c": the server refuses (42P03).
    let mut batch = message(b'P', b"\0SELECT 42\0\0\0");
    batch.extend(message(b'B', b"c\0\0\0\0\0\0\0\0"));
    batch.extend(message(b'S', b""));
    s.write_all(&batch).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    let text = String::from_utf8_lossy(&raw);
    assert!(tags.contains(&b'E') && text.contains("42P03"), "{text}");
    // Execute portal "c", at most 2 rows: the cursor's rows come back.
    let mut batch = message(b'E', b"c\0\0\0\0\x02");
    batch.extend(message(b'S', b""));
    s.write_all(&batch).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(tags, vec![b'D', b'D', b's', b'Z'], "{text}");
    assert!(text.contains('7') && text.contains('8'), "{text}");
    let sqls: Vec<String> = gw.decisions().into_iter().map(|(_, d)| d.sql).collect();
    assert_eq!(
        sqls.last().map(String::as_str),
        Some("SELECT 42;\nFETCH ALL FROM \"c\""),
        "{sqls:#?}"
    );
    // A CLOSE the server skips (an earlier statement of its query string fails) closes
    // nothing: the cursor still answers to the name, and the gateway still knows it.
    s.write_all(&message(b'Q', b"SELECT 1/0; CLOSE c\0"))
        .unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    let text = String::from_utf8_lossy(&raw);
    assert!(tags.contains(&b'E') && text.contains("22012"), "{text}");
    let mut batch = message(b'P', b"\0SELECT 44\0\0\0");
    batch.extend(message(b'B', b"c\0\0\0\0\0\0\0\0"));
    batch.extend(message(b'S', b""));
    s.write_all(&batch).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    let text = String::from_utf8_lossy(&raw);
    assert!(tags.contains(&b'E') && text.contains("42P03"), "{text}");
    let mut batch = message(b'E', b"c\0\0\0\0\0");
    batch.extend(message(b'S', b""));
    s.write_all(&batch).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(tags, vec![b'D', b'C', b'Z'], "{text}");
    assert!(text.contains('9'), "{text}");
    let sqls: Vec<String> = gw.decisions().into_iter().map(|(_, d)| d.sql).collect();
    assert_eq!(
        sqls.last().map(String::as_str),
        Some("SELECT 44;\nFETCH ALL FROM \"c\""),
        "{sqls:#?}"
    );
    // Closed in SQL, the name is a portal again: an Execute is what was bound.
    s.write_all(&message(b'Q', b"CLOSE c\0")).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    assert!(!tags.contains(&b'E'), "{}", String::from_utf8_lossy(&raw));
    let mut batch = message(b'P', b"\0SELECT 43\0\0\0");
    batch.extend(message(b'B', b"c\0\0\0\0\0\0\0\0"));
    batch.extend(message(b'E', b"c\0\0\0\0\0"));
    batch.extend(message(b'S', b""));
    s.write_all(&batch).unwrap();
    let (tags, raw) = read_until_ready(&mut s);
    assert!(!tags.contains(&b'E'), "{}", String::from_utf8_lossy(&raw));
    let sqls: Vec<String> = gw.decisions().into_iter().map(|(_, d)| d.sql).collect();
    assert_eq!(
        sqls.last().map(String::as_str),
        Some("SELECT 43"),
        "{sqls:#?}"
    );
}

/// `SELECT 1+1+…` with 100,000 terms (about 200 KB) overflowed the stack of the session thread
/// classifying it, and a stack overflow aborts the whole gateway. Such text is held as unknown
/// without being parsed: here the approver denies it, the client gets an error on a live
/// session, and other clients are served as before. 400,000 terms would overflow even the
/// session threads' larger stack were the text parsed.
#[test]
fn deeply_nested_expression_is_held_and_the_gateway_survives() {
    let gw = Gw::start(|c| {
        c.auth.method = AuthMethod::Trust;
        c.policy.path = shipped_policy("demo.toml");
    });
    gw.auto_deny("alice");
    let mut s = session(&gw);
    for terms in [100_000, 400_000] {
        let mut sql = format!("SELECT {terms}{}", "+1".repeat(terms)).into_bytes();
        sql.push(0);
        s.write_all(&message(b'Q', &sql)).unwrap();
        let (tags, raw) = read_until_ready(&mut s);
        let text = String::from_utf8_lossy(&raw);
        // A notice that it is held, then the denial.
        assert_eq!(tags, [b'N', b'E', b'Z'], "{}", &text[..text.len().min(500)]);
        assert!(text.contains("nested too deeply"), "{text}");
        let error = frames(&raw).into_iter().find(|(tag, _)| *tag == b'E');
        assert_eq!(
            error.and_then(|(_, body)| sqlstate_of(body)).as_deref(),
            Some("42501")
        );
        let decisions = gw.decisions();
        let (_, deep) = decisions
            .iter()
            .find(|(_, d)| d.sql.starts_with(&format!("SELECT {terms}+1+1")))
            .expect("the deep statement was audited");
        assert_eq!(deep.decision.action, airlock::policy::Action::Hold);
        assert_eq!(deep.facts.len(), 1);
        assert_eq!(deep.facts[0].kind, airlock::sql::Kind::Unknown);
        assert!(
            deep.facts[0].label.contains("nested too deeply"),
            "{}",
            deep.facts[0].label
        );
    }
    // The same session goes on, and so does the gateway.
    s.write_all(&message(b'Q', b"SELECT 'after'\0")).unwrap();
    let (tags, _) = read_until_ready(&mut s);
    assert!(tags.contains(&b'D'), "{tags:?}");
    still_serves(&gw);
}

/// A Parse, Bind or Close cut short (its counts promise fields that are not there) is a
/// protocol violation: the session ends with 08P01 instead of the decoder running off the end.
#[test]
fn extended_messages_cut_short_are_protocol_violations() {
    let gw = trust_gw(1 << 20);
    for (tag, body) in [
        (b'P', &b"\0\0"[..]),
        (b'P', b"s\0SELECT $1\0\0\x02\0\0\0\x17"),
        (b'B', b"\0\0"),
        (b'B', b"\0\0\0\0\0\x01\0\0\0\x051\0\0"),
        (b'C', b"S"),
    ] {
        let mut s = session(&gw);
        let mut m = message(tag, body);
        m.extend(message(b'S', b""));
        s.write_all(&m).unwrap();
        let raw = read_all(&mut s);
        assert_eq!(
            sqlstate_of(&raw).as_deref(),
            Some("08P01"),
            "{}: {:?}",
            tag as char,
            String::from_utf8_lossy(&raw)
        );
    }
    still_serves(&gw);
}

/// A column added on the server after the catalog snapshot is refused in results even when
/// the client never asks for a row description: the server only describes a portal on
/// Describe, so the gateway asks itself before an Execute that has none, checks the answer and
/// keeps it from the client. Here `ssn` is added directly while the schema watch is off; the
/// plain `SELECT *`, a named portal and a SQL cursor must not return it. (A refusal makes the
/// gateway read the catalog again, so each case starts from a snapshot without the column.)
#[test]
fn a_column_added_since_the_snapshot_is_refused_without_a_describe() {
    let db = TestDb::new("no_describe");
    db.exec(airlock::demo::DEMO_SCHEMA);
    db.exec("ALTER TABLE customers DROP COLUMN ssn, DROP COLUMN email CASCADE, DROP COLUMN phone");
    let parse = |name: &str, sql: &str| {
        let mut b = name.as_bytes().to_vec();
        b.push(0);
        b.extend_from_slice(sql.as_bytes());
        b.extend_from_slice(&[0, 0, 0]);
        message(b'P', &b)
    };
    let bind = |portal: &str, stmt: &str| {
        let mut b = portal.as_bytes().to_vec();
        b.push(0);
        b.extend_from_slice(stmt.as_bytes());
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
        message(b'B', &b)
    };
    let execute = |portal: &str| {
        let mut b = portal.as_bytes().to_vec();
        b.extend_from_slice(&[0, 0, 0, 0, 0]);
        message(b'E', &b)
    };
    let sync = message(b'S', b"");
    let select = "SELECT * FROM customers ORDER BY id LIMIT 2";
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "unnamed portal",
            Vec::new(),
            [parse("", select), bind("", ""), execute(""), sync.clone()].concat(),
        ),
        (
            "named portal",
            Vec::new(),
            [
                parse("s1", select),
                bind("p1", "s1"),
                execute("p1"),
                sync.clone(),
            ]
            .concat(),
        ),
        (
            "SQL cursor",
            message(
                b'Q',
                format!("BEGIN; DECLARE c CURSOR FOR {select}\0").as_bytes(),
            ),
            [execute("c"), sync.clone()].concat(),
        ),
        (
            "client's own Describe",
            Vec::new(),
            [
                parse("", select),
                bind("", ""),
                message(b'D', b"P\0"),
                execute(""),
                sync.clone(),
            ]
            .concat(),
        ),
    ];
    for (what, setup, unit) in cases {
        db.exec("ALTER TABLE customers DROP COLUMN IF EXISTS ssn");
        let gw = Gw::start(|c| {
            c.auth.method = AuthMethod::Trust;
            c.upstream.catalog_poll_ms = 0;
            c.policy.path = shipped_policy("demo.toml");
        });
        let mut s = connect(&gw);
        s.write_all(&startup_packet(AGENT, &db.name)).unwrap();
        let (tags, _) = read_until_ready(&mut s);
        assert_eq!(tags.first(), Some(&b'R'));
        // With the snapshot's columns the read is allowed (and the snapshot is loaded).
        s.write_all(&message(
            b'Q',
            b"SELECT * FROM customers ORDER BY id LIMIT 1\0",
        ))
        .unwrap();
        let (tags, raw) = read_until_ready(&mut s);
        assert!(
            tags.contains(&b'D'),
            "{what}: {}",
            String::from_utf8_lossy(&raw)
        );
        // Without a Describe, the client gets rows and no description it did not ask for.
        s.write_all(&[parse("", select), bind("", ""), execute(""), sync.clone()].concat())
            .unwrap();
        let (tags, raw) = read_until_ready(&mut s);
        assert_eq!(tags, b"12DDCZ", "{what}: {}", String::from_utf8_lossy(&raw));

        db.exec(
            "ALTER TABLE customers ADD COLUMN ssn text; UPDATE customers SET ssn = 'SSN-' || id",
        );
        let direct = db.exec("SELECT ssn FROM customers ORDER BY id LIMIT 1");
        assert_eq!(direct.trim(), "SSN-1");
        if !setup.is_empty() {
            // Declaring the cursor returns no rows, so nothing is checked yet.
            s.write_all(&setup).unwrap();
            let (tags, raw) = read_until_ready(&mut s);
            assert!(
                !tags.contains(&b'E'),
                "{what}: {}",
                String::from_utf8_lossy(&raw)
            );
        }

        s.write_all(&unit).unwrap();
        let (tags, raw) = read_until_ready(&mut s);
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !text.contains("SSN-"),
            "{what}: the new column came back: {text}"
        );
        assert!(
            tags.contains(&b'E'),
            "{what}: refused with an error: {tags:?} {text}"
        );
        // The session goes on.
        s.write_all(&message(b'Q', b"ROLLBACK; SELECT 'alive'\0"))
            .unwrap();
        let (_, raw) = read_until_ready(&mut s);
        assert!(String::from_utf8_lossy(&raw).contains("alive"), "{what}");
    }
}

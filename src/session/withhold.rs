//! Server messages that may quote PII are passed on without their text.
//!
//! PostgreSQL's errors often quote the value they failed on: `invalid input syntax for type
//! date: "alice@example.com"` from `WHERE email::date IS NULL`, `relation "078-05-1120" does
//! not exist` from `ssn::regclass`, and a constraint violation's DETAIL shows the whole failing
//! row, every column of it, even for `UPDATE customers SET name = NULL`. A read the policy lets
//! through because PII only filters its rows (no PII among its output columns) would then hand
//! the PII over in its error, one full value per statement.
//!
//! So for a statement that references a declared PII column, or writes a table that may hold
//! one, the server's ErrorResponse and NoticeResponse reach the client with their SQLSTATE,
//! severity, position and the names the server attached (schema, table, column, data type,
//! constraint), and a message the gateway writes; the server's own message, detail, hint and
//! context are dropped. The audit records the same text as the client gets. Codes whose
//! messages never carry data (serialization failures, cancels, lock timeouts, permission
//! errors, an aborted transaction) pass unchanged.

use bytes::{Bytes, BytesMut};
use pgwire::messages::response::{ErrorResponse, NoticeResponse};
use pgwire::messages::Message;

use crate::protocol::messages::{error_field, error_fields};
use crate::protocol::Frame;

/// A server message with its text withheld.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    /// The frame the client gets instead.
    pub frame: Bytes,
    pub code: String,
    pub message: String,
}

/// Fields kept as the server sent them: severity (both forms), SQLSTATE, position in the
/// client's own SQL, the object names, and where in the server's source the error arose.
const KEPT: &[u8] = b"SVCPstcdnFLR";

/// Classes and codes whose messages name objects or processes but never quote data.
fn passes(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57"))
        || matches!(code, "25P02" | "55P03" | "42501" | "25006")
}

/// The ErrorResponse or NoticeResponse `frame` with its text withheld; `None` when it
/// passes as it is (its code never carries data). Fields after a malformed one are dropped.
pub fn withhold(frame: &Frame) -> Option<Withheld> {
    let fields = error_fields(frame);
    let get = |k: u8| error_field(&fields, k);
    let code = get(b'C').unwrap_or("XX000").to_string();
    if passes(&code) {
        return None;
    }
    let mut names = Vec::new();
    if let Some(c) = get(b'c') {
        names.push(format!("column \"{c}\""));
    }
    match (get(b's'), get(b't')) {
        (Some(s), Some(t)) => names.push(format!("table \"{s}.{t}\"")),
        (None, Some(t)) => names.push(format!("table \"{t}\"")),
        _ => {}
    }
    if let Some(n) = get(b'n') {
        names.push(format!("constraint \"{n}\""));
    }
    if let Some(d) = get(b'd') {
        names.push(format!("type \"{d}\""));
    }
    let names = if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    };
    let message = format!(
        "{} [SQLSTATE {code}]{names}: the server's message is withheld because this statement touches PII or a secret",
        condition(&code)
    );
    let hint = "Server messages can quote the values they failed on (an invalid input value, \
                the whole failing row of a constraint). The SQLSTATE and the names of the \
                objects involved are kept; the server log has the full text of an error.";
    let mut out: Vec<(u8, String)> = fields
        .iter()
        .filter(|(k, _)| KEPT.contains(k))
        .cloned()
        .collect();
    out.push((b'M', message.clone()));
    out.push((b'H', hint.to_string()));
    let mut buf = BytesMut::new();
    let encoded = match frame.tag() {
        b'N' => NoticeResponse::new(out).encode(&mut buf),
        _ => ErrorResponse::new(out).encode(&mut buf),
    };
    encoded.ok()?;
    Some(Withheld {
        frame: buf.freeze(),
        code,
        message,
    })
}

/// PostgreSQL's condition name for the common codes, else its class's name.
fn condition(code: &str) -> &'static str {
    match code {
        "23502" => "not-null violation",
        "23503" => "foreign key violation",
        "23505" => "unique violation",
        "23514" => "check violation",
        "23P01" => "exclusion violation",
        "22P02" => "invalid text representation",
        "22007" => "invalid datetime format",
        "22008" => "datetime field overflow",
        "22003" => "numeric value out of range",
        "22012" => "division by zero",
        "22001" => "string data right truncation",
        "22023" => "invalid parameter value",
        "22021" => "character not in repertoire",
        "2200N" => "invalid XML content",
        "42P01" => "undefined table",
        "42703" => "undefined column",
        "42704" => "undefined object",
        "42883" => "undefined function",
        "42601" => "syntax error",
        "42804" => "datatype mismatch",
        "P0001" => "raise exception",
        _ => match code.get(..2).unwrap_or("") {
            "01" => "warning",
            "02" => "no data",
            "09" => "triggered action exception",
            "0B" => "invalid transaction initiation",
            "0F" => "locator exception",
            "0L" => "invalid grantor",
            "0P" => "invalid role specification",
            "0Z" => "diagnostics exception",
            "20" => "case not found",
            "21" => "cardinality violation",
            "22" => "data exception",
            "23" => "integrity constraint violation",
            "24" => "invalid cursor state",
            "25" => "invalid transaction state",
            "26" => "invalid SQL statement name",
            "27" => "triggered data change violation",
            "28" => "invalid authorization specification",
            "2B" => "dependent privilege descriptors still exist",
            "2D" => "invalid transaction termination",
            "2F" => "SQL routine exception",
            "34" => "invalid cursor name",
            "38" => "external routine exception",
            "39" => "external routine invocation exception",
            "3B" => "savepoint exception",
            "3D" => "invalid catalog name",
            "3F" => "invalid schema name",
            "42" => "syntax error or access rule violation",
            "44" => "WITH CHECK OPTION violation",
            "54" => "program limit exceeded",
            "55" => "object not in prerequisite state",
            "58" => "system error",
            "72" => "snapshot failure",
            "F0" => "configuration file error",
            "HV" => "foreign data wrapper error",
            "P0" => "PL/pgSQL error",
            "XX" => "internal error",
            _ => "error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::split_frame;

    fn server_error(fields: &[(u8, &str)]) -> Frame {
        let mut buf = BytesMut::new();
        ErrorResponse::new(fields.iter().map(|(k, v)| (*k, v.to_string())).collect())
            .encode(&mut buf)
            .unwrap();
        Frame::from_bytes(buf.freeze())
    }

    #[test]
    fn a_failing_row_keeps_its_names_and_loses_its_values() {
        let frame = server_error(&[
            (b'S', "ERROR"),
            (b'V', "ERROR"),
            (b'C', "23502"),
            (b'M', "null value in column \"name\" of relation \"customers\" violates not-null constraint"),
            (b'D', "Failing row contains (3, null, Osaka, c3@example.com, 100023757)."),
            (b's', "public"),
            (b't', "customers"),
            (b'c', "name"),
            (b'F', "execMain.c"),
            (b'L', "1883"),
            (b'R', "ExecConstraints"),
        ]);
        let w = withhold(&frame).expect("withheld");
        assert_eq!(w.code, "23502");
        let mut b = BytesMut::from(&w.frame[..]);
        let f = split_frame(&mut b, 1 << 20).unwrap().unwrap();
        assert_eq!(f.tag(), b'E');
        let fields = error_fields(&f);
        let all: String = fields.iter().map(|(_, v)| v.as_str()).collect();
        for secret in ["100023757", "c3@example.com", "Osaka", "Failing row"] {
            assert!(!all.contains(secret), "{secret} leaked: {fields:?}");
        }
        assert!(fields.contains(&(b'C', "23502".into())));
        assert!(fields.contains(&(b'R', "ExecConstraints".into())));
        assert!(!fields.iter().any(|(k, _)| *k == b'D'));
        assert_eq!(
            w.message,
            "not-null violation [SQLSTATE 23502] (column \"name\", table \"public.customers\"): \
             the server's message is withheld because this statement touches PII or a secret"
        );
        assert!(fields.contains(&(b'M', w.message.clone())));
    }

    #[test]
    fn quoted_input_values_and_context_are_dropped() {
        let frame = server_error(&[
            (b'S', "ERROR"),
            (b'C', "22P02"),
            (b'M', "invalid input syntax for type json"),
            (b'D', "Token \"alice\" is invalid."),
            (b'W', "JSON data, line 1: alice..."),
            (b'P', "17"),
        ]);
        let w = withhold(&frame).expect("withheld");
        let mut b = BytesMut::from(&w.frame[..]);
        let fields = error_fields(&split_frame(&mut b, 1 << 20).unwrap().unwrap());
        assert!(
            !fields.iter().any(|(_, v)| v.contains("alice")),
            "{fields:?}"
        );
        assert!(fields.contains(&(b'P', "17".into())));
        assert!(w
            .message
            .starts_with("invalid text representation [SQLSTATE 22P02]:"));
        // An unknown code in a known class is named by its class.
        let w = withhold(&server_error(&[
            (b'S', "ERROR"),
            (b'C', "22Z99"),
            (b'M', "x"),
        ]))
        .unwrap();
        assert!(
            w.message.starts_with("data exception [SQLSTATE 22Z99]:"),
            "{}",
            w.message
        );
    }

    #[test]
    fn notices_stay_notices() {
        let mut buf = BytesMut::new();
        NoticeResponse::new(vec![
            (b'S', "NOTICE".into()),
            (b'C', "00000".into()),
            (b'M', "value is alice".into()),
        ])
        .encode(&mut buf)
        .unwrap();
        let w = withhold(&Frame::from_bytes(buf.freeze())).expect("withheld");
        assert_eq!(w.frame[0], b'N');
        assert!(!String::from_utf8_lossy(&w.frame).contains("alice"));
    }

    #[test]
    fn codes_that_never_carry_data_pass_and_garbage_does_not_panic() {
        for code in [
            "40001", "40P01", "57014", "25P02", "55P03", "42501", "08006", "53300",
        ] {
            let frame = server_error(&[(b'S', "ERROR"), (b'C', code), (b'M', "m")]);
            assert_eq!(withhold(&frame), None, "{code}");
        }
        let frame = server_error(&[(b'S', "ERROR"), (b'C', "23505"), (b'M', "m")]);
        for cut in 5..frame.bytes().len() {
            let _ = withhold(&Frame::from_bytes(frame.bytes().slice(..cut)));
        }
        // No SQLSTATE at all is still withheld, as an internal error.
        let w = withhold(&server_error(&[(b'S', "ERROR"), (b'M', "alice")])).unwrap();
        assert_eq!(w.code, "XX000");
    }
}

//! Messages the gateway writes itself (errors, notices, authentication, ReadyForQuery) and
//! typed views of the backend messages it has to read (ReadyForQuery, CommandComplete,
//! ErrorResponse). Encoding goes through pgwire's message types.

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::response::{ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use pgwire::messages::Message;

use super::frame::{read_cstr, Frame};

/// Severity of a gateway-made error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

/// A PostgreSQL error or notice the gateway raises, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgError {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Error,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Fatal,
            ..Self::error(code, message)
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn fields(&self, severity: &str) -> Vec<(u8, String)> {
        let mut f = vec![
            (b'S', severity.to_string()),
            (b'V', severity.to_string()),
            (b'C', self.code.to_string()),
            (b'M', self.message.clone()),
        ];
        if let Some(d) = &self.detail {
            f.push((b'D', d.clone()));
        }
        if let Some(h) = &self.hint {
            f.push((b'H', h.clone()));
        }
        f
    }

    /// Encodes as an ErrorResponse.
    pub fn encode(&self, buf: &mut BytesMut) {
        let sev = match self.severity {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        };
        encode_into(buf, &ErrorResponse::new(self.fields(sev)));
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

fn encode_into<M: Message>(buf: &mut BytesMut, m: &M) {
    // Only fails on messages over pgwire's size limits, which gateway-made messages never
    // reach (texts are bounded by the callers); a failure would be a gateway bug.
    if let Err(e) = m.encode(buf) {
        tracing::error!(error = %e, "failed to encode a gateway message");
    }
}

/// A NoticeResponse with severity NOTICE.
pub fn notice(buf: &mut BytesMut, code: &str, message: &str, detail: Option<&str>) {
    let mut f = vec![
        (b'S', "NOTICE".to_string()),
        (b'V', "NOTICE".to_string()),
        (b'C', code.to_string()),
        (b'M', message.to_string()),
    ];
    if let Some(d) = detail {
        f.push((b'D', d.to_string()));
    }
    encode_into(buf, &NoticeResponse::new(f));
}

/// A NoticeResponse with detail and hint (what a held statement's client sees).
pub fn notice_with_hint(buf: &mut BytesMut, code: &str, message: &str, detail: &str, hint: &str) {
    let f = vec![
        (b'S', "NOTICE".to_string()),
        (b'V', "NOTICE".to_string()),
        (b'C', code.to_string()),
        (b'M', message.to_string()),
        (b'D', detail.to_string()),
        (b'H', hint.to_string()),
    ];
    encode_into(buf, &NoticeResponse::new(f));
}

/// Transaction status as reported in ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    Failed,
}

impl TxStatus {
    pub fn from_byte(b: u8) -> Option<TxStatus> {
        match b {
            b'I' => Some(TxStatus::Idle),
            b'T' => Some(TxStatus::InTransaction),
            b'E' => Some(TxStatus::Failed),
            _ => None,
        }
    }
}

pub fn ready_for_query(buf: &mut BytesMut, status: TxStatus) {
    let s = match status {
        TxStatus::Idle => TransactionStatus::Idle,
        TxStatus::InTransaction => TransactionStatus::Transaction,
        TxStatus::Failed => TransactionStatus::Error,
    };
    encode_into(buf, &ReadyForQuery::new(s));
}

pub fn auth_ok(buf: &mut BytesMut) {
    encode_into(buf, &Authentication::Ok);
}

pub fn auth_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    encode_into(
        buf,
        &Authentication::SASL(mechanisms.iter().map(|s| s.to_string()).collect()),
    );
}

pub fn auth_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    encode_into(
        buf,
        &Authentication::SASLContinue(Bytes::copy_from_slice(data)),
    );
}

pub fn auth_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    encode_into(
        buf,
        &Authentication::SASLFinal(Bytes::copy_from_slice(data)),
    );
}

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    encode_into(buf, &ParameterStatus::new(name.into(), value.into()));
}

pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: i32) {
    encode_into(buf, &BackendKeyData::new(pid, SecretKey::I32(secret)));
}

/// NegotiateProtocolVersion: the newest minor version we speak (0) and the options we ignore.
pub fn negotiate_protocol_version(buf: &mut BytesMut, unsupported: &[String]) {
    let start = buf.len();
    buf.put_u8(b'v');
    buf.put_i32(0);
    buf.put_i32(0);
    buf.put_i32(unsupported.len() as i32);
    for o in unsupported {
        buf.put_slice(o.as_bytes());
        buf.put_u8(0);
    }
    let len = (buf.len() - start - 1) as i32;
    buf[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// Startup-phase parameters of a frontend StartupMessage body (after the version word).
pub fn parse_startup_params(body: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let (k, r) = read_cstr(rest)?;
        if k.is_empty() {
            return Some(out);
        }
        let (v, r) = read_cstr(r)?;
        out.push((k.to_string(), v.to_string()));
        rest = r;
    }
}

/// The fields of a backend ErrorResponse or NoticeResponse.
pub fn error_fields(frame: &Frame) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut rest = frame.body();
    while let Some((&code, r)) = rest.split_first() {
        if code == 0 {
            break;
        }
        match read_cstr(r) {
            Some((v, r)) => {
                out.push((code, v.to_string()));
                rest = r;
            }
            None => break,
        }
    }
    out
}

/// The value of field `code` among `fields` (from [`error_fields`]).
pub fn error_field(fields: &[(u8, String)], code: u8) -> Option<&str> {
    fields
        .iter()
        .find(|(k, _)| *k == code)
        .map(|(_, v)| v.as_str())
}

/// `(SQLSTATE, message)` of a backend ErrorResponse.
pub fn error_code_and_message(frame: &Frame) -> (String, String) {
    let fields = error_fields(frame);
    let get = |c: u8| error_field(&fields, c).unwrap_or_default().to_string();
    (get(b'C'), get(b'M'))
}

/// The tag of a CommandComplete (`SELECT 3`).
pub fn command_tag(frame: &Frame) -> &str {
    read_cstr(frame.body()).map(|(s, _)| s).unwrap_or("")
}

/// Rows affected or returned, from a command tag's last word.
pub fn tag_rows(tag: &str) -> u64 {
    tag.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::split_frame;

    #[test]
    fn error_roundtrips_through_own_framing() {
        let e = PgError::error("42501", "denied by rule x").with_hint("ask alice");
        let mut b = e.to_bytes().into();
        let f = split_frame(&mut b, 1 << 20).unwrap().unwrap();
        assert_eq!(f.tag(), b'E');
        let (code, msg) = error_code_and_message(&f);
        assert_eq!((code.as_str(), msg.as_str()), ("42501", "denied by rule x"));
        assert!(error_fields(&f).contains(&(b'H', "ask alice".into())));
    }

    #[test]
    fn ready_for_query_and_tags() {
        let mut b = BytesMut::new();
        ready_for_query(&mut b, TxStatus::Failed);
        assert_eq!(&b[..], &[b'Z', 0, 0, 0, 5, b'E']);
        assert_eq!(tag_rows("INSERT 0 12"), 12);
        assert_eq!(tag_rows("BEGIN"), 0);
    }

    #[test]
    fn negotiate_protocol_version_has_right_length() {
        let mut b = BytesMut::new();
        negotiate_protocol_version(&mut b, &["_pq_.x".to_string()]);
        let f = split_frame(&mut b, 1 << 20).unwrap().unwrap();
        assert_eq!(f.tag(), b'v');
        assert_eq!(f.body().len(), 4 + 4 + 7);
    }

    #[test]
    fn startup_params_parse_and_reject_truncation() {
        let body = b"user\0bob\0database\0db\0\0";
        let p = parse_startup_params(body).unwrap();
        assert_eq!(p[1], ("database".into(), "db".into()));
        assert!(parse_startup_params(b"user\0bob").is_none());
    }
}

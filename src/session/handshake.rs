//! From a negotiated startup packet to an authenticated client: which startup parameters may
//! pass (some would change the session's role or search_path before any SQL is inspected),
//! and client authentication (SCRAM or, for development, trust).

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{AuthConfig, AuthMethod};
use crate::protocol::frame::{read_cstr, split_frame, Frame};
use crate::protocol::messages::{self, PgError};
use crate::protocol::scram::{ScramServer, Verifier};
use crate::protocol::sqlstate;
use crate::protocol::stream::Stream;

/// Startup parameters that are protocol plumbing rather than settings.
const PLUMBING: &[&str] = &["user", "database", "application_name", "options"];

/// Settings every driver sends on connect; always allowed through.
const DRIVER_SETTINGS: &[&str] = &[
    "client_encoding",
    "datestyle",
    "timezone",
    "extra_float_digits",
    "intervalstyle",
];

/// What the client asked for, after filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStartup {
    pub user: String,
    pub database: Option<String>,
    pub application_name: String,
    /// Parameters to pass upstream (user and database excluded).
    pub upstream_params: Vec<(String, String)>,
    /// `_pq_.*` protocol options the gateway does not support, for NegotiateProtocolVersion.
    pub unsupported_options: Vec<String>,
}

/// Validates startup parameters. `allowed_settings` are the settings the policy lets an agent
/// change (lower case).
pub fn check_params(
    params: &[(String, String)],
    allowed_settings: &[String],
) -> Result<ClientStartup, PgError> {
    let mut out = ClientStartup {
        user: String::new(),
        database: None,
        application_name: String::new(),
        upstream_params: Vec::new(),
        unsupported_options: Vec::new(),
    };
    let allowed = |name: &str| {
        let n = name.to_ascii_lowercase();
        DRIVER_SETTINGS.contains(&n.as_str()) || allowed_settings.contains(&n)
    };
    // The server applies `options` first and the other parameters after them.
    let mut from_param = None;
    let mut from_options = None;
    for (k, v) in params {
        match k.as_str() {
            "user" => out.user = v.clone(),
            "database" => out.database = Some(v.clone()),
            // Setting names are case-insensitive to the server (only user, database, options
            // and replication are matched exactly): `Application_Name` is the application.
            k if k.eq_ignore_ascii_case("application_name") => {
                from_param = Some(v.clone());
                out.upstream_params
                    .push(("application_name".into(), v.clone()));
            }
            "replication" => {
                return Err(PgError::fatal(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "replication connections are not relayed by airlock",
                ))
            }
            "options" => {
                for (name, value) in parse_options(v)? {
                    // Passed on as written, so it must already say UTF8.
                    if name.eq_ignore_ascii_case("client_encoding")
                        && !crate::sql::is_utf8_encoding(&value)
                    {
                        return Err(encoding_error(&value));
                    }
                    if name.eq_ignore_ascii_case("application_name") {
                        from_options = Some(value.clone());
                    }
                    if !allowed(&name) {
                        return Err(PgError::fatal(
                            sqlstate::INSUFFICIENT_PRIVILEGE,
                            format!("setting \"{name}\" in startup options is not allowed through airlock"),
                        )
                        .with_hint("Set it with SET after connecting, where the policy can see it."));
                    }
                }
                out.upstream_params.push((k.clone(), v.clone()));
            }
            k if k.starts_with("_pq_.") => out.unsupported_options.push(k.to_string()),
            k if k.eq_ignore_ascii_case("client_encoding") => {
                out.upstream_params
                    .push(("client_encoding".into(), client_encoding(v)?.into()));
            }
            k if PLUMBING.contains(&k) || allowed(k) => {
                out.upstream_params.push((k.to_string(), v.clone()))
            }
            k => {
                return Err(PgError::fatal(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    format!("startup parameter \"{k}\" is not allowed through airlock"),
                ))
            }
        }
    }
    out.application_name = from_param.or(from_options).unwrap_or_default();
    // Without one, the server would use the database's encoding, which need not be UTF-8.
    if !out
        .upstream_params
        .iter()
        .any(|(k, _)| k == "client_encoding")
    {
        out.upstream_params
            .push(("client_encoding".into(), "UTF8".into()));
    }
    if out.user.is_empty() {
        return Err(PgError::fatal(
            sqlstate::INVALID_AUTHORIZATION,
            "no PostgreSQL user name specified in startup packet",
        ));
    }
    Ok(out)
}

/// The `client_encoding` a session may start with: UTF8. The gateway reads SQL as UTF-8, and
/// under another encoding the server would read the same bytes otherwise (in SJIS or BIG5 a
/// backslash or a quote can be the second byte of a character). `SQL_ASCII`, which a C locale
/// makes psql ask for, declares no encoding at all and becomes UTF8.
fn client_encoding(value: &str) -> Result<&'static str, PgError> {
    if crate::sql::is_utf8_encoding(value) || crate::sql::encoding_key(value) == "sqlascii" {
        return Ok("UTF8");
    }
    Err(encoding_error(value))
}

fn encoding_error(value: &str) -> PgError {
    PgError::fatal(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!("client_encoding \"{value}\" is not supported through airlock"),
    )
    .with_detail("airlock reads every statement as UTF-8.")
    .with_hint("Connect with client_encoding=UTF8 (PGCLIENTENCODING=UTF8).")
}

/// Splits libpq's `options` value (`-c a=b --c=d`, backslash escapes) into settings.
fn parse_options(s: &str) -> Result<Vec<(String, String)>, PgError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let bad = |w: &str| {
        PgError::fatal(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!("startup option \"{w}\" is not allowed through airlock"),
        )
    };
    let mut out = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let setting = if w == "-c" {
            it.next().ok_or_else(|| bad(w))?.as_str()
        } else if let Some(rest) = w.strip_prefix("-c") {
            rest
        } else if let Some(rest) = w.strip_prefix("--") {
            rest
        } else {
            return Err(bad(w));
        };
        let (k, v) = setting.split_once('=').ok_or_else(|| bad(w))?;
        out.push((k.replace('-', "_"), v.to_string()));
    }
    Ok(out)
}

/// Authenticates the client on `stream`; returns once AuthenticationOk may be sent.
/// `buf` holds bytes already read; on error the caller sends the FATAL and closes.
pub async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    auth: &AuthConfig,
    user: &str,
    mock_key: &[u8],
    cert_hash: Option<Vec<u8>>,
) -> Result<(), PgError> {
    let failed = || {
        PgError::fatal(
            sqlstate::INVALID_PASSWORD,
            format!("password authentication failed for user \"{user}\""),
        )
    };
    match auth.method {
        AuthMethod::Trust => {
            if !auth.users.is_empty() && !auth.users.contains_key(user) {
                return Err(PgError::fatal(
                    sqlstate::INVALID_AUTHORIZATION,
                    format!("role \"{user}\" is not known to airlock"),
                ));
            }
            Ok(())
        }
        AuthMethod::ScramSha256 => {
            let verifier = auth.users.get(user).and_then(|v| Verifier::parse(v).ok());
            let mut scram = ScramServer::new(verifier, user, mock_key, cert_hash);
            let mut out = BytesMut::new();
            messages::auth_sasl(&mut out, &scram.mechanisms());
            write(stream, &out).await?;

            let first = read_password_message(stream, buf).await?;
            let mut body = first.body();
            let (mechanism, rest) = read_cstr(body).ok_or_else(malformed)?;
            body = rest;
            if body.len() < 4 {
                return Err(malformed());
            }
            let len = (&body[..4]).get_i32();
            let data = &body[4..];
            if len < 0 || len as usize != data.len() {
                return Err(malformed());
            }
            let server_first = scram.client_first(mechanism, data).map_err(|e| match e {
                crate::protocol::scram::ScramError::Mechanism(_)
                | crate::protocol::scram::ScramError::Malformed(_) => PgError::fatal(
                    sqlstate::PROTOCOL_VIOLATION,
                    format!("invalid SCRAM exchange: {e}"),
                ),
                _ => failed(),
            })?;
            out.clear();
            messages::auth_sasl_continue(&mut out, &server_first);
            write(stream, &out).await?;

            let fin = read_password_message(stream, buf).await?;
            let server_final = scram.client_final(fin.body()).map_err(|_| failed())?;
            out.clear();
            messages::auth_sasl_final(&mut out, &server_final);
            write(stream, &out).await?;
            Ok(())
        }
    }
}

fn malformed() -> PgError {
    PgError::fatal(sqlstate::PROTOCOL_VIOLATION, "malformed SASL message")
}

async fn write(stream: &mut Stream, b: &[u8]) -> Result<(), PgError> {
    stream
        .write_all(b)
        .await
        .map_err(|e| PgError::fatal(sqlstate::CONNECTION_FAILURE, e.to_string()))
}

async fn read_password_message(stream: &mut Stream, buf: &mut BytesMut) -> Result<Frame, PgError> {
    loop {
        match split_frame(buf, 10_000) {
            Ok(Some(f)) if f.tag() == b'p' => return Ok(f),
            Ok(Some(f)) => {
                return Err(PgError::fatal(
                    sqlstate::PROTOCOL_VIOLATION,
                    format!(
                        "expected SASL response, got message type {:?}",
                        f.tag() as char
                    ),
                ))
            }
            Ok(None) => {}
            Err(e) => return Err(PgError::fatal(sqlstate::PROTOCOL_VIOLATION, e.to_string())),
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => {
                return Err(PgError::fatal(
                    sqlstate::CONNECTION_FAILURE,
                    "connection closed during authentication",
                ))
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn driver_parameters_pass() {
        let s = check_params(
            &p(&[
                ("user", "agent"),
                ("database", "shop"),
                ("application_name", "psql"),
                ("DateStyle", "ISO"),
                ("client_encoding", "UTF8"),
                ("extra_float_digits", "3"),
                ("options", "-c statement_timeout=5s"),
            ]),
            &["statement_timeout".into()],
        )
        .unwrap();
        assert_eq!(s.user, "agent");
        assert_eq!(s.database.as_deref(), Some("shop"));
        assert_eq!(s.upstream_params.len(), 5);
    }

    /// The server matches setting names without regard to case and applies `options` before
    /// the other parameters: the policy must see the application the server will report.
    #[test]
    fn the_application_name_is_read_as_the_server_reads_it() {
        let app = |kv: &[(&str, &str)]| {
            let mut all = vec![("user", "agent")];
            all.extend_from_slice(kv);
            check_params(&p(&all), &["application_name".into()])
                .unwrap()
                .application_name
        };
        assert_eq!(app(&[("Application_Name", "reporting")]), "reporting");
        assert_eq!(app(&[("APPLICATION_NAME", "reporting")]), "reporting");
        assert_eq!(
            app(&[("options", "-c application_name=reporting")]),
            "reporting"
        );
        assert_eq!(
            app(&[
                ("application_name", "psql"),
                ("options", "-c application_name=reporting"),
            ]),
            "psql"
        );
        assert_eq!(app(&[]), "");
        let s = check_params(&p(&[("user", "a"), ("Application_Name", "x")]), &[]).unwrap();
        assert!(s
            .upstream_params
            .contains(&("application_name".to_owned(), "x".to_owned())));
    }

    #[test]
    fn role_changing_parameters_are_refused() {
        for params in [
            p(&[("user", "a"), ("role", "postgres")]),
            p(&[("user", "a"), ("options", "-c role=postgres")]),
            p(&[("user", "a"), ("options", "--search_path=evil")]),
            p(&[
                ("user", "a"),
                ("options", "-csession_authorization=postgres"),
            ]),
            p(&[("user", "a"), ("replication", "database")]),
            p(&[("user", "a"), ("options", "-D /tmp")]),
        ] {
            let e = check_params(&params, &[]).unwrap_err();
            assert_eq!(e.code, sqlstate::INSUFFICIENT_PRIVILEGE, "{params:?}");
        }
    }

    #[test]
    fn missing_user_is_28000() {
        assert_eq!(
            check_params(&p(&[("database", "x")]), &[])
                .unwrap_err()
                .code,
            sqlstate::INVALID_AUTHORIZATION
        );
    }

    #[test]
    fn protocol_options_are_reported_not_passed() {
        let s = check_params(&p(&[("user", "a"), ("_pq_.foo", "1")]), &[]).unwrap();
        assert_eq!(s.unsupported_options, vec!["_pq_.foo".to_string()]);
        assert_eq!(s.upstream_params, p(&[("client_encoding", "UTF8")]));
    }

    #[test]
    fn the_session_always_starts_in_utf8() {
        for (asked, sent) in [
            (None, "UTF8"),
            (Some("UTF8"), "UTF8"),
            (Some("utf-8"), "UTF8"),
            (Some("Unicode"), "UTF8"),
            (Some("SQL_ASCII"), "UTF8"),
        ] {
            let mut params = p(&[("user", "a")]);
            if let Some(a) = asked {
                params.push(("client_encoding".into(), a.into()));
            }
            let s = check_params(&params, &[]).unwrap();
            let enc: Vec<&str> = s
                .upstream_params
                .iter()
                .filter(|(k, _)| k == "client_encoding")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(enc, vec![sent], "{asked:?}");
        }
        for params in [
            p(&[("user", "a"), ("client_encoding", "SJIS")]),
            p(&[("user", "a"), ("Client_Encoding", "BIG5")]),
            p(&[("user", "a"), ("client_encoding", "LATIN1")]),
            p(&[("user", "a"), ("options", "-c client_encoding=GBK")]),
            p(&[("user", "a"), ("options", "-c client_encoding=SQL_ASCII")]),
        ] {
            let e = check_params(&params, &["client_encoding".into()]).unwrap_err();
            assert_eq!(e.code, sqlstate::INVALID_PARAMETER_VALUE, "{params:?}");
            assert!(e.message.contains("client_encoding"), "{}", e.message);
        }
    }
}

//! `airlock approvals ls | show ID | approve ID [--reason R] | deny ID --reason R | token NAME`:
//! the admin API from a terminal. Arguments → HTTP call → printer (text or `-o json`).
//!
//! Exit codes: 0 done, 1 the gateway refused (not found, not an approver, already decided…),
//! 2 anything else (cannot connect, bad token configuration, bad arguments).

use std::io::Write;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::types::RequestView;
use crate::untrusted;

/// Where the admin API is when neither `--admin` nor `AIRLOCK_ADMIN_URL` says.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:6480";

#[derive(Debug, Clone, clap::Args)]
pub struct ApprovalsArgs {
    /// Base URL of the gateway's admin listener (default: the config's [admin] public_url,
    /// else http://127.0.0.1:6480).
    #[arg(long, env = "AIRLOCK_ADMIN_URL", global = true)]
    pub admin: Option<String>,
    /// Your approver token (AIRLOCK_ADMIN_TOKEN works too).
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: ApprovalsCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ApprovalsCommand {
    /// List requests waiting for a verdict.
    Ls {
        /// Include closed requests (approved, denied, expired…).
        #[arg(long)]
        all: bool,
    },
    /// Show one request: statement, requester, rule, facts, parameters, verdicts.
    Show { id: String },
    /// Approve a request.
    Approve {
        id: String,
        /// Why (required when the gateway is configured to require it).
        #[arg(long, short = 'r')]
        reason: Option<String>,
    },
    /// Deny a request; the agent receives your reason.
    Deny {
        id: String,
        #[arg(long, short = 'r')]
        reason: String,
    },
    /// Make a new token and print its hash for the policy (`[approvers.NAME] token_sha256`).
    Token { name: String },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no token: pass --token or set AIRLOCK_TOKEN (or AIRLOCK_ADMIN_TOKEN)")]
    MissingToken,
    #[error("cannot reach the admin API at {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    /// The gateway answered with a refusal or an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the admin API: {0}")]
    Decode(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// 1 when the gateway refused (a 4xx answer), 2 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Api { status, .. } if (400..500).contains(status) => 1,
            _ => 2,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

#[derive(Deserialize, Serialize)]
struct ListBody {
    requests: Vec<RequestView>,
}

#[derive(Deserialize, Serialize)]
struct VerdictBody {
    result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remaining: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delivery: Option<String>,
    request: Option<RequestView>,
}

/// Runs one `approvals` command, printing to `out`. `default_admin_url` is the loaded
/// config's `[admin] public_url`, when the caller has a config.
pub async fn run(
    args: ApprovalsArgs,
    default_admin_url: Option<String>,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    if let ApprovalsCommand::Token { name } = &args.command {
        return print_new_token(name, args.output, out);
    }
    let base = args
        .admin
        .clone()
        .or(default_admin_url)
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned());
    let base = base.trim_end_matches('/').to_owned();
    let token = args.token.clone().ok_or(CliError::MissingToken)?;
    let client = Client {
        http: reqwest::Client::new(),
        base,
        token,
    };
    let json = args.output == OutputFormat::Json;
    match args.command {
        ApprovalsCommand::Ls { all } => {
            let path = format!(
                "/api/approvals?state={}",
                if all { "all" } else { "pending" }
            );
            let body: ListBody = client.call(reqwest::Method::GET, &path, None).await?;
            if json {
                write_json(out, &body)?;
            } else {
                write_text(out, |buf| print_list(buf, &body.requests))?;
            }
        }
        ApprovalsCommand::Show { id } => {
            let view: RequestView = client
                .call(
                    reqwest::Method::GET,
                    &format!("/api/approvals/{}", enc(&id)),
                    None,
                )
                .await?;
            if json {
                write_json(out, &view)?;
            } else {
                write_text(out, |buf| print_request(buf, &view))?;
            }
        }
        ApprovalsCommand::Approve { id, reason } => {
            let body = client.verdict(&id, "approve", reason).await?;
            if json {
                write_json(out, &body)?;
            } else {
                print_verdict(out, &id, true, &body)?;
            }
        }
        ApprovalsCommand::Deny { id, reason } => {
            let body = client.verdict(&id, "deny", Some(reason)).await?;
            if json {
                write_json(out, &body)?;
            } else {
                print_verdict(out, &id, false, &body)?;
            }
        }
        ApprovalsCommand::Token { .. } => {}
    }
    Ok(())
}

/// Path segment encoding for ids typed by a person (only unreserved characters pass).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, CliError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|source| CliError::Http {
            url: self.base.clone(),
            source,
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|source| CliError::Http {
            url: self.base.clone(),
            source,
        })?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => (e.error, e.message),
                Err(_) => (
                    "http_error".to_owned(),
                    String::from_utf8_lossy(&bytes).trim().to_owned(),
                ),
            };
            return Err(CliError::Api {
                status: status.as_u16(),
                code,
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| CliError::Decode(e.to_string()))
    }

    async fn verdict(
        &self,
        id: &str,
        kind: &str,
        reason: Option<String>,
    ) -> Result<VerdictBody, CliError> {
        let body = serde_json::json!({ "rationale": reason, "channel": "cli" });
        self.call(
            reqwest::Method::POST,
            &format!("/api/approvals/{}/{kind}", enc(id)),
            Some(body),
        )
        .await
    }
}

fn write_json<T: Serialize>(out: &mut (dyn Write + Send), value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Decode(e.to_string()))?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// Text output, written through [`untrusted::sanitize`] as a whole. Almost every field of a
/// request comes from the agent (statement, parameters, application name, identifiers quoted in
/// reasons) and is printed to an approver's terminal, where a raw `ESC[2K` or `\r` would let the
/// agent erase the real statement and draw another. Escaping the whole output rather than field
/// by field means no field, present or future, can be forgotten; this printer never colours.
fn write_text(
    out: &mut (dyn Write + Send),
    render: impl FnOnce(&mut (dyn Write + Send)) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    out.write_all(untrusted::sanitize(&text, true).as_bytes())?;
    Ok(())
}

fn left(secs: u64) -> String {
    match secs {
        0 => "-".to_owned(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The statement on one line, shortened for a table cell.
fn one_line(sql: &str, max: usize) -> String {
    let flat = untrusted::one_line(sql);
    if flat.chars().count() <= max {
        flat.into_owned()
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn kinds(view: &RequestView) -> String {
    if view.facts.kinds.is_empty() {
        "unknown".to_owned()
    } else {
        view.facts
            .kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn print_list(out: &mut (dyn Write + Send), requests: &[RequestView]) -> Result<(), CliError> {
    if requests.is_empty() {
        writeln!(out, "no requests")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<26}  {:<9}  {:>7}  {:<14}  {:<20}  {:<8}  STATEMENT",
        "ID", "STATE", "LEFT", "REQUESTER", "RULE", "KIND"
    )?;
    for v in requests {
        let remaining = if v.state.is_final() {
            0
        } else {
            v.approvable_remaining_secs
        };
        writeln!(
            out,
            "{:<26}  {:<9}  {:>7}  {:<14}  {:<20}  {:<8}  {}",
            v.id.as_str(),
            v.state.as_str(),
            left(remaining),
            v.requester,
            v.rule_id,
            kinds(v),
            one_line(&v.sql, 60)
        )?;
    }
    Ok(())
}

fn print_request(out: &mut (dyn Write + Send), v: &RequestView) -> Result<(), CliError> {
    let or_none = |items: &[String]| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let state = if v.state.is_final() {
        match &v.closed_reason {
            Some(r) => format!("{} ({r})", v.state.as_str()),
            None => v.state.as_str().to_owned(),
        }
    } else if v.client_waiting {
        format!(
            "pending, client waiting ({} left; approvable until {})",
            left(v.hold_remaining_secs),
            v.approvable_until
        )
    } else {
        format!(
            "pending, client gave up (approvable until {}; an approval leaves a grant)",
            v.approvable_until
        )
    };
    writeln!(out, "request    {}", v.id)?;
    writeln!(out, "state      {state}")?;
    writeln!(
        out,
        "requester  {} (application {}, database {}, from {})",
        v.requester,
        if v.application_name.is_empty() {
            "-"
        } else {
            &v.application_name
        },
        v.database,
        v.client_addr
    )?;
    writeln!(
        out,
        "rule       {} ({}): {}",
        v.rule_id, v.rule_source, v.reason
    )?;
    writeln!(
        out,
        "kind       {} ({})",
        kinds(v),
        or_none(&v.facts.labels)
    )?;
    writeln!(out, "tables     {}", or_none(&v.facts.tables))?;
    writeln!(out, "pii        {}", or_none(&v.facts.pii_columns))?;
    let votes: Vec<String> = v
        .approvals
        .iter()
        .map(|a| format!("{} via {}", a.approver, a.channel.as_str()))
        .collect();
    writeln!(
        out,
        "approvals  {} of {}{}",
        v.approvals.len(),
        v.quorum,
        if votes.is_empty() {
            String::new()
        } else {
            format!(": {}", votes.join(", "))
        }
    )?;
    if let Some(d) = &v.denial {
        writeln!(
            out,
            "denied     by {}: {}",
            d.approver,
            d.rationale.as_deref().unwrap_or("")
        )?;
    }
    writeln!(out, "approvers  {}", or_none(&v.approvers))?;
    if let Some(g) = &v.grant {
        writeln!(out, "grant      {} (until {})", g.state, g.expires_at)?;
    }
    for (i, p) in v.params.iter().enumerate() {
        let value = p.as_deref().unwrap_or("NULL");
        match v.param_types.get(i).and_then(Option::as_deref) {
            // The type before the value: the agent writes the value, and nothing it writes
            // may look like the type.
            Some(t) => writeln!(out, "param ${} ({t})   {value}", i + 1)?,
            None => writeln!(out, "param ${}   {value}", i + 1)?,
        }
    }
    writeln!(out, "sql")?;
    // Escaped before splitting, so a lone `\r` is shown rather than taken as a line end.
    for line in untrusted::sanitize(&v.sql, true).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

fn print_verdict(
    out: &mut (dyn Write + Send),
    id: &str,
    approve: bool,
    body: &VerdictBody,
) -> Result<(), CliError> {
    match (body.result.as_str(), approve) {
        ("recorded", _) => writeln!(
            out,
            "approval of {id} recorded; {} more needed",
            body.remaining.unwrap_or(0)
        )?,
        (_, true) => match body.delivery.as_deref() {
            Some("grant_issued") => writeln!(
                out,
                "approved {id}; the agent had stopped waiting: the same statement runs once when re-run"
            )?,
            _ => writeln!(out, "approved {id}; the statement runs now")?,
        },
        (_, false) => writeln!(out, "denied {id}")?,
    }
    Ok(())
}

fn print_new_token(
    name: &str,
    output: OutputFormat,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let token = format!("airlock_{}", URL_SAFE_NO_PAD.encode(raw));
    let hash = crate::admin::hash_token(&token);
    if output == OutputFormat::Json {
        write_json(
            out,
            &serde_json::json!({ "name": name, "token": token, "sha256": hash }),
        )?;
    } else {
        writeln!(
            out,
            "token for {name} (shown once; hand it to {name} and keep it secret):"
        )?;
        writeln!(out, "  {token}")?;
        writeln!(out, "approver tokens live in the policy file:")?;
        writeln!(out, "  [approvers.{}]", toml_key(name))?;
        writeln!(out, "  token_sha256 = \"{hash}\"")?;
        writeln!(
            out,
            "or, for someone who only reads the admin API, in the gateway config:"
        )?;
        writeln!(out, "  [admin.tokens]")?;
        writeln!(out, "  {} = \"{hash}\"", toml_key(name))?;
    }
    Ok(())
}

/// A TOML key: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

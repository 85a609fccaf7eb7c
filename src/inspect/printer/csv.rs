//! `export --format csv`: one row per statement, RFC 4180 quoting, a header row first.

use std::io::{self, Write};

use crate::audit::StatementView;

/// Column names, in order. Stable: SIEM mappings depend on them.
pub const COLUMNS: &[&str] = &[
    "id",
    "seq",
    "time",
    "session_id",
    "client_addr",
    "user",
    "application_name",
    "database",
    "protocol",
    "kinds",
    "tables",
    "decision",
    "rule_id",
    "reason",
    "sql",
    "rewritten_sql",
    "approvals",
    "outcome_tags",
    "error_sqlstate",
    "error_message",
    "rows",
    "duration_us",
    "hash",
];

/// Quotes every field, doubling quotes. Always quoting keeps a `;` inside SQL text from
/// starting a cell in spreadsheets that split on `;` (where `SELECT 1 ;=cmd()` would make a
/// formula). A leading `=`, `+`, `-`, `@`, tab or CR is prefixed with `'` so spreadsheets do
/// not evaluate the text as a formula either.
fn field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

pub fn header(w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "{}", COLUMNS.join(","))
}

pub fn row(w: &mut dyn Write, v: &StatementView) -> io::Result<()> {
    let approvals: Vec<String> = v
        .approvals
        .iter()
        .map(|a| format!("{}:{}:{}", a.action.as_str(), a.actor, a.channel))
        .collect();
    let outcome = v.outcome.as_ref();
    let error = outcome.and_then(|o| o.error.as_ref());
    let cells: Vec<String> = vec![
        v.id.clone(),
        v.seq.to_string(),
        v.time.clone(),
        v.session_id.clone(),
        v.client_addr.clone(),
        v.user.clone(),
        v.application_name.clone(),
        v.database.clone(),
        format!("{:?}", v.protocol).to_lowercase(),
        v.kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        v.tables.join(" "),
        v.decision.as_str().to_owned(),
        v.rule_id.clone(),
        v.reason.clone(),
        v.sql.clone(),
        v.rewritten_sql.clone().unwrap_or_default(),
        approvals.join(" "),
        outcome.map(|o| o.tags.join("; ")).unwrap_or_default(),
        error.map(|e| e.sqlstate.clone()).unwrap_or_default(),
        error.map(|e| e.message.clone()).unwrap_or_default(),
        outcome.map(|o| o.rows.to_string()).unwrap_or_default(),
        outcome
            .map(|o| o.duration_us.to_string())
            .unwrap_or_default(),
        v.hash.clone(),
    ];
    let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
    writeln!(w, "{}", line.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_every_field_and_defuses_formulas() {
        assert_eq!(field("plain"), "\"plain\"");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(field("SELECT 1 ;=cmd()"), "\"SELECT 1 ;=cmd()\"");
        assert_eq!(field("=cmd()"), "\"'=cmd()\"");
        assert_eq!(field("-1"), "\"'-1\"");
        assert_eq!(field("\t=1"), "\"'\t=1\"");
    }
}

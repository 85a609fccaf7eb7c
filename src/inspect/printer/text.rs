//! The readable printer: one line per statement or record (grep, tail), a block for `show`.
//!
//! Nearly everything printed here was written by the agent or derived from what it wrote (SQL,
//! user and database names, `application_name`, parameters, identifiers in facts and server
//! errors). Each such value goes through `safe` or [`crate::untrusted::sanitize`] before it
//! reaches the terminal, so the agent cannot erase or redraw what an auditor reads; only
//! [`Style::paint`] emits escape sequences. Values are escaped one by one rather than line by
//! line because the line also carries that colouring.

use std::borrow::Cow;
use std::io::{self, Write};

use regex::Regex;

use super::{one_line, Style, BOLD, CYAN, DIM, GREEN, MAGENTA, RED, YELLOW};
use crate::audit::{
    ApprovalAction, Entry, Record, RunResult, ShowView, StatementView, VerifyReport,
};
use crate::policy::Action;
use crate::untrusted::sanitize;

/// Stored text on one line, with controls and invisible characters made visible.
fn safe(s: &str) -> Cow<'_, str> {
    sanitize(s, false)
}

fn action_colour(a: Action) -> &'static str {
    match a {
        Action::Allow => GREEN,
        Action::Mask => CYAN,
        Action::Hold => YELLOW,
        Action::Deny => RED,
    }
}

fn duration(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else {
        format!("{:.1}ms", us as f64 / 1e3)
    }
}

/// `SQL` with the pattern's matches highlighted.
fn highlighted(sql: &str, hl: Option<&Regex>, st: &Style) -> String {
    let Some(re) = hl.filter(|_| st.color) else {
        return sql.to_owned();
    };
    let mut out = String::with_capacity(sql.len() + 16);
    let mut last = 0;
    for m in re.find_iter(sql) {
        if m.start() == m.end() {
            continue;
        }
        out.push_str(&sql[last..m.start()]);
        out.push_str(&st.paint(RED, m.as_str()));
        last = m.end();
    }
    out.push_str(&sql[last..]);
    out
}

/// What happened to a statement, briefly: `-> SELECT 3 (3 rows, 1.2ms)`.
fn outcome_summary(v: &StatementView, st: &Style) -> String {
    let verdicts: Vec<String> = v
        .approvals
        .iter()
        .filter(|a| a.action.is_verdict() || a.action == ApprovalAction::Expire)
        .map(|a| match a.action {
            ApprovalAction::Approve => format!("approved by {}", safe(&a.actor)),
            ApprovalAction::Deny => format!("denied by {}", safe(&a.actor)),
            _ => "expired".to_owned(),
        })
        .collect();
    let mut s = String::new();
    if !verdicts.is_empty() {
        s.push_str(&st.paint(MAGENTA, &format!("[{}] ", verdicts.join(", "))));
    }
    match &v.outcome {
        Some(o) => match &o.error {
            Some(e) => s.push_str(&st.paint(
                RED,
                &format!(
                    "-> ERROR {} {} ({})",
                    safe(&e.sqlstate),
                    safe(&e.message),
                    duration(o.duration_us)
                ),
            )),
            None => s.push_str(&format!(
                "-> {} ({} rows, {})",
                if o.tags.is_empty() {
                    "done".to_owned()
                } else {
                    safe(&o.tags.join("; ")).into_owned()
                },
                o.rows,
                duration(o.duration_us)
            )),
        },
        None => s.push_str(&st.paint(DIM, "-> (no outcome)")),
    }
    s
}

/// One grep line: time, id, decision, who, rule, SQL, outcome.
pub fn statement_line(
    w: &mut dyn Write,
    v: &StatementView,
    st: &Style,
    hl: Option<&Regex>,
) -> io::Result<()> {
    let sql = one_line(&v.sql);
    let mut line = format!(
        "{} {} {} {} {} {}",
        st.paint(DIM, &safe(&v.time)),
        st.paint(DIM, &safe(&v.id)),
        st.paint(
            action_colour(v.decision),
            &format!("{:<5}", v.decision.as_str().to_uppercase())
        ),
        st.paint(BOLD, &format!("{}@{}", safe(&v.user), safe(&v.database))),
        st.paint(DIM, &safe(&v.rule_id)),
        highlighted(&sql, hl, st),
    );
    if let Some(rw) = &v.rewritten_sql {
        line.push_str(&format!(
            " {} {}",
            st.paint(CYAN, "=> rewritten:"),
            highlighted(&one_line(rw), hl, st)
        ));
    }
    writeln!(w, "{line} {}", outcome_summary(v, st))
}

/// What a statement did: its tags and rows, or its error in red.
fn ran(o: &RunResult, st: &Style) -> String {
    match &o.error {
        Some((code, msg)) => st
            .paint(RED, &format!("ERROR {} {}", safe(code), safe(msg)))
            .into_owned(),
        None => format!("{} ({} rows)", safe(&o.tags.join("; ")), o.rows),
    }
}

/// One tail line for any record kind.
pub fn record_line(w: &mut dyn Write, r: &Record, st: &Style) -> io::Result<()> {
    let what = match &r.entry {
        Entry::Decision(d) => {
            let mut what = format!(
                "{} {} {}",
                st.paint(
                    action_colour(d.decision.action),
                    &d.decision.action.as_str().to_uppercase()
                ),
                st.paint(
                    BOLD,
                    &format!("{}@{}", safe(&d.session.user), safe(&d.session.database))
                ),
                one_line(&d.sql)
            );
            if let Some(o) = &d.outcome {
                what.push_str(&format!(" -> {} {}", ran(o, st), duration(o.duration_us)));
            }
            what
        }
        Entry::Outcome(o) => format!(
            "{} {} of {}",
            ran(&o.result, st),
            duration(o.result.duration_us),
            safe(&o.decision_id)
        ),
        Entry::Approval(a) => format!(
            "{} {}",
            st.paint(MAGENTA, a.action.as_str()),
            safe(&format!(
                "by {} via {} (request {}, decision {}){}",
                a.actor,
                a.channel,
                a.request_id,
                a.decision_id,
                a.rationale
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ))
        ),
        Entry::Session(s) => safe(&format!(
            "{:?} {}@{} from {} app {:?} session {}{}",
            s.event,
            s.session.user,
            s.session.database,
            s.session.client_addr,
            s.session.application_name,
            s.session.session_id,
            if s.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", s.detail)
            }
        ))
        .to_lowercase(),
        Entry::Gateway(g) => safe(&format!("{} {}", g.event, g.detail)).into_owned(),
    };
    writeln!(
        w,
        "{} {} {:<8} {what}",
        st.paint(DIM, &safe(&r.time)),
        st.paint(DIM, &safe(&r.id)),
        r.kind.as_str()
    )
}

/// `  name         value`; a value of several lines (SQL, parameters) has every later line
/// marked `│` under the name column, so stored text cannot print lines that pass for fields
/// of their own (`  decision     ALLOW …`).
fn field(w: &mut dyn Write, st: &Style, name: &str, value: &str) -> io::Result<()> {
    let mut lines = value.split('\n');
    let first = lines.next().unwrap_or_default();
    writeln!(w, "  {} {first}", st.paint(DIM, &format!("{name:<12}")))?;
    for line in lines {
        writeln!(w, "  {:<12} {} {line}", "", st.paint(DIM, "│"))?;
    }
    Ok(())
}

/// `show ID`: the whole story.
pub fn show(w: &mut dyn Write, s: &ShowView, st: &Style) -> io::Result<()> {
    let r = &s.record;
    writeln!(
        w,
        "{} {} ({} record, seq {})",
        st.paint(BOLD, "record"),
        safe(&r.id),
        r.kind.as_str(),
        r.seq
    )?;
    if let Some(v) = &s.statement {
        if v.id != r.id {
            writeln!(w, "  belongs to statement {}", safe(&v.id))?;
        }
        statement_block(w, v, st)?;
    } else {
        field(w, st, "time", &safe(&r.time))?;
        // JSON escapes controls but not bidi or zero-width characters.
        field(
            w,
            st,
            "entry",
            &safe(&serde_json::to_string(&r.entry).unwrap_or_default()),
        )?;
    }
    let c = &s.chain;
    writeln!(w, "{}", st.paint(BOLD, "chain"))?;
    field(w, st, "seq", &c.seq.to_string())?;
    field(w, st, "prev_hash", &safe(&r.prev_hash))?;
    field(w, st, "hash", &safe(&r.hash))?;
    let link = |ok: bool, id: &Option<String>, none: &str| match (ok, id.as_deref().map(safe)) {
        (true, Some(id)) => format!("{id} (link ok)"),
        (true, None) => none.to_owned(),
        (false, Some(id)) => st.paint(RED, &format!("{id} (LINK BROKEN)")).into_owned(),
        (false, None) => st.paint(RED, "missing (LINK BROKEN)").into_owned(),
    };
    field(
        w,
        st,
        "previous",
        &link(c.prev_link_ok, &c.prev_id, "start of chain"),
    )?;
    field(
        w,
        st,
        "next",
        &link(c.next_link_ok, &c.next_id, "end of chain"),
    )
}

fn statement_block(w: &mut dyn Write, v: &StatementView, st: &Style) -> io::Result<()> {
    writeln!(w, "{}", st.paint(BOLD, "statement"))?;
    field(w, st, "time", &safe(&v.time))?;
    field(
        w,
        st,
        "session",
        &safe(&format!("{} from {}", v.session_id, v.client_addr)),
    )?;
    field(
        w,
        st,
        "who",
        &safe(&format!(
            "{} (application {:?}) on database {}",
            v.user, v.application_name, v.database
        )),
    )?;
    field(
        w,
        st,
        "protocol",
        &format!("{:?}", v.protocol).to_lowercase(),
    )?;
    field(w, st, "sql", &sanitize(&v.sql, true))?;
    if let Some(rw) = &v.rewritten_sql {
        field(w, st, "rewritten", &sanitize(rw, true))?;
    }
    for (i, p) in v.params.iter().enumerate() {
        field(
            w,
            st,
            &format!("${}", i + 1),
            &sanitize(p.as_deref().unwrap_or("NULL"), true),
        )?;
    }
    field(w, st, "fingerprint", &safe(&v.fingerprint))?;
    for f in &v.facts {
        let mut parts = vec![format!("{} ({})", f.kind.as_str(), f.label)];
        let list = |xs: Vec<String>| xs.join(", ");
        if !f.tables_read.is_empty() {
            parts.push(format!(
                "reads {}",
                list(f.tables_read.iter().map(|t| t.to_string()).collect())
            ));
        }
        if !f.tables_written.is_empty() {
            parts.push(format!(
                "writes {}",
                list(f.tables_written.iter().map(|t| t.to_string()).collect())
            ));
        }
        if !f.output_columns.is_empty() {
            parts.push(format!(
                "returns {}",
                list(f.output_columns.iter().map(|c| c.to_string()).collect())
            ));
        }
        if !f.stored_columns.is_empty() {
            parts.push(format!(
                "copies {}",
                list(f.stored_columns.iter().map(|c| c.to_string()).collect())
            ));
        }
        if !f.functions.is_empty() {
            parts.push(format!("calls {}", f.functions.join(", ")));
        }
        field(w, st, "facts", &safe(&parts.join("; ")))?;
    }
    field(
        w,
        st,
        "decision",
        &format!(
            "{} by rule {} ({}): {}",
            st.paint(
                action_colour(v.decision),
                &v.decision.as_str().to_uppercase()
            ),
            safe(&v.rule_id),
            safe(&v.rule_source),
            safe(&v.reason)
        ),
    )?;
    if !v.pii_columns.is_empty() {
        field(w, st, "pii", &safe(&v.pii_columns.join(", ")))?;
    }
    if v.decision == Action::Hold {
        field(
            w,
            st,
            "approvers",
            &safe(&format!("{} (quorum {})", v.approvers.join(", "), v.quorum)),
        )?;
    }
    for a in &v.approvals {
        field(
            w,
            st,
            "approval",
            &format!(
                "{} {} {}",
                safe(&a.time),
                st.paint(MAGENTA, a.action.as_str()),
                safe(&format!(
                    "by {} via {} (request {}, at {}){}",
                    a.actor,
                    a.channel,
                    a.request_id,
                    a.at,
                    a.rationale
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ))
            ),
        )?;
    }
    match &v.outcome {
        Some(o) => {
            let result = match &o.error {
                Some(e) => st
                    .paint(
                        RED,
                        &format!("ERROR {} {}", safe(&e.sqlstate), safe(&e.message)),
                    )
                    .into_owned(),
                None => format!("{} ({} rows)", safe(&o.tags.join("; ")), o.rows),
            };
            field(
                w,
                st,
                "outcome",
                &format!(
                    "{result} in {} at {} ({})",
                    duration(o.duration_us),
                    safe(&o.time),
                    safe(&o.id)
                ),
            )
        }
        None => field(w, st, "outcome", "none recorded"),
    }
}

/// `verify`'s verdict.
pub fn verify(w: &mut dyn Write, r: &VerifyReport, st: &Style) -> io::Result<()> {
    match &r.broken {
        None => writeln!(
            w,
            "{} {} records, chain intact{}",
            st.paint(GREEN, "ok:"),
            r.records,
            match (&r.last_seq, &r.last_id, &r.last_hash) {
                (Some(seq), Some(id), Some(hash)) =>
                    format!("; head seq {seq} id {id} hash {hash}"),
                _ => String::new(),
            }
        ),
        Some(b) => writeln!(
            w,
            "{} {} at seq {}{}: {} ({} records verified before it)",
            st.paint(RED, "BROKEN:"),
            serde_json::to_value(b.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            b.seq,
            // Both may come from the damaged record itself.
            b.id.as_deref()
                .map(|id| format!(" id {}", safe(id)))
                .unwrap_or_default(),
            safe(&b.detail),
            r.records
        ),
    }
}

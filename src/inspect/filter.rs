//! Which statements a query selects. The same [`FilterSpec`] travels from the command line to
//! the admin API (as query parameters), so both sources select exactly the same statements.
//!
//! String filters (`user`, `app`, `db`, `rule`, `table`, `approver`, `session`) match exactly,
//! or as a glob when they contain `*`, `?` or `[` (`--table 'public.*'`). A `--table` without a
//! schema matches the table name in any schema.

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::timespec::parse_when;
use super::InspectError;
use crate::audit::{format_time, ApprovalAction, StatementView};
use crate::policy::Action;
use crate::sql::Kind;

/// A query over the audit, as typed (or sent to the admin API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterSpec {
    /// Regex over the original and rewritten SQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub ignore_case: bool,
    /// The pattern is a fixed string, not a regex.
    #[serde(skip_serializing_if = "is_false")]
    pub fixed_strings: bool,
    /// Select statements the pattern does not match.
    #[serde(skip_serializing_if = "is_false")]
    pub invert: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// Statement kind: read, write, ddl, role, export, catalog, txn, session, utility, unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// allow, mask, hold or deny.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Someone who gave (or tried to give) a verdict in the approval trail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `1h`, `2d`, RFC 3339…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Only statements whose outcome is an error.
    #[serde(skip_serializing_if = "is_false")]
    pub errors: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl FilterSpec {
    /// Replaces relative times (`1h`) by absolute RFC 3339 ones, so a spec sent to a remote
    /// gateway means the same instant as here.
    pub fn resolve_times(&mut self, now_us: i64) -> Result<(), InspectError> {
        for t in [&mut self.since, &mut self.until].into_iter().flatten() {
            let us = parse_when(t, now_us).map_err(InspectError::BadFilter)?;
            *t = format_time(us);
        }
        Ok(())
    }
}

impl FilterSpec {
    /// The spec as query parameters (only what is set).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        let texts = [
            ("pattern", &self.pattern),
            ("user", &self.user),
            ("app", &self.app),
            ("db", &self.db),
            ("kind", &self.kind),
            ("decision", &self.decision),
            ("rule", &self.rule),
            ("table", &self.table),
            ("approver", &self.approver),
            ("session", &self.session),
            ("since", &self.since),
            ("until", &self.until),
        ];
        for (name, value) in texts {
            if let Some(v) = value {
                pairs.push((name, v.clone()));
            }
        }
        let flags = [
            ("ignore_case", self.ignore_case),
            ("fixed_strings", self.fixed_strings),
            ("invert", self.invert),
            ("errors", self.errors),
        ];
        for (name, on) in flags {
            if on {
                pairs.push((name, "true".to_owned()));
            }
        }
        pairs
    }

    /// Sets one query parameter; `Ok(false)` when `name` is not a filter parameter.
    pub fn set_param(&mut self, name: &str, value: &str) -> Result<bool, InspectError> {
        let flag = |v: &str| match v {
            "" | "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            other => Err(InspectError::BadFilter(format!(
                "{name}={other}: expected true or false"
            ))),
        };
        let text = Some(value.to_owned());
        match name {
            "pattern" => self.pattern = text,
            "user" => self.user = text,
            "app" => self.app = text,
            "db" => self.db = text,
            "kind" => self.kind = text,
            "decision" => self.decision = text,
            "rule" => self.rule = text,
            "table" => self.table = text,
            "approver" => self.approver = text,
            "session" => self.session = text,
            "since" => self.since = text,
            "until" => self.until = text,
            "ignore_case" => self.ignore_case = flag(value)?,
            "fixed_strings" => self.fixed_strings = flag(value)?,
            "invert" => self.invert = flag(value)?,
            "errors" => self.errors = flag(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A glob (or exact string).
#[derive(Debug, Clone)]
struct Glob(glob::Pattern);

impl Glob {
    fn new(what: &str, text: &str) -> Result<Glob, InspectError> {
        glob::Pattern::new(text)
            .map(Glob)
            .map_err(|e| InspectError::BadFilter(format!("--{what} {text}: {e}")))
    }

    fn matches(&self, s: &str) -> bool {
        self.0.matches(s)
    }
}

/// A compiled [`FilterSpec`].
#[derive(Debug, Clone, Default)]
pub struct Filter {
    regex: Option<Regex>,
    invert: bool,
    user: Option<Glob>,
    app: Option<Glob>,
    db: Option<Glob>,
    rule: Option<Glob>,
    session: Option<Glob>,
    approver: Option<Glob>,
    /// (pattern, whether it names the schema too)
    table: Option<(Glob, bool)>,
    kind: Option<Kind>,
    decision: Option<Action>,
    errors: bool,
    /// Record times are fixed-width UTC text, so bounds compare as strings.
    since: Option<String>,
    until: Option<String>,
}

pub fn parse_kind(text: &str) -> Option<Kind> {
    [
        Kind::Read,
        Kind::Write,
        Kind::Ddl,
        Kind::Role,
        Kind::Export,
        Kind::Catalog,
        Kind::Txn,
        Kind::Session,
        Kind::Utility,
        Kind::Unknown,
    ]
    .into_iter()
    .find(|k| k.as_str().eq_ignore_ascii_case(text))
}

pub fn parse_action(text: &str) -> Option<Action> {
    [Action::Allow, Action::Mask, Action::Hold, Action::Deny]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(text))
}

impl Filter {
    /// Compiles a spec; relative times are taken relative to `now_us`.
    pub fn compile(spec: &FilterSpec, now_us: i64) -> Result<Filter, InspectError> {
        let regex = match &spec.pattern {
            Some(p) => {
                let source = if spec.fixed_strings {
                    regex::escape(p)
                } else {
                    p.clone()
                };
                Some(
                    RegexBuilder::new(&source)
                        .case_insensitive(spec.ignore_case)
                        .build()
                        .map_err(|e| InspectError::BadFilter(format!("pattern: {e}")))?,
                )
            }
            None => None,
        };
        let glob =
            |what: &str, v: &Option<String>| v.as_deref().map(|t| Glob::new(what, t)).transpose();
        let when = |v: &Option<String>| -> Result<Option<String>, InspectError> {
            v.as_deref()
                .map(|t| {
                    parse_when(t, now_us)
                        .map(format_time)
                        .map_err(InspectError::BadFilter)
                })
                .transpose()
        };
        let kind = spec
            .kind
            .as_deref()
            .map(|k| {
                parse_kind(k).ok_or_else(|| {
                    InspectError::BadFilter(format!(
                        "--kind {k}: expected read, write, ddl, role, export, catalog, txn, session, utility or unknown"
                    ))
                })
            })
            .transpose()?;
        let decision = spec
            .decision
            .as_deref()
            .map(|d| {
                parse_action(d).ok_or_else(|| {
                    InspectError::BadFilter(format!(
                        "--decision {d}: expected allow, mask, hold or deny"
                    ))
                })
            })
            .transpose()?;
        let table = spec
            .table
            .as_deref()
            .map(|t| Glob::new("table", t).map(|g| (g, t.contains('.'))))
            .transpose()?;
        Ok(Filter {
            regex,
            invert: spec.invert,
            user: glob("user", &spec.user)?,
            app: glob("app", &spec.app)?,
            db: glob("db", &spec.db)?,
            rule: glob("rule", &spec.rule)?,
            session: glob("session", &spec.session)?,
            approver: glob("approver", &spec.approver)?,
            table,
            kind,
            decision,
            errors: spec.errors,
            since: when(&spec.since)?,
            until: when(&spec.until)?,
        })
    }

    /// The pattern, for highlighting matches (not when inverted: nothing matched).
    pub fn highlight(&self) -> Option<&Regex> {
        if self.invert {
            None
        } else {
            self.regex.as_ref()
        }
    }

    /// Lower time bound (RFC 3339 µs text).
    pub fn since(&self) -> Option<&str> {
        self.since.as_deref()
    }

    /// Upper time bound (RFC 3339 µs text).
    pub fn until(&self) -> Option<&str> {
        self.until.as_deref()
    }

    /// Whether a record time is inside the window.
    pub fn in_window(&self, time: &str) -> bool {
        self.since.as_deref().is_none_or(|s| time >= s)
            && self.until.as_deref().is_none_or(|u| time <= u)
    }

    /// Whether matching needs the outcome and approval trail.
    pub fn needs_linked(&self) -> bool {
        self.errors || self.approver.is_some()
    }

    /// Everything decidable from the decision record alone.
    pub fn matches_decision(&self, v: &StatementView) -> bool {
        if !self.in_window(&v.time) {
            return false;
        }
        let text = |g: &Option<Glob>, s: &str| g.as_ref().is_none_or(|g| g.matches(s));
        if !(text(&self.user, &v.user)
            && text(&self.app, &v.application_name)
            && text(&self.db, &v.database)
            && text(&self.rule, &v.rule_id)
            && text(&self.session, &v.session_id))
        {
            return false;
        }
        if self.kind.is_some_and(|k| !v.kinds.contains(&k)) {
            return false;
        }
        if self.decision.is_some_and(|d| d != v.decision) {
            return false;
        }
        if let Some((g, qualified)) = &self.table {
            let hit = v.tables.iter().any(|t| {
                if *qualified {
                    g.matches(t)
                } else {
                    g.matches(t.rsplit_once('.').map_or(t.as_str(), |(_, name)| name))
                }
            });
            if !hit {
                return false;
            }
        }
        if let Some(re) = &self.regex {
            let hit =
                re.is_match(&v.sql) || v.rewritten_sql.as_deref().is_some_and(|r| re.is_match(r));
            if hit == self.invert {
                return false;
            }
        }
        true
    }

    /// The part that needs the outcome and approval trail (see [`Filter::needs_linked`]).
    pub fn matches_linked(&self, v: &StatementView) -> bool {
        if self.errors && v.outcome.as_ref().is_none_or(|o| o.error.is_none()) {
            return false;
        }
        if let Some(g) = &self.approver {
            if !v.approvals.iter().any(|a| {
                (a.action.is_verdict() || a.action == ApprovalAction::Refused)
                    && g.matches(&a.actor)
            }) {
                return false;
            }
        }
        true
    }

    pub fn matches(&self, v: &StatementView) -> bool {
        self.matches_decision(v) && self.matches_linked(v)
    }
}

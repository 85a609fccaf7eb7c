//! Facts → [`Decision`]: a scan over the compiled rules of each statement, the strictest
//! statement deciding for the whole query string.
//!
//! Per statement:
//! 1. PII among the output columns turns a read (or a write's RETURNING, a catalog read…)
//!    into an `export`, and so does PII that a write copies into another column (the next
//!    plain read of that column would return it); rules and defaults see that effective kind.
//! 2. Every matching rule is a candidate; deny > hold > mask > allow, and among equal actions
//!    the first rule in file order names the decision. No matching rule: the kind's default.
//! 3. Each flag the statement carries puts a floor under the action (`[flags]`).
//! 4. `mask` with no PII in the output is simply `allow` (nothing to hide).
//!
//! Then the strictest statement wins; a `mask` outcome is rewritten (see `mask`), and when the
//! rewrite is not provably safe the whole string is held instead.

use std::collections::HashSet;

use super::mask;
use super::model::{kind_index, Flag, HoldSpec, Rule};
use super::{Action, Decision, Policy, RequestContext};
use crate::sql::{Catalog, Classified, ColumnRef, Facts, Kind};

/// What decided a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Rule(usize),
    Default(Kind),
    Flag(Flag),
}

/// One statement's outcome before the string-level combination.
struct Verdict {
    action: Action,
    origin: Origin,
    /// PII that leaves: returned to the client, or copied by a write into another column.
    /// A mask rewrite must cover every one of them, or the statement is held.
    pii_out: Vec<ColumnRef>,
    /// How many of `pii_out` (at its end) are only copied, not returned.
    pii_stored: usize,
    /// Set when the reason is not the origin's usual one (mask with nothing to mask…).
    note: Option<String>,
}

/// The kind a statement counts as once PII is taken into account.
fn effective_kind(kind: Kind, returns_pii: bool) -> Kind {
    match kind {
        Kind::Read | Kind::Write | Kind::Catalog | Kind::Utility | Kind::Session | Kind::Txn
            if returns_pii =>
        {
            Kind::Export
        }
        k => k,
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Allow => "allowed",
        Action::Mask => "masked",
        Action::Hold => "held",
        Action::Deny => "denied",
    }
}

/// "SELECT on public.customers returning PII (public.customers.ssn)"; "INSERT on
/// public.products, public.customers copying PII (public.customers.email)".
fn subject(facts: &Facts, pii_out: &[ColumnRef], pii_stored: usize) -> String {
    let mut s = facts.label.clone();
    let mut tables: Vec<String> = Vec::new();
    for t in facts.tables_written.iter().chain(&facts.tables_read) {
        let t = t.to_string();
        if !tables.contains(&t) {
            tables.push(t);
        }
    }
    if !tables.is_empty() {
        s.push_str(" on ");
        s.push_str(&list(&tables, 3));
    }
    let (returned, copied) = pii_out.split_at(pii_out.len() - pii_stored);
    for (cols, what) in [(returned, " returning PII ("), (copied, " copying PII (")] {
        if !cols.is_empty() {
            let cols: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
            s.push_str(what);
            s.push_str(&list(&cols, 4));
            s.push(')');
        }
    }
    s
}

fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

impl Policy {
    /// Decides a whole query string. `sql` is the text `classified` was made from; it is only
    /// parsed again when a `mask` rewrite is needed. Never panics and never returns `allow`
    /// for something it could not decide.
    pub fn evaluate(
        &self,
        classified: &Classified,
        sql: &str,
        ctx: &RequestContext,
        catalog: &Catalog,
    ) -> Decision {
        if classified.statements.is_empty() {
            return Decision {
                action: Action::Allow,
                rule_id: "built-in.empty".into(),
                rule_source: "built-in".into(),
                reason: "empty query".into(),
                rewritten: None,
                hold_timeout: None,
                quorum: 0,
                approvers: Vec::new(),
                pii_columns: Vec::new(),
            };
        }
        if let Some(i) = classified
            .statements
            .iter()
            .position(|f| f.flags.foreign_encoding)
        {
            return Decision {
                action: Action::Deny,
                rule_id: "built-in.client-encoding".into(),
                rule_source: "built-in".into(),
                reason: {
                    let total = classified.statements.len();
                    let which = if total > 1 {
                        format!("statement {} of {total}: ", i + 1)
                    } else {
                        String::new()
                    };
                    format!(
                        "{which}{} would make the server read this session's SQL in an \
                         encoding other than UTF-8, which airlock reads it in (under SJIS, \
                         BIG5, GBK and others the same bytes split into different \
                         statements); use UTF8",
                        classified.statements[i].label
                    )
                },
                rewritten: None,
                hold_timeout: None,
                quorum: 0,
                approvers: Vec::new(),
                pii_columns: Vec::new(),
            };
        }
        let verdicts: Vec<Verdict> = classified
            .statements
            .iter()
            .map(|f| self.decide(f, ctx))
            .collect();
        let total = verdicts.len();
        // First statement with the strictest action decides.
        let (idx, top) = verdicts
            .iter()
            .enumerate()
            .fold(None::<(usize, &Verdict)>, |best, (i, v)| match best {
                Some((_, b)) if b.action >= v.action => best,
                _ => Some((i, v)),
            })
            .expect("non-empty");
        let mut d = self.decision_for(top, &classified.statements[idx], idx, total);
        d.pii_columns = self.pii_columns(&classified.statements);

        if d.action == Action::Hold {
            let specs: Vec<&HoldSpec> = verdicts
                .iter()
                .filter(|v| v.action == Action::Hold)
                .map(|v| self.hold_spec(v.origin))
                .collect();
            self.fill_hold(&mut d, &specs);
        } else if d.action == Action::Mask {
            let which: Vec<bool> = verdicts.iter().map(|v| v.action == Action::Mask).collect();
            match mask::rewrite(sql, &which, &self.pii, catalog) {
                Ok(rw) => {
                    let masked: HashSet<&ColumnRef> = rw.masked.iter().collect();
                    let missed: Vec<String> = verdicts
                        .iter()
                        .filter(|v| v.action == Action::Mask)
                        .flat_map(|v| v.pii_out.iter())
                        .filter(|c| !masked.contains(c))
                        .map(|c| c.to_string())
                        .collect();
                    if missed.is_empty() {
                        d.rewritten = Some(rw.sql);
                    } else {
                        self.mask_failed(
                            &mut d,
                            &format!("the rewrite does not cover {}", list(&missed, 4)),
                        );
                    }
                }
                Err(e) => self.mask_failed(&mut d, &e.to_string()),
            }
        }
        d
    }

    /// Turns a mask decision into a hold, keeping the rule that asked for the mask.
    pub fn mask_failed(&self, d: &mut Decision, why: &str) {
        d.action = Action::Hold;
        d.rewritten = None;
        d.reason = format!("cannot mask safely ({why}): held instead");
        self.fill_hold(d, &[&self.hold]);
    }

    /// Several held statements: every approver must be allowed for all of them, the largest
    /// quorum and the shortest timeout apply.
    fn fill_hold(&self, d: &mut Decision, specs: &[&HoldSpec]) {
        let Some(first) = specs.first() else { return };
        let mut approvers = first.approvers.clone();
        for s in &specs[1..] {
            approvers.retain(|a| s.approvers.contains(a));
        }
        d.approvers = approvers;
        d.quorum = specs.iter().map(|s| s.quorum).max().unwrap_or(1).max(1);
        d.hold_timeout = specs.iter().filter_map(|s| s.timeout).min();
    }

    fn hold_spec(&self, origin: Origin) -> &HoldSpec {
        match origin {
            Origin::Rule(i) => self.rules[i].hold.as_ref().unwrap_or(&self.hold),
            _ => &self.hold,
        }
    }

    /// Declared PII among every column the statements touch, in order of appearance.
    fn pii_columns(&self, statements: &[Facts]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in statements {
            for c in f.columns.iter().chain(&f.output_columns) {
                if self.pii.method(c).is_some() {
                    let s = c.to_string();
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
        out
    }

    /// The kind rules and defaults see for a statement: a read (or RETURNING, catalog read…)
    /// whose output includes a declared PII column is an `export`, and so is a write that
    /// copies one into another column.
    pub fn effective_kind(&self, facts: &Facts) -> Kind {
        let moves_pii = facts
            .output_columns
            .iter()
            .chain(&facts.stored_columns)
            .any(|c| self.pii.method(c).is_some());
        effective_kind(facts.kind, moves_pii)
    }

    /// One statement's action and the id of what decided it, before the string-level
    /// combination and before any mask rewrite (for `explain` and per-statement audit views).
    pub fn statement_action(&self, facts: &Facts, ctx: &RequestContext) -> (Action, String) {
        if facts.flags.foreign_encoding {
            return (Action::Deny, "built-in.client-encoding".into());
        }
        let v = self.decide(facts, ctx);
        let id = match v.origin {
            Origin::Rule(i) => self.rules[i].id.clone(),
            Origin::Default(k) => self.defaults[kind_index(k)].id.clone(),
            Origin::Flag(f) => self.flags[f.index()].id.clone(),
        };
        (v.action, id)
    }

    fn decide(&self, facts: &Facts, ctx: &RequestContext) -> Verdict {
        let mut pii_out: Vec<ColumnRef> = facts
            .output_columns
            .iter()
            .filter(|c| self.pii.method(c).is_some())
            .cloned()
            .collect();
        let returned = pii_out.len();
        for c in &facts.stored_columns {
            if self.pii.method(c).is_some() && !pii_out[..returned].contains(c) {
                pii_out.push(c.clone());
            }
        }
        let pii_stored = pii_out.len() - returned;
        let kind = effective_kind(facts.kind, !pii_out.is_empty());

        let mut best: Option<(Action, usize)> = None;
        for (i, r) in self.rules.iter().enumerate() {
            if best.is_some_and(|(a, _)| r.action <= a) {
                continue; // cannot change the outcome: skip the matching work
            }
            if rule_matches(r, facts, kind, ctx) {
                best = Some((r.action, i));
                if r.action == Action::Deny {
                    break;
                }
            }
        }
        let (mut action, mut origin) = match best {
            Some((a, i)) => (a, Origin::Rule(i)),
            None => (
                self.defaults[kind_index(kind)].action,
                Origin::Default(kind),
            ),
        };
        for flag in Flag::ALL {
            if flag.is_set(&facts.flags) {
                let floor = self.flags[flag.index()].action;
                if floor > action {
                    action = floor;
                    origin = Origin::Flag(flag);
                }
            }
        }
        let mut note = None;
        if action == Action::Mask && pii_out.is_empty() {
            action = Action::Allow;
            note = Some("no PII in the output, nothing to mask".to_string());
        }
        Verdict {
            action,
            origin,
            pii_out,
            pii_stored,
            note,
        }
    }

    fn decision_for(&self, v: &Verdict, facts: &Facts, idx: usize, total: usize) -> Decision {
        let what = subject(facts, &v.pii_out, v.pii_stored);
        let (rule_id, rule_source, reason) = match v.origin {
            Origin::Rule(i) => {
                let r = &self.rules[i];
                let why = match (&v.note, &r.reason) {
                    (Some(n), _) => format!("{what}: {n} (rule {})", r.id),
                    (None, Some(reason)) => format!("{what}: {reason}"),
                    (None, None) => format!("{what}: {} by rule {}", verb(v.action), r.id),
                };
                (r.id.clone(), r.source.clone(), why)
            }
            Origin::Default(k) => {
                let s = &self.defaults[kind_index(k)];
                let why = match &v.note {
                    Some(n) => format!("{what}: {n}"),
                    None => format!("{what}: {} is {} by default", k.as_str(), verb(v.action)),
                };
                (s.id.clone(), s.source.clone(), why)
            }
            Origin::Flag(f) => {
                let s = &self.flags[f.index()];
                let why = format!("{what} {}: {}", f.describe(), verb(v.action));
                (s.id.clone(), s.source.clone(), why)
            }
        };
        let reason = if total > 1 {
            format!("statement {} of {total}: {reason}", idx + 1)
        } else {
            reason
        };
        Decision {
            action: v.action,
            rule_id,
            rule_source,
            reason,
            rewritten: None,
            hold_timeout: None,
            quorum: 0,
            approvers: Vec::new(),
            pii_columns: Vec::new(),
        }
    }
}

/// Whether a rule applies. Conditions combine with AND; the entries of one condition with OR.
/// `tables` and `columns` read differently by action: a restrictive rule (hold, deny) fires
/// when the statement touches *any* listed object; a permissive one (allow, mask) only when
/// *every* object it touches is listed — an allow for `staging.*` must not let a statement that
/// also touches `public.customers` through.
fn rule_matches(r: &Rule, facts: &Facts, kind: Kind, ctx: &RequestContext) -> bool {
    if r.kinds != 0 && r.kinds & (1 << kind_index(kind)) == 0 {
        return false;
    }
    if !r.who.is_empty() && !r.who.contains(&ctx.user) {
        return false;
    }
    if r.except.contains(&ctx.user) {
        return false;
    }
    if !r.applications.is_empty()
        && !r
            .applications
            .iter()
            .any(|g| g.matches(&ctx.application_name))
    {
        return false;
    }
    if !r.databases.is_empty() && !r.databases.iter().any(|g| g.matches(&ctx.database)) {
        return false;
    }
    if !r.labels.is_empty() && !r.labels.iter().any(|g| g.matches(&facts.label)) {
        return false;
    }
    if !r.flags.is_empty() && !r.flags.iter().any(|f| f.is_set(&facts.flags)) {
        return false;
    }
    let restrictive = matches!(r.action, Action::Hold | Action::Deny);
    if !r.tables.is_empty() {
        let covered = |t: &&crate::sql::TableRef| r.tables.iter().any(|p| p.matches(t));
        let mut touched = facts.tables_read.iter().chain(&facts.tables_written);
        let ok = if restrictive {
            touched.any(|t| covered(&t))
        } else {
            let mut any = false;
            touched.all(|t| {
                any = true;
                covered(&t)
            }) && any
        };
        if !ok {
            return false;
        }
    }
    if !r.columns.is_empty() {
        let covered = |c: &&ColumnRef| r.columns.iter().any(|p| p.matches(c));
        let mut touched = facts.columns.iter().chain(&facts.output_columns);
        let ok = if restrictive {
            touched.any(|c| covered(&c))
        } else {
            let mut any = false;
            touched.all(|c| {
                any = true;
                covered(&c)
            }) && any
        };
        if !ok {
            return false;
        }
    }
    true
}

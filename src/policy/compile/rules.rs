//! Compiling one `[[rule]]`: validation of every field against the principals and settings
//! already loaded, and globs compiled into matchers.

use std::time::Duration;

use toml::Spanned;

use super::{once, Builder, SourceFile};
use crate::policy::file::{RawRule, RawRuleRedaction};
use crate::policy::model::{kind_index, Flag, ParamRedaction, Rule, Who};
use crate::policy::pattern::{ColumnPattern, Glob, TablePattern};
use crate::policy::{Action, PolicyError};
use crate::sql::Kind;

impl Builder {
    pub(super) fn rule(&mut self, f: &SourceFile, r: &RawRule) -> Result<Rule, PolicyError> {
        let id = r.id.get_ref();
        let here = f.at(r.id.span());
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return f.err(
                r.id.span(),
                format!("rule id `{id}` may only use letters, digits, `_ - .`"),
            );
        }
        if ["default.", "flags.", "built-in."]
            .iter()
            .any(|p| id.starts_with(p))
        {
            return f.err(
                r.id.span(),
                format!("rule id `{id}` uses a reserved prefix (default., flags., built-in.)"),
            );
        }
        once(
            &mut self.seen,
            &format!("rule {id}"),
            here.clone(),
            &format!("rule `{id}`"),
        )?;
        let action = *r.action.get_ref();

        // Hold settings only make sense on hold rules; anywhere else they are a mistake.
        if action != Action::Hold {
            let stray = [
                r.hold_timeout_secs.as_ref().map(|s| s.span()),
                r.quorum.as_ref().map(|s| s.span()),
                r.approvers
                    .as_ref()
                    .and_then(|a| a.first())
                    .map(|s| s.span()),
            ];
            if let Some(span) = stray.into_iter().flatten().next() {
                return f.err(
                    span,
                    format!(
                        "rule `{id}` is `{}`: hold_timeout_secs, quorum and approvers only apply to `hold`",
                        action.as_str()
                    ),
                );
            }
        }

        let mut kinds = 0u16;
        for k in &r.kinds {
            if action == Action::Mask && !matches!(k.get_ref(), Kind::Read | Kind::Export) {
                return f.err(
                    k.span(),
                    format!(
                        "rule `{id}`: `mask` only applies to read and export, not {}",
                        k.get_ref().as_str()
                    ),
                );
            }
            kinds |= 1 << kind_index(*k.get_ref());
        }
        if action == Action::Mask && kinds == 0 {
            // A mask rule is about what a read returns; it must never let a write or DDL through.
            kinds = (1 << kind_index(Kind::Read)) | (1 << kind_index(Kind::Export));
        }

        let who = self.who(f, id, &r.users, &r.groups)?;
        let except = self.who(f, id, &r.except_users, &r.except_groups)?;
        let globs =
            |list: &[Spanned<String>]| list.iter().map(|s| Glob::new(s.get_ref())).collect();
        let mut tables = Vec::new();
        for t in &r.tables {
            tables.push(TablePattern::parse(t.get_ref()).or_else(|m| f.err(t.span(), m))?);
        }
        let mut columns = Vec::new();
        for c in &r.columns {
            columns.push(ColumnPattern::parse(c.get_ref()).or_else(|m| f.err(c.span(), m))?);
        }
        let mut flags = Vec::new();
        for s in &r.flags {
            match Flag::parse(s.get_ref()) {
                Some(fl) => flags.push(fl),
                None => {
                    let names: Vec<&str> = Flag::ALL.iter().map(|f| f.name()).collect();
                    return f.err(
                        s.span(),
                        format!(
                            "unknown flag `{}` (one of {})",
                            s.get_ref(),
                            names.join(", ")
                        ),
                    );
                }
            }
        }

        let hold = if action == Action::Hold {
            let mut h = self.hold.clone();
            if let Some(t) = &r.hold_timeout_secs {
                if *t.get_ref() == 0 {
                    return f.err(t.span(), "hold_timeout_secs must be at least 1");
                }
                h.timeout = Some(Duration::from_secs(*t.get_ref()));
            }
            if let Some(a) = &r.approvers {
                if a.is_empty() {
                    return f.err(r.id.span(), format!("rule `{id}`: approvers is empty"));
                }
                h.approvers = self.resolve_approvers(f, a)?;
            }
            if let Some(q) = &r.quorum {
                if *q.get_ref() == 0 {
                    return f.err(q.span(), "quorum must be at least 1");
                }
                h.quorum = *q.get_ref();
            }
            if !h.approvers.is_empty() && h.quorum as usize > h.approvers.len() {
                let at = r.quorum.as_ref().map_or(r.id.span(), |q| q.span());
                return f.err(
                    at,
                    format!(
                        "rule `{id}`: quorum {} but only {} approver(s): {}",
                        h.quorum,
                        h.approvers.len(),
                        h.approvers.join(", ")
                    ),
                );
            }
            Some(h)
        } else {
            None
        };

        let redact_params = match &r.redact_params {
            None => None,
            Some(s) => Some(match s.get_ref() {
                RawRuleRedaction::All(true) => ParamRedaction::All,
                RawRuleRedaction::All(false) => ParamRedaction::None,
                RawRuleRedaction::Positions(p) => {
                    if p.contains(&0) {
                        return f.err(s.span(), "redact_params positions start at 1 ($1)");
                    }
                    ParamRedaction::Positions(p.clone())
                }
            }),
        };

        Ok(Rule {
            id: id.clone(),
            action,
            reason: r.reason.clone(),
            source: here,
            who,
            except,
            applications: globs(&r.applications),
            databases: globs(&r.databases),
            kinds,
            labels: globs(&r.labels),
            tables,
            columns,
            flags,
            hold,
            redact_params,
        })
    }

    /// `users` are globs; a name without wildcards must be a declared principal, so a typo
    /// is an error rather than a rule that silently never matches.
    fn who(
        &self,
        f: &SourceFile,
        id: &str,
        users: &[Spanned<String>],
        groups: &[Spanned<String>],
    ) -> Result<Who, PolicyError> {
        let mut who = Who::default();
        for u in users {
            let g = Glob::new(u.get_ref());
            if matches!(g, Glob::Literal(_)) && !self.is_principal(u.get_ref()) {
                return f.err(
                    u.span(),
                    format!(
                        "rule `{id}`: user `{}` is not a declared agent or approver (declare it under [agents] or use a glob)",
                        u.get_ref()
                    ),
                );
            }
            who.users.push(g);
        }
        for g in groups {
            let Some(group) = self.groups.iter().find(|x| &x.name == g.get_ref()) else {
                return f.err(
                    g.span(),
                    format!("rule `{id}`: unknown group `{}`", g.get_ref()),
                );
            };
            for m in &group.members {
                if !who.members.contains(m) {
                    who.members.push(m.clone());
                }
            }
        }
        Ok(who)
    }
}

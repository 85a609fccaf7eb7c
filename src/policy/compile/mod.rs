//! Loading: TOML text → [`RawPolicy`] per file → one validated, compiled [`Policy`].
//!
//! Several files (a directory) merge in name order: lists (PII, rules, safe functions,
//! settings) are concatenated; a scalar setting (`[defaults] read`, `[flags] truncate`,
//! `redact_params`…) and a principal or rule id may be declared only once across all files,
//! so a later file never silently weakens an earlier one. Every error names `file:line`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

mod rules;

use super::file::{RawGlobalRedaction, RawPolicy};
use super::model::{
    kind_index, Agent, Approver, Flag, GlobalRedaction, Group, HoldSpec, PiiSet, Policy, Rule,
    Setting, KINDS,
};
use super::pattern::ColumnPattern;
use super::{Action, PolicyError};
use crate::sql::Kind;

/// Byte offset → 1-based line number for one file.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&s| s <= offset)
    }
}

/// One parsed file, kept with what is needed to point into it.
pub(super) struct SourceFile {
    name: String,
    lines: LineIndex,
    raw: RawPolicy,
}

impl SourceFile {
    fn at(&self, span: Range<usize>) -> String {
        format!("{}:{}", self.name, self.lines.line(span.start))
    }

    fn err<T>(&self, span: Range<usize>, message: impl Into<String>) -> Result<T, PolicyError> {
        Err(PolicyError::Invalid {
            location: self.at(span),
            message: message.into(),
        })
    }
}

/// Parses one file's text; `name` is what locations are reported against.
pub(super) fn parse_file(text: &str, name: &str) -> Result<SourceFile, PolicyError> {
    let lines = LineIndex::new(text);
    let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Invalid {
        location: match e.span() {
            Some(s) => format!("{name}:{}", lines.line(s.start)),
            None => name.to_string(),
        },
        message: e.message().trim().to_string(),
    })?;
    Ok(SourceFile {
        name: name.to_string(),
        lines,
        raw,
    })
}

/// Reads a file, or every `*.toml` of a directory in name order.
pub(super) fn read_sources(path: &Path) -> Result<Vec<SourceFile>, PolicyError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| PolicyError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let meta = std::fs::metadata(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Ok(vec![parse_file(&read(path)?, &path.display().to_string())?]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(PolicyError::Invalid {
            location: path.display().to_string(),
            message: "no *.toml policy files in this directory".into(),
        });
    }
    files
        .iter()
        .map(|f| parse_file(&read(f)?, &f.display().to_string()))
        .collect()
}

/// Where something was first declared, to report duplicates.
type Seen = std::collections::HashMap<String, String>;

fn once(seen: &mut Seen, key: &str, here: String, what: &str) -> Result<(), PolicyError> {
    if let Some(first) = seen.get(key) {
        return Err(PolicyError::Invalid {
            location: here,
            message: format!("{what} is already declared at {first}"),
        });
    }
    seen.insert(key.to_string(), here);
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
}

/// Merges and validates parsed files into a policy.
pub(super) fn build(files: Vec<SourceFile>) -> Result<Policy, PolicyError> {
    let mut b = Builder::default();
    for f in &files {
        b.principals(f)?;
    }
    for f in &files {
        b.groups(f)?;
    }
    for f in &files {
        b.settings(f)?;
    }
    b.finish_defaults()?;
    for f in &files {
        for r in &f.raw.rules {
            let rule = b.rule(f, r)?;
            b.rules.push(rule);
        }
    }
    Ok(Policy {
        sources: files.iter().map(|f| f.name.clone()).collect(),
        pii: b.pii,
        agents: b.agents,
        approvers: b.approvers,
        groups: b.groups,
        rules: b.rules,
        defaults: b.defaults.into_iter().map(|d| d.expect("filled")).collect(),
        flags: b.flags.into_iter().map(|d| d.expect("filled")).collect(),
        hold: b.hold,
        safe_functions: b.safe_functions,
        allowed_settings: b.allowed_settings,
        redact_params: b.redact_params.unwrap_or(GlobalRedaction::Pii),
        missing_defaults: b.missing_defaults,
    })
}

#[derive(Default)]
struct Builder {
    seen: Seen,
    agents: Vec<Agent>,
    approvers: Vec<Approver>,
    groups: Vec<Group>,
    pii: PiiSet,
    rules: Vec<Rule>,
    defaults: [Option<Setting>; 10],
    flags: [Option<Setting>; 7],
    missing_defaults: Vec<Kind>,
    hold_timeout: Option<Duration>,
    hold_quorum: Option<(u32, String)>,
    hold_approvers: Option<Vec<String>>,
    hold: HoldSpec,
    safe_functions: Vec<String>,
    allowed_settings: Option<Vec<String>>,
    redact_params: Option<GlobalRedaction>,
}

impl Builder {
    fn principals(&mut self, f: &SourceFile) -> Result<(), PolicyError> {
        for (name, a) in &f.raw.agents {
            self.principal_name(f, name)?;
            self.agents.push(Agent {
                name: name.get_ref().clone(),
                description: a.description.clone(),
            });
        }
        // One credential, one approver: a person whose Entra id or token were declared for two
        // approver names would count twice towards a quorum (once per channel).
        let mut aad_ids: HashMap<String, &str> = HashMap::new();
        let mut tokens: HashMap<[u8; 32], &str> = HashMap::new();
        for (name, a) in &f.raw.approvers {
            self.principal_name(f, name)?;
            let token_sha256 = match &a.token_sha256 {
                None => None,
                Some(t) => Some(parse_sha256(t.get_ref()).or_else(|m| f.err(t.span(), m))?),
            };
            if let (Some(hash), Some(t)) = (token_sha256, &a.token_sha256) {
                if let Some(other) = tokens.insert(hash, name.get_ref()) {
                    return f.err(
                        t.span(),
                        format!(
                            "approvers `{other}` and `{}` have the same token_sha256: one token \
                             would count as two approvers",
                            name.get_ref()
                        ),
                    );
                }
            }
            let mut database_users = Vec::new();
            for u in a.database_users.iter().flatten() {
                if u.get_ref().trim().is_empty() {
                    return f.err(u.span(), "database_users entries must not be empty");
                }
                database_users.push(u.get_ref().clone());
            }
            if let Some(id) = &a.aad_object_id {
                if !is_guid(id.get_ref()) {
                    return f.err(
                        id.span(),
                        format!(
                            "aad_object_id `{}` is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                            id.get_ref()
                        ),
                    );
                }
                if let Some(other) =
                    aad_ids.insert(id.get_ref().to_ascii_lowercase(), name.get_ref())
                {
                    return f.err(
                        id.span(),
                        format!(
                            "approvers `{other}` and `{}` have the same aad_object_id: one person \
                             would count as two approvers",
                            name.get_ref()
                        ),
                    );
                }
            }
            self.approvers.push(Approver {
                name: name.get_ref().clone(),
                display_name: a
                    .display_name
                    .clone()
                    .unwrap_or_else(|| name.get_ref().clone()),
                email: a.email.clone(),
                aad_object_id: a.aad_object_id.as_ref().map(|s| s.get_ref().clone()),
                token_sha256,
                database_users,
            });
        }
        self.agents.sort_by(|a, b| a.name.cmp(&b.name));
        self.approvers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }

    fn principal_name(
        &mut self,
        f: &SourceFile,
        name: &Spanned<String>,
    ) -> Result<(), PolicyError> {
        if !valid_name(name.get_ref()) {
            return f.err(
                name.span(),
                format!(
                    "`{}` is not a valid name (letters, digits, `_ - . @`)",
                    name.get_ref()
                ),
            );
        }
        once(
            &mut self.seen,
            &format!("principal {}", name.get_ref()),
            f.at(name.span()),
            &format!("`{}`", name.get_ref()),
        )
    }

    fn is_principal(&self, name: &str) -> bool {
        self.agents.iter().any(|a| a.name == name) || self.approvers.iter().any(|a| a.name == name)
    }

    fn groups(&mut self, f: &SourceFile) -> Result<(), PolicyError> {
        for (name, members) in &f.raw.groups {
            self.principal_name(f, name)?;
            let mut list: Vec<String> = Vec::new();
            for m in members {
                if !self.is_principal(m.get_ref()) {
                    return f.err(
                        m.span(),
                        format!(
                            "group `{}`: `{}` is not a declared agent or approver",
                            name.get_ref(),
                            m.get_ref()
                        ),
                    );
                }
                if !list.contains(m.get_ref()) {
                    list.push(m.get_ref().clone());
                }
            }
            self.groups.push(Group {
                name: name.get_ref().clone(),
                members: list,
            });
        }
        Ok(())
    }

    /// Expands approver names and groups; every member must be an approver.
    fn resolve_approvers(
        &self,
        f: &SourceFile,
        names: &[Spanned<String>],
    ) -> Result<Vec<String>, PolicyError> {
        let mut out: Vec<String> = Vec::new();
        for n in names {
            let expanded: Vec<&str> = if self.approvers.iter().any(|a| &a.name == n.get_ref()) {
                vec![n.get_ref().as_str()]
            } else if let Some(g) = self.groups.iter().find(|g| &g.name == n.get_ref()) {
                for m in &g.members {
                    if !self.approvers.iter().any(|a| &a.name == m) {
                        return f.err(
                            n.span(),
                            format!("group `{}` has `{m}`, who is not an approver", g.name),
                        );
                    }
                }
                g.members.iter().map(String::as_str).collect()
            } else {
                return f.err(
                    n.span(),
                    format!("`{}` is neither an approver nor a group", n.get_ref()),
                );
            };
            for e in expanded {
                if !out.iter().any(|o| o == e) {
                    out.push(e.to_string());
                }
            }
        }
        Ok(out)
    }

    fn settings(&mut self, f: &SourceFile) -> Result<(), PolicyError> {
        let raw = &f.raw;
        if let Some(r) = &raw.redact_params {
            once(
                &mut self.seen,
                "redact_params",
                f.at(r.span()),
                "`redact_params`",
            )?;
            self.redact_params = Some(match r.get_ref() {
                RawGlobalRedaction::None => GlobalRedaction::None,
                RawGlobalRedaction::Pii => GlobalRedaction::Pii,
                RawGlobalRedaction::All => GlobalRedaction::All,
            });
        }
        for (kind, action) in raw.defaults.kinds() {
            let Some(action) = action else { continue };
            let key = format!("defaults.{}", kind.as_str());
            once(
                &mut self.seen,
                &key,
                f.at(action.span()),
                &format!("`{key}`"),
            )?;
            let a = *action.get_ref();
            if a == Action::Mask && !matches!(kind, Kind::Read | Kind::Export) {
                return f.err(
                    action.span(),
                    format!(
                        "`mask` only applies to read and export, not {}",
                        kind.as_str()
                    ),
                );
            }
            self.defaults[kind_index(kind)] = Some(Setting {
                action: a,
                id: format!("default.{}", kind.as_str()),
                source: f.at(action.span()),
            });
        }
        let d = &raw.defaults;
        if let Some(t) = &d.hold_timeout_secs {
            once(
                &mut self.seen,
                "defaults.hold_timeout_secs",
                f.at(t.span()),
                "`[defaults] hold_timeout_secs`",
            )?;
            if *t.get_ref() == 0 {
                return f.err(t.span(), "hold_timeout_secs must be at least 1");
            }
            self.hold_timeout = Some(Duration::from_secs(*t.get_ref()));
        }
        if let Some(q) = &d.quorum {
            once(
                &mut self.seen,
                "defaults.quorum",
                f.at(q.span()),
                "`[defaults] quorum`",
            )?;
            if *q.get_ref() == 0 {
                return f.err(q.span(), "quorum must be at least 1");
            }
            self.hold_quorum = Some((*q.get_ref(), f.at(q.span())));
        }
        if let Some(list) = &d.approvers {
            let at = list
                .first()
                .map(|s| f.at(s.span()))
                .unwrap_or_else(|| f.name.clone());
            once(
                &mut self.seen,
                "defaults.approvers",
                at,
                "`[defaults] approvers`",
            )?;
            self.hold_approvers = Some(self.resolve_approvers(f, list)?);
        }
        for (flag, action) in Flag::ALL.into_iter().zip(raw.flags.entries()) {
            let Some(action) = action else { continue };
            let key = format!("flags.{}", flag.name());
            once(
                &mut self.seen,
                &key,
                f.at(action.span()),
                &format!("`{key}`"),
            )?;
            let a = *action.get_ref();
            let ok = match a {
                Action::Hold | Action::Deny => true,
                Action::Allow => flag.may_allow(),
                Action::Mask => false,
            };
            if !ok {
                return f.err(
                    action.span(),
                    format!(
                        "`{key}` may only be {}",
                        if flag.may_allow() {
                            "allow, hold or deny"
                        } else {
                            "hold or deny"
                        }
                    ),
                );
            }
            self.flags[flag.index()] = Some(Setting {
                action: a,
                id: key,
                source: f.at(action.span()),
            });
        }
        for s in &raw.functions.safe {
            if s.get_ref().trim().is_empty() || s.get_ref().contains(char::is_whitespace) {
                return f.err(
                    s.span(),
                    format!("`{}` is not a function name", s.get_ref()),
                );
            }
            self.safe_functions.push(s.get_ref().clone());
        }
        if let Some(list) = &raw.session.allowed_settings {
            let out = self.allowed_settings.get_or_insert_with(Vec::new);
            for s in list {
                if s.get_ref().trim().is_empty() {
                    return f.err(s.span(), "empty setting name");
                }
                out.push(s.get_ref().to_lowercase());
            }
        }
        for p in &raw.pii {
            if p.columns.get_ref().is_empty() {
                return f.err(
                    p.columns.span(),
                    "a [[pii]] entry needs at least one column",
                );
            }
            for c in p.columns.get_ref() {
                let pat = ColumnPattern::parse(c.get_ref()).or_else(|m| f.err(c.span(), m))?;
                self.pii.insert(pat, p.mask);
            }
        }
        Ok(())
    }

    /// Fills what no file said with fail-closed built-ins, and the default hold spec.
    fn finish_defaults(&mut self) -> Result<(), PolicyError> {
        for kind in KINDS {
            let slot = &mut self.defaults[kind_index(kind)];
            if slot.is_none() {
                self.missing_defaults.push(kind);
                *slot = Some(Setting {
                    action: Action::Hold,
                    id: format!("built-in.default.{}", kind.as_str()),
                    source: "built-in".into(),
                });
            }
        }
        for flag in Flag::ALL {
            let slot = &mut self.flags[flag.index()];
            if slot.is_none() {
                *slot = Some(Setting {
                    action: Action::Hold,
                    id: format!("built-in.flags.{}", flag.name()),
                    source: "built-in".into(),
                });
            }
        }
        self.hold = HoldSpec {
            timeout: self.hold_timeout,
            quorum: self.hold_quorum.as_ref().map_or(1, |q| q.0),
            approvers: self
                .hold_approvers
                .clone()
                .unwrap_or_else(|| self.approvers.iter().map(|a| a.name.clone()).collect()),
        };
        if let Some((q, at)) = &self.hold_quorum {
            if !self.hold.approvers.is_empty() && *q as usize > self.hold.approvers.len() {
                return Err(PolicyError::Invalid {
                    location: at.clone(),
                    message: format!(
                        "[defaults] quorum {q} but only {} approver(s): {}",
                        self.hold.approvers.len(),
                        self.hold.approvers.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    let bytes =
        hex::decode(s.trim()).map_err(|_| "token_sha256 must be 64 hex digits".to_string())?;
    bytes
        .try_into()
        .map_err(|_| "token_sha256 must be 64 hex digits (a SHA-256)".to_string())
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    LineIndex::new(text).line(offset)
}

impl Policy {
    /// Loads a policy file, or a directory of `*.toml` files merged in name order.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        build(read_sources(path)?)
    }

    /// Parses policy text; `source_name` is used in rule locations and errors.
    #[allow(clippy::should_implement_trait)] // fallible with a name, not `FromStr`
    pub fn from_str(text: &str, source_name: &str) -> Result<Policy, PolicyError> {
        build(vec![parse_file(text, source_name)?])
    }

    /// Several named texts merged as if they were files of one directory, in the given order.
    pub fn from_texts(texts: &[(&str, &str)]) -> Result<Policy, PolicyError> {
        let files = texts
            .iter()
            .map(|(name, text)| parse_file(text, name))
            .collect::<Result<Vec<_>, _>>()?;
        build(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index() {
        let t = "a\nb\n\nc";
        assert_eq!(line_of(t, 0), 1);
        assert_eq!(line_of(t, 1), 1);
        assert_eq!(line_of(t, 2), 2);
        assert_eq!(line_of(t, 4), 3);
        assert_eq!(line_of(t, 5), 4);
    }

    #[test]
    fn guid_and_sha() {
        assert!(is_guid("00000000-1111-2222-3333-444444444444"));
        assert!(!is_guid("00000000-1111-2222-3333-44444444444"));
        assert!(!is_guid("g0000000-1111-2222-3333-444444444444"));
        assert!(parse_sha256(&"ab".repeat(32)).is_ok());
        assert!(parse_sha256(&"ab".repeat(31)).is_err());
        assert!(parse_sha256("zz").is_err());
    }
}

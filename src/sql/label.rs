//! Labels and a coarse, fail-closed kind for statements read from their tokens alone: what
//! sqlparser cannot parse still gets a name in the audit and a decision.

use super::lexer::{Tok, TokKind};
use super::text::safe_name;
use super::{Flags, Kind};

/// Uppercased leading words of a statement, for labels and the token-level kind.
fn words(text: &str, toks: &[Tok], max: usize) -> Vec<String> {
    toks.iter()
        .take(max)
        .take_while(|t| t.kind == TokKind::Word)
        .map(|t| t.text(text).to_ascii_uppercase())
        .collect()
}

const MODIFIERS: &[&str] = &[
    "OR",
    "REPLACE",
    "TEMP",
    "TEMPORARY",
    "UNLOGGED",
    "GLOBAL",
    "LOCAL",
    "UNIQUE",
    "TRUSTED",
    "PROCEDURAL",
    "RECURSIVE",
    "CONSTRAINT",
    "IF",
    "NOT",
    "EXISTS",
];

const TWO_WORD_OBJECTS: &[&str] = &[
    "MATERIALIZED",
    "FOREIGN",
    "EVENT",
    "TEXT",
    "ACCESS",
    "DEFAULT",
    "LARGE",
    "OWNED",
    "OPERATOR",
    "USER",
];

/// A short label for the approver, from the leading keywords: "DO block", "ALTER SYSTEM",
/// "CREATE PROCEDURE", "VACUUM FULL", "SET search_path". Never includes literals.
pub(crate) fn token_label(text: &str, toks: &[Tok]) -> String {
    let w = words(text, toks, 8);
    let Some(first) = w.first() else {
        return "unrecognized statement".into();
    };
    match first.as_str() {
        "DO" => "DO block".into(),
        "CREATE" | "ALTER" | "DROP" | "REFRESH" | "IMPORT" => {
            let rest: Vec<&String> = w[1..]
                .iter()
                .skip_while(|x| MODIFIERS.contains(&x.as_str()))
                .collect();
            match rest.as_slice() {
                [] => first.clone(),
                [a, b, ..]
                    if TWO_WORD_OBJECTS.contains(&a.as_str())
                        && !(a.as_str() == "USER" && b.as_str() != "MAPPING") =>
                {
                    format!("{first} {a} {b}")
                }
                [a, ..] => format!("{first} {a}"),
            }
        }
        "COMMENT" | "SECURITY" => match w.get(2) {
            Some(obj) => format!("{} {} {obj}", first, w[1]),
            None => first.clone(),
        },
        "SET" | "RESET" | "SHOW" => {
            let mut it = w[1..]
                .iter()
                .skip_while(|x| x.as_str() == "SESSION" && w.len() > 2 || x.as_str() == "LOCAL");
            match it.next().map(String::as_str) {
                Some("ROLE") => format!("{first} ROLE"),
                Some("AUTHORIZATION") => format!("{first} SESSION AUTHORIZATION"),
                Some(_) | None => {
                    // The setting name as written (it may be quoted or dotted).
                    let name = setting_name(text, toks);
                    if name.is_empty() {
                        first.clone()
                    } else {
                        format!("{first} {name}")
                    }
                }
            }
        }
        "VACUUM" => {
            if w.iter().any(|x| x == "FULL") || options_mention(text, toks, "full") {
                "VACUUM FULL".into()
            } else {
                "VACUUM".into()
            }
        }
        "REASSIGN" | "PREPARE" | "START" => match w.get(1) {
            Some(x) if x != "AS" => format!("{first} {x}"),
            _ => first.clone(),
        },
        "COMMIT" | "ROLLBACK" => match w.get(1) {
            Some(x) if x == "PREPARED" => format!("{first} PREPARED"),
            _ => first.clone(),
        },
        _ => first.clone(),
    }
}

/// The setting named by a SET/RESET/SHOW statement's tokens, lower-cased, at most 64 bytes.
fn setting_name(text: &str, toks: &[Tok]) -> String {
    let mut name = String::new();
    for t in toks.iter().skip(1) {
        match t.kind {
            TokKind::Word if name.is_empty() || name.ends_with('.') => {
                let s = t.text(text);
                if name.is_empty()
                    && (s.eq_ignore_ascii_case("session") || s.eq_ignore_ascii_case("local"))
                {
                    continue;
                }
                name.push_str(&s.to_ascii_lowercase());
            }
            TokKind::QuotedIdent if name.is_empty() || name.ends_with('.') => {
                name.push_str(t.text(text).trim_matches('"'));
            }
            TokKind::Dot if !name.is_empty() => name.push('.'),
            _ => break,
        }
    }
    if name.is_empty() {
        name
    } else {
        safe_name(&name)
    }
}

/// True if a parenthesised option list right after the first word mentions `word`
/// (`VACUUM (FULL, ANALYZE) t`).
fn options_mention(text: &str, toks: &[Tok], word: &str) -> bool {
    if toks.get(1).map(|t| t.kind) != Some(TokKind::LParen) {
        return false;
    }
    toks[2..]
        .iter()
        .take_while(|t| t.kind != TokKind::RParen)
        .any(|t| t.is_word(text, word))
}

/// For text the parser could not handle: the kind when the leading keywords make it
/// unambiguous, and never one the policy allows by default unless the statement's grammar cannot
/// hide anything (transaction control, plain VACUUM/ANALYZE, CHECKPOINT). Everything else is
/// `unknown`.
pub(crate) fn token_kind(text: &str, toks: &[Tok]) -> (Kind, Flags) {
    let w = words(text, toks, 4);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let mut flags = Flags::default();
    let kind = match w.as_slice() {
        ["GRANT", ..] | ["REVOKE", ..] => Kind::Role,
        ["ALTER", "SYSTEM", ..] | ["ALTER", "DEFAULT", "PRIVILEGES", ..] => Kind::Role,
        ["CREATE" | "ALTER" | "DROP", "ROLE" | "USER" | "GROUP", ..] => Kind::Role,
        ["DROP" | "REASSIGN", "OWNED", ..] => Kind::Role,
        ["SET" | "RESET", "ROLE", ..] | ["SET", "SESSION" | "LOCAL", "ROLE", ..] => Kind::Role,
        ["SET" | "RESET", "SESSION", "AUTHORIZATION", ..] => Kind::Role,
        ["RESET", "ALL", ..] => Kind::Role,
        ["SECURITY", "LABEL", ..] => Kind::Role,
        ["CREATE" | "ALTER" | "DROP" | "COMMENT" | "REFRESH" | "CLUSTER" | "REINDEX", ..] => {
            Kind::Ddl
        }
        ["IMPORT", "FOREIGN", ..] => Kind::Ddl,
        ["TRUNCATE", ..] => {
            flags.truncate = true;
            Kind::Write
        }
        ["PREPARE", "TRANSACTION", ..] | ["COMMIT" | "ROLLBACK", "PREPARED", ..] => Kind::Unknown,
        ["BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT", ..] => Kind::Txn,
        ["SAVEPOINT" | "RELEASE", ..] => Kind::Txn,
        ["VACUUM", ..] => {
            if w.contains(&"FULL") || options_mention(text, toks, "full") {
                Kind::Unknown
            } else {
                Kind::Utility
            }
        }
        ["ANALYZE" | "ANALYSE", ..] | ["CHECKPOINT"] => Kind::Utility,
        // Cursor movement: the grammar holds a direction, a count and a name, nothing else
        // (`FETCH c` without FROM is PostgreSQL's, not the parser's).
        ["MOVE" | "FETCH", ..] => Kind::Read,
        _ => Kind::Unknown,
    };
    (kind, flags)
}

/// The name a statement read from its tokens alone ends with (the cursor of a `FETCH`, the new
/// name of a `RENAME TO`), folded as the server folds it; `None` when its last token is not an
/// identifier this can read for certain, and the statement is then held like anything else
/// not understood.
pub(crate) fn last_name(text: &str, toks: &[Tok]) -> Option<String> {
    let last = toks.last()?;
    let raw = last.text(text);
    let mut name = match last.kind {
        TokKind::Word => raw.to_ascii_lowercase(),
        TokKind::QuotedIdent if raw.starts_with('"') && raw.len() >= 2 => {
            raw[1..raw.len() - 1].replace("\"\"", "\"")
        }
        _ => return None,
    };
    super::names::truncate_identifier(&mut name);
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    #[test]
    fn labels_from_tokens() {
        let l = |t: &str| token_label(t, &lex(t, true).toks);
        assert_eq!(l("DO $$ BEGIN END $$"), "DO block");
        assert_eq!(l("alter system set work_mem = 1"), "ALTER SYSTEM");
        assert_eq!(
            l("CREATE OR REPLACE PROCEDURE p() AS $$x$$"),
            "CREATE PROCEDURE"
        );
        assert_eq!(l("CREATE UNIQUE INDEX i ON t (a)"), "CREATE INDEX");
        assert_eq!(
            l("create materialized view v as select 1"),
            "CREATE MATERIALIZED VIEW"
        );
        assert_eq!(
            l("CREATE USER MAPPING FOR x SERVER s"),
            "CREATE USER MAPPING"
        );
        assert_eq!(l("CREATE USER bob"), "CREATE USER");
        assert_eq!(
            l("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO x"),
            "ALTER DEFAULT PRIVILEGES"
        );
        assert_eq!(l("VACUUM (FULL) t"), "VACUUM FULL");
        assert_eq!(l("VACUUM t"), "VACUUM");
        assert_eq!(l("SET LOCAL Search_Path TO x"), "SET search_path");
        assert_eq!(
            l("SET SESSION AUTHORIZATION x"),
            "SET SESSION AUTHORIZATION"
        );
        assert_eq!(l("set role x"), "SET ROLE");
        assert_eq!(l("SECURITY LABEL ON TABLE t IS 'x'"), "SECURITY LABEL ON");
        assert_eq!(l("TABLE customers"), "TABLE");
        assert_eq!(l("(SELECT 1)"), "unrecognized statement");
    }

    #[test]
    fn kinds_from_tokens_fail_closed() {
        let k = |t: &str| token_kind(t, &lex(t, true).toks).0;
        assert_eq!(k("GRANT admin TO bob"), Kind::Role);
        assert_eq!(k("REVOKE admin FROM bob"), Kind::Role);
        assert_eq!(k("ALTER SYSTEM SET x = 1"), Kind::Role);
        assert_eq!(
            k("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO x"),
            Kind::Role
        );
        assert_eq!(k("REASSIGN OWNED BY a TO b"), Kind::Role);
        assert_eq!(k("CREATE PROCEDURE p() AS $$ $$"), Kind::Ddl);
        assert_eq!(k("REFRESH MATERIALIZED VIEW v"), Kind::Ddl);
        assert_eq!(k("VACUUM (VERBOSE) t"), Kind::Utility);
        assert_eq!(k("VACUUM (FULL) t"), Kind::Unknown);
        assert_eq!(k("CHECKPOINT"), Kind::Utility);
        assert_eq!(k("DO $$ $$"), Kind::Unknown);
        assert_eq!(k("TABLE customers"), Kind::Unknown);
        assert_eq!(k("PREPARE TRANSACTION 'x'"), Kind::Unknown);
        assert_eq!(k("COMMIT PREPARED 'x'"), Kind::Unknown);
        assert_eq!(k("LOAD 'plugin'"), Kind::Unknown);
        assert!(
            token_kind("TRUNCATE t", &lex("TRUNCATE t", true).toks)
                .1
                .truncate
        );
    }
}

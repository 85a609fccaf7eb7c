//! Token-level work that must not depend on the text parsing: splitting a query string into
//! statements, fingerprinting and the literal-free cache key. Redaction is in `secret`, labels
//! for what sqlparser cannot parse in `label`.

use std::ops::Range;

use super::lexer::{Tok, TokKind};
use super::secret::looks_like_credentials;

/// Split at top-level semicolons, as psql and the server do: a `;` inside parentheses or inside
/// the `BEGIN ATOMIC … END` body of a `CREATE FUNCTION|PROCEDURE` does not end the statement.
/// Returns token index ranges (semicolons excluded); empty statements are dropped.
pub(crate) fn split_statements(text: &str, toks: &[Tok]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut parens = 0usize;
    let mut atomic_depth = 0usize;
    let mut routine = false;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            TokKind::LParen => parens += 1,
            TokKind::RParen => parens = parens.saturating_sub(1),
            TokKind::Word => {
                if i == start && t.is_word(text, "create") {
                    routine = toks[i + 1..]
                        .iter()
                        .take(4)
                        .any(|w| w.is_word(text, "function") || w.is_word(text, "procedure"));
                }
                if routine {
                    let next_atomic = toks.get(i + 1).is_some_and(|n| n.is_word(text, "atomic"));
                    if (t.is_word(text, "begin") && next_atomic)
                        || (atomic_depth > 0 && t.is_word(text, "case"))
                    {
                        atomic_depth += 1;
                    } else if atomic_depth > 0 && t.is_word(text, "end") {
                        atomic_depth -= 1;
                    }
                }
            }
            TokKind::Semicolon if parens == 0 && atomic_depth == 0 => {
                if i > start {
                    out.push(start..i);
                }
                start = i + 1;
                routine = false;
            }
            _ => {}
        }
    }
    if toks.len() > start {
        out.push(start..toks.len());
    }
    out
}

/// The text with every literal replaced by `?` and whitespace and comments normalised, so that
/// statements differing only in their constants group together. Unquoted words are lower-cased.
pub(crate) fn fingerprint(text: &str, toks: &[Tok]) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    let mut prev: Option<TokKind> = None;
    let mut prev_text = "";
    for t in toks {
        let s = t.text(text);
        let no_space_before = matches!(
            t.kind,
            TokKind::Comma | TokKind::RParen | TokKind::Dot | TokKind::Semicolon
        ) || s == "::"
            || s == "]"
            || (t.kind == TokKind::LParen
                && (prev == Some(TokKind::QuotedIdent)
                    || (prev == Some(TokKind::Word) && !is_clause_word(prev_text))));
        let no_space_after_prev = matches!(prev, Some(TokKind::LParen) | Some(TokKind::Dot) | None)
            || prev_text == "::"
            || prev_text == "[";
        if !(no_space_before || no_space_after_prev) {
            out.push(' ');
        }
        match t.kind {
            TokKind::String | TokKind::Number => out.push('?'),
            TokKind::QuotedIdent if looks_like_credentials(s) => out.push_str("\"***\""),
            TokKind::Word => {
                for c in s.chars() {
                    out.push(c.to_ascii_lowercase());
                }
            }
            _ => out.push_str(s),
        }
        prev = Some(t.kind);
        prev_text = s;
    }
    if out.ends_with(';') {
        out.pop();
    }
    out
}

/// A key under which texts that differ only in their constants (and layout, comments, the case
/// of unquoted words) meet: every token with its kind, literals reduced to their form. `None`
/// when a literal's content could change how the statement parses (strings with escapes:
/// `E'…'`, `U&'…'`, bit and hex strings), or when the text's extent is in doubt.
pub(crate) fn literal_free_key(text: &str, toks: &[Tok]) -> Option<String> {
    let mut out = String::with_capacity(text.len().min(4096));
    for t in toks {
        let s = t.text(text);
        match t.kind {
            TokKind::String => match s.as_bytes().first() {
                Some(b'\'') => out.push_str("\u{1}s"),
                Some(b'$') => out.push_str("\u{1}d"),
                _ => return None,
            },
            TokKind::Number => {
                if s.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
                    out.push_str("\u{1}i");
                } else if s.bytes().any(|c| c == b'e' || c == b'E') {
                    out.push_str("\u{1}e");
                } else {
                    out.push_str("\u{1}f");
                }
            }
            TokKind::Word => {
                out.push_str("\u{1}w");
                for c in s.chars() {
                    out.push(c.to_ascii_lowercase());
                }
            }
            _ => {
                out.push_str("\u{1}o");
                out.push_str(s);
            }
        }
    }
    Some(out)
}

/// Words after which `(` opens a list or subquery rather than a call's arguments.
fn is_clause_word(w: &str) -> bool {
    const WORDS: &[&str] = &[
        "in",
        "as",
        "on",
        "using",
        "from",
        "join",
        "values",
        "lateral",
        "and",
        "or",
        "not",
        "where",
        "select",
        "into",
        "exists",
        "any",
        "all",
        "some",
        "with",
        "over",
        "filter",
        "then",
        "else",
        "when",
        "by",
        "set",
        "returning",
        "table",
    ];
    WORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
}

/// A name fit for a label: identifier characters only and short, else `…`. Labels go to logs,
/// cards and the audit; a quoted identifier can hold anything, including a secret.
pub(crate) fn safe_name(name: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'$'));
    if ok {
        name.to_owned()
    } else {
        "…".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn split(text: &str) -> Vec<String> {
        let l = lex(text, true);
        split_statements(text, &l.toks)
            .into_iter()
            .map(|r| text[l.toks[r.start].start..l.toks[r.end - 1].end].to_string())
            .collect()
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        assert_eq!(
            split("SELECT 1; SELECT ';'; ;; -- x;\n"),
            vec!["SELECT 1", "SELECT ';'"]
        );
        assert_eq!(
            split("SELECT $$;$$ ; SELECT (1;2)"),
            vec!["SELECT $$;$$", "SELECT (1;2)"]
        );
        assert_eq!(
            split("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 1 END; END; SELECT 2"),
            vec![
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 1 END; END",
                "SELECT 2"
            ]
        );
        assert!(split("  -- only a comment\n /* and another */ ").is_empty());
    }

    #[test]
    fn fingerprints_strip_literals_and_layout() {
        let fp = |t: &str| fingerprint(t, &lex(t, true).toks);
        assert_eq!(
            fp("SELECT  *\nFROM customers -- hi\n WHERE id = 42 AND email = 'a@b.c';"),
            "select * from customers where id = ? and email = ?"
        );
        assert_eq!(
            fp("select * from customers where id=7"),
            fp("SELECT * FROM Customers WHERE id = 8")
        );
        assert_eq!(
            fp("SELECT count(*), $1::int FROM \"T\""),
            "select count(*), $1::int from \"T\""
        );
        assert_eq!(fp("SELECT $$x$$, E'y'"), "select ?, ?");
    }
}

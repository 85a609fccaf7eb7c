//! Secrets kept out of the audit, logs and cards: the value after a `PASSWORD` keyword and
//! credentials inside string literals and comments, found on the tokens so that text which does
//! not parse is covered too.
//!
//! Only the secret value goes. A string constant that carries one (a DO body, a function body,
//! the SQL given to EXECUTE or `dblink_exec`, a connection string) is decoded, its value redacted
//! by these same rules, and only the changed bytes are written back in the constant's quoting:
//! an approver must never be asked to approve code the redaction hid.
//!
//! The token rules (which token follows a password key) live here. [`args`] tells which
//! argument of which call a token is in, for the values that only their call makes secret;
//! [`constant`] narrows a string constant to the secret in its value and writes the result
//! back; [`raw`] holds the rules for text the token rules cannot follow (comments, unparsed
//! statements, a constant's value); [`params`] applies the same rules to bound parameters.

mod args;
mod constant;
mod params;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::Range;

use args::{call_args, chains, is_setting_value};
use constant::{narrow_chain, Writer};
pub use params::{redact_param, secret_params};
pub(super) use raw::looks_like_credentials;
pub(crate) use raw::redact_raw;

use super::lexer::{lex, Tok, TokKind};

/// What replaces a secret: a string constant, so that the redacted text still reads as SQL.
const MASK: &str = "'***'";

/// What replaces a secret that is part of a string constant's value.
const INNER_MASK: &str = "***";

/// How deep string constants inside string constants are decoded; deeper ones that may hold a
/// secret are masked whole. Each level doubles the quotes a writer needs, so real code stops
/// long before.
const MAX_DEPTH: usize = 6;

/// The name part that makes a key a password: `password`, `sslpassword`, `app.db_password`…
const KEY: &str = "password";

/// Replace secrets with `'***'`: the string after `PASSWORD` (roles, user mappings, servers), and
/// the credentials inside string literals (connection strings, URLs with a password, SQL with a
/// `PASSWORD` clause), narrowed to the value itself. Works on the tokens, so text that does not
/// parse is redacted too. Comments, and the unterminated tail of text the server would reject,
/// are scanned as raw text for `password …` as well (what is not code may still carry a secret
/// into the audit), each comment on its own: a comment never hides the code after it. Returns
/// the redacted text and the token indexes that were changed.
pub(crate) fn redact(text: &str, toks: &[Tok], unterminated: bool) -> (String, Vec<usize>) {
    let r = redact_statements(text, toks, unterminated, &[]);
    (r.text, r.hits)
}

/// What [`redact_statements`] did.
#[derive(Debug)]
pub(crate) struct Redaction {
    pub text: String,
    /// Token indexes replaced, whole or in part.
    pub hits: Vec<usize>,
    /// Offsets in the original text of comments and of unparsed code that the raw-text rules
    /// changed.
    pub masked_at: Vec<usize>,
}

/// [`redact`], where the token ranges `unparsed` (sorted) are statements sqlparser could not
/// read. Only there, any value after `PASSWORD` is a secret, quoted or not, and the raw-text
/// rules also apply to the code, up to the statement's end or the next comment, masking the
/// whole tokens a value they find touches (but never a whole string constant the value only
/// starts or ends in: that constant keeps its quotes and the rest of its value). Parsed
/// statements keep the token rules, so one statement that does not parse never costs the others
/// their text in the audit.
pub(crate) fn redact_statements(
    text: &str,
    toks: &[Tok],
    unterminated: bool,
    unparsed: &[Range<usize>],
) -> Redaction {
    redact_at(text, toks, unterminated, unparsed, 0)
}

/// [`redact_statements`] for text found `depth` string constants deep.
fn redact_at(
    text: &str,
    toks: &[Tok],
    unterminated: bool,
    unparsed: &[Range<usize>],
    depth: usize,
) -> Redaction {
    let mut loose = Membership::new(unparsed);
    let hits = secret_tokens(text, toks, |i| loose.of(i).is_some(), depth);
    let mut w = Writer::new(text);
    let mut next_hit = hits.iter().peekable();
    let mut in_stmt = Membership::new(unparsed);
    let mut current = None;
    let mut at = 0;
    for (i, t) in toks.iter().enumerate() {
        let stmt = in_stmt.of(i);
        if stmt != current {
            // What lies between two statements is no part of either.
            w.flush();
        }
        w.gap(at..t.start, stmt.is_some() && stmt == current);
        current = stmt;
        let mask = match next_hit.peek() {
            Some((j, m)) if *j == i => {
                next_hit.next();
                Some(m.as_str())
            }
            _ => None,
        };
        match (mask, current) {
            (_, Some(_)) => w.pending(t.start..t.end, Some(t.kind), mask),
            (Some(m), None) => w.out.push_str(m),
            (None, None) if unterminated && t.end == text.len() => {
                w.out.push_str(&redact_raw(t.text(text)))
            }
            (None, None) => w.out.push_str(t.text(text)),
        }
        at = t.end;
    }
    w.flush();
    w.gap(at..text.len(), false);
    Redaction {
        text: w.out,
        hits: hits.into_iter().map(|(i, _)| i).collect(),
        masked_at: w.masked_at,
    }
}

/// The value of a string constant (or of a bound parameter) with its secrets redacted: it is
/// read as SQL whose every statement may be unparsed (a DO body is PL/pgSQL, a connection string
/// is not SQL at all), so the token rules, the loose rules and the raw-text rules all apply.
/// Text that does not even lex gets the raw-text rules alone.
fn redact_value(value: &str, depth: usize) -> String {
    let l = lex(value, true);
    if l.unterminated {
        return redact_raw(value).into_owned();
    }
    let all = 0..l.toks.len();
    let out = redact_at(value, &l.toks, false, std::slice::from_ref(&all), depth).text;
    if l.backslash_in_plain_string {
        // Where the inner strings end depends on a setting: the raw rules cover both readings.
        return redact_raw(&out).into_owned();
    }
    out
}

/// Which of the sorted, disjoint token ranges holds token `i`, for increasing `i`.
struct Membership<'r> {
    ranges: &'r [Range<usize>],
    next: usize,
}

impl<'r> Membership<'r> {
    fn new(ranges: &'r [Range<usize>]) -> Self {
        Membership { ranges, next: 0 }
    }

    fn of(&mut self, i: usize) -> Option<usize> {
        while self.ranges.get(self.next).is_some_and(|r| r.end <= i) {
            self.next += 1;
        }
        self.ranges
            .get(self.next)
            .filter(|r| r.contains(&i))
            .map(|_| self.next)
    }
}

/// The tokens that carry secrets, sorted, each with what replaces it. Masked whole: the string
/// after a password key (`PASSWORD`, `"password"`, `sslpassword =`…) and the strings continuing
/// it (`'a'` newline `'b'` is one constant to the server); the value of a password setting given
/// to `set_config`; a quoted identifier holding credentials; where `loose(i)`, whatever value
/// follows a password key. Narrowed to the secret: string constants whose value, joined with the
/// constants it is concatenated with (`||`, `concat`), holds credentials.
fn secret_tokens(
    text: &str,
    toks: &[Tok],
    mut loose: impl FnMut(usize) -> bool,
    depth: usize,
) -> Vec<(usize, String)> {
    let args = call_args(toks);
    let mut whole = vec![false; toks.len()];
    for (i, t) in toks.iter().enumerate() {
        let continued = t.kind == TokKind::String
            && i > 0
            && toks[i - 1].kind == TokKind::String
            && whole[i - 1];
        let password_value = follows_key(text, toks, i)
            && (t.kind == TokKind::String
                || (is_value(text, t) && (loose(i) || in_setting_statement(text, toks, i))));
        let ident = t.kind == TokKind::QuotedIdent && looks_like_credentials(t.text(text));
        let setting = t.kind == TokKind::String && is_setting_value(text, toks, &args, i);
        whole[i] = continued || password_value || ident || setting;
    }
    let mut hits: BTreeMap<usize, String> = BTreeMap::new();
    for (i, t) in toks.iter().enumerate().filter(|(i, _)| whole[*i]) {
        let m = if t.kind == TokKind::QuotedIdent {
            "\"***\""
        } else {
            MASK
        };
        hits.insert(i, m.to_owned());
    }
    for chain in chains(text, toks, &args, &whole) {
        hits.extend(narrow_chain(text, toks, &chain, depth));
    }
    hits.into_iter().collect()
}

/// A word or quoted identifier naming a password: its name contains `password`.
fn is_key(text: &str, t: &Tok) -> bool {
    let name = match t.kind {
        TokKind::Word => t.text(text),
        TokKind::QuotedIdent => t.text(text).trim_matches('"'),
        _ => return false,
    };
    name.to_ascii_lowercase().contains(KEY)
}

/// Token `i` is in a `SET …` or `ALTER … SET …` statement, where a setting's value may be
/// written without quotes (`SET app.password TO hunter2`): a word or number after a password
/// key is its value there.
fn in_setting_statement(text: &str, toks: &[Tok], i: usize) -> bool {
    let start = toks[..i]
        .iter()
        .rposition(|t| t.kind == TokKind::Semicolon)
        .map_or(0, |p| p + 1);
    toks.get(start)
        .is_some_and(|t| t.is_word(text, "set") || t.is_word(text, "alter"))
}

/// What may stand between a password key and its value: `=`, `:`, `:=` (lexed as `:` `=`),
/// `TO`.
fn is_separator(text: &str, t: &Tok) -> bool {
    (t.kind == TokKind::Op && matches!(t.text(text), "=" | ":" | ":=")) || t.is_word(text, "to")
}

/// Token `i` is the value of a password key: the key comes before it, with at most two
/// separators between, and it is no separator itself.
fn follows_key(text: &str, toks: &[Tok], i: usize) -> bool {
    if toks.get(i).is_some_and(|t| is_separator(text, t)) {
        return false;
    }
    let mut j = i;
    for _ in 0..2 {
        if j > 0 && is_separator(text, &toks[j - 1]) {
            j -= 1;
        }
    }
    j > 0 && is_key(text, &toks[j - 1])
}

/// A token that could be a value written without quotes (`PASSWORD hunter2`), but not `NULL`.
fn is_value(text: &str, t: &Tok) -> bool {
    match t.kind {
        TokKind::Word => !t.is_word(text, "null"),
        TokKind::String | TokKind::QuotedIdent | TokKind::Number | TokKind::Param => true,
        TokKind::Op => true,
        _ => false,
    }
}

//! Secrets kept out of the audit, logs and cards: the value after a `PASSWORD` keyword and
//! credentials inside string literals and comments, found on the tokens so that text which does
//! not parse is covered too.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use super::lexer::{skip_block_comment, skip_line_comment, Tok, TokKind};

/// Replace secrets with `'***'`: the string after `PASSWORD` (roles, user mappings, servers), and
/// any string literal holding a connection string or URL with a password in it. Works on the
/// tokens, so text that does not parse is redacted too. Comments, and the unterminated tail of
/// text the server would reject, are scanned as raw text for `password …` as well (what is not
/// code may still carry a secret into the audit), each comment on its own: a comment never
/// hides the code after it. Returns the redacted text and the token indexes that were replaced.
pub(crate) fn redact(text: &str, toks: &[Tok], unterminated: bool) -> (String, Vec<usize>) {
    let r = redact_statements(text, toks, unterminated, &[]);
    (r.text, r.hits)
}

/// What [`redact_statements`] did.
#[derive(Debug)]
pub(crate) struct Redaction {
    pub text: String,
    /// Token indexes replaced whole.
    pub hits: Vec<usize>,
    /// Offsets in the original text of comments and of unparsed code that the raw-text rules
    /// changed.
    pub masked_at: Vec<usize>,
}

/// [`redact`], where the token ranges `unparsed` (sorted) are statements sqlparser could not
/// read. Only there, any value after `PASSWORD` is a secret, quoted or not, and the raw-text
/// rules also apply to the code (as if all of it could be a string: the statement is not what
/// the tokens say it is), up to the statement's end or the next comment, masking the whole
/// tokens a value they find touches. Parsed statements
/// keep the token rules, so one statement that does not parse never costs the others their
/// text in the audit.
pub(crate) fn redact_statements(
    text: &str,
    toks: &[Tok],
    unterminated: bool,
    unparsed: &[Range<usize>],
) -> Redaction {
    let mut loose = Membership::new(unparsed);
    let hits = secret_tokens(text, toks, |i| loose.of(i).is_some());
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
        let mask = (next_hit.peek() == Some(&&i)).then(|| {
            next_hit.next();
            if t.kind == TokKind::QuotedIdent {
                "\"***\""
            } else {
                "'***'"
            }
        });
        match (mask, current) {
            (_, Some(_)) => w.pending(t.start..t.end, true, mask),
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
        hits,
        masked_at: w.masked_at,
    }
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

/// The tokens that are secrets: credentials-like strings and quoted identifiers, the string
/// after `PASSWORD` (optionally `=`) and the strings continuing it (`'a'` newline `'b'` is one
/// constant to the server); where `loose(i)`, whatever value follows `PASSWORD`.
fn secret_tokens(text: &str, toks: &[Tok], mut loose: impl FnMut(usize) -> bool) -> Vec<usize> {
    let mut hits: Vec<usize> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let credentials = matches!(t.kind, TokKind::String | TokKind::QuotedIdent)
            && looks_like_credentials(t.text(text));
        let continued = t.kind == TokKind::String
            && i > 0
            && toks[i - 1].kind == TokKind::String
            && hits.last() == Some(&(i - 1));
        let password_value = follows_password(text, toks, i)
            && (t.kind == TokKind::String || (is_value(text, t) && loose(i)));
        if credentials || continued || password_value {
            hits.push(i);
        }
    }
    hits
}

/// The token before `i` is the word `PASSWORD`, or `PASSWORD =`.
fn follows_password(text: &str, toks: &[Tok], i: usize) -> bool {
    let mut j = i;
    if j > 0 && toks[j - 1].kind == TokKind::Op && toks[j - 1].text(text) == "=" {
        j -= 1;
    }
    j > 0 && toks[j - 1].is_word(text, "password")
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

/// The redacted text, built piece by piece.
struct Writer<'t> {
    text: &'t str,
    out: String,
    /// Code of an unparsed statement not written yet (a range of the original text, so that the
    /// raw-text rules see what was sent), up to the statement's end or the next comment, with
    /// its tokens and the masks of its secret tokens.
    pending: Option<Range<usize>>,
    toks: Vec<Range<usize>>,
    masks: Vec<(Range<usize>, &'static str)>,
    masked_at: Vec<usize>,
}

impl<'t> Writer<'t> {
    fn new(text: &'t str) -> Writer<'t> {
        Writer {
            text,
            out: String::with_capacity(text.len()),
            pending: None,
            toks: Vec::new(),
            masks: Vec::new(),
            masked_at: Vec::new(),
        }
    }

    /// Unparsed code at `range` (a token, or blanks), replaced by `mask` if a secret.
    fn pending(&mut self, range: Range<usize>, token: bool, mask: Option<&'static str>) {
        let start = self.pending.as_ref().map_or(range.start, |p| p.start);
        self.pending = Some(start..range.end);
        if token {
            self.toks.push(range.clone());
        }
        if let Some(m) = mask {
            self.masks.push((range, m));
        }
    }

    /// Writes the pending code with its token masks and what the raw-text rules find in it.
    /// A raw-text mask is widened to the whole tokens it touches, so the redacted text quotes
    /// as the original did (a mask never leaves half a quoted identifier open); overlapping
    /// masks merge into one.
    fn flush(&mut self) {
        let Some(seg) = self.pending.take() else {
            return;
        };
        let raw = raw_ranges(&self.text[seg.clone()]);
        if !raw.is_empty() {
            self.masked_at.push(seg.start);
        }
        let toks = std::mem::take(&mut self.toks);
        let widen = |(a, z): (usize, usize)| {
            let (mut a, mut z) = (seg.start + a, seg.start + z);
            let first = toks.partition_point(|t| t.end <= a);
            let end = toks.partition_point(|t| t.start < z);
            if first < end {
                a = a.min(toks[first].start);
                z = z.max(toks[end - 1].end);
            }
            (a..z, "'***'")
        };
        let mut masks: Vec<(Range<usize>, &str)> = raw
            .into_iter()
            .map(widen)
            .chain(self.masks.drain(..))
            .collect();
        masks.sort_by_key(|(r, _)| r.start);
        let mut merged: Vec<(Range<usize>, &str)> = Vec::with_capacity(masks.len());
        for (r, m) in masks {
            match merged.last_mut() {
                Some((last, lm)) if r.start < last.end => {
                    last.end = last.end.max(r.end);
                    *lm = "'***'";
                }
                _ => merged.push((r, m)),
            }
        }
        let mut at = seg.start;
        for (r, m) in merged {
            self.out.push_str(&self.text[at..r.start]);
            self.out.push_str(m);
            at = r.end;
        }
        self.out.push_str(&self.text[at..seg.end]);
    }

    /// Text between tokens: blanks and comments.
    fn gap(&mut self, gap: Range<usize>, unparsed: bool) {
        let b = &self.text.as_bytes()[..gap.end];
        let mut i = gap.start;
        while i < gap.end {
            let (end, comment) = match (b[i], b.get(i + 1)) {
                (b'-', Some(b'-')) => (skip_line_comment(b, i), true),
                (b'/', Some(b'*')) => (skip_block_comment(b, i).0, true),
                (c, _) if c.is_ascii_whitespace() => {
                    let n = b[i..]
                        .iter()
                        .take_while(|c| c.is_ascii_whitespace())
                        .count();
                    (i + n, false)
                }
                // The lexer leaves nothing else between tokens; should it, raw rules apply.
                _ => (gap.end, true),
            };
            if !comment && unparsed {
                self.pending(i..end, false, None);
            } else if !comment {
                self.out.push_str(&self.text[i..end]);
            } else {
                self.flush();
                let r = redact_comment(&self.text[i..end]);
                if matches!(r, std::borrow::Cow::Owned(_)) {
                    self.masked_at.push(i);
                }
                self.out.push_str(&r);
            }
            i = end;
        }
    }
}

/// The raw-text rules inside one comment, which stays the comment it was: a value runs at most
/// to the comment's end, and if masking changed where a nested block comment closes, the
/// whole body is masked instead.
fn redact_comment(c: &str) -> std::borrow::Cow<'_, str> {
    let body = match c.strip_prefix("/*").and_then(|r| r.strip_suffix("*/")) {
        Some(body) if skip_block_comment(c.as_bytes(), 0) == (c.len(), true) => body,
        // A line comment, or a block comment left open at the end of the text.
        _ => return redact_raw(c),
    };
    let r = redact_raw(body);
    if matches!(r, std::borrow::Cow::Borrowed(_)) {
        return c.into();
    }
    let masked = format!("/*{r}*/");
    if skip_block_comment(masked.as_bytes(), 0) == (masked.len(), true) {
        masked.into()
    } else {
        "/*'***'*/".into()
    }
}

/// Raw-text fallback: the value after any `password` (optionally `=`), quoted or not. Every
/// occurrence is considered, including ones inside another occurrence's value, and overlapping
/// values are merged, so no reading of where quotes start and end leaves a secret behind.
pub(crate) fn redact_raw(s: &str) -> std::borrow::Cow<'_, str> {
    let ranges = raw_ranges(s);
    if ranges.is_empty() {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for (a, z) in ranges {
        // Ranges start and end at ASCII bytes or at the end of the text.
        out.push_str(&s[at..a]);
        out.push_str("'***'");
        at = z;
    }
    out.push_str(&s[at..]);
    out.into()
}

/// The byte ranges [`redact_raw`] replaces: sorted, merged, each at least one byte.
fn raw_ranges(s: &str) -> Vec<(usize, usize)> {
    const KEY: &str = "password";
    let lower = s.to_ascii_lowercase();
    if !lower.contains(KEY) {
        return Vec::new();
    }
    let b = s.as_bytes();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut search = 0;
    while let Some(p) = lower[search..].find(KEY).map(|p| p + search) {
        search = p + KEY.len();
        let j = value_start(b, search);
        let end = value_end(s, j);
        if end > j {
            ranges.push((j, end));
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, z) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(z),
            _ => merged.push((a, z)),
        }
    }
    merged
}

/// Skip blanks, an optional `=`, blanks, and an `E` string prefix.
fn value_start(b: &[u8], mut j: usize) -> usize {
    while j < b.len() && b[j].is_ascii_whitespace() {
        j += 1;
    }
    if j < b.len() && b[j] == b'=' {
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
    }
    if j < b.len() && (b[j] == b'e' || b[j] == b'E') && b.get(j + 1) == Some(&b'\'') {
        j += 1;
    }
    j
}

/// Where a value starting at `j` ends: a quoted string (doubled quotes escape), a dollar-quoted
/// string, or a run of non-blank characters. Unterminated values run to the end of the text.
fn value_end(s: &str, j: usize) -> usize {
    let b = s.as_bytes();
    match b.get(j) {
        Some(b'\'') => {
            let mut k = j + 1;
            loop {
                match b[k.min(b.len())..].iter().position(|&c| c == b'\'') {
                    Some(q) if b.get(k + q + 1) == Some(&b'\'') => k += q + 2,
                    Some(q) => break k + q + 1,
                    None => break b.len(),
                }
            }
        }
        Some(b'$') => {
            let tag_end = b[j + 1..]
                .iter()
                .position(|&c| c == b'$')
                .map(|q| j + 1 + q + 1)
                .filter(|&e| {
                    b[j + 1..e - 1]
                        .iter()
                        .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
                });
            match tag_end {
                Some(te) => {
                    let tag = &s[j..te];
                    s[te..].find(tag).map_or(b.len(), |q| te + q + tag.len())
                }
                None => j,
            }
        }
        Some(c) if !c.is_ascii_whitespace() && !matches!(c, b')' | b',' | b';') => {
            let mut k = j;
            while k < b.len() && !b[k].is_ascii_whitespace() && !matches!(b[k], b')' | b',' | b';')
            {
                k += 1;
            }
            k
        }
        _ => j,
    }
}

/// A string (or quoted identifier) that carries something password-like: a connection string
/// (`password=…`), a URL with credentials, or SQL text with a `PASSWORD '…'` clause inside.
pub(super) fn looks_like_credentials(literal: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?i)password\s*[=:]?\s*'*[^\s'\x22]|://[^/@\s:]*:[^/@\s]+@")
            .expect("static regex is valid")
    });
    re.is_match(literal)
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::super::text::split_statements;
    use super::*;

    #[test]
    fn redacts_passwords_even_when_unparsable() {
        let r = |t: &str| {
            let l = lex(t, true);
            redact(t, &l.toks, l.unterminated).0
        };
        assert_eq!(
            r("CREATE ROLE bob LOGIN PASSWORD 'hunter2'"),
            "CREATE ROLE bob LOGIN PASSWORD '***'"
        );
        assert_eq!(
            r("alter user bob with encrypted password $p$s3cr'et$p$ valid until 'x'"),
            "alter user bob with encrypted password '***' valid until 'x'"
        );
        assert_eq!(
            r("CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'pw')"),
            "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '***')"
        );
        assert_eq!(
            r("SELECT dblink_connect('host=db password=pw user=x')"),
            "SELECT dblink_connect('***')"
        );
        assert_eq!(r("SELECT f('postgres://u:pw@h/db')"), "SELECT f('***')");
        assert_eq!(
            r("ALTER ROLE x PASSWORD 'unterminated"),
            "ALTER ROLE x PASSWORD '***'"
        );
        assert_eq!(r("SELECT 'password'"), "SELECT 'password'");
        assert_eq!(
            r("UPDATE t SET hint = 'Reset password'"),
            "UPDATE t SET hint = 'Reset password'"
        );
        assert_eq!(
            r("SELECT dblink_exec('ALTER ROLE x PASSWORD ''pw''')"),
            "SELECT dblink_exec('***')"
        );
        assert_eq!(r("SELECT 1 AS \"password 'pw'\""), "SELECT 1 AS \"***\"");
        assert_eq!(
            r("ALTER ROLE r PASSWORD NULL"),
            "ALTER ROLE r PASSWORD NULL"
        );
    }

    /// A comment is redacted within itself: it keeps its end, and the code after it stays.
    #[test]
    fn comments_are_redacted_within_themselves() {
        let r = |t: &str| {
            let l = lex(t, true);
            redact(t, &l.toks, l.unterminated).0
        };
        assert_eq!(
            r("SELECT 1 /*password'*/; DELETE FROM t"),
            "SELECT 1 /*password'***'*/; DELETE FROM t"
        );
        assert_eq!(
            r("/*password*/DELETE FROM t WHERE id = 1"),
            "/*password*/DELETE FROM t WHERE id = 1"
        );
        assert_eq!(
            r("SELECT 1 -- password 'x\nDELETE FROM t"),
            "SELECT 1 -- password '***'\nDELETE FROM t"
        );
        // Masking `/*` would close the comment early: the whole body goes instead.
        assert_eq!(
            r("SELECT 1 /* password /* x */ y */, 2"),
            "SELECT 1 /*'***'*/, 2"
        );
        assert_eq!(r("SELECT 1 /* password 'x"), "SELECT 1 /* password '***'");
    }

    #[test]
    fn unparsed_statements_alone_get_the_raw_rules() {
        let t = "SELECT 'password '; BOGUS password hunter2 \"q\"; SELECT 'password ' || x";
        let l = lex(t, true);
        let stmts = split_statements(t, &l.toks);
        let r = redact_statements(t, &l.toks, false, &stmts[1..2]);
        assert_eq!(
            r.text,
            "SELECT 'password '; BOGUS password '***' \"q\"; SELECT 'password ' || x"
        );
        assert_eq!(r.hits.len(), 1);
        assert_eq!(r.masked_at, vec![l.toks[stmts[1].start].start]);
        // A value the raw rules find across token boundaries takes those tokens whole.
        let t = "BOGUS 'x password '\"hunter2\"";
        let l = lex(t, true);
        let whole = split_statements(t, &l.toks);
        let r = redact_statements(t, &l.toks, false, &whole);
        assert_eq!(r.text, "BOGUS '***'");
    }
}

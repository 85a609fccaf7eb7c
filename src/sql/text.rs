//! Token-level work that must not depend on the text parsing: splitting a query string into
//! statements, fingerprinting, redacting secrets, and labelling (and coarsely classifying) what
//! sqlparser cannot parse.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use super::lexer::{skip_block_comment, skip_line_comment, Tok, TokKind};
use super::{Flags, Kind};

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
fn looks_like_credentials(literal: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?i)password\s*[=:]?\s*'*[^\s'\x22]|://[^/@\s:]*:[^/@\s]+@")
            .expect("static regex is valid")
    });
    re.is_match(literal)
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

//! Secrets kept out of the audit, logs and cards: the value after a `PASSWORD` keyword and
//! credentials inside string literals and comments, found on the tokens so that text which does
//! not parse is covered too.
//!
//! Only the secret value goes. A string constant that carries one (a DO body, a function body,
//! the SQL given to EXECUTE or `dblink_exec`, a connection string) is decoded, its value redacted
//! by these same rules, and only the changed bytes are written back in the constant's quoting:
//! an approver must never be asked to approve code the redaction hid.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use super::lexer::{lex, skip_block_comment, skip_line_comment, Tok, TokKind};
use super::quoted::{decode, opening_len, Decoded};

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
            && (t.kind == TokKind::String || (is_value(text, t) && loose(i)));
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

/// The argument a token is directly in: the `(` of the call, and which argument (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arg {
    open: usize,
    index: usize,
}

/// For each token, the parenthesized list it is directly in, if any.
fn call_args(toks: &[Tok]) -> Vec<Option<Arg>> {
    let mut stack: Vec<Arg> = Vec::new();
    let mut out = Vec::with_capacity(toks.len());
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            TokKind::LParen => {
                out.push(stack.last().copied());
                stack.push(Arg { open: i, index: 0 });
            }
            TokKind::RParen => {
                stack.pop();
                out.push(stack.last().copied());
            }
            TokKind::Comma => {
                out.push(stack.last().copied());
                if let Some(a) = stack.last_mut() {
                    a.index += 1;
                }
            }
            _ => out.push(stack.last().copied()),
        }
    }
    out
}

/// The function whose argument list opens at token `open`, lowercased.
fn callee(text: &str, toks: &[Tok], open: usize) -> Option<String> {
    let t = toks.get(open.checked_sub(1)?)?;
    match t.kind {
        TokKind::Word => Some(t.text(text).to_ascii_lowercase()),
        TokKind::QuotedIdent => Some(t.text(text).trim_matches('"').to_owned()),
        _ => None,
    }
}

/// Token `i` is in the value argument of `set_config('…password…', value, …)`: the rule that
/// makes `SET app.password = '…'` a secret, for the function that does the same.
fn is_setting_value(text: &str, toks: &[Tok], args: &[Option<Arg>], i: usize) -> bool {
    let Some(Arg { open, index: 1 }) = args[i] else {
        return false;
    };
    let name = toks.get(open + 1).filter(|t| t.kind == TokKind::String);
    let esc = uescape(text, toks, open + 1);
    let named = name.is_some_and(|t| {
        let raw = t.text(text);
        decode(raw, esc)
            .map_or(raw.to_owned(), |d| d.value)
            .to_ascii_lowercase()
            .contains(KEY)
    });
    named
        && toks
            .get(constant_end(text, toks, open + 1) + 1)
            .map(|t| t.kind)
            == Some(TokKind::Comma)
        && callee(text, toks, open).as_deref() == Some("set_config")
}

/// Token `j` and token `i` (both string constants or parameters, `j` before `i`) are parts of
/// one value: written next to each other (a continued constant), joined by `||`, or consecutive
/// arguments of `concat`.
fn joined(text: &str, toks: &[Tok], args: &[Option<Arg>], j: usize, i: usize) -> bool {
    let end = constant_end(text, toks, j);
    if i == end + 1 {
        return toks[j].kind == TokKind::String && toks[i].kind == TokKind::String;
    }
    if i != end + 2 {
        return false;
    }
    let between = &toks[end + 1];
    (between.kind == TokKind::Op && between.text(text) == "||")
        || (between.kind == TokKind::Comma
            && args[i].is_some()
            && args[i].map(|a| a.open) == args[j].map(|a| a.open)
            && args[i].and_then(|a| callee(text, toks, a.open)).as_deref() == Some("concat"))
}

/// Runs of string constants that make one value (see [`joined`]), leaving out those masked whole.
fn chains(text: &str, toks: &[Tok], args: &[Option<Arg>], whole: &[bool]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.kind != TokKind::String || whole[i] || is_escape_char(text, toks, i) {
            continue;
        }
        if cur.last().is_some_and(|&j| !joined(text, toks, args, j, i)) {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The character a `UESCAPE 'c'` clause after the `U&'…'` constant at `i` gives.
fn uescape(text: &str, toks: &[Tok], i: usize) -> Option<char> {
    toks.get(i + 1).filter(|t| t.is_word(text, "uescape"))?;
    let c = toks.get(i + 2).filter(|t| t.kind == TokKind::String)?;
    let mut chars = c.text(text).strip_prefix('\'')?.strip_suffix('\'')?.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// The last token of the constant at `i`: its `UESCAPE 'c'` clause belongs to it, so what
/// follows the clause follows the constant.
fn constant_end(text: &str, toks: &[Tok], i: usize) -> usize {
    if uescape(text, toks, i).is_some() {
        i + 2
    } else {
        i
    }
}

/// Token `i` is the character of a `UESCAPE` clause: part of the constant before it, no value
/// of its own.
fn is_escape_char(text: &str, toks: &[Tok], i: usize) -> bool {
    i >= 2
        && toks[i].kind == TokKind::String
        && toks[i - 1].is_word(text, "uescape")
        && toks[i - 2].kind == TokKind::String
}

/// The replacements for the constants of one chain: their values are joined, redacted as a
/// value, and the part that changed is written back into the constants it came from (all of it
/// into the first, the rest of the span emptied). A constant that cannot be decoded, or lies too
/// deep, is masked whole if it may hold a secret.
fn narrow_chain(text: &str, toks: &[Tok], chain: &[usize], depth: usize) -> Vec<(usize, String)> {
    let decoded: Vec<Option<Decoded>> = chain
        .iter()
        .map(|&i| decode(toks[i].text(text), uescape(text, toks, i)).ok())
        .collect();
    if depth >= MAX_DEPTH || decoded.iter().any(Option::is_none) {
        return chain
            .iter()
            .filter(|&&i| may_hold_secret(toks[i].text(text)))
            .map(|&i| (i, MASK.to_owned()))
            .collect();
    }
    let decoded: Vec<Decoded> = decoded.into_iter().flatten().collect();
    let joined: String = decoded.iter().map(|d| d.value.as_str()).collect();
    // Constants inside may split the key (`'pass' || 'word=…'`): only their joined value shows it.
    let nested = joined.contains(['\'', '$']);
    if !nested && !may_hold_secret(&joined) {
        return Vec::new();
    }
    let redacted = redact_value(&joined, depth + 1);
    let Some((changed, with)) = difference(&joined, &redacted) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut with = Some(with);
    for (&i, d) in chain.iter().zip(&decoded) {
        let span = start..start + d.value.len();
        start = span.end;
        let a = changed.start.max(span.start);
        let z = changed.end.min(span.end);
        let touched = a < z || (changed.is_empty() && span.contains(&a));
        if !touched {
            continue;
        }
        let piece = with.take().unwrap_or("");
        let local = a - span.start..z - span.start;
        let replacement = if local == (0..d.value.len()) && piece == MASK {
            MASK.to_owned()
        } else {
            d.replace(toks[i].text(text), local, piece)
        };
        out.push((i, replacement));
    }
    out
}

/// Where `after` differs from `before`: the range of `before` that was replaced, and by what.
/// The range starts and ends on character boundaries.
fn difference<'a>(before: &str, after: &'a str) -> Option<(Range<usize>, &'a str)> {
    if before == after {
        return None;
    }
    let prefix: usize = before
        .chars()
        .zip(after.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let room = before.len().min(after.len()) - prefix;
    let suffix: usize = before[prefix..]
        .chars()
        .rev()
        .zip(after[prefix..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .scan(0, |n, l| {
            *n += l;
            (*n <= room).then_some(l)
        })
        .sum();
    Some((
        prefix..before.len() - suffix,
        &after[prefix..after.len() - suffix],
    ))
}

/// A cheap test before decoding: the text mentions a password or has the shape of a URL with
/// credentials.
fn may_hold_secret(s: &str) -> bool {
    s.to_ascii_lowercase().contains(KEY) || looks_like_credentials(s)
}

/// A token of unparsed code waiting in the [`Writer`].
struct Pending {
    range: Range<usize>,
    kind: TokKind,
    /// Where a string constant's value starts (after `'`, `E'`, `$tag$`…); None for other tokens.
    body: Option<usize>,
}

/// The redacted text, built piece by piece.
struct Writer<'t> {
    text: &'t str,
    out: String,
    /// Code of an unparsed statement not written yet (a range of the original text, so that the
    /// raw-text rules see what was sent), up to the statement's end or the next comment, with
    /// its tokens and the replacements of its secret tokens.
    pending: Option<Range<usize>>,
    toks: Vec<Pending>,
    masks: Vec<(Range<usize>, String)>,
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

    /// Unparsed code at `range` (a token of `kind`, or blanks), replaced by `mask` if a secret.
    fn pending(&mut self, range: Range<usize>, kind: Option<TokKind>, mask: Option<&str>) {
        let start = self.pending.as_ref().map_or(range.start, |p| p.start);
        self.pending = Some(start..range.end);
        if let Some(kind) = kind {
            let body = (kind == TokKind::String)
                .then(|| range.start + opening_len(&self.text[range.clone()]));
            self.toks.push(Pending {
                range: range.clone(),
                kind,
                body,
            });
        }
        if let Some(m) = mask {
            self.masks.push((range, m.to_owned()));
        }
    }

    /// Writes the pending code with its token replacements and what the raw-text rules find in
    /// it (see [`Writer::raw_masks`]); overlapping masks merge into one.
    fn flush(&mut self) {
        let Some(seg) = self.pending.take() else {
            return;
        };
        let toks = std::mem::take(&mut self.toks);
        let mut masks = std::mem::take(&mut self.masks);
        let by_tokens = masks.len();
        // Each value on its own: one value can start inside another (a key inside the first
        // one's quotes), and widening their union would drop both.
        for (a, z) in raw_values(&self.text[seg.clone()]) {
            raw_masks(&toks, seg.start + a..seg.start + z, &mut masks);
        }
        if masks.len() > by_tokens {
            self.masked_at.push(seg.start);
        }
        masks.sort_by_key(|(r, _)| r.start);
        let mut merged: Vec<(Range<usize>, String)> = Vec::with_capacity(masks.len());
        for (r, m) in masks {
            match merged.last_mut() {
                Some((last, lm)) if r.start < last.end => {
                    last.end = last.end.max(r.end);
                    *lm = MASK.to_owned();
                }
                _ => merged.push((r, m)),
            }
        }
        let mut at = seg.start;
        for (r, m) in merged {
            self.out.push_str(&self.text[at..r.start]);
            self.out.push_str(&m);
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
                self.pending(i..end, None, None);
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

/// The masks for a value the raw-text rules found at `value` in unparsed code. It is widened to
/// the whole tokens it touches, so the redacted text quotes as the original did (a mask never
/// leaves half a quoted identifier open), except for string constants: one the value starts
/// inside holds the password key itself and is narrowed by its own rules (see
/// [`narrow_chain`]), and one the value only runs into keeps its quotes and loses just the bytes
/// the value covers. Masking such a constant whole could hide a DO body or the SQL given to
/// EXECUTE. Past a constant holding the key, the value goes on only into a token written right
/// after it (`'x password '"pw"`), never past punctuation or a blank.
fn raw_masks(toks: &[Pending], value: Range<usize>, out: &mut Vec<(Range<usize>, String)>) {
    let (a, z) = (value.start, value.end);
    let mut k = toks.partition_point(|t| t.range.end <= a);
    let end = toks.partition_point(|t| t.range.start < z);
    let mut lo = a;
    if let Some(t) = toks
        .get(k)
        .filter(|t| k < end && t.body.is_some_and(|b| b <= a))
    {
        lo = t.range.end;
        k += 1;
        let goes_on = toks.get(k).is_some_and(|n| {
            n.range.start == lo
                && matches!(
                    n.kind,
                    TokKind::Word | TokKind::QuotedIdent | TokKind::Number | TokKind::Param
                )
        });
        if lo >= z || !goes_on {
            return;
        }
    }
    if k == end {
        out.push((lo..z, MASK.to_owned()));
        return;
    }
    lo = lo.min(toks[k].range.start);
    let last = &toks[end - 1];
    match last.body {
        Some(body) if z < last.range.end => {
            if end - 1 > k {
                out.push((lo..toks[end - 2].range.end, MASK.to_owned()));
            }
            let inner = body.max(a)..z;
            if !inner.is_empty() {
                out.push((inner, INNER_MASK.to_owned()));
            }
        }
        _ => out.push((lo..z.max(last.range.end), MASK.to_owned())),
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

/// Raw-text fallback: the value after any `password` (optionally `=`), quoted or not, and the
/// password of a URL. Every occurrence is considered, including ones inside another
/// occurrence's value, and overlapping values are merged, so no reading of where quotes start
/// and end leaves a secret behind.
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
        out.push_str(MASK);
        at = z;
    }
    out.push_str(&s[at..]);
    out.into()
}

/// The byte ranges [`redact_raw`] replaces: sorted, merged, each at least one byte.
fn raw_ranges(s: &str) -> Vec<(usize, usize)> {
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, z) in raw_values(s) {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(z),
            _ => merged.push((a, z)),
        }
    }
    merged
}

/// Every secret value the raw-text rules find in `s`, sorted by start; they may overlap.
fn raw_values(s: &str) -> Vec<(usize, usize)> {
    let lower = s.to_ascii_lowercase();
    let mut ranges: Vec<(usize, usize)> = url_passwords(s);
    if !lower.contains(KEY) && ranges.is_empty() {
        return ranges;
    }
    let b = s.as_bytes();
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
    ranges
}

/// The password of each `scheme://user:password@host` in `s`.
fn url_passwords(s: &str) -> Vec<(usize, usize)> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re =
        RE.get_or_init(|| Regex::new(r"://[^/@\s:]*:([^/@\s]+)@").expect("static regex is valid"));
    re.captures_iter(s)
        .filter_map(|c| c.get(1))
        .map(|m| (m.start(), m.end()))
        .collect()
}

/// Skip the closing quote of a quoted key (`"password"`), blanks, an optional `=`, `:`, `:=`
/// or `TO`, blanks, and an `E` string prefix.
fn value_start(b: &[u8], mut j: usize) -> usize {
    let blanks = |j: &mut usize| {
        while *j < b.len() && b[*j].is_ascii_whitespace() {
            *j += 1;
        }
    };
    if b.get(j) == Some(&b'"') {
        j += 1;
    }
    blanks(&mut j);
    let colon = b.get(j) == Some(&b':');
    if colon {
        j += 1;
    }
    if b.get(j) == Some(&b'=') {
        j += 1;
        blanks(&mut j);
    } else if colon {
        blanks(&mut j);
    } else if b.len() > j + 2
        && b[j..j + 2].eq_ignore_ascii_case(b"to")
        && (b[j + 2].is_ascii_whitespace() || matches!(b[j + 2], b'\'' | b'$'))
    {
        j += 2;
        blanks(&mut j);
    }
    if j < b.len() && (b[j] == b'e' || b[j] == b'E') && b.get(j + 1) == Some(&b'\'') {
        j += 1;
    }
    j
}

/// Where a value starting at `j` ends: a quoted string (doubled quotes escape), a dollar-quoted
/// string, or a run of non-blank characters (a backslash takes the next one in, as in a
/// connection string). Unterminated values run to the end of the text.
fn value_end(s: &str, j: usize) -> usize {
    let b = s.as_bytes();
    match b.get(j) {
        Some(b'\'') => {
            // A doubled quote, or one after a backslash (escape strings, connection strings),
            // does not end the value: of the readings, the longest is taken.
            let mut k = j + 1;
            loop {
                match b[k.min(b.len())..]
                    .iter()
                    .position(|&c| c == b'\'' || c == b'\\')
                {
                    Some(q) if b[k + q] == b'\\' => k += q + 2,
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
                if b[k] == b'\\' && k + 1 < b.len() {
                    k += 1;
                }
                k += 1;
            }
            // Never end inside a character.
            while !s.is_char_boundary(k) {
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

/// The parameters (`$n`, numbered from 1) that `sql` puts where a secret goes: after a password
/// key (`PASSWORD $1`, `password = $1`), as the value of a password setting given to
/// `set_config`, or joined (`||`, `concat`) to a constant ending in `password=`. A driver sends
/// the value there, and it is as secret as the literal it stands for.
pub fn secret_params(sql: &str) -> Vec<usize> {
    // Every rule needs the key in the text, or an escape that could spell it inside a constant
    // (`E'…\…'`, `U&'…'`): the usual statement is not lexed a second time per execution.
    let spelled = sql
        .as_bytes()
        .windows(KEY.len())
        .any(|w| w.eq_ignore_ascii_case(KEY.as_bytes()));
    if !spelled && !sql.contains(['\\', '&']) {
        return Vec::new();
    }
    let l = lex(sql, true);
    let toks = &l.toks;
    let args = call_args(toks);
    let mut out: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.kind == TokKind::Param)
        .filter(|&(i, _)| {
            follows_key(sql, toks, i)
                || is_setting_value(sql, toks, &args, i)
                || key_constant_before(sql, toks, i).is_some_and(|j| {
                    joined(sql, toks, &args, j, i)
                        && ends_with_key(sql, &toks[j], uescape(sql, toks, j))
                })
        })
        .filter_map(|(_, t)| t.text(sql)[1..].parse().ok())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The constant an operator or comma before token `i` follows: two tokens back, or four when
/// it ends in a `UESCAPE` clause.
fn key_constant_before(text: &str, toks: &[Tok], i: usize) -> Option<usize> {
    let j = i.checked_sub(2)?;
    if is_escape_char(text, toks, j) {
        return Some(j - 2);
    }
    Some(j)
}

/// A string constant whose value ends with a password key and its separator (`'… password='`):
/// what follows it is the password.
fn ends_with_key(text: &str, t: &Tok, esc: Option<char>) -> bool {
    if t.kind != TokKind::String {
        return false;
    }
    let raw = t.text(text);
    let value = decode(raw, esc).map_or(raw.to_owned(), |d| d.value);
    value
        .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '=' | ':' | '\''))
        .to_ascii_lowercase()
        .ends_with(KEY)
}

/// A bound parameter's value as it may be audited and shown: None when it carries no secret.
/// One in a secret's place (see [`secret_params`]) is masked whole; one that holds credentials
/// (a connection string, a URL with a password, SQL with a `PASSWORD` clause) loses them by the
/// rules a string constant's value follows, or whole if they cannot be narrowed.
pub fn redact_param(value: &str, secret_place: bool) -> Option<String> {
    if secret_place {
        return Some(INNER_MASK.to_owned());
    }
    if !looks_like_credentials(value) {
        return None;
    }
    let r = redact_value(value, 1);
    Some(if r == value { INNER_MASK.to_owned() } else { r })
}

#[cfg(test)]
mod tests {
    use super::super::text::split_statements;
    use super::*;

    /// The quick exit of `secret_params` must not skip a key spelled with escapes.
    #[test]
    fn parameters_after_an_escaped_key_are_found() {
        for sql in [
            r"SELECT set_config(E'app.pass\x77ord', $1, false)",
            r"SELECT dblink_connect(U&'host=h pass\0077ord=' || $1)",
            "SELECT set_config('app.PassWord', $1, false)",
            "SELECT set_config(U&'app.pass!0077ord' UESCAPE '!', $1, false)",
            "SELECT dblink_connect(U&'host=h pass!0077ord=' UESCAPE '!' || $1)",
        ] {
            assert_eq!(secret_params(sql), [1], "{sql}");
        }
        assert!(secret_params("SELECT abalance FROM t WHERE aid = $1").is_empty());
    }

    /// A key inside the first value's quotes starts a second value; each is masked.
    #[test]
    fn a_value_inside_another_value_is_masked_too() {
        let sql = r"'ALTER ROLE x PASSWORD E'\'; ALTER ROLE agent WITH PASSWORD 'S3AAa0aAAA'; '";
        let l = lex(sql, true);
        let all = 0..l.toks.len();
        let r = redact_statements(sql, &l.toks, false, std::slice::from_ref(&all));
        assert!(!r.text.contains("S3AAa0aAAA"), "{}", r.text);
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
        // A connection string keeps all but the password.
        assert_eq!(
            r("SELECT dblink_connect('host=db password=pw user=x')"),
            "SELECT dblink_connect('host=db password=''***'' user=x')"
        );
        assert_eq!(
            r("SELECT f('postgres://u:pw@h/db')"),
            "SELECT f('postgres://u:''***''@h/db')"
        );
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
            "SELECT dblink_exec('ALTER ROLE x PASSWORD ''***''')"
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
        // A value the raw rules find across token boundaries takes the tokens after the
        // constant it starts in whole; the constant, which holds the key, keeps its text.
        let t = "BOGUS 'x password '\"hunter2\"";
        let l = lex(t, true);
        let whole = split_statements(t, &l.toks);
        let r = redact_statements(t, &l.toks, false, &whole);
        assert_eq!(r.text, "BOGUS 'x password ''***'");
    }

    fn redacted(t: &str) -> String {
        let l = lex(t, true);
        redact(t, &l.toks, l.unterminated).0
    }

    /// Redacted as a statement sqlparser could not read (a DO block is one).
    fn redacted_unparsed(t: &str) -> String {
        let l = lex(t, true);
        let stmts = split_statements(t, &l.toks);
        redact_statements(t, &l.toks, l.unterminated, &stmts).text
    }

    /// A secret inside a string constant that holds code costs the code nothing but the value,
    /// at any depth and in any quoting; the word alone, in a message or a comment, hides no code.
    #[test]
    fn a_secret_in_code_inside_a_constant_hides_only_the_value() {
        for r in [redacted, redacted_unparsed] {
            assert_eq!(
                r("DO $$ BEGIN RAISE NOTICE 'no password= needed'; UPDATE payroll SET salary = salary * 10; EXECUTE 'GRANT ALL ON payroll TO PUBLIC'; END $$"),
                "DO $$ BEGIN RAISE NOTICE 'no password= ''***'''; UPDATE payroll SET salary = salary * 10; EXECUTE 'GRANT ALL ON payroll TO PUBLIC'; END $$"
            );
            assert_eq!(
                r("DO $$ BEGIN -- reset password later\n UPDATE payroll SET salary = 1; END $$"),
                "DO $$ BEGIN -- reset password '***'\n UPDATE payroll SET salary = 1; END $$"
            );
            assert_eq!(
                r("DO $$ BEGIN EXECUTE 'CREATE ROLE x PASSWORD ''s3cret'''; END $$"),
                "DO $$ BEGIN EXECUTE 'CREATE ROLE x PASSWORD ''***'''; END $$"
            );
            assert_eq!(
                r("DO $$ BEGIN PERFORM dblink_connect('host=h password=s3cret'); END $$"),
                "DO $$ BEGIN PERFORM dblink_connect('host=h password=''***'''); END $$"
            );
            assert_eq!(
                r("DO $a$ BEGIN EXECUTE $b$ALTER ROLE x PASSWORD 's3cret'$b$; DELETE FROM t; END $a$"),
                "DO $a$ BEGIN EXECUTE $b$ALTER ROLE x PASSWORD '***'$b$; DELETE FROM t; END $a$"
            );
            assert_eq!(
                r(
                    r"DO E'BEGIN EXECUTE \'ALTER ROLE x PASSWORD \'\'s3cret\'\'\'; DELETE FROM t; END'"
                ),
                r"DO E'BEGIN EXECUTE \'ALTER ROLE x PASSWORD \'\'***\'\'\'; DELETE FROM t; END'"
            );
            // Escapes spell the key: the decoded value is what is read.
            let u = r(
                r"DO U&'BEGIN PERFORM dblink_connect(''pass\0077ord=s3cret''); DELETE FROM t; END'",
            );
            assert!(!u.contains("s3cret") && u.contains("DELETE FROM t"), "{u}");
            // A function body.
            assert_eq!(
                r("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN UPDATE t SET x = 1; -- password reset\n END $$"),
                "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN UPDATE t SET x = 1; -- password '***'\n END $$"
            );
            // A variable named after the key costs its neighbour, not the body.
            assert_eq!(
                r("DO $$ DECLARE password text; BEGIN UPDATE t SET a = password; END $$"),
                "DO $$ DECLARE password '***'; BEGIN UPDATE t SET a = password; END $$"
            );
        }
        // Nothing to redact: nothing changes.
        let t = "DO $$ BEGIN RAISE NOTICE 'Reset password'; UPDATE t SET a = 1; END $$";
        assert_eq!(redacted(t), t);
        assert_eq!(redacted_unparsed(t), t);
    }

    /// A value the raw rules find running into a string constant masks only the bytes it
    /// covers: the constant keeps its quotes and the code after the value.
    #[test]
    fn a_raw_value_running_into_a_constant_keeps_the_constant() {
        assert_eq!(
            redacted_unparsed("BOGUS password||'GRANT ALL ON t TO PUBLIC'"),
            "BOGUS password'***''*** ALL ON t TO PUBLIC'"
        );
    }

    #[test]
    fn other_spellings_of_a_password_are_redacted() {
        for r in [redacted, redacted_unparsed] {
            let cases = [
                (
                    "CREATE USER MAPPING FOR bob SERVER s OPTIONS (\"user\" 'etl', \"password\" 'SECRET')",
                    "CREATE USER MAPPING FOR bob SERVER s OPTIONS (\"user\" 'etl', \"password\" '***')",
                ),
                (
                    "ALTER SERVER s OPTIONS (ADD \"password\" 'SECRET')",
                    "ALTER SERVER s OPTIONS (ADD \"password\" '***')",
                ),
                (
                    "ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET sslpassword 'SECRET')",
                    "ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET sslpassword '***')",
                ),
                (
                    "SELECT dblink_connect('b', concat('host=h password=', 'SECRET'))",
                    "SELECT dblink_connect('b', concat('host=h password=', '***'))",
                ),
                (
                    "SELECT dblink_connect('host=h password = ' || 'SECRET')",
                    "SELECT dblink_connect('host=h password = ' || '***')",
                ),
                (
                    "SELECT dblink_connect('host=h pass' || 'word=SECRET')",
                    "SELECT dblink_connect('host=h pass' || 'word=''***''')",
                ),
                (
                    "SELECT set_config('app.password', 'SECRET', false)",
                    "SELECT set_config('app.password', '***', false)",
                ),
                (
                    "SELECT dblink_connect('host=h sslpassword=SECRET')",
                    "SELECT dblink_connect('host=h sslpassword=''***''')",
                ),
                (
                    "SELECT dblink_connect('host=h password=''SEC RET'' user=x')",
                    "SELECT dblink_connect('host=h password=''***'' user=x')",
                ),
                (
                    "SELECT set_config(U&'app.pass!0077ord' UESCAPE '!', 'SECRET', false)",
                    "SELECT set_config(U&'app.pass!0077ord' UESCAPE '!', '***', false)",
                ),
                (
                    "SELECT dblink_connect(U&'host=h pass!0077ord=' UESCAPE '!' || 'SECRET')",
                    "SELECT dblink_connect(U&'host=h pass!0077ord=' UESCAPE '!' || '***')",
                ),
                ("SET app.password TO 'SECRET'", "SET app.password TO '***'"),
                ("SET app.db_password = 'SECRET'", "SET app.db_password = '***'"),
            ];
            for (sql, want) in cases {
                assert_eq!(r(sql), want, "{sql}");
            }
        }
        // Not secrets: a setting of another name, strings not joined, the word alone.
        for sql in [
            "SELECT set_config('app.user', 'SECRET', false)",
            "SELECT upper('host=h password='), 'SECRET'",
            "SELECT 'password' || name FROM t",
            "SELECT concat('Reset password', '')",
        ] {
            assert_eq!(redacted(sql), sql);
        }
    }

    #[test]
    fn parameters_in_a_secrets_place_are_found() {
        let none: Vec<usize> = Vec::new();
        assert_eq!(secret_params("SELECT dblink_connect($1)"), none);
        assert_eq!(
            secret_params("SELECT dblink_connect('host=h password=' || $2), $1"),
            vec![2]
        );
        assert_eq!(
            secret_params("SELECT concat('host=h password=', $1), $2"),
            vec![1]
        );
        assert_eq!(
            secret_params(
                "SELECT set_config('app.password', $1, false), set_config('app.user', $2, false)"
            ),
            vec![1]
        );
        assert_eq!(
            secret_params("UPDATE accounts SET password = $3 WHERE id = $1"),
            vec![3]
        );
        assert_eq!(secret_params("SELECT $1 WHERE 'password' = $2"), none);
    }

    #[test]
    fn a_parameter_loses_its_credentials_like_a_constant() {
        assert_eq!(
            redact_param("host=10.0.0.5 user=etl password=Tr0ub4dor-x", false).as_deref(),
            Some("host=10.0.0.5 user=etl password='***'")
        );
        assert_eq!(
            redact_param("host=h sslpassword='a b\\' c' user=x", false).as_deref(),
            Some("host=h sslpassword='***' user=x")
        );
        assert_eq!(
            redact_param("postgres://etl:Tr0ub4dor@db/x", false).as_deref(),
            Some("postgres://etl:'***'@db/x")
        );
        assert_eq!(redact_param("hello", false), None);
        assert_eq!(redact_param("Reset password", false), None);
        assert_eq!(redact_param("hello", true).as_deref(), Some("***"));
    }
}

//! Comments, statements that do not parse and the values of string constants (a connection
//! string is not SQL) may carry a password where no token rule can see it. They are read as
//! plain text, erring towards masking more: no reading of where quotes start and end may leave
//! a secret behind.

use std::sync::OnceLock;

use regex::Regex;

use super::{KEY, MASK};
use crate::sql::lexer::skip_block_comment;

/// The raw-text rules inside one comment, which stays the comment it was: a value runs at most
/// to the comment's end, and if masking changed where a nested block comment closes, the
/// whole body is masked instead.
pub(super) fn redact_comment(c: &str) -> std::borrow::Cow<'_, str> {
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
pub(super) fn raw_values(s: &str) -> Vec<(usize, usize)> {
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
pub(in crate::sql) fn looks_like_credentials(literal: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?i)password\s*[=:]?\s*'*[^\s'\x22]|://[^/@\s:]*:[^/@\s]+@")
            .expect("static regex is valid")
    });
    re.is_match(literal)
}

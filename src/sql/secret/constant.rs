//! A string constant may hold code (a DO body, the SQL given to EXECUTE) as well as a secret.
//! Masking it whole would hide that code from the approver, so its value is redacted on its own
//! and only the bytes that changed are written back, in the constant's own quoting.

use std::ops::Range;

use super::raw::{looks_like_credentials, raw_values, redact_comment};
use super::{redact_value, INNER_MASK, KEY, MASK, MAX_DEPTH};
use crate::sql::lexer::{skip_block_comment, skip_line_comment, Tok, TokKind};
use crate::sql::quoted::{decode, opening_len, Decoded};

/// The character a `UESCAPE 'c'` clause after the `U&'…'` constant at `i` gives.
pub(super) fn uescape(text: &str, toks: &[Tok], i: usize) -> Option<char> {
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
pub(super) fn constant_end(text: &str, toks: &[Tok], i: usize) -> usize {
    if uescape(text, toks, i).is_some() {
        i + 2
    } else {
        i
    }
}

/// Token `i` is the character of a `UESCAPE` clause: part of the constant before it, no value
/// of its own.
pub(super) fn is_escape_char(text: &str, toks: &[Tok], i: usize) -> bool {
    i >= 2
        && toks[i].kind == TokKind::String
        && toks[i - 1].is_word(text, "uescape")
        && toks[i - 2].kind == TokKind::String
}

/// The replacements for the constants of one chain: their values are joined, redacted as a
/// value, and the part that changed is written back into the constants it came from (all of it
/// into the first, the rest of the span emptied). A constant that cannot be decoded, or lies too
/// deep, is masked whole if it may hold a secret.
pub(super) fn narrow_chain(
    text: &str,
    toks: &[Tok],
    chain: &[usize],
    depth: usize,
) -> Vec<(usize, String)> {
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
pub(super) struct Writer<'t> {
    text: &'t str,
    pub(super) out: String,
    /// Code of an unparsed statement not written yet (a range of the original text, so that the
    /// raw-text rules see what was sent), up to the statement's end or the next comment, with
    /// its tokens and the replacements of its secret tokens.
    pending: Option<Range<usize>>,
    toks: Vec<Pending>,
    masks: Vec<(Range<usize>, String)>,
    pub(super) masked_at: Vec<usize>,
}

impl<'t> Writer<'t> {
    pub(super) fn new(text: &'t str) -> Writer<'t> {
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
    pub(super) fn pending(
        &mut self,
        range: Range<usize>,
        kind: Option<TokKind>,
        mask: Option<&str>,
    ) {
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
    /// it (see [`raw_masks`]); overlapping masks merge into one.
    pub(super) fn flush(&mut self) {
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
    pub(super) fn gap(&mut self, gap: Range<usize>, unparsed: bool) {
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

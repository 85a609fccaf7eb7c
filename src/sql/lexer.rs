//! A small lexer that follows PostgreSQL's own scanner rules (scan.l) closely enough to know,
//! byte for byte, what is code and what is a comment, a string or a quoted identifier.
//!
//! Why a second lexer next to sqlparser's: the classifier must split a query string exactly where
//! the server will, and must keep working on text that does not parse (to label it, to redact the
//! password in it, to fingerprint it). This lexer never fails: an unterminated string or comment
//! simply runs to the end of the text and is flagged, and the server would reject such text anyway.
//! The classifier also cross-checks this lexer against sqlparser's tokens (see `classify`), so a
//! disagreement between the two about where a string or comment ends is held, never trusted.

/// What a token is. Whitespace and comments are not tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// An unquoted identifier or keyword.
    Word,
    /// `"…"` or `U&"…"`.
    QuotedIdent,
    /// Any string constant: `'…'`, `E'…'`, `B'…'`, `X'…'`, `N'…'`, `U&'…'`, `$tag$…$tag$`.
    String,
    Number,
    /// `$1`, `$2`…
    Param,
    Semicolon,
    LParen,
    RParen,
    Comma,
    Dot,
    /// Operators and the remaining punctuation (`::`, `[`, `]`, `:`…).
    Op,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tok {
    pub kind: TokKind,
    /// Byte range in the text.
    pub start: usize,
    pub end: usize,
}

impl Tok {
    pub fn text<'t>(&self, text: &'t str) -> &'t str {
        &text[self.start..self.end]
    }

    /// True when this is the unquoted word `kw` (ASCII case-insensitive).
    pub fn is_word(&self, text: &str, kw: &str) -> bool {
        self.kind == TokKind::Word && self.text(text).eq_ignore_ascii_case(kw)
    }
}

/// The result of lexing one text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lexed {
    pub toks: Vec<Tok>,
    /// A string, quoted identifier or comment ran to the end of the text.
    pub unterminated: bool,
    /// A plain `'…'` string contains a backslash: its extent depends on
    /// `standard_conforming_strings`.
    pub backslash_in_plain_string: bool,
}

/// Lex `text`. With `standard_strings` (the server default since 9.1) a backslash in a plain
/// `'…'` string is an ordinary character; without it, it escapes the next character.
pub(crate) fn lex(text: &str, standard_strings: bool) -> Lexed {
    let b = text.as_bytes();
    let n = b.len();
    let mut out = Lexed {
        toks: Vec::with_capacity(n / 4 + 4),
        ..Lexed::default()
    };
    let mut i = 0;
    while i < n {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = skip_line_comment(b, i);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (end, ok) = skip_block_comment(b, i);
                out.unterminated |= !ok;
                i = end;
                continue;
            }
            b'\'' => {
                let (end, ok, backslash) = scan_quoted(b, i + 1, b'\'', !standard_strings);
                out.unterminated |= !ok;
                out.backslash_in_plain_string |= backslash;
                push(&mut out, TokKind::String, start, end);
                i = end;
            }
            b'"' => {
                let (end, ok, _) = scan_quoted(b, i + 1, b'"', false);
                out.unterminated |= !ok;
                push(&mut out, TokKind::QuotedIdent, start, end);
                i = end;
            }
            b'$' => {
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    let mut j = i + 1;
                    while j < n && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    push(&mut out, TokKind::Param, start, j);
                    i = j;
                } else if let Some(tag_end) = dollar_tag(b, i) {
                    let tag = &b[i..tag_end];
                    match find(b, tag_end, tag) {
                        Some(close) => {
                            i = close + tag.len();
                        }
                        None => {
                            out.unterminated = true;
                            i = n;
                        }
                    }
                    push(&mut out, TokKind::String, start, i);
                } else {
                    push(&mut out, TokKind::Op, start, i + 1);
                    i += 1;
                }
            }
            b'0'..=b'9' => {
                i = scan_number(b, i);
                push(&mut out, TokKind::Number, start, i);
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = scan_number(b, i);
                push(&mut out, TokKind::Number, start, i);
            }
            _ if is_ident_start(c) => {
                // String prefixes are only prefixes when the quote follows immediately.
                let next = b.get(i + 1).copied();
                if matches!(c, b'e' | b'E') && next == Some(b'\'') {
                    let (end, ok, _) = scan_quoted(b, i + 2, b'\'', true);
                    out.unterminated |= !ok;
                    push(&mut out, TokKind::String, start, end);
                    i = end;
                } else if matches!(c, b'b' | b'B' | b'x' | b'X') && next == Some(b'\'') {
                    // Bit and hex strings know no escapes at all.
                    let (end, ok, _) = scan_quoted(b, i + 2, b'\'', false);
                    out.unterminated |= !ok;
                    push(&mut out, TokKind::String, start, end);
                    i = end;
                } else if matches!(c, b'n' | b'N') && next == Some(b'\'') {
                    let (end, ok, backslash) = scan_quoted(b, i + 2, b'\'', !standard_strings);
                    out.unterminated |= !ok;
                    out.backslash_in_plain_string |= backslash;
                    push(&mut out, TokKind::String, start, end);
                    i = end;
                } else if matches!(c, b'u' | b'U')
                    && next == Some(b'&')
                    && matches!(b.get(i + 2), Some(b'\'') | Some(b'"'))
                {
                    let q = b[i + 2];
                    let (end, ok, _) = scan_quoted(b, i + 3, q, false);
                    out.unterminated |= !ok;
                    let kind = if q == b'"' {
                        TokKind::QuotedIdent
                    } else {
                        TokKind::String
                    };
                    push(&mut out, kind, start, end);
                    i = end;
                } else {
                    let mut j = i + 1;
                    while j < n && is_ident_cont(b[j]) {
                        j += 1;
                    }
                    push(&mut out, TokKind::Word, start, j);
                    i = j;
                }
            }
            b';' => {
                push(&mut out, TokKind::Semicolon, start, i + 1);
                i += 1;
            }
            b'(' => {
                push(&mut out, TokKind::LParen, start, i + 1);
                i += 1;
            }
            b')' => {
                push(&mut out, TokKind::RParen, start, i + 1);
                i += 1;
            }
            b',' => {
                push(&mut out, TokKind::Comma, start, i + 1);
                i += 1;
            }
            b'.' => {
                push(&mut out, TokKind::Dot, start, i + 1);
                i += 1;
            }
            b':' => {
                let end = if b.get(i + 1) == Some(&b':') {
                    i + 2
                } else {
                    i + 1
                };
                push(&mut out, TokKind::Op, start, end);
                i = end;
            }
            _ if is_op_char(c) => {
                // An operator is a run of operator characters, but `--` and `/*` inside it start a
                // comment, exactly as in the server's scanner.
                let mut j = i + 1;
                while j < n && is_op_char(b[j]) {
                    let next = b.get(j + 1).copied();
                    if (b[j] == b'-' && next == Some(b'-')) || (b[j] == b'/' && next == Some(b'*'))
                    {
                        break;
                    }
                    j += 1;
                }
                push(&mut out, TokKind::Op, start, j);
                i = j;
            }
            _ => {
                // Anything else (`[`, `]`, `\`, `{`…): one byte of punctuation, or one whole
                // UTF-8 character when it is not ASCII (never split a character).
                let mut j = i + 1;
                while j < n && (b[j] & 0xC0) == 0x80 {
                    j += 1;
                }
                push(&mut out, TokKind::Op, start, j);
                i = j;
            }
        }
    }
    out
}

fn push(out: &mut Lexed, kind: TokKind, start: usize, end: usize) {
    out.toks.push(Tok { kind, start, end });
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

fn is_op_char(c: u8) -> bool {
    matches!(
        c,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'<'
            | b'>'
            | b'='
            | b'~'
            | b'!'
            | b'@'
            | b'#'
            | b'%'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
    )
}

pub(crate) fn skip_line_comment(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
        i += 1;
    }
    i
}

/// Block comments nest in PostgreSQL. Returns the end and whether the comment was closed.
pub(crate) fn skip_block_comment(b: &[u8], mut i: usize) -> (usize, bool) {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return (i, true);
            }
        } else {
            i += 1;
        }
    }
    (b.len(), false)
}

/// Scan a quoted string or identifier body starting after the opening quote. A doubled quote is
/// an escaped quote; with `backslash_escapes`, a backslash escapes the next byte. Returns the end
/// (after the closing quote), whether it was closed, and whether a backslash was seen.
fn scan_quoted(b: &[u8], mut i: usize, q: u8, backslash_escapes: bool) -> (usize, bool, bool) {
    let mut backslash = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            backslash = true;
            if backslash_escapes {
                i += 2;
                continue;
            }
        }
        if c == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return (i + 1, true, backslash);
        }
        i += 1;
    }
    (b.len(), false, backslash)
}

/// If a dollar-quote delimiter (`$$` or `$tag$`) starts at `i`, return the index after it.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < b.len() && b[j] == b'$' {
        return Some(j + 1);
    }
    if j >= b.len() || !(b[j].is_ascii_alphabetic() || b[j] == b'_' || b[j] >= 0x80) {
        return None;
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    (j < b.len() && b[j] == b'$').then_some(j + 1)
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > hay.len() || needle.is_empty() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn scan_number(b: &[u8], mut i: usize) -> usize {
    let n = b.len();
    let digits = |b: &[u8], mut i: usize| {
        while i < n && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
        i
    };
    i = digits(b, i);
    // A fraction, but not the `..` of a range or a method-like `.name`.
    if i < n && b[i] == b'.' && b.get(i + 1) != Some(&b'.') {
        i = digits(b, i + 1);
    }
    if i < n && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < n && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < n && b[j].is_ascii_digit() {
            i = digits(b, j);
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(TokKind, &str)> {
        lex(text, true)
            .toks
            .iter()
            .map(|t| (t.kind, t.text(text)))
            .collect()
    }

    #[test]
    fn words_strings_and_punctuation() {
        use TokKind::*;
        assert_eq!(
            kinds("SELECT a.b, 'x''y' FROM \"T\"\"q\";"),
            vec![
                (Word, "SELECT"),
                (Word, "a"),
                (Dot, "."),
                (Word, "b"),
                (Comma, ","),
                (String, "'x''y'"),
                (Word, "FROM"),
                (QuotedIdent, "\"T\"\"q\""),
                (Semicolon, ";"),
            ]
        );
    }

    #[test]
    fn comments_nest_and_vanish() {
        let t = "SELECT 1 /* a /* b */ ; still comment */ -- x ; y\r, 2";
        let k: Vec<_> = kinds(t).into_iter().map(|(_, s)| s).collect();
        assert_eq!(k, vec!["SELECT", "1", ",", "2"]);
        assert!(lex("SELECT /* /* */", true).unterminated);
    }

    #[test]
    fn operators_stop_at_comment_starts() {
        let k: Vec<_> = kinds("SELECT 1 +-- c\n2, 3 */* c */ 4")
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(k, vec!["SELECT", "1", "+", "2", ",", "3", "*", "4"]);
    }

    #[test]
    fn dollar_quotes_params_and_identifiers_with_dollars() {
        use TokKind::*;
        assert_eq!(
            kinds("SELECT $1, $$a;b$$, $t$x$$y$t$, a$$b, $_$z$_$"),
            vec![
                (Word, "SELECT"),
                (Param, "$1"),
                (Comma, ","),
                (String, "$$a;b$$"),
                (Comma, ","),
                (String, "$t$x$$y$t$"),
                (Comma, ","),
                (Word, "a$$b"),
                (Comma, ","),
                (String, "$_$z$_$"),
            ]
        );
    }

    #[test]
    fn backslashes_depend_on_standard_strings() {
        let t = r"SELECT 'a\'; DROP TABLE x; --'";
        let on = lex(t, true);
        assert!(on.backslash_in_plain_string);
        assert!(on.toks.iter().any(|t| t.kind == TokKind::Semicolon));
        let off = lex(t, false);
        assert!(!off.toks.iter().any(|t| t.kind == TokKind::Semicolon));
        // E'' strings always take backslash escapes.
        let e = lex(r"SELECT E'a\'; DROP'", true);
        assert_eq!(e.toks.len(), 2);
        assert!(!e.backslash_in_plain_string);
    }

    #[test]
    fn prefixed_strings_only_when_quote_follows() {
        use TokKind::*;
        assert_eq!(
            kinds("SELECT e'x', xe'y', U&'z', U&\"q\", n'w'"),
            vec![
                (Word, "SELECT"),
                (String, "e'x'"),
                (Comma, ","),
                (Word, "xe"),
                (String, "'y'"),
                (Comma, ","),
                (String, "U&'z'"),
                (Comma, ","),
                (QuotedIdent, "U&\"q\""),
                (Comma, ","),
                (String, "n'w'"),
            ]
        );
    }

    #[test]
    fn numbers() {
        let k: Vec<_> = kinds("SELECT 1.5e-3, .5, 1_000, 7::int")
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            k,
            vec!["SELECT", "1.5e-3", ",", ".5", ",", "1_000", ",", "7", "::", "int"]
        );
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for t in [
            "'", "\"", "$", "$a", "$a$", "/*", "--", "é", "U&", "E", "1e", "\\", "ü'x",
        ] {
            let _ = lex(t, true);
            let _ = lex(t, false);
        }
    }
}

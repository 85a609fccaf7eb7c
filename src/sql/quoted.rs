//! The value of a string constant, with where each of its bytes was written in the text.
//!
//! Why: a string constant can hold code (a DO body, a function body, the argument of EXECUTE or
//! `dblink_exec`) or a connection string. Masking such a constant whole to hide a password in it
//! would also hide the code an approver is asked to approve. With the value decoded and mapped
//! back to the text, the redactor can replace just the secret and re-quote what replaces it in
//! the constant's own quoting.

use std::ops::Range;

/// Why a string constant could not be decoded. The caller then masks the constant whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("a bit or hex string holds no text")]
    NotText,
    #[error("the string is not terminated")]
    Unterminated,
    #[error("an escape sequence is invalid")]
    BadEscape,
    #[error("the value is not valid UTF-8")]
    NotUtf8,
}

/// How a string constant quotes its value: what a replacement must be escaped with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Quoting {
    /// `'…'` and `N'…'`: a quote is doubled.
    Plain,
    /// `E'…'`: backslash escapes as well.
    Escape,
    /// `U&'…'` with its escape character.
    Unicode(char),
    /// `$tag$…$tag$`, with its tag: nothing is escaped.
    Dollar(String),
}

/// A decoded string constant.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub value: String,
    /// `at[k]`: the offset in the constant's text where value byte `k` was written (the bytes of
    /// one character written as an escape share its offset); `at[value.len()]` is where the
    /// body ends.
    at: Vec<usize>,
    quoting: Quoting,
}

/// Length of a string constant's opening: `'`, `E'`, `N'`, `U&'` or `$tag$`.
pub(crate) fn opening_len(tok: &str) -> usize {
    let b = tok.as_bytes();
    match b.first() {
        Some(b'\'') => 1,
        Some(b'$') => b[1..].iter().position(|&c| c == b'$').map_or(1, |p| p + 2),
        Some(b'u' | b'U') => 3,
        _ => 2,
    }
}

/// Decodes the string constant `tok` (one lexer token). `uescape` is the character given by a
/// `UESCAPE` clause after a `U&'…'` constant.
pub(crate) fn decode(tok: &str, uescape: Option<char>) -> Result<Decoded, DecodeError> {
    let b = tok.as_bytes();
    let (quoting, open) = match b.first().map(u8::to_ascii_lowercase) {
        Some(b'\'') | Some(b'n') => (Quoting::Plain, opening_len(tok)),
        Some(b'e') => (Quoting::Escape, 2),
        Some(b'u') => (Quoting::Unicode(uescape.unwrap_or('\\')), 3),
        Some(b'$') => {
            let open = opening_len(tok);
            (Quoting::Dollar(tok[..open].to_owned()), open)
        }
        _ => return Err(DecodeError::NotText),
    };
    let close = match &quoting {
        Quoting::Dollar(tag) if tok.len() >= 2 * open && tok.ends_with(tag.as_str()) => {
            tok.len() - open
        }
        Quoting::Dollar(_) => return Err(DecodeError::Unterminated),
        _ if tok.len() > open && tok.ends_with('\'') => tok.len() - 1,
        _ => return Err(DecodeError::Unterminated),
    };
    let mut out = Unescaper {
        bytes: Vec::with_capacity(close - open),
        at: Vec::with_capacity(close - open + 1),
    };
    match &quoting {
        Quoting::Dollar(_) => out.push_str(&tok[open..close], open),
        Quoting::Plain => unescape_plain(tok, open..close, &mut out)?,
        Quoting::Escape => unescape_e(tok, open..close, &mut out)?,
        Quoting::Unicode(esc) => unescape_u(tok, open..close, *esc, &mut out)?,
    }
    out.at.push(close);
    let value = String::from_utf8(out.bytes).map_err(|_| DecodeError::NotUtf8)?;
    Ok(Decoded {
        value,
        at: out.at,
        quoting,
    })
}

impl Decoded {
    /// The constant `tok` with the value bytes `range` replaced by `with`, quoted as `tok` is.
    /// `range` must start and end on character boundaries of the value.
    pub fn replace(&self, tok: &str, range: Range<usize>, with: &str) -> String {
        let (a, z) = (self.at[range.start], self.at[range.end]);
        let encoded = match &self.quoting {
            Quoting::Plain => with.replace('\'', "''"),
            Quoting::Escape => with.replace('\\', "\\\\").replace('\'', "''"),
            Quoting::Unicode(esc) => with
                .replace(*esc, &format!("{esc}{esc}"))
                .replace('\'', "''"),
            Quoting::Dollar(_) => with.to_owned(),
        };
        let out = format!("{}{encoded}{}", &tok[..a], &tok[z..]);
        match &self.quoting {
            Quoting::Dollar(tag) => retag(&out, tag),
            _ => out,
        }
    }
}

/// A dollar-quoted constant whose body, once changed, contains its own tag is given a tag its
/// body does not contain, so that it still reads as one constant.
fn retag(tok: &str, tag: &str) -> String {
    let body = &tok[tag.len()..tok.len() - tag.len()];
    if !body.contains(tag) {
        return tok.to_owned();
    }
    let fresh = (0..)
        .map(|n| format!("$redacted{n}$"))
        .find(|t| !body.contains(t.as_str()))
        .expect("some tag is not in the body");
    format!("{fresh}{body}{fresh}")
}

/// Decoded bytes and where each was written.
struct Unescaper {
    bytes: Vec<u8>,
    at: Vec<usize>,
}

impl Unescaper {
    fn push_str(&mut self, s: &str, from: usize) {
        self.bytes.extend_from_slice(s.as_bytes());
        self.at.extend(from..from + s.len());
    }

    fn push_char(&mut self, c: char, from: usize) {
        let mut buf = [0u8; 4];
        let s = c.encode_utf8(&mut buf);
        self.bytes.extend_from_slice(s.as_bytes());
        self.at.extend(std::iter::repeat_n(from, s.len()));
    }

    fn push_byte(&mut self, c: u8, from: usize) {
        self.bytes.push(c);
        self.at.push(from);
    }
}

/// `''` is a quote; everything else is itself.
fn unescape_plain(tok: &str, body: Range<usize>, out: &mut Unescaper) -> Result<(), DecodeError> {
    let b = tok.as_bytes();
    let mut i = body.start;
    while i < body.end {
        out.push_byte(b[i], i);
        i += if b[i] == b'\'' { 2 } else { 1 };
    }
    Ok(())
}

/// PostgreSQL's escape strings: `''`, `\'`, `\\`, `\b \f \n \r \t`, octal, `\xhh`, `\uXXXX`,
/// `\UXXXXXXXX`; a backslash before anything else stands for that character.
fn unescape_e(tok: &str, body: Range<usize>, out: &mut Unescaper) -> Result<(), DecodeError> {
    let b = tok.as_bytes();
    let mut i = body.start;
    while i < body.end {
        let start = i;
        match b[i] {
            b'\'' => {
                out.push_byte(b'\'', start);
                i += 2;
            }
            b'\\' if i + 1 < body.end => {
                let c = b[i + 1];
                i += 2;
                match c {
                    b'b' => out.push_byte(0x08, start),
                    b'f' => out.push_byte(0x0c, start),
                    b'n' => out.push_byte(b'\n', start),
                    b'r' => out.push_byte(b'\r', start),
                    b't' => out.push_byte(b'\t', start),
                    b'0'..=b'7' => {
                        let (v, n) = digits(&b[i - 1..body.end], 8, 3);
                        i += n - 1;
                        out.push_byte(u8::try_from(v & 0xff).unwrap_or(0), start);
                    }
                    b'x' if i < body.end && b[i].is_ascii_hexdigit() => {
                        let (v, n) = digits(&b[i..body.end], 16, 2);
                        i += n;
                        out.push_byte(u8::try_from(v).unwrap_or(0), start);
                    }
                    b'u' | b'U' => {
                        let want = if c == b'u' { 4 } else { 8 };
                        let (v, n) = digits(&b[i..body.end], 16, want);
                        if n != want {
                            return Err(DecodeError::BadEscape);
                        }
                        i += n;
                        out.push_char(char::from_u32(v).ok_or(DecodeError::BadEscape)?, start);
                    }
                    _ => {
                        // The escaped character itself, however many bytes it has.
                        let ch = tok[i - 1..].chars().next().ok_or(DecodeError::BadEscape)?;
                        i += ch.len_utf8() - 1;
                        out.push_char(ch, start);
                    }
                }
            }
            c => {
                out.push_byte(c, start);
                i += 1;
            }
        }
    }
    Ok(())
}

/// `U&'…'`: the escape character doubled, or followed by four hex digits, or by `+` and six.
/// A surrogate pair written as two escapes is one character.
fn unescape_u(
    tok: &str,
    body: Range<usize>,
    esc: char,
    out: &mut Unescaper,
) -> Result<(), DecodeError> {
    let mut high: Option<(u32, usize)> = None;
    let mut i = body.start;
    while i < body.end {
        let start = i;
        let ch = tok[i..].chars().next().ok_or(DecodeError::BadEscape)?;
        i += ch.len_utf8();
        let code = if ch == '\'' {
            i += 1;
            None
        } else if ch != esc {
            None
        } else if tok[i..body.end].starts_with(esc) {
            i += esc.len_utf8();
            None
        } else {
            let plus = tok.as_bytes().get(i) == Some(&b'+');
            let want = if plus { 6 } else { 4 };
            let from = i + usize::from(plus);
            let (v, n) = digits(&tok.as_bytes()[from..body.end], 16, want);
            if n != want {
                return Err(DecodeError::BadEscape);
            }
            i = from + n;
            Some(v)
        };
        match (code, high.take()) {
            (Some(lo @ 0xdc00..=0xdfff), Some((hi, at))) => {
                let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                out.push_char(char::from_u32(c).ok_or(DecodeError::BadEscape)?, at);
            }
            (_, Some(_)) => return Err(DecodeError::BadEscape),
            (Some(hi @ 0xd800..=0xdbff), None) => high = Some((hi, start)),
            (Some(v), None) => {
                out.push_char(char::from_u32(v).ok_or(DecodeError::BadEscape)?, start)
            }
            (None, None) if ch == esc => out.push_char(esc, start),
            (None, None) => out.push_char(ch, start),
        }
    }
    if high.is_some() {
        return Err(DecodeError::BadEscape);
    }
    Ok(())
}

/// Up to `max` leading digits of `b` in `radix`: their value and how many there were.
fn digits(b: &[u8], radix: u32, max: usize) -> (u32, usize) {
    let mut v = 0u32;
    let mut n = 0;
    while n < max {
        match b.get(n).and_then(|&c| char::from(c).to_digit(radix)) {
            Some(d) => v = v * radix + d,
            None => break,
        }
        n += 1;
    }
    (v, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(tok: &str) -> String {
        decode(tok, None).unwrap().value
    }

    #[test]
    fn values_are_decoded_as_the_server_reads_them() {
        assert_eq!(value("'it''s'"), "it's");
        assert_eq!(value("N'x'"), "x");
        assert_eq!(value("$t$a'b$$c$t$"), "a'b$$c");
        assert_eq!(value("$$$$"), "");
        assert_eq!(value(r"E'a\'b\\c\nd\x41\101\u00e9'"), "a'b\\c\ndAAé");
        assert_eq!(value(r"U&'d\0061t\+000061'"), "data");
        assert_eq!(decode(r"U&'d!0061t'", Some('!')).unwrap().value, "dat");
        assert_eq!(value(r"U&'\D83D\DE00'"), "😀");
        assert_eq!(decode("B'0101'", None).unwrap_err(), DecodeError::NotText);
        assert_eq!(
            decode("'open", None).unwrap_err(),
            DecodeError::Unterminated
        );
        assert_eq!(
            decode(r"U&'\D83D'", None).unwrap_err(),
            DecodeError::BadEscape
        );
        assert_eq!(decode(r"E'\377'", None).unwrap_err(), DecodeError::NotUtf8);
    }

    #[test]
    fn a_replacement_keeps_the_constant_quoted_as_it_was() {
        let r = |tok: &str, find: &str, with: &str| {
            let d = decode(tok, None).unwrap();
            let a = d.value.find(find).unwrap();
            d.replace(tok, a..a + find.len(), with)
        };
        assert_eq!(r("'a ''pw'' b'", "'pw'", "'***'"), "'a ''***'' b'");
        assert_eq!(r(r"E'a\'pw\' b'", "'pw'", "'***'"), "E'a''***'' b'");
        assert_eq!(r(r"E'x \x70w y'", "pw", "\\"), r"E'x \\ y'");
        assert_eq!(r(r"U&'x \0070w y'", "pw", "'"), "U&'x '' y'");
        assert_eq!(r("$$a pw b$$", "pw", "'***'"), "$$a '***' b$$");
        // The body would close early: another tag is chosen.
        assert_eq!(r("$$a pw b$$", "pw", "$$"), "$redacted0$a $$ b$redacted0$");
    }
}

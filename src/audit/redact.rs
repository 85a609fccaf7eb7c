//! Defence in depth against secrets in the audit.
//!
//! The session hands over SQL the classifier already redacted; this pass runs again inside the
//! audit so that a missed case upstream still never reaches disk. It is deliberately small: any
//! string literal that follows the keyword `PASSWORD` (`CREATE ROLE … PASSWORD '…'`,
//! `ALTER USER … ENCRYPTED PASSWORD E'…'`, `PASSWORD $$…$$`, `PASSWORD U&'…'`) is replaced.
//! Redacting a literal that was not a secret is harmless; keeping one that was is not. It
//! scans like the server does, though: the keyword counts in code only, not inside comments,
//! strings or quoted identifiers. A `/*password'*/` comment must not make everything up to the
//! next quote, the statements after it included, vanish from the audit.

use std::borrow::Cow;

/// What a redacted literal becomes.
pub const REDACTED: &str = "'********'";

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Returns `sql` with every string literal after `PASSWORD` replaced by [`REDACTED`].
pub fn redact_passwords(sql: &str) -> Cow<'_, str> {
    const KEYWORD: &[u8] = b"password";
    let bytes = sql.as_bytes();
    // Fast path: most statements never mention the word.
    if !bytes
        .windows(KEYWORD.len())
        .any(|w| w.eq_ignore_ascii_case(KEYWORD))
    {
        return Cow::Borrowed(sql);
    }
    let mut out = String::new();
    // Bytes of `sql` already in `out`.
    let mut copied = 0;
    // The last word of code was PASSWORD (comments and blanks may follow it).
    let mut after_keyword = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if let Some(end) = comment_end(bytes, i) {
            i = end;
        } else if let Some(end) = literal_end(bytes, i) {
            if after_keyword {
                out.push_str(&sql[copied..i]);
                out.push_str(REDACTED);
                copied = end;
            }
            after_keyword = false;
            i = end;
        } else if b == b'"' {
            after_keyword = false;
            i = quoted_end(bytes, i + 1, b'"', false);
        } else if is_ident_byte(b) {
            let end = i + bytes[i..].iter().take_while(|c| is_ident_byte(**c)).count();
            after_keyword = bytes[i..end].eq_ignore_ascii_case(KEYWORD);
            i = end;
        } else {
            after_keyword = false;
            i += 1;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// If a comment starts at `start`, the index just past it. Block comments nest, as in the
/// server; an unterminated one runs to the end.
fn comment_end(bytes: &[u8], start: usize) -> Option<usize> {
    match (bytes[start], bytes.get(start + 1)) {
        (b'-', Some(b'-')) => Some(
            bytes[start..]
                .iter()
                .position(|c| matches!(c, b'\n' | b'\r'))
                .map_or(bytes.len(), |p| start + p),
        ),
        (b'/', Some(b'*')) => {
            let mut depth = 0usize;
            let mut k = start;
            while k < bytes.len() {
                match (bytes[k], bytes.get(k + 1)) {
                    (b'/', Some(b'*')) => {
                        depth += 1;
                        k += 2;
                    }
                    (b'*', Some(b'/')) => {
                        depth -= 1;
                        k += 2;
                        if depth == 0 {
                            return Some(k);
                        }
                    }
                    _ => k += 1,
                }
            }
            Some(bytes.len())
        }
        _ => None,
    }
}

/// If a string literal starts at `start`, the index just past it (or the end of the text when
/// it is unterminated: redact the rest rather than risk a leak).
fn literal_end(bytes: &[u8], start: usize) -> Option<usize> {
    let first = *bytes.get(start)?;
    let next = bytes.get(start + 1).copied();
    if first == b'\'' {
        return Some(quoted_end(bytes, start + 1, b'\'', false));
    }
    if matches!(first, b'e' | b'E') && next == Some(b'\'') {
        return Some(quoted_end(bytes, start + 2, b'\'', true));
    }
    // National, bit and hex strings know no backslash escapes; nor do Unicode ones (`\0041`
    // is an escape there, never a quote).
    if matches!(first, b'n' | b'N' | b'b' | b'B' | b'x' | b'X') && next == Some(b'\'') {
        return Some(quoted_end(bytes, start + 2, b'\'', false));
    }
    if matches!(first, b'u' | b'U') && next == Some(b'&') && bytes.get(start + 2) == Some(&b'\'') {
        return Some(quoted_end(bytes, start + 3, b'\'', false));
    }
    if first == b'$' {
        // $tag$ … $tag$ (the tag may be empty).
        let tag_len = bytes[start + 1..].iter().position(|b| *b == b'$')?;
        let tag = &bytes[start..start + tag_len + 2];
        if !tag[1..tag.len() - 1]
            .iter()
            .all(|b| is_ident_byte(*b) && *b != b'$')
            || tag.get(1).is_some_and(u8::is_ascii_digit)
        {
            return None;
        }
        let body = start + tag.len();
        let close = bytes[body..].windows(tag.len()).position(|w| w == tag);
        return Some(close.map_or(bytes.len(), |p| body + p + tag.len()));
    }
    None
}

/// End of a quoted literal or identifier whose body starts at `from`, closed by `quote`; a
/// doubled quote is an escaped one, and in `E'…'` literals so is `\'`.
fn quoted_end(bytes: &[u8], from: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut k = from;
    while k < bytes.len() {
        match bytes[k] {
            b'\\' if backslash_escapes => k += 2,
            c if c == quote && bytes.get(k + 1) == Some(&quote) => k += 2,
            c if c == quote => return k + 1,
            _ => k += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_role_passwords_in_every_quoting() {
        let cases = [
            (
                "CREATE ROLE a LOGIN PASSWORD 's3cret'",
                "CREATE ROLE a LOGIN PASSWORD '********'",
            ),
            (
                "alter user a with encrypted password 'it''s' valid until 'x'",
                "alter user a with encrypted password '********' valid until 'x'",
            ),
            (
                "ALTER ROLE a PASSWORD E'a\\'b' LOGIN",
                "ALTER ROLE a PASSWORD '********' LOGIN",
            ),
            (
                "ALTER ROLE a PASSWORD $pw$x'y$pw$;",
                "ALTER ROLE a PASSWORD '********';",
            ),
            (
                "CREATE USER b PASSWORD\n  'SCRAM-SHA-256$4096:abc'",
                "CREATE USER b PASSWORD\n  '********'",
            ),
            (
                "CREATE ROLE a PASSWORD 'x'; CREATE ROLE b PASSWORD 'y'",
                "CREATE ROLE a PASSWORD '********'; CREATE ROLE b PASSWORD '********'",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact_passwords(input), want, "{input}");
        }
    }

    #[test]
    fn unterminated_literal_is_redacted_to_the_end() {
        assert_eq!(
            redact_passwords("ALTER ROLE a PASSWORD 'never closed"),
            "ALTER ROLE a PASSWORD '********'"
        );
    }

    #[test]
    fn redacts_across_comments_and_in_unicode_strings() {
        assert_eq!(
            redact_passwords("ALTER ROLE a PASSWORD /* x */ U&'s\\0065cret'"),
            "ALTER ROLE a PASSWORD /* x */ '********'"
        );
        assert_eq!(
            redact_passwords("ALTER ROLE a PASSWORD -- c\n 's3cret'"),
            "ALTER ROLE a PASSWORD -- c\n '********'"
        );
    }

    /// The word in a comment, string or quoted identifier is no keyword: it must not make the
    /// audit lose what follows up to the next quote, other statements included.
    #[test]
    fn the_word_outside_code_swallows_nothing() {
        for sql in [
            "START TRANSACTION READ WRITE, NOT DEFERRABLE; /*password'*/ UPDATE products SET name = $$pwned2$$ WHERE id = 2; COMMIT /*'*/",
            "/*password*/DELETE FROM orders WHERE id = 1",
            "-- password\n'x'; DELETE FROM orders",
            "SELECT 'password' || 'x'; DELETE FROM orders WHERE name = 'y'",
            "SELECT \"password\" 'x'",
            "/* /* password */ */ 'x'",
        ] {
            assert!(matches!(redact_passwords(sql), Cow::Borrowed(_)), "{sql}");
        }
        // Code after a comment is still code.
        assert_eq!(
            redact_passwords("/*password'*/ ALTER ROLE a PASSWORD 'x' /*'*/"),
            "/*password'*/ ALTER ROLE a PASSWORD '********' /*'*/"
        );
    }

    #[test]
    fn leaves_other_text_alone() {
        for sql in [
            "SELECT password_hash FROM users WHERE id = 'x'",
            "UPDATE users SET password = 'x'", // data, not a role secret
            "ALTER ROLE a PASSWORD NULL",
            "SELECT 1",
        ] {
            assert!(matches!(redact_passwords(sql), Cow::Borrowed(_)), "{sql}");
        }
    }
}

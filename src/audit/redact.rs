//! Defence in depth against secrets in the audit.
//!
//! The session hands over SQL the classifier already redacted; this pass runs again inside the
//! audit so that a missed case upstream still never reaches disk. It is deliberately small: any
//! string literal that follows the keyword `PASSWORD` (`CREATE ROLE … PASSWORD '…'`,
//! `ALTER USER … ENCRYPTED PASSWORD E'…'`, `PASSWORD $$…$$`) is replaced. Redacting a literal
//! that was not a secret is harmless; keeping one that was is not.

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
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0; // bytes of `sql` already in `out`
    let mut i = 0;
    while i + KEYWORD.len() <= bytes.len() {
        let at_word = bytes[i..i + KEYWORD.len()].eq_ignore_ascii_case(KEYWORD)
            && (i == 0 || !is_ident_byte(bytes[i - 1]))
            && bytes
                .get(i + KEYWORD.len())
                .is_none_or(|b| !is_ident_byte(*b));
        if !at_word {
            i += 1;
            continue;
        }
        let mut j = i + KEYWORD.len();
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        match literal_end(bytes, j) {
            Some(end) => {
                out.push_str(&sql[copied..j]);
                out.push_str(REDACTED);
                copied = end;
                i = end;
            }
            None => i = j,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// If a string literal starts at `start`, the index just past it (or the end of the text when
/// it is unterminated: redact the rest rather than risk a leak).
fn literal_end(bytes: &[u8], start: usize) -> Option<usize> {
    let first = *bytes.get(start)?;
    if first == b'\'' {
        return Some(quoted_end(bytes, start + 1, false));
    }
    if (first == b'e' || first == b'E') && bytes.get(start + 1) == Some(&b'\'') {
        return Some(quoted_end(bytes, start + 2, true));
    }
    if first == b'$' {
        // $tag$ … $tag$ (the tag may be empty).
        let tag_len = bytes[start + 1..].iter().position(|b| *b == b'$')?;
        let tag = &bytes[start..start + tag_len + 2];
        if !tag[1..tag.len() - 1]
            .iter()
            .all(|b| is_ident_byte(*b) && *b != b'$')
        {
            return None;
        }
        let body = start + tag.len();
        let close = bytes[body..].windows(tag.len()).position(|w| w == tag);
        return Some(close.map_or(bytes.len(), |p| body + p + tag.len()));
    }
    None
}

/// End of a quoted literal whose body starts at `from`; `''` is an escaped quote, and in
/// `E'…'` literals so is `\'`.
fn quoted_end(bytes: &[u8], from: usize, backslash_escapes: bool) -> usize {
    let mut k = from;
    while k < bytes.len() {
        match bytes[k] {
            b'\\' if backslash_escapes => k += 2,
            b'\'' if bytes.get(k + 1) == Some(&b'\'') => k += 2,
            b'\'' => return k + 1,
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

//! Making untrusted text safe to show to a person.
//!
//! Most of what an approver or an auditor reads comes from the agent: the statement, its
//! `application_name`, its parameters, table names, even the server's error messages that quote
//! them. PostgreSQL accepts any character inside a `--` comment or a quoted identifier, so an
//! agent that wants a statement approved could try to make the screen lie:
//!
//! - terminal escape sequences (`ESC[2K`, `ESC[7A`, a lone `\r`) that erase or overwrite what
//!   the CLI printed, so `approvals show` displays a forged statement;
//! - bidi controls that reorder what is read ("Trojan Source");
//! - zero-width and other invisible characters that hide text.
//!
//! [`sanitize`] turns every such character into a visible escape (`\x1b`, `\r`, `\u{202e}`), so
//! the reader sees that something is there and what it is. It is the one place every
//! human-facing channel goes through: the Teams cards, the `approvals` CLI and the audit
//! inspector's text output. (The web page does the same in its script; JSON output is already
//! escaped by serde.)

use std::borrow::Cow;

/// `input` with every control character except `\n` and `\t`, every bidi control and every
/// invisible formatting character replaced by a visible escape. A `\r\n` pair is a line break
/// (the `\r` cannot move the cursor anywhere the `\n` does not), a lone `\r` is escaped. When not
/// `multiline`, line breaks and tabs become spaces. Returns the input itself when nothing needs
/// escaping, which is nearly always.
pub fn sanitize(input: &str, multiline: bool) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut after_visible_non_ascii = false;
    let mut chars = input.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let shown = replacement(c, next, after_visible_non_ascii, multiline);
        after_visible_non_ascii = shown.is_none() && !c.is_ascii();
        if let Some(shown) = shown {
            out.push_str(&input[copied..i]);
            out.push_str(&shown);
            copied = i + c.len_utf8();
        }
    }
    if copied == 0 && out.is_empty() {
        return Cow::Borrowed(input);
    }
    out.push_str(&input[copied..]);
    Cow::Owned(out)
}

/// What `c` is shown as, or `None` to show it as is. `next` is the character after it;
/// `after_visible_non_ascii` says whether the one before was shown and is not ASCII (an emoji or
/// CJK character a variation selector may legitimately follow).
fn replacement(
    c: char,
    next: Option<char>,
    after_visible_non_ascii: bool,
    multiline: bool,
) -> Option<Cow<'static, str>> {
    match c {
        '\n' | '\t' if multiline => None,
        '\n' | '\t' => Some(Cow::Borrowed(" ")),
        '\r' if next == Some('\n') => Some(Cow::Borrowed("")),
        '\r' => Some(Cow::Borrowed("\\r")),
        c if c.is_control() => Some(Cow::Owned(format!("\\x{:02x}", c as u32))),
        c if is_invisible_format(c) => Some(Cow::Owned(c.escape_unicode().to_string())),
        c if is_variation_selector(c) && !after_visible_non_ascii => {
            Some(Cow::Owned(c.escape_unicode().to_string()))
        }
        _ => None,
    }
}

/// Bidi embeddings, overrides, isolates and marks; zero-width spaces and joiners; line and
/// paragraph separators; fillers and other characters that take no visible space; tag
/// characters (invisible copies of ASCII). The zero-width joiner is among them although emoji
/// sequences use it: showing `\u{200d}` inside a family emoji is a small price for never
/// hiding one between the letters of a table name.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E00FF}'
            | '\u{E01F0}'..='\u{E0FFF}'
    )
}

/// Variation selectors pick how the character before them is drawn (`❤` vs `❤️`); after ASCII
/// or at the start they do nothing visible and only hide that the text differs.
fn is_variation_selector(c: char) -> bool {
    matches!(
        c,
        '\u{180B}'..='\u{180D}' | '\u{180F}' | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}'
    )
}

/// SQL (or any text) on one line for a table cell or a grep line: escaped first, so a lone
/// `\r` stays visible instead of becoming whitespace, then runs of whitespace (line breaks
/// included) become one space.
pub fn one_line(input: &str) -> Cow<'_, str> {
    let shown = sanitize(input, true);
    if !shown.contains(['\n', '\t']) && !shown.contains("  ") && shown.trim() == shown {
        return shown;
    }
    Cow::Owned(shown.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_visible(s: &str) -> bool {
        s.chars()
            .all(|c| matches!(c, '\n' | '\t') || (!c.is_control() && !is_invisible_format(c)))
    }

    #[test]
    fn terminal_escape_sequences_are_shown_not_obeyed() {
        let sql =
            "ALTER TABLE ledger DROP COLUMN amount -- \x1b[2K\x1b[1GCOMMENT ON TABLE ledger\x1b[7A";
        let shown = sanitize(sql, true);
        assert_eq!(
            shown,
            "ALTER TABLE ledger DROP COLUMN amount -- \\x1b[2K\\x1b[1GCOMMENT ON TABLE ledger\\x1b[7A"
        );
        assert!(!shown.contains('\x1b'));
        assert_eq!(sanitize("a\x1bb", false), "a\\x1bb");
    }

    #[test]
    fn a_lone_carriage_return_is_escaped_and_crlf_is_a_line_break() {
        assert_eq!(
            sanitize("DROP TABLE t;\rSELECT 1", true),
            "DROP TABLE t;\\rSELECT 1"
        );
        assert_eq!(
            sanitize("SELECT 1\r\nFROM t\r", true),
            "SELECT 1\nFROM t\\r"
        );
        assert_eq!(sanitize("a\r\nb\rc", false), "a b\\rc");
        assert_eq!(sanitize("\r\r\n", true), "\\r\n");
    }

    #[test]
    fn c0_c1_and_del_are_escaped_but_newline_and_tab_are_kept() {
        assert_eq!(
            sanitize("a\u{0}b\u{7}c\u{7f}d\u{85}e\u{9b}f\u{9f}g", true),
            "a\\x00b\\x07c\\x7fd\\x85e\\x9bf\\x9fg"
        );
        assert_eq!(sanitize("a\nb\tc", true), "a\nb\tc");
        assert_eq!(sanitize("a\nb\tc", false), "a b c");
    }

    #[test]
    fn bidi_controls_are_made_visible() {
        assert_eq!(
            sanitize("DROP TABLE\u{202E}elbat_tset\u{202C} x", false),
            "DROP TABLE\\u{202e}elbat_tset\\u{202c} x"
        );
        for c in [
            '\u{202A}', '\u{202B}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
            '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            let text = format!("a{c}b");
            assert_eq!(sanitize(&text, true), format!("a{}b", c.escape_unicode()));
        }
    }

    #[test]
    fn zero_width_and_invisible_characters_are_made_visible() {
        assert_eq!(sanitize("x\u{200B}y", true), "x\\u{200b}y");
        assert_eq!(sanitize("or\u{200D}ders", true), "or\\u{200d}ders");
        assert_eq!(sanitize("\u{FEFF}SELECT", true), "\\u{feff}SELECT");
        assert_eq!(sanitize("a\u{2060}b\u{00AD}c", true), "a\\u{2060}b\\u{ad}c");
        assert_eq!(sanitize("t\u{E0041}", true), "t\\u{e0041}");
        // The rest of Unicode's default-ignorable code points: shorthand format controls,
        // reserved ones a newer font or terminal may render as nothing.
        for c in [
            '\u{1BCA0}',
            '\u{1BCA3}',
            '\u{FFF0}',
            '\u{E0080}',
            '\u{E01F0}',
            '\u{E0FFF}',
        ] {
            assert_eq!(
                sanitize(&format!("a{c}b"), true),
                format!("a\\u{{{:x}}}b", c as u32)
            );
        }
        assert_eq!(sanitize("orders\u{FE0F}", true), "orders\\u{fe0f}");
        assert!(all_visible(&sanitize(
            "\u{2028}\u{2029}\u{3164}\u{115F}\u{FFFB}\u{1D173}",
            true
        )));
    }

    #[test]
    fn ordinary_text_is_untouched_and_borrowed() {
        for s in [
            "SELECT 'café', 'naïve' FROM t",
            "SELECT '東京', '서울' -- 注释",
            "SELECT '🙂', '❤\u{FE0F}', '👍🏽'",
            "SELECT \"\u{05E9}\u{05DC}\u{05D5}\u{05DD}\" FROM t",
            "multi\nline\twith tabs",
            "",
        ] {
            let shown = sanitize(s, true);
            assert!(matches!(shown, Cow::Borrowed(_)), "{s:?} was copied");
            assert_eq!(shown, s);
        }
    }

    #[test]
    fn one_line_flattens_whitespace_after_escaping() {
        assert_eq!(one_line("SELECT 1"), "SELECT 1");
        assert_eq!(
            one_line("  SELECT a,\n\t b\n  FROM t "),
            "SELECT a, b FROM t"
        );
        assert_eq!(one_line("SELECT 1;\rDROP x"), "SELECT 1;\\rDROP x");
        assert_eq!(one_line("a\r\nb"), "a b");
        assert!(matches!(one_line("SELECT 1"), Cow::Borrowed(_)));
    }
}

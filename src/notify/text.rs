//! Making untrusted text safe to show to an approver.
//!
//! Most of what a card shows comes from the agent: the statement, its `application_name`, table
//! names. An agent that wants a statement approved could try to make the card lie: bidi control
//! characters that reorder what the approver reads ("Trojan Source"), zero-width characters that
//! hide text, or megabytes of text that push the card past what Teams accepts. The first two are
//! neutralized by [`crate::untrusted::sanitize`], which every human-facing channel shares; these
//! helpers add the limits. Markdown injection is handled by the card builder, which only ever
//! puts untrusted text into `TextRun`s (rendered without markdown).

use crate::untrusted::sanitize;

/// At most `max_chars` characters of a single-line value, with `…` when cut.
pub fn clip_line(input: &str, max_chars: usize) -> String {
    let clean = sanitize(input, false);
    if clean.chars().count() <= max_chars {
        return clean.into_owned();
    }
    let mut out: String = clean.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A comma-separated list of at most `max_items` entries, each clipped, with "and N more".
pub fn clip_list(items: &[String], max_items: usize, max_item_chars: usize) -> String {
    if items.is_empty() {
        return "none".into();
    }
    let mut shown: Vec<String> = items
        .iter()
        .take(max_items)
        .map(|s| clip_line(s, max_item_chars))
        .collect();
    if items.len() > max_items {
        shown.push(format!("and {} more", items.len() - max_items));
    }
    shown.join(", ")
}

/// How many bytes `c` takes inside a JSON string as serde_json writes it.
fn json_escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0C}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Bytes `s` takes inside a JSON string (without the quotes).
pub fn json_len(s: &str) -> usize {
    s.chars().map(json_escaped_len).sum()
}

/// The longest prefix of `s` (on a char boundary) whose JSON-escaped form fits in `budget`
/// bytes.
pub fn prefix_within(s: &str, budget: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += json_escaped_len(c);
        if used > budget {
            return &s[..i];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_lines_are_sanitized() {
        assert_eq!(clip_line("a\u{202E}b\nc", 20), "a\\u{202e}b c");
        assert_eq!(clip_line("\x1b[2Kab", 6), "\\x1b[…");
    }

    #[test]
    fn clipping_counts_characters_not_bytes() {
        assert_eq!(clip_line("ééééé", 3), "éé…");
        assert_eq!(clip_line("abc", 3), "abc");
        let items: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
        assert_eq!(clip_list(&items, 2, 10), "t0, t1, and 3 more");
        assert_eq!(clip_list(&[], 2, 10), "none");
    }

    #[test]
    fn json_prefix_respects_escapes_and_boundaries() {
        assert_eq!(json_len("a\"b\u{1}"), 1 + 2 + 1 + 6);
        assert_eq!(prefix_within("ab\"cd", 3), "ab");
        assert_eq!(prefix_within("aé", 2), "a");
        assert_eq!(prefix_within("aé", 3), "aé");
        let s = "x".repeat(10);
        assert_eq!(prefix_within(&s, 100), s);
        // serde_json agrees with our count.
        let tricky = "q\"\\\n\t\u{1}é€𝄞";
        assert_eq!(
            serde_json::to_string(tricky).unwrap().len() - 2,
            json_len(tricky)
        );
    }
}

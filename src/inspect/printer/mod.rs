//! Output. Each printer writes to any `io::Write`; the caller owns stdout and decides what a
//! write error means (a closed pipe is success).

pub mod csv;
pub mod json;
pub mod text;

use std::borrow::Cow;

/// When to colour text output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Resolves `auto` from whether stdout is a terminal and the `NO_COLOR` variable
    /// (<https://no-color.org>: set and not empty disables colour).
    pub fn resolve(self, stdout_is_terminal: bool, no_color: Option<&str>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stdout_is_terminal && no_color.is_none_or(str::is_empty),
        }
    }
}

/// ANSI styling, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub color: bool,
}

pub(crate) const DIM: &str = "2";
pub(crate) const BOLD: &str = "1";
pub(crate) const RED: &str = "1;31";
pub(crate) const GREEN: &str = "32";
pub(crate) const YELLOW: &str = "33";
pub(crate) const CYAN: &str = "36";
pub(crate) const MAGENTA: &str = "35";

impl Style {
    pub fn paint<'a>(&self, code: &str, text: &'a str) -> Cow<'a, str> {
        if self.color && !text.is_empty() {
            Cow::Owned(format!("\x1b[{code}m{text}\x1b[0m"))
        } else {
            Cow::Borrowed(text)
        }
    }
}

/// SQL on one line: control and invisible characters escaped (the agent wrote it, and a raw
/// `ESC[2K` or `\r` would let it redraw the auditor's terminal), then runs of whitespace
/// (newlines included) become one space.
pub fn one_line(sql: &str) -> Cow<'_, str> {
    crate::untrusted::one_line(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_choice_honours_no_color_and_terminals() {
        assert!(ColorChoice::Auto.resolve(true, None));
        assert!(ColorChoice::Auto.resolve(true, Some("")));
        assert!(!ColorChoice::Auto.resolve(true, Some("1")));
        assert!(!ColorChoice::Auto.resolve(false, None));
        assert!(ColorChoice::Always.resolve(false, Some("1")));
        assert!(!ColorChoice::Never.resolve(true, None));
    }

    #[test]
    fn sql_is_flattened_to_one_line() {
        assert_eq!(one_line("SELECT 1"), "SELECT 1");
        assert_eq!(one_line("SELECT a,\n\t b\n  FROM t"), "SELECT a, b FROM t");
        assert_eq!(one_line("SELECT 1 -- \x1b[2K\r"), "SELECT 1 -- \\x1b[2K\\r");
    }
}

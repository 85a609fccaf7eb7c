//! Name patterns compiled once at load: globs over application names, and dotted
//! `schema.table[.column]` patterns whose segments fold like PostgreSQL identifiers.
//!
//! A dotted pattern is matched segment by segment so that `public.*.email` never matches
//! `public.a.b.email`: `*` stands for one whole identifier or part of one, never for a dot.
//! Unquoted segments are lower-cased (PostgreSQL folds unquoted identifiers, and the
//! classifier reports folded names); double-quoted segments are kept exactly and are literal,
//! so `"*"` matches only a column really named `*`.

use crate::sql::{ColumnRef, TableRef};

/// A glob over one string: `*` matches any run of characters, `?` exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glob {
    /// `*` alone: matches everything, checked without looking at the text.
    Any,
    /// No wildcard: plain equality.
    Literal(String),
    /// Anything else, kept as chars for the matcher.
    Pattern(Vec<char>),
}

impl Glob {
    /// Compiles `text`; `*` and `?` are the only special characters.
    pub fn new(text: &str) -> Glob {
        if text == "*" {
            Glob::Any
        } else if text.contains(['*', '?']) {
            Glob::Pattern(text.chars().collect())
        } else {
            Glob::Literal(text.to_string())
        }
    }

    /// A glob that matches exactly `text`, wildcards included (for quoted identifiers).
    pub fn literal(text: &str) -> Glob {
        Glob::Literal(text.to_string())
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Literal(l) => l == text,
            Glob::Pattern(p) => wildcard_match(p, text),
        }
    }
}

/// Iterative matcher with single-star backtracking: linear in practice, no recursion, so a
/// hostile pattern in a policy file cannot blow the stack.
fn wildcard_match(pattern: &[char], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == '*' {
        p += 1;
    }
    p == pattern.len()
}

/// `schema.table`, each segment a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    pub schema: Glob,
    pub table: Glob,
}

impl TablePattern {
    pub fn parse(text: &str) -> Result<TablePattern, String> {
        let segs = split_dotted(text)?;
        match <[Glob; 2]>::try_from(segs) {
            Ok([schema, table]) => Ok(TablePattern { schema, table }),
            Err(_) => Err(format!(
                "table pattern `{text}` must be `schema.table` (use `*.{text}` for any schema)"
            )),
        }
    }

    pub fn matches(&self, t: &TableRef) -> bool {
        self.schema.matches(&t.schema) && self.table.matches(&t.name)
    }
}

/// `schema.table.column`, each segment a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPattern {
    pub schema: Glob,
    pub table: Glob,
    pub column: Glob,
}

impl ColumnPattern {
    pub fn parse(text: &str) -> Result<ColumnPattern, String> {
        let segs = split_dotted(text)?;
        match <[Glob; 3]>::try_from(segs) {
            Ok([schema, table, column]) => Ok(ColumnPattern {
                schema,
                table,
                column,
            }),
            Err(_) => Err(format!(
                "column pattern `{text}` must be `schema.table.column` (globs allowed, e.g. `*.customers.ssn`)"
            )),
        }
    }

    pub fn matches(&self, c: &ColumnRef) -> bool {
        self.column.matches(&c.column)
            && self.table.matches(&c.table.name)
            && self.schema.matches(&c.table.schema)
    }

    /// Whether some column of table `t` could match.
    pub fn matches_table(&self, t: &TableRef) -> bool {
        self.table.matches(&t.name) && self.schema.matches(&t.schema)
    }

    /// The exact column this pattern names, when no segment is a wildcard: such patterns go
    /// into a hash set instead of the glob list.
    pub fn exact(&self) -> Option<ColumnRef> {
        match (&self.schema, &self.table, &self.column) {
            (Glob::Literal(s), Glob::Literal(t), Glob::Literal(c)) => Some(ColumnRef {
                table: TableRef {
                    schema: s.clone(),
                    name: t.clone(),
                },
                column: c.clone(),
            }),
            _ => None,
        }
    }
}

/// Splits `a."B.c".d` into segments, folding unquoted ones to lower case. `""` inside quotes
/// is a literal quote, as in SQL.
fn split_dotted(text: &str) -> Result<Vec<Glob>, String> {
    let mut segs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let seg = if chars.peek() == Some(&'"') {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        s.push('"');
                    }
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err(format!("unterminated quote in `{text}`")),
                }
            }
            if s.is_empty() {
                return Err(format!("empty quoted name in `{text}`"));
            }
            Glob::literal(&s)
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(format!("misplaced quote in `{text}`"));
                }
                if c.is_whitespace() {
                    return Err(format!(
                        "whitespace in `{text}` (quote the name if it is real)"
                    ));
                }
                s.push(c);
                chars.next();
            }
            if s.is_empty() {
                return Err(format!("empty name segment in `{text}`"));
            }
            Glob::new(&s.to_lowercase())
        };
        segs.push(seg);
        match chars.next() {
            None => return Ok(segs),
            Some('.') => continue,
            Some(_) => return Err(format!("expected `.` after a quoted name in `{text}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(s: &str, t: &str, c: &str) -> ColumnRef {
        ColumnRef {
            table: TableRef {
                schema: s.into(),
                name: t.into(),
            },
            column: c.into(),
        }
    }

    #[test]
    fn glob_basics() {
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("report*").matches("reporting"));
        assert!(Glob::new("report*").matches("report"));
        assert!(!Glob::new("report*").matches("xreport"));
        assert!(Glob::new("*-bot").matches("etl-bot"));
        assert!(!Glob::new("*-bot").matches("etl-bots"));
        assert!(Glob::new("a?c").matches("abc"));
        assert!(!Glob::new("a?c").matches("ac"));
        assert!(Glob::new("*a*b*").matches("xxaxxbxx"));
        assert!(!Glob::new("*a*b*").matches("xxbxxaxx"));
        assert!(Glob::new("a*b*c").matches("abbbc"));
        assert!(Glob::new("app").matches("app"));
        assert!(!Glob::new("app").matches("App"));
        assert!(Glob::new("é*").matches("élan"));
    }

    #[test]
    fn column_pattern_segments_do_not_cross_dots() {
        let p = ColumnPattern::parse("public.*.email").unwrap();
        assert!(p.matches(&col("public", "customers", "email")));
        assert!(!p.matches(&col("public", "customers", "email2")));
        assert!(!p.matches(&col("sales", "customers", "email")));
        let p = ColumnPattern::parse("*.customers.ssn").unwrap();
        assert!(p.matches(&col("crm", "customers", "ssn")));
        assert!(!p.matches(&col("crm", "customer", "ssn")));
    }

    #[test]
    fn unquoted_segments_fold_quoted_are_exact() {
        let p = ColumnPattern::parse("Public.Customers.Email").unwrap();
        assert!(p.matches(&col("public", "customers", "email")));
        assert_eq!(p.exact(), Some(col("public", "customers", "email")));
        let p = ColumnPattern::parse(r#"public."Customers"."E.mail""#).unwrap();
        assert!(p.matches(&col("public", "Customers", "E.mail")));
        assert!(!p.matches(&col("public", "customers", "E.mail")));
        let p = ColumnPattern::parse(r#"public.t."*""#).unwrap();
        assert!(p.matches(&col("public", "t", "*")));
        assert!(!p.matches(&col("public", "t", "x")));
        let p = ColumnPattern::parse(r#"s.t."a""b""#).unwrap();
        assert!(p.matches(&col("s", "t", "a\"b")));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "customers.ssn",
            "a.b.c.d",
            "a..c",
            "",
            "a.b.",
            r#"a."b.c"#,
            r#"a.b"c".d"#,
            "a.b c.d",
            r#"a."".c"#,
        ] {
            assert!(ColumnPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(TablePattern::parse("customers").is_err());
        assert!(TablePattern::parse("a.b.c").is_err());
        let t = TablePattern::parse("*.orders").unwrap();
        assert!(t.matches(&TableRef {
            schema: "x".into(),
            name: "orders".into()
        }));
    }

    #[test]
    fn exact_only_without_wildcards() {
        assert!(ColumnPattern::parse("public.*.email")
            .unwrap()
            .exact()
            .is_none());
        assert!(ColumnPattern::parse("public.c.e?")
            .unwrap()
            .exact()
            .is_none());
    }
}

//! Property tests: classification never panics, whatever the text, and never leaks a password
//! into the redacted text or the fingerprint. They call the uncached analysis directly, without
//! the classifier's panic guard, so a panic fails the test instead of being held.

use std::collections::HashSet;

use proptest::prelude::*;

use super::super::analyze::analyze_text;
use super::super::functions::FunctionPolicy;
use super::super::lexer::lex;
use super::super::scope::Ctx;
use super::super::SessionSqlState;
use super::{classifier, demo_catalog};

const FRAGMENTS: &[&str] = &[
    "SELECT ",
    "FROM ",
    "WHERE ",
    "customers",
    "orders",
    "c",
    ".",
    "*",
    ",",
    "(",
    ")",
    ";",
    "'",
    "''",
    "\"",
    "$$",
    "$a$",
    "$1",
    "--",
    "\n",
    "\r",
    "/*",
    "*/",
    "E'\\'",
    "\\",
    "U&\"",
    "email",
    "ssn",
    "WITH x AS ",
    "INSERT INTO ",
    "VALUES ",
    "UPDATE ",
    "SET ",
    "DELETE ",
    "RETURNING ",
    "DROP TABLE ",
    "CREATE ",
    "ALTER ROLE x PASSWORD ",
    "GRANT ",
    "COPY ",
    " TO STDOUT",
    "EXPLAIN ",
    "ANALYZE ",
    "PREPARE p AS ",
    "EXECUTE p",
    "DEALLOCATE ",
    "DECLARE k CURSOR FOR ",
    "DO ",
    "BEGIN ATOMIC ",
    "END",
    "CASE ",
    "row_to_json(c)",
    "set_config('role','x',false)",
    "nextval('s')",
    "UNION ",
    "JOIN ",
    "ON ",
    "LATERAL ",
    "ONLY ",
    "TABLE ",
    "1",
    "-",
    "::",
    "[",
    "]",
    " ",
    "é",
    "\u{a0}",
    "RECURSIVE ",
    "search_path",
    "= ",
    "FOR UPDATE",
    "LIMIT ",
    "ORDER BY ",
    "GROUP BY ",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|v| v.concat())
}

fn analyze(sql: &str) {
    let cat = demo_catalog();
    let functions = FunctionPolicy::default();
    let allowed: HashSet<String> = ["statement_timeout".to_string()].into();
    let cx = Ctx {
        catalog: &cat,
        path: &cat.search_path,
        functions: &functions,
        allowed_settings: &allowed,
        literal_sensitive: std::cell::Cell::new(false),
    };
    let a = analyze_text(&cx, sql, &lex(sql, true));
    assert_eq!(a.classified.statements.len(), a.effects.len());
    for f in a.classified.statements.iter() {
        assert!(!f.label.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(sql in any::<String>()) {
        analyze(&sql);
    }

    #[test]
    fn never_panics_on_sql_like_soup(sql in soup()) {
        analyze(&sql);
        let c = classifier();
        let mut s = SessionSqlState::new(c.catalog());
        c.classify_in_session(&mut s, &sql);
        c.classify_in_session(&mut s, &sql);
    }

    #[test]
    fn passwords_never_leak(prefix in soup(), secret in "[a-zA-Z0-9]{8,16}", suffix in soup()) {
        let sql = format!("{prefix}; ALTER ROLE agent WITH PASSWORD 'S3{secret}'; {suffix}");
        let cl = classifier().classify(&sql);
        let needle = format!("S3{secret}");
        prop_assert!(!cl.redacted.contains(&needle), "redacted: {}", cl.redacted);
        prop_assert!(!cl.fingerprint.contains(&needle), "fingerprint: {}", cl.fingerprint);
        for f in cl.statements.iter() {
            prop_assert!(!f.label.contains(&needle));
        }
    }
}

const TEMPLATES: &[&str] = &[
    "SELECT email FROM customers WHERE id = {} AND name = {}",
    "UPDATE products SET price = {} WHERE id = {}",
    "DELETE FROM orders WHERE {} = {}",
    "SELECT set_config({}, {}, false)",
    "EXPLAIN (ANALYZE {}) DELETE FROM orders WHERE id = {}",
    "ALTER ROLE bob PASSWORD {}; SELECT {}",
    "SET search_path = {}, {}",
    "COPY customers TO {}; SELECT {}",
    "SELECT * FROM customers LIMIT {} OFFSET {}",
    "SELECT {}::regclass, {}",
    "INSERT INTO orders (id, total) VALUES ({}, {}) RETURNING *",
    "SELECT {} {}",
];

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..5).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "'role'",
            "'statement_timeout'",
            "'search_path'",
            "'a\\'",
            "'x''y'",
            "$$d$$",
            "E'\\n'",
            "'/tmp/f'",
            "'password=x'",
            "1.5",
            "true",
            "'1'",
            "'0'",
            "'postgres://u:p@h/db'",
        ])
        .prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Sharing facts by fingerprint never changes a classification.
    #[test]
    fn fingerprint_cache_agrees_with_full_analysis(
        picks in prop::collection::vec((prop::sample::select(TEMPLATES), literal(), literal()), 1..12)
    ) {
        let shared = classifier();
        let fresh = super::super::Classifier::new(
            std::sync::Arc::new(demo_catalog()),
            super::super::ClassifierOptions {
                safe_functions: vec!["calc_discount".into()],
                cache_capacity: 0,
                ..Default::default()
            },
        );
        for (t, a, b) in picks {
            let sql = t.replacen("{}", &a, 1).replacen("{}", &b, 1);
            let x = shared.classify(&sql);
            let y = fresh.classify(&sql);
            prop_assert_eq!(&x.statements, &y.statements, "{}", sql);
            prop_assert_eq!(&x.redacted, &y.redacted);
            prop_assert_eq!(&x.fingerprint, &y.fingerprint);
        }
    }
}

/// The same text with every plain string and integer constant changed.
fn other_constants(sql: &str) -> String {
    use super::super::lexer::TokKind;
    let l = lex(sql, true);
    let mut out = String::new();
    let mut at = 0;
    for t in &l.toks {
        let s = t.text(sql);
        let new = match t.kind {
            TokKind::String if s.starts_with('\'') && s.ends_with('\'') && s.len() >= 2 => {
                Some("'zz''q'")
            }
            TokKind::Number if s.bytes().all(|c| c.is_ascii_digit()) => Some("7"),
            _ => None,
        };
        if let Some(n) = new {
            out.push_str(&sql[at..t.start]);
            out.push_str(n);
            at = t.end;
        }
    }
    out.push_str(&sql[at..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// Whatever the shape of the text, another text with other constants gets, from the shared
    /// caches, exactly what a full analysis gives it.
    #[test]
    fn constants_never_change_cached_facts(sql in soup()) {
        let shared = classifier();
        let fresh = super::super::Classifier::new(
            std::sync::Arc::new(demo_catalog()),
            super::super::ClassifierOptions {
                safe_functions: vec!["calc_discount".into()],
                cache_capacity: 0,
                ..Default::default()
            },
        );
        let variant = other_constants(&sql);
        shared.classify(&sql);
        let x = shared.classify(&variant);
        let y = fresh.classify(&variant);
        prop_assert_eq!(&x.statements, &y.statements, "{} / {}", sql, variant);
        prop_assert_eq!(&x.redacted, &y.redacted);
    }
}

/// Found by `constants_never_change_cached_facts`: sqlparser takes a string literal where a
/// table name belongs, so such statements must never share facts across constants.
#[test]
fn a_literal_in_a_name_position_is_not_shared_across_constants() {
    let warm = super::classifier();
    let _ = warm.classify("DROP TABLE ''");
    let reused = warm.classify("DROP TABLE 'zz''q'");
    let fresh = super::classifier().classify("DROP TABLE 'zz''q'");
    assert_eq!(reused.statements, fresh.statements);
}

//! Property tests: classification never panics, whatever the text, and never leaks a password
//! into the redacted text or the fingerprint. They call the uncached analysis directly, without
//! the classifier's panic guard, so a panic fails the test instead of being held.

use std::collections::HashSet;

use proptest::prelude::*;

use super::super::classify::analyze_text;
use super::super::functions::FunctionPolicy;
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
    };
    let (cl, effects) = analyze_text(&cx, sql);
    assert_eq!(cl.statements.len(), effects.len());
    for f in &cl.statements {
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
        for f in &cl.statements {
            prop_assert!(!f.label.contains(&needle));
        }
    }
}

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
use super::{classifier, demo_catalog, one};

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
        temp: &[],
        functions: &functions,
        allowed_settings: &allowed,
        literal_sensitive: std::cell::Cell::new(false),
        marks: Default::default(),
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

/// Runs `f` on a thread with a 2 MiB stack: the default for spawned threads and tokio workers,
/// which classification must fit in whatever the text.
fn on_default_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

/// `head`, `link` repeated `n` times, `tail`.
fn chain(head: &str, link: &str, n: usize, tail: &str) -> String {
    format!("{head}{}{tail}", link.repeat(n))
}

/// 100,000 links of an operator chain (about 200 KB of `+1`) overflowed the stack of the thread
/// classifying it, which aborts the whole gateway: sqlparser builds such chains in a loop, and
/// walking or dropping the tree recurses once per link. They are held unparsed.
#[test]
fn deep_operator_chains_are_held_without_parsing() {
    use super::super::Kind;
    let n = 100_000;
    let cases = [
        chain("SELECT 1", "+1", n, ""),
        chain("SELECT 'x'", "::text", n, ""),
        chain("SELECT true", " AND true", n, ""),
        chain("SELECT id FROM products WHERE id = 0", " OR id = 1", n, ""),
        chain("SELECT 'a'", " || 'a'", n, ""),
        chain("SELECT 1", " IS NULL", n, ""),
        chain("SELECT ", "- ", n, "1"),
        chain("SELECT ", "NOT ", n, "true"),
        chain("SELECT 1", " UNION SELECT 1", n, ""),
        // Commas do not separate set operations, nor what brackets hold from what they are in.
        chain("SELECT 1, 2", " UNION SELECT 1, 2", n, ""),
        chain("SELECT 0", " + ARRAY[0, 1][1]", n, ""),
        chain(
            "UPDATE products SET price = 0 WHERE id = 0",
            " OR id = 1",
            n,
            "",
        ),
        chain("BEGIN; SELECT 1", "+1", n, "; COMMIT"),
    ];
    on_default_stack(move || {
        let c = classifier();
        for sql in cases {
            let cl = c.classify(&sql);
            let deep: Vec<_> = cl
                .statements
                .iter()
                .filter(|f| f.label.contains("nested too deeply"))
                .collect();
            assert_eq!(deep.len(), 1, "{}…: {:?}", &sql[..60], cl.statements);
            assert_eq!(deep[0].kind, Kind::Unknown);
        }
    });
}

/// What the depth limit lets through is parsed and walked within the default stack, in debug
/// builds too, and big flat statements (rows, lists, columns) are nowhere near it. If a change
/// to the analysis makes this overflow, it recurses harder per level: lower `MAX_NESTING`.
#[test]
fn statements_below_the_depth_limit_are_classified() {
    use super::super::Kind;
    let cases = [
        (chain("SELECT 1", "+1", 5_000, ""), Kind::Read),
        (chain("SELECT 'x'", "::text", 2_500, ""), Kind::Read),
        (chain("SELECT 1", " IS NULL", 5_000, ""), Kind::Read),
        (
            chain(
                "SELECT id FROM products WHERE id = 0",
                " OR id = 1",
                2_499,
                "",
            ),
            Kind::Read,
        ),
        (chain("SELECT 1", " UNION SELECT 1", 416, ""), Kind::Read),
        (
            chain(
                "INSERT INTO products (id, name, price) VALUES (0, 'p'::text, 1.5::numeric)",
                ", (1, 'p'::text, 1.5::numeric)",
                5_000,
                "",
            ),
            Kind::Write,
        ),
        (
            chain(
                "SELECT name FROM products WHERE id IN (0",
                ", 1",
                100_000,
                ")",
            ),
            Kind::Read,
        ),
        (
            chain("SELECT ARRAY['x'::text", ", 'y'::text", 50_000, "]"),
            Kind::Read,
        ),
    ];
    on_default_stack(move || {
        let c = classifier();
        for (sql, kind) in cases {
            let f = one(&c, &sql);
            assert_eq!(f.kind, kind, "{}…: {}", &sql[..60], f.label);
            assert!(!f.label.contains("nested"), "{}", f.label);
        }
    });
}

/// The server flattens AND/OR chains, so it accepts a view whose definition holds 100,000 of
/// them; reading that definition into the catalog must not overflow the stack either.
#[test]
fn a_deep_view_definition_gets_the_dependency_fallback() {
    use super::super::{Catalog, Classifier, ClassifierOptions, Kind};
    on_default_stack(|| {
        let def = chain(
            "SELECT id, name FROM products WHERE id = 0",
            " OR id = 1",
            100_000,
            "",
        );
        let cat = Catalog::builder()
            .search_path(&["public"])
            .table("public", "products", &["id", "name", "price"])
            .view_sql("public", "deep", &["id", "name"], &def)
            .build();
        let c = Classifier::new(std::sync::Arc::new(cat), ClassifierOptions::default());
        let f = one(&c, "SELECT name FROM deep");
        assert_eq!(f.kind, Kind::Read);
        let out: Vec<String> = f.output_columns.iter().map(|c| c.to_string()).collect();
        assert_eq!(out, ["public.deep.name"]);
    });
}

/// `c{i}` joins `c{i-1}` with itself and selects `*`: each link doubles the columns.
fn doubling_ctes(n: usize, tail: &str) -> String {
    let mut parts = vec!["c0 AS (SELECT id, name FROM products)".to_string()];
    for i in 1..=n {
        parts.push(format!(
            "c{i} AS (SELECT * FROM c{} x JOIN c{} y USING (id))",
            i - 1,
            i - 1
        ));
    }
    format!("WITH {} SELECT {tail} FROM c{n}", parts.join(", "))
}

#[test]
fn a_result_wider_than_the_server_allows_is_held_without_expanding_it() {
    let c = classifier();
    // 2^40 + 1 columns if expanded: without the cap this never finishes (nor fits in memory).
    for tail in ["id", "*", "c40"] {
        let f = one(&c, &doubling_ctes(40, tail));
        assert_eq!(f.kind, super::super::Kind::Unknown, "{tail}: {f:#?}");
        assert!(
            f.label.contains("more than 1664 result columns"),
            "{tail}: {}",
            f.label
        );
    }
    // 2^9 + 1 = 513 columns (the analysis keeps both sides' `id` of a USING join: 1024):
    // within the server's limit, an ordinary read.
    let f = one(&c, &doubling_ctes(9, "*"));
    assert_eq!(f.kind, super::super::Kind::Read, "{f:#?}");
}

/// `SELECT a, a, … FROM x0, x1, …`: every name is resolved against every source. 16,000
/// relations by 200 names took minutes of quadratic merging before; the sources are now
/// capped, and what is within the cap is merged in linear time.
#[test]
fn many_names_over_many_relations_are_analyzed_in_bounded_time() {
    use super::super::Kind;
    let c = classifier();
    let from = |n: usize| {
        (0..n)
            .map(|i| format!("x{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let names = vec!["a"; 200].join(", ");
    let f = one(&c, &format!("SELECT {names} FROM {}", from(16_000)));
    assert_eq!(f.kind, Kind::Unknown, "{}", f.label);
    assert!(f.label.contains("more than 1000 relations"), "{}", f.label);
    assert!(f.tables_read.len() <= 1000, "{}", f.tables_read.len());
    // Within the cap: an ordinary read of every relation, each a possible home of `a`.
    let f = one(&c, &format!("SELECT {names} FROM {}", from(900)));
    assert_eq!(f.kind, Kind::Read, "{}", f.label);
    assert_eq!(f.tables_read.len(), 900);
    assert_eq!(f.output_columns.len(), 900);
}

/// A recursive CTE nested in the recursive term of another, `depth` times over. Each level's
/// lineage takes about nine rounds to settle, and every round of a level analyzes the levels
/// inside it again: the rounds multiply.
fn nested_recursive(depth: usize) -> String {
    let cols: Vec<String> = (1..=8).map(|i| format!("a{i}")).collect();
    let moved: Vec<String> = (1..=7).map(|i| format!("a{i}")).collect();
    let inner = if depth == 0 {
        "SELECT 1".to_owned()
    } else {
        nested_recursive(depth - 1)
    };
    format!(
        "WITH RECURSIVE r({}, n) AS (SELECT name, {}, 0 FROM products UNION ALL \
         SELECT '', {}, n + 1 FROM r WHERE n < 8 AND EXISTS ({inner})) SELECT a8 FROM r",
        cols.join(", "),
        ["''"; 7].join(", "),
        moved.join(", "),
    )
}

/// Nested recursive CTEs cost rounds to the power of the depth: about 2 KB of them kept a
/// session thread (and every session on it) busy for minutes while memory grew by gigabytes.
/// A statement's analysis now has a work budget; past it, the statement is held as not
/// understood, and shallow nesting is still analyzed to the end.
#[test]
fn nested_recursive_ctes_are_analyzed_within_a_budget() {
    use super::super::Kind;
    let c = classifier();
    for depth in [1, 2, 3] {
        let f = one(&c, &nested_recursive(depth));
        assert_eq!(f.kind, Kind::Read, "depth {depth}: {}", f.label);
        let out: Vec<String> = f.output_columns.iter().map(|c| c.to_string()).collect();
        assert_eq!(out, ["public.products.name"], "depth {depth}");
    }
    for depth in [6, 10] {
        let sql = nested_recursive(depth);
        let f = one(&c, &sql);
        assert_eq!(f.kind, Kind::Unknown, "depth {depth}: {}", f.label);
        assert!(f.label.contains("too complex to analyze"), "{}", f.label);
    }
}

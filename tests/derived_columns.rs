//! A subquery's unaliased columns are named by the server (`?column?`, `case`, a type, field
//! or function name), and a query outside may select them by that name. Whatever the name,
//! the PII inside must be found: each expression below is first shown, directly against the
//! server, to hand a secret to an outer query through its server-given name; through the
//! gateway the same outer query must not.

mod common;

use common::*;

/// Expressions over `customers c` that carry a secret of customer 3.
const EXPRESSIONS: &[&str] = &[
    "c.ssn COLLATE \"C\"",
    "c.email || ''",
    "'x' || c.ssn",
    "CASE WHEN true THEN c.ssn END",
    "CASE WHEN true THEN c.ssn ELSE 'x'::text END",
    "CASE WHEN true THEN c.ssn ELSE (SELECT 'x') END",
    "CASE WHEN false THEN 'x' ELSE c.email END",
    "(c.phone || '')::text",
    "CAST(c.phone || '' AS varchar(20))",
    "(c.ssn || '')::character varying",
    "(c.ssn || '')::char(20)",
    "(c.ssn || '')::integer",
    "(c.ssn || '')::bigint",
    "(c.ssn || '')::numeric(12, 0)",
    "(c.ssn || '')::double precision",
    "(c.ssn || '')::name",
    "encode((c.ssn || '')::bytea, 'escape')",
    "(c.ssn || '')::json",
    "('{' || c.ssn || '}')::text[]",
    "c.ssn::text::varchar",
    "(c).ssn",
    "(c).ssn || ''",
    "trim(c.email)",
    "trim(leading 'x' from c.ssn)",
    "trim(trailing 'x' from c.ssn)",
    "substring(c.ssn from 1 for 9)",
    "position('1' in c.ssn) || c.ssn",
    "(SELECT c.ssn)",
    "(SELECT c.ssn || '')",
    "(SELECT c.ssn UNION SELECT NULL LIMIT 1)",
    "ARRAY[c.ssn]",
    "(c.ssn, 1)",
    "ROW(c.ssn)",
    "coalesce(c.ssn, '')",
    "nullif(c.ssn, '')",
    "greatest(c.ssn, '')",
    "lower(c.email)",
    "c.email COLLATE \"C\" || ''",
];

#[test]
fn server_given_names_do_not_launder_pii_out_of_subqueries() {
    let db = TestDb::new("derived_names");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let secrets: Vec<String> = db
        .exec("SELECT email, ssn, phone FROM customers WHERE id = 3")
        .trim()
        .split('|')
        .map(str::to_string)
        .collect();
    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    gw.auto_deny("alice");
    let url = gw.url(&db.name);
    for e in EXPRESSIONS {
        // The server's name for the column: psql's unaligned header line.
        let head = psql(
            &db.direct_url(),
            &["-A", "-c", &format!("SELECT {e} FROM customers c LIMIT 0")],
            None,
        );
        let name = stdout(&head).lines().next().unwrap_or_default().to_string();
        assert!(!name.is_empty(), "{e}: {}", stderr(&head));
        let outer =
            format!("SELECT \"{name}\" FROM (SELECT {e} FROM customers c WHERE c.id = 3) s");
        let direct = stdout(&psql(&db.direct_url(), &["-At", "-c", &outer], None));
        assert!(
            secrets.iter().any(|s| direct.contains(s.as_str())),
            "{outer}: directly, no secret comes back, so this case tests nothing: {direct}"
        );
        let through = psql(&url, &["-At", "-c", &outer], None);
        let out = stdout(&through);
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "{outer}: {s} came back: {out}");
        }
        assert!(!through.status.success(), "{outer}: allowed");
    }
    // Copying through a server-given name is held too.
    let copy = "INSERT INTO products(name, price) SELECT \"?column?\", 0 FROM (SELECT ssn || '|' || email FROM customers WHERE id = 3) s";
    let through = psql(&url, &["-At", "-c", copy], None);
    assert!(!through.status.success(), "{}", stdout(&through));
    let stored = db.exec("SELECT count(*) FROM products WHERE price = 0");
    assert_eq!(stored.trim(), "0");
    // A subquery's columns are still readable by their names when they carry no PII.
    let plain = psql(
        &url,
        &[
            "-At",
            "-c",
            "SELECT \"?column?\" FROM (SELECT c.id + 100 FROM customers c WHERE c.id = 3) s",
        ],
        None,
    );
    assert_eq!(stdout(&plain).trim(), "103", "{}", stderr(&plain));
}

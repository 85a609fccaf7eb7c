//! Session-dependent classification: PREPARE/EXECUTE/DEALLOCATE, DISCARD ALL, SET search_path.

use super::super::{Classifier, Deferred, Kind, SessionSqlState, UNVOUCHED_FETCH};
use super::{classifier, cols, sorted};

/// Plays the server confirming every forgetting effect classified so far.
fn confirm_all(s: &mut SessionSqlState) {
    for d in s.take_deferred() {
        s.confirm(&d);
    }
}

#[test]
fn execute_takes_the_facts_of_what_was_prepared() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    let p = c.classify_in_session(
        &mut s,
        "PREPARE q(int) AS SELECT ssn FROM customers WHERE id = $1",
    );
    assert_eq!(p.statements[0].kind, Kind::Read);
    let e = c.classify_in_session(&mut s, "EXECUTE q(1)");
    let f = &e.statements[0];
    assert_eq!(f.kind, Kind::Read);
    assert_eq!(sorted(&f.output_columns), cols(&["customers.ssn"]));
    assert_eq!(f.label, "EXECUTE q: SELECT");
    // Without the session, the same text is unknown: held.
    assert_eq!(c.classify("EXECUTE q(1)").statements[0].kind, Kind::Unknown);
}

#[test]
fn execute_of_an_unknown_name_is_unknown() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    let e = c.classify_in_session(&mut s, "EXECUTE nope");
    assert_eq!(e.statements[0].kind, Kind::Unknown);
    assert!(
        e.statements[0].label.contains("not prepared"),
        "{}",
        e.statements[0].label
    );
}

#[test]
fn names_are_folded_like_identifiers() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "PREPARE MyQ AS DELETE FROM orders");
    let e = c.classify_in_session(&mut s, "execute myq");
    assert_eq!(e.statements[0].kind, Kind::Write);
    assert!(e.statements[0].flags.unbounded_write);
    let e = c.classify_in_session(&mut s, "EXECUTE \"MyQ\"");
    assert_eq!(e.statements[0].kind, Kind::Unknown);
}

#[test]
fn prepare_and_execute_in_one_text() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    let cl = c.classify_in_session(
        &mut s,
        "PREPARE d AS DELETE FROM orders WHERE id = $1; EXECUTE d(5)",
    );
    let kinds: Vec<Kind> = cl.statements.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![Kind::Write, Kind::Write]);
    assert_eq!(
        sorted(&cl.statements[1].tables_written),
        vec!["public.orders"]
    );
}

#[test]
fn a_redefined_name_is_judged_by_every_definition() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    // The second PREPARE fails upstream (the name exists), so EXECUTE runs the first: the
    // classifier cannot know which one the server kept and assumes the worst of both.
    c.classify_in_session(&mut s, "PREPARE x AS DROP TABLE orders");
    c.classify_in_session(&mut s, "PREPARE x AS SELECT 1");
    let e = c.classify_in_session(&mut s, "EXECUTE x");
    assert_eq!(e.statements[0].kind, Kind::Ddl);
    // DEALLOCATE forgets once it ran; the name is unknown again.
    c.classify_in_session(&mut s, "DEALLOCATE x");
    confirm_all(&mut s);
    assert_eq!(
        c.classify_in_session(&mut s, "EXECUTE x").statements[0].kind,
        Kind::Unknown
    );
}

#[test]
fn deallocate_all_and_discard_all_forget_everything() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "PREPARE a AS SELECT 1; PREPARE b AS SELECT 2");
    assert_eq!(s.prepared.len(), 2);
    c.classify_in_session(&mut s, "DEALLOCATE ALL");
    assert_eq!(s.prepared.len(), 2, "forgotten before the server confirmed");
    confirm_all(&mut s);
    assert!(s.prepared.is_empty());
    c.classify_in_session(&mut s, "PREPARE a AS SELECT 1");
    let d = c.classify_in_session(&mut s, "DISCARD ALL");
    assert_eq!(d.statements[0].kind, Kind::Role);
    assert_eq!(s.prepared.len(), 1);
    confirm_all(&mut s);
    assert!(s.prepared.is_empty());
}

#[test]
fn explain_analyze_execute_runs_the_prepared_statement() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "PREPARE q AS SELECT * FROM customers");
    let e = c.classify_in_session(&mut s, "EXPLAIN ANALYZE EXECUTE q");
    let f = &e.statements[0];
    assert_eq!(f.kind, Kind::Write);
    assert!(f.flags.explain_analyze);
    assert!(f.output_columns.is_empty());
    let e = c.classify_in_session(&mut s, "EXPLAIN EXECUTE q");
    assert_eq!(e.statements[0].kind, Kind::Read);
    assert!(!e.statements[0].flags.explain_analyze);
}

#[test]
fn execute_parameters_are_checked_too() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "PREPARE q(text) AS SELECT $1");
    let e = c.classify_in_session(&mut s, "EXECUTE q(pg_read_file('/etc/passwd'))");
    assert!(e.statements[0].flags.unsafe_function);
    assert!(e.statements[0]
        .functions
        .iter()
        .any(|f| f == "pg_read_file"));
}

#[test]
fn search_path_changes_resolution_for_the_rest_of_the_session() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    let set = c.classify_in_session(&mut s, "SET search_path TO app, public");
    assert_eq!(
        set.statements[0].kind,
        Kind::Unknown,
        "not an allowed setting by default"
    );
    assert_eq!(s.search_path, vec!["app", "public"]);
    // The SET may yet be refused: until the session confirms it, names resolve both ways.
    let r = c.classify_in_session(&mut s, "SELECT ssn FROM customers");
    assert_eq!(
        sorted(&r.statements[0].tables_read),
        vec!["app.customers", "public.customers"]
    );
    assert!(sorted(&r.statements[0].output_columns).contains(&"public.customers.ssn".to_string()));
    s.confirm_search_path(vec!["app".into(), "public".into()]);
    let r = c.classify_in_session(&mut s, "SELECT * FROM customers");
    assert_eq!(sorted(&r.statements[0].tables_read), vec!["app.customers"]);
    assert_eq!(
        sorted(&r.statements[0].output_columns),
        vec!["app.customers.id", "app.customers.nickname"]
    );
    // Within one text, statements after the SET resolve with the new path as well.
    let mut s = SessionSqlState::new(c.catalog());
    let cl = c.classify_in_session(
        &mut s,
        "SELECT * FROM customers; SET search_path = app; SELECT * FROM customers",
    );
    assert_eq!(
        sorted(&cl.statements[0].tables_read),
        vec!["public.customers"]
    );
    assert_eq!(
        sorted(&cl.statements[2].tables_read),
        vec!["app.customers", "public.customers"]
    );
    // RESET and DEFAULT go back to the server default (once confirmed).
    c.classify_in_session(&mut s, "RESET search_path");
    assert_eq!(s.search_path, vec!["public"]);
    c.classify_in_session(&mut s, "SET search_path = 'App'");
    assert_eq!(s.search_path, vec!["App"]);
    c.classify_in_session(&mut s, "SET search_path TO DEFAULT");
    assert_eq!(s.search_path, vec!["public"]);
}

#[test]
fn user_in_a_search_path_is_the_upstream_role() {
    // The server reads `$user` as the role's name whenever it looks a name up; the gateway
    // knows the role from the catalog snapshot.
    let mut catalog = super::demo_catalog();
    catalog.user = Some("app".into());
    let c = Classifier::new(std::sync::Arc::new(catalog), Default::default());
    for set in [
        r#"SET search_path = "$user", public"#,
        "SET search_path TO '$user', public",
    ] {
        let mut s = SessionSqlState::new(c.catalog());
        c.classify_in_session(&mut s, set);
        assert_eq!(s.search_path, vec!["app", "public"], "{set}");
        s.confirm_search_path(s.search_path.clone());
        let r = c.classify_in_session(&mut s, "SELECT * FROM customers");
        assert_eq!(
            sorted(&r.statements[0].tables_read),
            vec!["app.customers"],
            "{set}"
        );
    }
    // Only the whole entry: a schema whose name merely contains it is itself.
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, r#"SET search_path = "$user_x", public"#);
    assert_eq!(s.search_path, vec!["$user_x", "public"]);
    // A catalog that does not know the role (built by hand) leaves the entry naming nothing.
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, r#"SET search_path = "$user", public"#);
    assert_eq!(s.search_path, vec!["$user", "public"]);
}

/// The facts of `SELECT id FROM orders` in a new session after `texts`.
fn orders_after(c: &Classifier, texts: &[impl AsRef<str>]) -> super::super::Facts {
    let mut s = SessionSqlState::new(c.catalog());
    for t in texts {
        c.classify_in_session(&mut s, t.as_ref());
    }
    c.classify_in_session(&mut s, "SELECT id FROM orders")
        .statements[0]
        .clone()
}

#[test]
fn user_in_a_search_path_with_a_role_change_holds_everything() {
    let mut catalog = super::demo_catalog();
    catalog.user = Some("app".into());
    let c = Classifier::new(std::sync::Arc::new(catalog), Default::default());
    // Either order, in one text or two: after `SET ROLE`, `$user` is a role the state does
    // not know. The path naming the role outright is not affected.
    for texts in [
        &[r#"SET search_path = "$user", public"#, "SET ROLE other"][..],
        &["SET ROLE other", r#"SET search_path = "$user", public"#],
        &[r#"SET ROLE other; SET search_path = "$user""#],
        // The same path as the default: no other path to merge with.
        &[r#"SET search_path = "$user""#, "RESET ROLE"],
    ] {
        let f = orders_after(&c, texts);
        assert_eq!(f.kind, Kind::Unknown, "{texts:?}: {}", f.label);
    }
    for texts in [
        &["SET search_path = app, public", "SET ROLE other"][..],
        &[
            r#"SET search_path = "$user", public"#,
            "SET application_name = 'x'",
        ],
    ] {
        let f = orders_after(&c, texts);
        assert_eq!(f.kind, Kind::Read, "{texts:?}: {}", f.label);
    }
}

#[test]
fn too_many_temporary_relations_hold_everything() {
    let c = classifier();
    let texts: Vec<String> = (0..70)
        .map(|i| format!("CREATE TEMP TABLE t{i} (x int)"))
        .collect();
    let f = orders_after(&c, &texts);
    assert_eq!(f.kind, Kind::Unknown, "{}", f.label);
}

#[test]
fn a_temporary_relation_renamed_to_a_catalog_name_shadows_it() {
    let c = classifier();
    let made = "CREATE TEMP VIEW x AS SELECT id, ssn AS name FROM customers";
    // Read by sqlparser: the new name is the session's from then on.
    for rename in [
        "ALTER TABLE x RENAME TO products",
        "ALTER TABLE IF EXISTS pg_temp.x RENAME TO products",
        "ALTER INDEX x RENAME TO products",
        // Not read by sqlparser: the new name is taken from the tokens.
        "ALTER VIEW x RENAME TO products",
        "ALTER VIEW IF EXISTS x RENAME TO \"products\"",
        "ALTER SEQUENCE x RENAME TO products",
        "ALTER MATERIALIZED VIEW x RENAME TO products",
    ] {
        let f = orders_after(&c, &[made, rename]);
        assert_eq!(f.kind, Kind::Read, "{rename}: other names are unaffected");
        let mut s = SessionSqlState::new(c.catalog());
        c.classify_in_session(&mut s, made);
        c.classify_in_session(&mut s, rename);
        let f = &c
            .classify_in_session(&mut s, "SELECT name FROM products")
            .statements[0];
        assert_eq!(f.kind, Kind::Unknown, "{rename}: {}", f.label);
    }
    // A RENAME whose new name cannot be read: nothing can be resolved.
    for rename in [
        "ALTER VIEW x RENAME COLUMN name TO nom",
        "ALTER TABLE x RENAME TO U&\"pr\\006Fducts\"",
        "ALTER VIEW x RENAME TO U&\"pr\\006Fducts\"",
    ] {
        let f = orders_after(&c, &[made, rename]);
        assert_eq!(f.kind, Kind::Unknown, "{rename}: {}", f.label);
    }
    // A CREATE that makes a temporary relation under only one of the paths the server may
    // have (a SET that a ROLLBACK may have undone) counts.
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "SET search_path = pg_temp, public");
    c.classify_in_session(&mut s, "SET search_path = public");
    c.classify_in_session(
        &mut s,
        "CREATE VIEW products AS SELECT id, ssn AS name FROM customers",
    );
    let f = &c
        .classify_in_session(&mut s, "SELECT name FROM products")
        .statements[0];
    assert_eq!(f.kind, Kind::Unknown, "{}", f.label);
    // Nor need `pg_temp` lead the path: the server creates in the first schema that exists.
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "SET search_path = nosuch, pg_temp, public");
    c.classify_in_session(&mut s, "CREATE VIEW products AS SELECT 1 AS name");
    let f = &c
        .classify_in_session(&mut s, "SELECT name FROM products")
        .statements[0];
    assert_eq!(f.kind, Kind::Unknown, "{}", f.label);
    // Without temporary relations, or renaming the catalog's own, a rename shadows nothing.
    for texts in [
        &[
            "ALTER VIEW x RENAME TO orders2",
            "ALTER VIEW x RENAME COLUMN a TO b",
        ][..],
        &[made, "ALTER TABLE public.customers RENAME TO orders2"],
    ] {
        let mut s = SessionSqlState::new(c.catalog());
        for t in texts {
            c.classify_in_session(&mut s, t);
        }
        let f = &c
            .classify_in_session(&mut s, "SELECT name FROM products")
            .statements[0];
        assert_eq!(f.kind, Kind::Read, "{texts:?}: {}", f.label);
    }
}

#[test]
fn too_many_unconfirmed_search_paths_hold_everything() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    for p in ["a", "b", "c", "d", "e"] {
        c.classify_in_session(&mut s, &format!("SET search_path = {p}"));
    }
    assert!(s.search_path_lost);
    let r = c.classify_in_session(&mut s, "SELECT 1");
    assert_eq!(r.statements[0].kind, Kind::Unknown);
    s.confirm_search_path(vec!["public".into()]);
    let r = c.classify_in_session(&mut s, "SELECT 1");
    assert_eq!(r.statements[0].kind, Kind::Read);
}

#[test]
fn declared_cursor_is_classified_by_its_query_in_session_too() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    let cl = c.classify_in_session(&mut s, "BEGIN; DECLARE cur CURSOR FOR SELECT ssn FROM customers; FETCH 10 FROM cur; CLOSE cur; COMMIT");
    let kinds: Vec<Kind> = cl.statements.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![Kind::Txn, Kind::Read, Kind::Read, Kind::Read, Kind::Txn]
    );
    assert_eq!(
        sorted(&cl.statements[1].output_columns),
        cols(&["customers.ssn"])
    );
}

#[test]
fn prepare_under_an_uncertain_path_covers_every_path() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "SET search_path = app");
    c.classify_in_session(&mut s, "PREPARE q AS SELECT * FROM customers");
    s.confirm_search_path(vec!["app".into()]);
    // The server may have prepared it under either path.
    let e = c.classify_in_session(&mut s, "EXECUTE q");
    let read = sorted(&e.statements[0].tables_read);
    assert_eq!(read, vec!["app.customers", "public.customers"]);
}

#[test]
fn execute_after_the_path_changed_is_unknown() {
    // The server analyses a prepared statement again under the path it has at EXECUTE.
    let c = classifier();
    for between in [
        "SET search_path = app, public",
        "CREATE TEMP VIEW products AS SELECT 1 AS name",
    ] {
        let mut s = SessionSqlState::new(c.catalog());
        c.classify_in_session(&mut s, "PREPARE q AS SELECT name FROM products");
        let e = c.classify_in_session(&mut s, "EXECUTE q");
        assert_eq!(e.statements[0].kind, Kind::Read, "{between}");
        c.classify_in_session(&mut s, between);
        let e = c.classify_in_session(&mut s, "EXECUTE q");
        assert_eq!(e.statements[0].kind, Kind::Unknown, "{between}");
        // Prepared again under the new path, it is known again.
        c.classify_in_session(&mut s, "DEALLOCATE q");
        confirm_all(&mut s);
        c.classify_in_session(&mut s, "PREPARE q AS SELECT id FROM orders");
        let e = c.classify_in_session(&mut s, "EXECUTE q");
        assert_eq!(e.statements[0].kind, Kind::Read, "{between}");
    }
}

#[test]
fn create_table_as_execute_is_unknown_and_tracks_a_temporary_table() {
    // sqlparser does not read `CREATE TABLE … AS EXECUTE`: it copies what the prepared
    // statement returns, so it is never a plain CREATE.
    let c = classifier();
    let prep = "PREPARE q AS SELECT ssn AS name FROM customers";
    for (create, shadows) in [
        ("CREATE TEMP TABLE products AS EXECUTE q", true),
        (
            "CREATE TEMPORARY TABLE IF NOT EXISTS products AS EXECUTE q",
            true,
        ),
        ("CREATE TABLE pg_temp.products AS EXECUTE q", true),
        ("CREATE TABLE copy AS EXECUTE q", false),
    ] {
        let mut s = SessionSqlState::new(c.catalog());
        c.classify_in_session(&mut s, prep);
        let f = &c.classify_in_session(&mut s, create).statements[0];
        assert_eq!(f.kind, Kind::Unknown, "{create}");
        assert!(f.flags.creates_table, "{create}");
        let f = &c
            .classify_in_session(&mut s, "SELECT name FROM products")
            .statements[0];
        let expected = if shadows { Kind::Unknown } else { Kind::Read };
        assert_eq!(f.kind, expected, "{create}: {}", f.label);
    }
}

#[test]
fn declared_cursor_names_are_kept_until_closed() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    let d = c.classify_in_session(
        &mut s,
        "DECLARE Cur CURSOR WITH HOLD FOR SELECT id FROM orders",
    );
    assert_eq!(d.statements[0].kind, Kind::Read);
    assert!(s.cursors.contains_key("cur"), "{:?}", s.cursors);
    c.classify_in_session(&mut s, "DECLARE \"Other\" CURSOR FOR SELECT 1");
    assert!(s.cursors.contains_key("Other"), "{:?}", s.cursors);
    c.classify_in_session(&mut s, "CLOSE cur");
    assert!(s.cursors.contains_key("cur"), "closed before it ran");
    confirm_all(&mut s);
    assert!(!s.cursors.contains_key("cur"), "{:?}", s.cursors);
    assert!(s.cursors.contains_key("Other"), "{:?}", s.cursors);
    // EXPLAIN plans the query and opens nothing.
    c.classify_in_session(&mut s, "EXPLAIN DECLARE x CURSOR FOR SELECT 1");
    assert!(!s.cursors.contains_key("x"), "{:?}", s.cursors);
    c.classify_in_session(&mut s, "CLOSE ALL");
    confirm_all(&mut s);
    assert!(s.cursors.is_empty(), "{:?}", s.cursors);
    c.classify_in_session(&mut s, "DECLARE y CURSOR FOR SELECT 1");
    c.classify_in_session(&mut s, "DISCARD ALL");
    assert!(s.cursors.contains_key("y"));
    confirm_all(&mut s);
    assert!(s.cursors.is_empty(), "{:?}", s.cursors);
}

/// A DEALLOCATE held and withdrawn, or refused, never runs: the name keeps its definition, and a
/// PREPARE of it the server refuses (the name is taken) cannot make EXECUTE look harmless.
#[test]
fn an_unconfirmed_deallocate_forgets_nothing() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(
        &mut s,
        "PREPARE p2 AS SELECT ssn FROM customers WHERE id = $1",
    );
    c.classify_in_session(&mut s, "DEALLOCATE p2");
    let withdrawn = s.take_deferred();
    assert_eq!(
        withdrawn,
        vec![Deferred::Deallocate {
            name: Some("p2".into()),
            upto: 2
        }]
    );
    assert_eq!(withdrawn[0].command_tag(), "DEALLOCATE");
    c.classify_in_session(&mut s, "PREPARE p2 AS SELECT $1::int");
    let e = c.classify_in_session(&mut s, "EXECUTE p2(1)");
    assert_eq!(
        sorted(&e.statements[0].output_columns),
        cols(&["customers.ssn"])
    );
    // CLOSE and DISCARD ALL alike.
    c.classify_in_session(&mut s, "DECLARE k CURSOR WITH HOLD FOR SELECT 1");
    c.classify_in_session(&mut s, "CLOSE k; CLOSE ALL; DISCARD ALL; DEALLOCATE ALL");
    let tags: Vec<&str> = s.take_deferred().iter().map(|d| d.command_tag()).collect();
    assert_eq!(
        tags,
        [
            "DECLARE CURSOR",
            "CLOSE CURSOR",
            "CLOSE CURSOR ALL",
            "DISCARD ALL",
            "DEALLOCATE ALL"
        ]
    );
    assert!(s.cursors.contains_key("k"));
    assert!(s.prepared.contains_key("p2"));
}

/// `DEALLOCATE p; PREPARE p AS …`: confirming the DEALLOCATE removes only the definitions
/// classified before it, so the new one is what EXECUTE is judged by.
#[test]
fn a_confirmed_deallocate_keeps_later_definitions() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "PREPARE p AS SELECT ssn FROM customers");
    c.classify_in_session(&mut s, "DEALLOCATE p; PREPARE p AS SELECT id FROM orders");
    // The same text again after a DEALLOCATE is a new definition too.
    c.classify_in_session(&mut s, "DEALLOCATE p; PREPARE p AS SELECT id FROM orders");
    confirm_all(&mut s);
    let e = c.classify_in_session(&mut s, "EXECUTE p");
    assert_eq!(sorted(&e.statements[0].tables_read), vec!["public.orders"]);
    c.classify_in_session(&mut s, "CLOSE ALL; DECLARE q CURSOR WITH HOLD FOR SELECT 1");
    confirm_all(&mut s);
    assert!(s.cursors.contains_key("q"));
}

/// The gate judges a Bind of the unnamed statement with too many candidate texts as this.
#[test]
fn execute_of_the_empty_name_is_unknown() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    let e = c.classify_in_session(&mut s, "EXECUTE \"\"");
    assert_eq!(e.statements[0].kind, Kind::Unknown);
}

/// A temporary relation shadows the catalog's of the same name for unqualified names, and the
/// snapshot knows nothing of its columns: once the session may have one, a statement that
/// reads or writes it is held as not understood, whatever it seems to read.
#[test]
fn temporary_relations_shadow_the_catalog() {
    let c = classifier();
    let creations = [
        "CREATE TEMP VIEW products AS SELECT id, ssn AS name FROM customers",
        "CREATE TEMPORARY TABLE products (id int, name text)",
        "CREATE TABLE pg_temp.products AS SELECT id, ssn AS name FROM customers",
        "SELECT id, ssn AS name INTO TEMP products FROM customers",
        "CREATE TEMP SEQUENCE products",
    ];
    for create in creations {
        let mut s = SessionSqlState::new(c.catalog());
        // Before: an ordinary read of the catalog's products.
        let before = c.classify_in_session(&mut s, "SELECT name FROM products");
        assert_eq!(before.statements[0].kind, Kind::Read, "{create}");
        let made = c.classify_in_session(&mut s, create);
        let target: Vec<String> = made.statements[0]
            .tables_written
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert!(
            target.contains(&"pg_temp.products".to_owned()),
            "{create}: {target:?}"
        );
        for sql in [
            "SELECT name FROM products",
            "SELECT * FROM products",
            "INSERT INTO products VALUES (1, 'x')",
            "COPY products TO STDOUT",
            "SELECT p.name FROM orders o JOIN products p ON p.id = o.id",
        ] {
            let f = &c.classify_in_session(&mut s, sql).statements[0];
            assert_eq!(f.kind, Kind::Unknown, "{create}; {sql}: {}", f.label);
            assert!(
                f.label.contains("temporary relation products"),
                "{}",
                f.label
            );
        }
        // Qualified, the catalog's table is meant.
        let f = &c
            .classify_in_session(&mut s, "SELECT name FROM public.products")
            .statements[0];
        assert_eq!(f.kind, Kind::Read, "{create}");
        // Other names are unaffected.
        let f = &c
            .classify_in_session(&mut s, "SELECT id FROM orders")
            .statements[0];
        assert_eq!(f.kind, Kind::Read, "{create}");
    }
    // The temporary schema named outright is never in the snapshot either.
    let mut s = SessionSqlState::new(c.catalog());
    for sql in [
        "SELECT * FROM pg_temp.x",
        "SELECT * FROM pg_temp_3.products",
    ] {
        let f = &c.classify_in_session(&mut s, sql).statements[0];
        assert_eq!(f.kind, Kind::Unknown, "{sql}: {}", f.label);
    }
    // A view over a temporary relation is temporary too.
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "CREATE TEMP TABLE t (a text)");
    c.classify_in_session(&mut s, "CREATE VIEW orders AS SELECT a FROM t");
    let f = &c
        .classify_in_session(&mut s, "SELECT * FROM orders")
        .statements[0];
    assert_eq!(f.kind, Kind::Unknown, "{}", f.label);
    // With pg_temp first in the search path an unqualified CREATE is temporary.
    let mut s = SessionSqlState::new(c.catalog());
    s.confirm_search_path(vec!["pg_temp".into(), "public".into()]);
    c.classify_in_session(&mut s, "CREATE TABLE customers_copy (a text)");
    let f = &c
        .classify_in_session(&mut s, "SELECT * FROM customers_copy")
        .statements[0];
    assert_eq!(f.kind, Kind::Unknown, "{}", f.label);
    // In one text, the statements after the CREATE already see it.
    let mut s = SessionSqlState::new(c.catalog());
    let both = c.classify_in_session(
        &mut s,
        "CREATE TEMP VIEW products AS SELECT ssn AS name FROM customers; SELECT name FROM products",
    );
    assert_eq!(both.statements[1].kind, Kind::Unknown);
}

/// A cursor the session never declared hides its query (a refcursor a function returned),
/// so reading it is not a plain read; a declared one is read as its DECLARE was decided.
#[test]
fn fetch_from_a_cursor_the_session_did_not_declare_is_not_a_read() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    for sql in [
        "FETCH ALL FROM \"<unnamed portal 1>\"",
        "FETCH 10 FROM c",
        "FETCH c",
        "FETCH FORWARD 5 c",
        "fetch next in C",
    ] {
        let f = &c.classify_in_session(&mut s, sql).statements[0];
        assert_eq!(f.kind, Kind::Unknown, "{sql}");
        assert_eq!(f.label, UNVOUCHED_FETCH, "{sql}");
    }
    c.classify_in_session(&mut s, "DECLARE c CURSOR FOR SELECT id FROM orders");
    c.classify_in_session(&mut s, "DECLARE \"Odd\"\"Name\" CURSOR FOR SELECT 1");
    confirm_all(&mut s);
    for sql in [
        "FETCH 10 FROM c",
        "FETCH c",
        "FETCH FORWARD 5 c",
        "fetch next in C",
        "FETCH ALL FROM \"Odd\"\"Name\"",
        "FETCH \"Odd\"\"Name\"",
    ] {
        let f = &c.classify_in_session(&mut s, sql).statements[0];
        assert_eq!(f.kind, Kind::Read, "{sql}");
    }
    // Once a CLOSE is classified, the name is not vouched for, whether or not it runs; the
    // other names are.
    c.classify_in_session(&mut s, "CLOSE c");
    let f = &c
        .classify_in_session(&mut s, "FETCH \"Odd\"\"Name\"")
        .statements[0];
    assert_eq!(f.kind, Kind::Read);
    let f = &c.classify_in_session(&mut s, "FETCH c").statements[0];
    assert_eq!(f.kind, Kind::Unknown);
    // Same letters, other case: another cursor.
    c.classify_in_session(&mut s, "DECLARE c CURSOR FOR SELECT id FROM orders");
    confirm_all(&mut s);
    let f = &c.classify_in_session(&mut s, "FETCH \"C\"").statements[0];
    assert_eq!(f.kind, Kind::Unknown);
}

/// The kind of the first statement of `sql`, classified in session `s`.
fn kind_of(c: &Classifier, s: &mut SessionSqlState, sql: &str) -> Kind {
    c.classify_in_session(s, sql).statements[0].kind
}

/// What a FETCH reads must be the cursor the session declared: a DECLARE that never ran
/// (refused, withdrawn, failed) vouches for nothing, and a function the policy lists as safe
/// could open a refcursor under the name.
#[test]
fn a_declare_the_server_did_not_confirm_vouches_for_nothing() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "DECLARE leak CURSOR FOR SELECT ssn FROM customers");
    // Refused: the session drops its effects.
    let dropped = s.take_deferred();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].command_tag(), "DECLARE CURSOR");
    let f = &c
        .classify_in_session(&mut s, "FETCH ALL FROM leak")
        .statements[0];
    assert_eq!(f.kind, Kind::Unknown);
    assert_eq!(f.label, UNVOUCHED_FETCH);
    // In the text that declares it, a FETCH after the DECLARE runs only if the DECLARE did.
    let both = c.classify_in_session(
        &mut s,
        "DECLARE mine CURSOR FOR SELECT id FROM orders; FETCH 1 FROM mine",
    );
    assert_eq!(both.statements[1].kind, Kind::Read);
    let mut unconfirmed = s.clone();
    assert_eq!(
        kind_of(&c, &mut unconfirmed, "FETCH 1 FROM mine"),
        Kind::Unknown,
        "not confirmed yet"
    );
    confirm_all(&mut s);
    assert_eq!(kind_of(&c, &mut s, "FETCH 1 FROM mine"), Kind::Read);
}

/// A cursor without WITH HOLD closes with its transaction, and `ROLLBACK TO SAVEPOINT` closes
/// the cursors opened since: the name is free for a refcursor, in the same text or later.
#[test]
fn a_cursor_is_not_vouched_for_after_its_transaction_or_savepoint_ends() {
    let c = classifier();
    for ends in [
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "ROLLBACK TO SAVEPOINT s",
        "ROLLBACK TO s",
        "COMMIT AND CHAIN",
        "PREPARE TRANSACTION 'x'",
    ] {
        let mut s = SessionSqlState::new(c.catalog());
        let text = format!(
            "BEGIN; SAVEPOINT s; DECLARE leak CURSOR FOR SELECT 1; {ends}; BEGIN; FETCH ALL FROM leak"
        );
        let cl = c.classify_in_session(&mut s, &text);
        assert_eq!(cl.statements[5].kind, Kind::Unknown, "{text}");
        // Confirmed in a transaction that a later text ends.
        c.classify_in_session(&mut s, "BEGIN; DECLARE leak CURSOR FOR SELECT 1");
        confirm_all(&mut s);
        assert_eq!(
            kind_of(&c, &mut s, "FETCH ALL FROM leak"),
            Kind::Read,
            "{ends}"
        );
        c.classify_in_session(&mut s, ends);
        assert_eq!(
            kind_of(&c, &mut s, "FETCH ALL FROM leak"),
            Kind::Unknown,
            "{ends}"
        );
    }
    // Ended as the relay saw it (a ReadyForQuery outside a transaction, or a failed one).
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "DECLARE leak CURSOR FOR SELECT 1; SELECT 1");
    confirm_all(&mut s);
    s.transaction_ended(false);
    assert_eq!(kind_of(&c, &mut s, "FETCH ALL FROM leak"), Kind::Unknown);
    // A WITH HOLD cursor outlives a commit (the relay says whether it committed), not a
    // rollback.
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(&mut s, "DECLARE h CURSOR WITH HOLD FOR SELECT 1");
    s.transaction_ended(true);
    confirm_all(&mut s);
    for between in ["COMMIT", "BEGIN", "END", "SELECT 1"] {
        c.classify_in_session(&mut s, between);
        s.transaction_ended(true);
        assert_eq!(kind_of(&c, &mut s, "FETCH h"), Kind::Read, "{between}");
    }
    s.transaction_ended(false);
    assert_eq!(kind_of(&c, &mut s, "FETCH h"), Kind::Unknown);
    // What leaves a transaction open keeps the cursor.
    c.classify_in_session(&mut s, "BEGIN; DECLARE mine CURSOR FOR SELECT 1");
    confirm_all(&mut s);
    c.classify_in_session(
        &mut s,
        "SAVEPOINT a; RELEASE SAVEPOINT a; SELECT now(), id FROM orders",
    );
    assert_eq!(kind_of(&c, &mut s, "FETCH ALL FROM mine"), Kind::Read);
}

/// A user-defined function, a write (its triggers) or anything held as unknown may close a
/// cursor and open another under its name.
#[test]
fn code_the_classifier_cannot_see_into_forgets_declared_cursors() {
    let c = classifier();
    for between in [
        "SELECT reopen('leak')",
        "SELECT public.anything(1)",
        "INSERT INTO orders (id) VALUES (1)",
        "DO $$ BEGIN END $$",
        "CALL p()",
    ] {
        let mut s = SessionSqlState::new(c.catalog());
        c.classify_in_session(&mut s, "BEGIN; DECLARE leak CURSOR FOR SELECT 1");
        confirm_all(&mut s);
        c.classify_in_session(&mut s, between);
        assert_eq!(
            kind_of(&c, &mut s, "FETCH ALL FROM leak"),
            Kind::Unknown,
            "{between}"
        );
        // And in one text.
        let text = format!("DECLARE leak CURSOR FOR SELECT 1; {between}; FETCH ALL FROM leak");
        let cl = c.classify_in_session(&mut s, &text);
        assert_eq!(cl.statements[2].kind, Kind::Unknown, "{text}");
    }
}

/// Portals and cursors share one namespace: a protocol Close of the name closes the cursor.
#[test]
fn a_protocol_close_of_the_name_forgets_the_cursor() {
    let c = classifier();
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(
        &mut s,
        "BEGIN; DECLARE c CURSOR FOR SELECT 1; DECLARE d CURSOR FOR SELECT 1",
    );
    confirm_all(&mut s);
    s.portal_closed("c");
    assert_eq!(kind_of(&c, &mut s, "FETCH c"), Kind::Unknown);
    let mut s = SessionSqlState::new(c.catalog());
    c.classify_in_session(
        &mut s,
        "BEGIN; DECLARE c CURSOR FOR SELECT 1; DECLARE d CURSOR FOR SELECT 1",
    );
    confirm_all(&mut s);
    s.portal_closed("c");
    assert_eq!(kind_of(&c, &mut s, "FETCH d"), Kind::Read);
}

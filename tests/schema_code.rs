//! What the schema puts behind a plain read that the statement does not show.
//!
//! Code: a view whose definition calls a function that writes, a row-level-security policy
//! calling one. The statement names no function, but the server calls it for every row, so
//! the gateway judges the read as a call to that function.
//!
//! Relations made on the server after the gateway read its catalog, outside it: a view over
//! PII is PII however new it is, so the gateway reads the catalog again before deciding.
//!
//! Operators and types: `a ~~~ b` calls the function behind a user-defined operator, and
//! converting a value to a domain (a cast, a declared parameter type) runs its CHECK.

mod common;

use airlock::policy::Action;
use common::*;

/// `note_row` writes to `journal`. `noted_items` calls it, `noted_again` reads that view,
/// `guarded` calls it from its SELECT policy; `plain_items` calls only harmless built-ins.
const SCHEMA: &str = "
CREATE TABLE journal (note text);
CREATE FUNCTION note_row(int) RETURNS int LANGUAGE sql VOLATILE
    AS $$ INSERT INTO journal VALUES ('read ' || $1) RETURNING $1 $$;
CREATE TABLE items (id int, name text);
INSERT INTO items VALUES (1, 'One'), (2, 'Two');
CREATE VIEW noted_items AS SELECT note_row(id) AS id, name FROM items;
CREATE VIEW noted_again AS SELECT name FROM noted_items;
CREATE VIEW plain_items AS SELECT id, lower(name) AS name FROM items;
CREATE TABLE guarded (id int);
INSERT INTO guarded VALUES (1);
ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
CREATE POLICY see ON guarded FOR SELECT USING (note_row(id) > 0);
";

fn journal(db: &TestDb) -> String {
    db.exec("SELECT count(*) FROM journal").trim().to_string()
}

/// The last audited decision on `sql`: its action and the functions its facts name.
fn decided(gw: &Gw, sql: &str) -> (Action, Vec<String>, bool) {
    let d = gw.last_decision(sql);
    let functions = d.facts.iter().flat_map(|f| f.functions.clone()).collect();
    let unsafe_function = d.facts.iter().any(|f| f.flags.unsafe_function);
    (d.decision.action, functions, unsafe_function)
}

/// `sql`, sent by the agent, is refused, and audited as a hold calling `function`.
fn held_as_calling(gw: &Gw, db: &TestDb, sql: &str, function: &str) {
    let (out, err) = agent_sql(gw, db, sql);
    assert!(
        out.is_empty() && err.contains("airlock"),
        "{sql}: expected a refusal, got out={out:?} err={err:?}"
    );
    let (action, functions, unsafe_function) = decided(gw, sql);
    assert_eq!(action, Action::Hold, "{sql}");
    assert!(unsafe_function, "{sql}");
    assert!(
        functions.contains(&function.to_string()),
        "{sql}: {functions:?}"
    );
}

/// What the facts of `d` name, as `schema.table` and `schema.table.column` strings.
fn tables_read(d: &airlock::audit::DecisionEntry) -> Vec<String> {
    d.facts
        .iter()
        .flat_map(|f| &f.tables_read)
        .map(|t| t.to_string())
        .collect()
}

fn output_columns(d: &airlock::audit::DecisionEntry) -> Vec<String> {
    d.facts
        .iter()
        .flat_map(|f| &f.output_columns)
        .map(|c| c.to_string())
        .collect()
}

/// A gateway with the demo policy as `edit` changes it (alice denies every hold); the
/// directory holds the policy file.
fn demo_gateway(edit: impl FnOnce(String) -> String) -> (tempfile::TempDir, Gw) {
    demo_gateway_approving(edit, |_| false)
}

/// As [`demo_gateway`], with alice approving the holds whose SQL `approve` accepts.
fn demo_gateway_approving(
    edit: impl FnOnce(String) -> String,
    approve: fn(&str) -> bool,
) -> (tempfile::TempDir, Gw) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    std::fs::write(&policy, edit(text)).unwrap();
    let gw = Gw::start(|c| c.policy.path = policy.clone());
    gw.auto_decide("alice", approve);
    (dir, gw)
}

#[test]
fn reads_that_run_a_writing_function_are_held() {
    let db = TestDb::new("schema_code");
    db.exec(SCHEMA);
    // The writes are real: directly, each read leaves rows in the journal (the policy binds
    // roles without BYPASSRLS, so it is shown as one).
    db.exec("SELECT * FROM noted_again");
    assert_eq!(journal(&db), "2", "the view's function ran once per row");
    // Roles are cluster-wide: this one is named after the test's database.
    let reader = format!("{}_reader", db.name);
    db.exec(&format!(
        "CREATE ROLE {reader}; GRANT SELECT ON guarded TO {reader}; \
         GRANT INSERT ON journal TO {reader}; \
         SET ROLE {reader}; SELECT count(*) FROM guarded; RESET ROLE"
    ));
    assert_eq!(journal(&db), "3", "the row-security policy's function ran");
    db.exec("TRUNCATE journal");

    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    gw.auto_deny("alice");
    for sql in [
        "SELECT * FROM noted_items",
        "SELECT name FROM noted_again",
        "SELECT count(*) FROM guarded",
    ] {
        held_as_calling(&gw, &db, sql, "public.note_row");
    }
    assert_eq!(journal(&db), "0", "nothing ran upstream");

    // A view calling only harmless built-ins is still a plain read.
    let (out, err) = agent_sql(&gw, &db, "SELECT * FROM plain_items ORDER BY id");
    assert_eq!(out.trim_end(), "1|one\n2|two", "{err}");
    let (action, _, unsafe_function) = decided(&gw, "SELECT * FROM plain_items ORDER BY id");
    assert_eq!(action, Action::Allow);
    assert!(!unsafe_function);
}

/// A function the policy declares harmless stays harmless when a view calls it.
#[test]
fn a_declared_function_behind_a_view_is_allowed() {
    let db = TestDb::new("schema_code_declared");
    db.exec(SCHEMA);
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("declared.toml");
    let shipped = std::fs::read_to_string(shipped_policy("demo.toml")).expect("demo.toml");
    assert!(
        !shipped.contains("[functions]"),
        "demo.toml declares no function"
    );
    let declared = format!("{shipped}\n[functions]\nsafe = [\"public.note_row\"]\n");
    std::fs::write(&policy, declared).expect("write policy");
    let gw = Gw::start(|c| c.policy.path = policy.clone());
    gw.auto_deny("alice");
    let sql = "SELECT name FROM noted_again ORDER BY name";
    let (out, err) = agent_sql(&gw, &db, sql);
    assert_eq!(out.trim_end(), "One\nTwo", "{err}");
    let (action, functions, unsafe_function) = decided(&gw, sql);
    assert_eq!(action, Action::Allow);
    assert!(!unsafe_function);
    assert!(functions.contains(&"public.note_row".to_string()));
    assert_eq!(
        journal(&db),
        "2",
        "the declared function ran, as the policy allows"
    );
}

/// Views made directly on the server after the gateway read its catalog snapshot are
/// decided with what they read and run, not as relations of unknown content.
#[test]
fn relations_made_outside_the_gateway_are_decided_with_what_they_are() {
    let db = TestDb::new("schema_late");
    db.exec(airlock::demo::DEMO_SCHEMA);
    db.exec(SCHEMA);
    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    gw.auto_deny("alice");
    // The first session reads the snapshot.
    let (out, err) = agent_sql(&gw, &db, "SELECT count(*) FROM items");
    assert_eq!(out.trim_end(), "2", "{err}");
    let emails = db.exec("SELECT email FROM customers ORDER BY id LIMIT 1");
    let emails = emails.trim();
    assert!(emails.contains('@'), "{emails}");

    db.exec(
        "CREATE VIEW late_emails AS SELECT id, email FROM customers; \
         CREATE SCHEMA late; CREATE VIEW late.contacts AS SELECT name, ssn FROM customers; \
         CREATE VIEW late_noted AS SELECT note_row(id) AS id FROM items; \
         CREATE TABLE late_notes (body text); INSERT INTO late_notes VALUES ('hello')",
    );
    for (sql, column) in [
        ("SELECT * FROM late_emails", "public.customers.email"),
        ("SELECT ssn FROM late.contacts", "public.customers.ssn"),
    ] {
        let (out, err) = agent_sql(&gw, &db, sql);
        assert!(
            !out.contains(emails) && out.is_empty() && err.contains("airlock"),
            "{sql}: expected a refusal, got out={out:?} err={err:?}"
        );
        let d = gw.last_decision(sql);
        assert_eq!(d.decision.action, Action::Hold, "{sql}");
        let outputs = output_columns(&d);
        assert!(outputs.contains(&column.to_string()), "{sql}: {outputs:?}");
    }
    // A late view that runs a writing function is held as calling it, and nothing ran.
    held_as_calling(&gw, &db, "SELECT * FROM late_noted", "public.note_row");
    assert_eq!(journal(&db), "0");
    // A late plain table is a plain read.
    let (out, err) = agent_sql(&gw, &db, "SELECT body FROM late_notes");
    assert_eq!(out.trim_end(), "hello", "{err}");
    // A relation that does not exist is the server's error, not a hold.
    let out = verbose_sql(&gw, &db, "SELECT * FROM nowhere_at_all");
    assert!(stderr(&out).contains("42P01"), "{}", stderr(&out));
}

/// `~~~` and the CHECK of `noted_text` call functions that write to the journal.
const CODE_SCHEMA: &str = "
CREATE FUNCTION note_pair(text, text) RETURNS bool LANGUAGE sql VOLATILE
    AS $$ INSERT INTO journal VALUES ('op ' || $1) RETURNING true $$;
CREATE OPERATOR ~~~ (LEFTARG = text, RIGHTARG = text, FUNCTION = note_pair);
CREATE FUNCTION note_text(text) RETURNS bool LANGUAGE sql VOLATILE
    AS $$ INSERT INTO journal VALUES ('check ' || $1) RETURNING true $$;
CREATE DOMAIN noted_text AS text CHECK (note_text(VALUE));
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_and_types_that_run_a_writing_function_are_held() {
    let db = TestDb::new("schema_code_ops");
    db.exec(SCHEMA);
    db.exec(CODE_SCHEMA);
    // The writes are real: directly, each statement leaves a row in the journal.
    db.exec("SELECT name FROM items WHERE name ~~~ 'One'");
    assert_eq!(
        journal(&db),
        "2",
        "the operator's function ran once per row"
    );
    db.exec("SELECT 'x'::noted_text");
    assert_eq!(journal(&db), "3", "the domain's CHECK ran");
    db.exec("TRUNCATE journal");
    let oid: u32 = db
        .exec("SELECT 'noted_text'::regtype::oid")
        .trim()
        .parse()
        .expect("domain OID");

    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    gw.auto_deny("alice");
    for (sql, called) in [
        (
            "SELECT name FROM items WHERE name ~~~ 'One'",
            "public.note_pair",
        ),
        (
            "SELECT count(*) FROM items WHERE (name)~~~(name)",
            "public.note_pair",
        ),
        ("SELECT 'x'::noted_text", "public.note_text"),
        (
            "SELECT CAST(name AS public.noted_text) FROM items",
            "public.note_text",
        ),
        (
            "SELECT * FROM json_to_record('{\"a\": \"x\"}') AS r(a noted_text)",
            "public.note_text",
        ),
        ("PREPARE p(noted_text) AS SELECT $1", "public.note_text"),
    ] {
        held_as_calling(&gw, &db, sql, called);
    }

    // A parameter declared as the domain by OID in the Parse message: binding converts it.
    let (client, conn) = tokio_postgres::connect(&gw.url(&db.name), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let domain = tokio_postgres::types::Type::new(
        "noted_text".into(),
        oid,
        tokio_postgres::types::Kind::Domain(tokio_postgres::types::Type::TEXT),
        "public".into(),
    );
    let sql = "SELECT $1 IS NOT NULL";
    let refused = client.prepare_typed(sql, &[domain]).await;
    assert!(refused.is_err(), "a domain-typed parameter was let through");
    let (action, functions, _) = decided(&gw, sql);
    assert_eq!(action, Action::Hold);
    assert!(
        functions.contains(&"public.note_text".to_string()),
        "{functions:?}"
    );
    // The same text with a built-in parameter type is a plain read.
    let stmt = client
        .prepare_typed(sql, &[tokio_postgres::types::Type::TEXT])
        .await
        .expect("a text parameter is allowed");
    let row = client.query_one(&stmt, &[&"x"]).await.expect("runs");
    assert!(row.get::<_, bool>(0));
    assert_eq!(journal(&db), "0", "nothing ran upstream");

    // Built-in operators and types stay plain reads.
    for sql in [
        "SELECT name FROM items WHERE name ~~ 'O%' ORDER BY id",
        "SELECT name::text FROM items WHERE name <> 'Two'::text ORDER BY id",
    ] {
        let (out, err) = agent_sql(&gw, &db, sql);
        assert_eq!(out.trim_end(), "One", "{sql}: {err}");
        let (action, _, unsafe_function) = decided(&gw, sql);
        assert_eq!(action, Action::Allow, "{sql}");
        assert!(!unsafe_function, "{sql}");
    }
}

/// An operator and a domain made directly on the server after the gateway read its catalog
/// snapshot are decided with what they run; names that exist nowhere get the server's errors.
#[test]
fn operators_and_types_made_outside_the_gateway_are_decided_with_what_they_run() {
    let db = TestDb::new("schema_code_late_ops");
    db.exec(SCHEMA);
    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    gw.auto_deny("alice");
    // The first session reads the snapshot.
    let (out, err) = agent_sql(&gw, &db, "SELECT count(*) FROM items");
    assert_eq!(out.trim_end(), "2", "{err}");

    db.exec(CODE_SCHEMA);
    held_as_calling(
        &gw,
        &db,
        "SELECT name FROM items WHERE name ~~~ 'One'",
        "public.note_pair",
    );
    held_as_calling(&gw, &db, "SELECT 'x'::noted_text", "public.note_text");
    assert_eq!(journal(&db), "0", "nothing ran upstream");

    // An operator or type nobody made is the server's error, not a hold.
    for (sql, code) in [
        ("SELECT 1 WHERE 'a' <<~>> 'b'", "42883"),
        ("SELECT 'x'::no_such_type", "42704"),
    ] {
        let out = verbose_sql(&gw, &db, sql);
        assert!(stderr(&out).contains(code), "{sql}: {}", stderr(&out));
        let d = gw.last_decision(sql);
        assert_eq!(d.decision.action, Action::Allow, "{sql}");
    }
}

/// A view redefined in place on the server, with the same column names but now calling a
/// writing function, shows in no result: the schema watch notices the catalog changed and has
/// it read again, and the read is then judged as calling the function.
#[test]
fn a_view_redefined_in_place_is_seen_by_the_schema_watch() {
    let db = TestDb::new("schema_code_watch");
    db.exec(SCHEMA);
    let gw = Gw::start(|c| {
        c.policy.path = shipped_policy("demo.toml");
        c.upstream.catalog_poll_ms = 50;
    });
    gw.auto_deny("alice");
    let sql = "SELECT name FROM plain_items ORDER BY id";
    let (out, err) = agent_sql(&gw, &db, sql);
    assert_eq!(out.trim_end(), "one\ntwo", "{err}");
    let inspector = &gw.gateway.inspector;
    let first = inspector.current(&db.name).expect("a snapshot");

    db.exec(
        "CREATE OR REPLACE VIEW plain_items AS SELECT id, note_row(id)::text AS name FROM items",
    );
    // The watcher re-reads in the background: wait until the gateway hands out a snapshot
    // in which the view runs the function.
    let view = airlock::sql::TableRef {
        schema: "public".into(),
        name: "plain_items".into(),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let runs = inspector.current(&db.name).and_then(|c| {
            let rel = c.catalog().relation(&view).cloned();
            rel.map(|r| r.runs)
        });
        if runs.is_some_and(|r| r.iter().any(|f| f.name == "note_row")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the schema watch did not read the catalog again"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!std::sync::Arc::ptr_eq(
        &first,
        &inspector.current(&db.name).expect("a snapshot")
    ));
    held_as_calling(&gw, &db, sql, "public.note_row");
    assert_eq!(journal(&db), "0", "nothing ran upstream");
}

#[test]
fn user_in_a_search_path_is_the_upstream_roles_schema() {
    let db = TestDb::new("schema_user");
    db.exec(airlock::demo::DEMO_SCHEMA);
    // A schema named after the role the gateway logs in as, holding an `orders` over SSNs,
    // and a database whose default path leaves it out: only a path naming `$user` reads it.
    let role = db.exec("SELECT current_user");
    let role = role.trim();
    db.exec(&format!(
        "CREATE SCHEMA \"{role}\"; \
         CREATE VIEW \"{role}\".orders AS SELECT id, ssn AS total FROM public.customers; \
         ALTER DATABASE {} SET search_path = public",
        db.name
    ));
    let ssn = db.exec("SELECT ssn FROM customers ORDER BY id LIMIT 1");
    let ssn = ssn.trim().to_owned();
    assert!(!ssn.is_empty());
    // The demo policy, with search_path among the settings an agent may change.
    let (_dir, gw) = demo_gateway(|text| {
        text + "\n[session]\nallowed_settings = [\"search_path\", \"application_name\"]\n"
    });
    // Without the SET, `orders` is the public table; the SET itself is allowed.
    let (out, err) = agent_sql(&gw, &db, "SELECT count(*) FROM orders");
    assert_eq!(out.trim_end(), "200", "{err}");
    let (out, err) = agent_sql(
        &gw,
        &db,
        "SET search_path = public; SELECT count(*) FROM orders",
    );
    assert_eq!(out.trim_end(), "SET\n200", "{err}");
    // Directly, the same text reads the SSNs.
    let sql = r#"SET search_path = "$user", public; SELECT * FROM orders"#;
    assert!(
        db.exec(sql).contains(&ssn),
        "the role's view is what the server reads"
    );
    let (out, err) = agent_sql(&gw, &db, sql);
    assert!(
        !out.contains(&ssn) && out.is_empty() && err.contains("airlock"),
        "expected a refusal, got out={out:?} err={err:?}"
    );
    let d = gw.last_decision(sql);
    assert_eq!(d.decision.action, Action::Hold);
    let read = tables_read(&d);
    assert!(read.contains(&format!("{role}.orders")), "{read:?}");
    let outputs = output_columns(&d);
    assert!(
        outputs.contains(&"public.customers.ssn".to_string()),
        "{outputs:?}"
    );
}

/// A database with the demo schema, a gateway whose policy lets the agent make (temporary)
/// objects (DDL allowed) and change `search_path` but holds what it cannot classify, and the
/// first customer's SSN.
fn temp_setup(label: &str) -> (TestDb, tempfile::TempDir, Gw, String) {
    let db = TestDb::new(label);
    db.exec(airlock::demo::DEMO_SCHEMA);
    let ssn = db.exec("SELECT upper(ssn) FROM customers ORDER BY id LIMIT 1");
    let ssn = ssn.trim().to_owned();
    assert!(!ssn.is_empty());
    let (dir, gw) = demo_gateway(|text| {
        assert!(text.contains("ddl = \"hold\""));
        text.replace("ddl = \"hold\"", "ddl = \"allow\"")
            + "\n[session]\nallowed_settings = [\"search_path\", \"application_name\"]\n"
    });
    (db, dir, gw, ssn)
}

/// `script`, one psql session, returns `ssn` directly on the server; sent by the agent, its
/// statement `last` is refused and audited as a hold, and no SSN comes back.
fn refused_in_one_session(gw: &Gw, db: &TestDb, script: &str, last: &str, ssn: &str) {
    let direct = psql(&db.direct_url(), &["-At"], Some(script));
    assert!(
        stdout(&direct).contains(ssn),
        "directly, the script reads the SSNs: {script}\n{}",
        stderr(&direct)
    );
    let out = psql(&gw.url(&db.name), &["-At"], Some(script));
    let (out, err) = (stdout(&out), stderr(&out));
    assert!(
        !out.contains(ssn) && err.contains("airlock"),
        "expected {last:?} to be refused: {script}\nout={out:?} err={err:?}"
    );
    assert_eq!(
        gw.last_decision(last).decision.action,
        Action::Hold,
        "{script}"
    );
}

#[test]
fn a_session_with_more_temporary_relations_than_it_can_track_is_held() {
    let (db, _dir, gw, ssn) = temp_setup("schema_temp");
    // One session: 70 temporary tables, then a temporary `products` over SSNs, which
    // shadows the public one for an unqualified name.
    let mut script = String::new();
    for i in 0..70 {
        script.push_str(&format!("CREATE TEMP TABLE scratch_{i} (x int);\n"));
    }
    script.push_str("CREATE TEMP VIEW products AS SELECT id, ssn AS name FROM customers;\n");
    script.push_str("SELECT name FROM products;\n");
    refused_in_one_session(&gw, &db, &script, "SELECT name FROM products;", &ssn);
    // In a session of its own, `products` is the catalog's table.
    let (out, err) = agent_sql(&gw, &db, "SELECT count(*) FROM products");
    assert_eq!(out.trim_end(), "20", "{err}");
}

#[test]
fn a_temporary_view_renamed_to_a_catalog_name_is_held() {
    let (db, _dir, gw, ssn) = temp_setup("schema_rename");
    // `upper(ssn)` is an expression: its result column names no table, so only the decision
    // stands between the SSNs and the agent. sqlparser reads `ALTER TABLE … RENAME` but not
    // `ALTER VIEW … RENAME`.
    for rename in [
        "ALTER TABLE x RENAME TO products",
        "ALTER VIEW x RENAME TO products",
    ] {
        let script = format!(
            "CREATE TEMP VIEW x AS SELECT id, upper(ssn) AS name FROM customers;\n\
             {rename};\nSELECT name FROM products;\n"
        );
        refused_in_one_session(&gw, &db, &script, "SELECT name FROM products;", &ssn);
    }
}

#[test]
fn a_temporary_view_made_under_a_path_the_gateway_is_unsure_of_is_held() {
    let (db, _dir, gw, ssn) = temp_setup("schema_tmp_path");
    let create = "CREATE VIEW products AS SELECT id, upper(ssn) AS name FROM customers;\n\
                  SELECT name FROM products;\n";
    for path in [
        // The rolled-back SET leaves `pg_temp` leading the server's path, so the unqualified
        // CREATE makes a temporary view; the gateway cannot know which SET stands.
        "SET search_path = pg_temp, public;\nBEGIN;\nSET search_path = public;\nROLLBACK;\n",
        // `nosuch` does not exist and the session's temporary schema does (the table made
        // first): the server creates in `pg_temp`, the first schema of the path that exists.
        "CREATE TEMP TABLE warm (x int);\nSET search_path = nosuch, pg_temp, public;\n",
    ] {
        let script = format!("{path}{create}");
        refused_in_one_session(&gw, &db, &script, "SELECT name FROM products;", &ssn);
    }
}

#[test]
fn a_statement_prepared_before_a_temporary_view_shadows_its_table_is_held() {
    let (db, _dir, gw, ssn) = temp_setup("schema_prep_temp");
    // The session's first temporary object changes its search path, so the server analyses
    // `q` again at EXECUTE and finds the temporary view.
    let script = "PREPARE q AS SELECT name FROM products;\n\
                  CREATE TEMP VIEW products AS SELECT id, upper(ssn) AS name FROM customers;\n\
                  EXECUTE q;\n";
    refused_in_one_session(&gw, &db, script, "EXECUTE q;", &ssn);
}

#[test]
fn create_table_as_execute_is_held_and_its_temporary_table_tracked() {
    let db = TestDb::new("schema_ctas_exec");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let email = db.exec("SELECT email FROM customers ORDER BY id LIMIT 1");
    let email = email.trim().to_owned();
    // The preparation of an export is approved (which approves the preparation, not its
    // runs); everything else held is denied.
    let (_dir, gw) = demo_gateway_approving(
        |text| text.replace("ddl = \"hold\"", "ddl = \"allow\""),
        |sql| sql.starts_with("PREPARE"),
    );
    let script = "PREPARE q AS SELECT email AS name FROM customers;\n\
                  CREATE TEMP TABLE products AS EXECUTE q;\n\
                  SELECT name FROM products;\n";
    refused_in_one_session(&gw, &db, script, "SELECT name FROM products;", &email);
    // The copy itself was held as unknown (and denied), not let through as a plain CREATE.
    let d = gw.last_decision("CREATE TEMP TABLE products AS EXECUTE q;");
    assert_eq!(d.decision.action, Action::Hold);
    assert!(d
        .facts
        .iter()
        .all(|f| f.kind == airlock::sql::Kind::Unknown));
}

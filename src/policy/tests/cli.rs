//! `policy check` and `explain` as functions: output, exit codes, offline catalog.

use std::path::{Path, PathBuf};

use super::*;
use crate::policy::cli::{
    load_catalog_file, run_explain, run_policy, ExplainArgs, PolicyArgs, PolicyCommand, EXIT_ALLOW,
    EXIT_DENY, EXIT_ERROR, EXIT_HOLD,
};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn check(paths: &[PathBuf]) -> (i32, String, String) {
    let args = PolicyArgs {
        command: PolicyCommand::Check {
            paths: paths.to_vec(),
        },
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_policy(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn policy_check_summarises_or_names_the_error() {
    let (code, out, err) = check(&[repo("policies/default.toml"), repo("policies/demo.toml")]);
    assert_eq!(code, EXIT_ALLOW, "{err}");
    assert!(out.contains("0 rule(s), 18 PII column pattern(s)"), "{out}");
    assert!(
        out.contains("4 rule(s), 3 PII column pattern(s), 1 agent(s), 2 approver(s), 2 group(s)"),
        "{out}"
    );
    assert!(
        out.contains("approvers: alice (Alice (DBA)), bob (Bob (DBA))"),
        "{out}"
    );
    assert!(out.contains("rule ssn-two-approvals  hold "), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[defaults]\nread = \"allow\"\n\n[[rule]]\nid = \"x\"\naction = \"maybe\"\n",
    )
    .unwrap();
    let (code, out, err) = check(&[repo("policies/default.toml"), bad.clone()]);
    assert_eq!(code, EXIT_ERROR);
    assert!(
        out.contains("policies/default.toml"),
        "the good one is still summarised"
    );
    assert!(err.contains(&format!("{}:6: ", bad.display())), "{err}");
    assert!(err.contains("maybe"), "{err}");

    let partial = dir.path().join("partial.toml");
    std::fs::write(&partial, "[defaults]\nread = \"allow\"\n").unwrap();
    let (code, out, _) = check(&[partial]);
    assert_eq!(code, EXIT_ALLOW);
    assert!(
        out.contains("note: no [defaults] entry for write, ddl"),
        "{out}"
    );
}

fn facts_file(dir: &Path, name: &str, stmts: Vec<F>) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string(&classified(stmts)).unwrap()).unwrap();
    path
}

fn explain(sql: &str, app: &str, facts: &Path, quiet: bool, json: bool) -> (i32, String, String) {
    let args = ExplainArgs {
        sql: sql.into(),
        user: "agent".into(),
        app: app.into(),
        db: "demo".into(),
        policy: Some(repo("policies/demo.toml")),
        catalog_file: Some(repo("docs/demo-catalog.json")),
        config: None,
        facts: Some(facts.to_path_buf()),
        quiet,
        json,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_explain(&args, None, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn explain_prints_facts_decision_rule_and_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let sel = F::new(Kind::Read, "SELECT")
        .reads(&["public.customers"])
        .out(&["public.customers.name", "public.customers.email"]);
    let f = facts_file(dir.path(), "sel", vec![sel]);
    let sql = "SELECT name, email FROM customers";

    let (code, out, err) = explain(sql, "reporting", &f, false, false);
    assert_eq!(code, EXIT_ALLOW, "{err}");
    assert!(
        out.contains("session    user=agent application=reporting database=demo"),
        "{out}"
    );
    assert!(out.contains("statement 1: SELECT"), "{out}");
    assert!(
        out.contains("  kind       read -> export (returns PII)"),
        "{out}"
    );
    assert!(
        out.contains("  output     public.customers.name, public.customers.email"),
        "{out}"
    );
    assert!(out.contains("  -> mask (reporting-masked)"), "{out}");
    assert!(out.contains("decision   MASK"), "{out}");
    let line = DEMO_TOML
        .lines()
        .position(|l| l == "id = \"reporting-masked\"")
        .unwrap()
        + 1;
    assert!(
        out.contains(&format!(
            "rule       reporting-masked ({}:{line})",
            repo("policies/demo.toml").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("rewritten  SELECT name, CASE WHEN (email) IS NULL"),
        "{out}"
    );

    // Same facts from another application: held, with approvers.
    let (code, out, _) = explain(sql, "psql", &f, false, false);
    assert_eq!(code, EXIT_HOLD);
    assert!(out.contains("decision   HOLD"), "{out}");
    assert!(
        out.contains("approvers  alice, bob (quorum 1, timeout 300s)"),
        "{out}"
    );
    assert!(!out.contains("rewritten"), "{out}");

    // -q: nothing printed, the exit code tells.
    let (code, out, err) = explain(sql, "psql", &f, true, false);
    assert_eq!((code, out.as_str(), err.as_str()), (EXIT_HOLD, "", ""));
    let drop = facts_file(
        dir.path(),
        "drop",
        vec![F::new(Kind::Ddl, "DROP TABLE").writes(&["public.orders"])],
    );
    assert_eq!(
        explain("DROP TABLE orders", "", &drop, true, false).0,
        EXIT_DENY
    );
    let ok = facts_file(
        dir.path(),
        "txn",
        vec![F::new(Kind::Txn, "BEGIN"), F::new(Kind::Txn, "COMMIT")],
    );
    assert_eq!(explain("BEGIN; COMMIT", "", &ok, true, false).0, EXIT_ALLOW);
}

#[test]
fn explain_json_is_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let f = facts_file(dir.path(), "grant", vec![F::new(Kind::Role, "GRANT")]);
    let (code, out, _) = explain("GRANT x TO y", "", &f, false, true);
    assert_eq!(code, EXIT_HOLD);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["action"], "hold");
    assert_eq!(v["decision"]["rule_id"], "roles-need-dba");
    assert_eq!(v["statements"][0]["facts"]["kind"], "role");
    assert_eq!(v["statements"][0]["rule_id"], "roles-need-dba");
    assert_eq!(v["session"]["user"], "agent");
}

#[test]
fn explain_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.json");
    let (code, _, err) = explain("SELECT 1", "", &missing, false, false);
    assert_eq!(code, EXIT_ERROR);
    assert!(err.contains("none.json"), "{err}");
    let garbage = dir.path().join("g.json");
    std::fs::write(&garbage, "{\"statements\": 3}").unwrap();
    let (code, _, err) = explain("SELECT 1", "", &garbage, false, false);
    assert_eq!(code, EXIT_ERROR);
    assert!(err.contains("g.json"), "{err}");
    // Quiet errors print nothing either.
    let (code, out, err) = explain("SELECT 1", "", &garbage, true, false);
    assert_eq!(
        (code, out.is_empty(), err.is_empty()),
        (EXIT_ERROR, true, true)
    );
}

#[test]
fn catalog_file_loads_relations_views_and_functions() {
    let cat = load_catalog_file(&repo("docs/demo-catalog.json")).unwrap();
    assert_eq!(cat.search_path, ["public"]);
    let cust = cat.relation(&t("public.customers")).unwrap();
    assert_eq!(cust.columns.len(), 6);
    let v = cat.relation(&t("public.customer_contacts")).unwrap();
    assert_eq!(v.kind, RelationKind::View);
    assert_eq!(
        v.view_sources["contact"],
        [c("public.customers.email"), c("public.customers.phone")]
    );
    assert_eq!(
        cat.functions["pg_catalog.nextval"].volatility,
        crate::sql::Volatility::Volatile
    );
    // The same snapshot as the tests' hand-built one, where they overlap.
    assert_eq!(
        cust,
        demo_catalog().relation(&t("public.customers")).unwrap()
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("c.json");
    std::fs::write(&bad, r#"{"relations": [{"schema": "s", "name": "v", "columns": ["a"], "view_sources": {"a": ["t.a"]}}]}"#).unwrap();
    assert!(load_catalog_file(&bad)
        .unwrap_err()
        .contains("schema.table.column"));
    std::fs::write(&bad, r#"{"tables": []}"#).unwrap();
    assert!(load_catalog_file(&bad).unwrap_err().contains("tables"));
    std::fs::write(
        &bad,
        r#"{"relations": [{"schema": "s", "name": "v", "columns": ["a"], "runs": ["audit_me"]}]}"#,
    )
    .unwrap();
    assert!(load_catalog_file(&bad)
        .unwrap_err()
        .contains("schema.function"));

    // What a read runs, in the file: a read of the view calls it.
    let runs = dir.path().join("runs.json");
    std::fs::write(&runs, r#"{"relations": [{"schema": "public", "name": "v", "kind": "view", "columns": ["a"], "runs": ["public.note_row"]}]}"#).unwrap();
    let cat = load_catalog_file(&runs).unwrap();
    let v = cat.relation(&t("public.v")).unwrap();
    assert_eq!(v.runs[0].to_string(), "public.note_row");
    let facts = &crate::sql::Classifier::new(
        std::sync::Arc::new(cat),
        crate::sql::ClassifierOptions::default(),
    )
    .classify("SELECT a FROM v")
    .statements[0];
    assert!(facts.flags.unsafe_function, "{facts:?}");

    // Operators and types, in the file: writing the operator, or converting to the type
    // (directly or as an array), calls what is behind it.
    let code = dir.path().join("code.json");
    std::fs::write(
        &code,
        r#"{"operators": {"~~~": ["public.note_pair"]}, "types": {"public.checked": ["public.note_one"]}}"#,
    )
    .unwrap();
    let classifier = crate::sql::Classifier::new(
        std::sync::Arc::new(load_catalog_file(&code).unwrap()),
        crate::sql::ClassifierOptions::default(),
    );
    for (sql, called) in [
        ("SELECT 'a' ~~~ 'b'", "public.note_pair"),
        ("SELECT '{x}'::checked[]", "public.note_one"),
        ("SELECT CAST('x' AS public.checked)", "public.note_one"),
    ] {
        let facts = &classifier.classify(sql).statements[0];
        assert!(facts.flags.unsafe_function, "{sql}: {facts:?}");
        assert_eq!(facts.functions, [called], "{sql}");
    }
    let plain = &classifier
        .classify("SELECT 'a' ~~ 'b', 'x'::text")
        .statements[0];
    assert!(!plain.flags.unsafe_function, "{plain:?}");
    for (text, what) in [
        (
            r#"{"operators": {"~~~": ["note_pair"]}}"#,
            "behind operator ~~~",
        ),
        (r#"{"types": {"checked": ["public.f"]}}"#, "schema.type"),
        (
            r#"{"types": {"public.checked": ["f"]}}"#,
            "conversion to public.checked",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let e = load_catalog_file(&bad).unwrap_err();
        assert!(e.contains(what), "{text}: {e}");
    }
}

fn explain_sql(sql: &str, policy: &str, app: &str) -> (i32, String, String) {
    let args = ExplainArgs {
        sql: sql.into(),
        user: "agent".into(),
        app: app.into(),
        db: "demo".into(),
        policy: Some(repo(policy)),
        catalog_file: Some(repo("docs/demo-catalog.json")),
        config: None,
        facts: None,
        quiet: false,
        json: false,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_explain(&args, None, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn explain_classifies_the_sql_itself() {
    let (code, out, err) = explain_sql(
        "SELECT name, email FROM customers",
        "policies/demo.toml",
        "reporting",
    );
    assert_eq!(code, EXIT_ALLOW, "{err}");
    assert!(out.contains("decision   MASK"), "{out}");
    assert!(
        out.contains("rewritten  SELECT name, CASE WHEN (email) IS NULL"),
        "{out}"
    );

    let (code, out, _) = explain_sql("DROP TABLE orders", "policies/demo.toml", "");
    assert_eq!(code, EXIT_DENY, "{out}");
    assert!(out.contains("rule       agent-no-drop"), "{out}");

    // PII only in WHERE is no export, but the server's error text about it is withheld.
    let withheld = "errors     the server's message text is withheld";
    let (code, out, _) = explain_sql(
        "SELECT id FROM customers WHERE email::date IS NULL",
        "policies/demo.toml",
        "",
    );
    assert_eq!(code, EXIT_ALLOW, "{out}");
    assert!(out.contains(withheld), "{out}");
    let (_, out, _) = explain_sql(
        "UPDATE customers SET name = 'x' WHERE id = 1",
        "policies/demo.toml",
        "",
    );
    assert!(out.contains(withheld), "a write to a PII table: {out}");
    let (_, out, _) = explain_sql("SELECT id, name FROM products", "policies/demo.toml", "");
    assert!(!out.contains(withheld), "{out}");

    let (code, out, _) = explain_sql("SELECT ssn FROM customers", "policies/default.toml", "");
    assert_eq!(code, EXIT_HOLD, "{out}");
    assert!(
        out.contains("rule       default.export (") && out.contains("policies/default.toml:"),
        "{out}"
    );

    // Secrets are not echoed back.
    let (code, out, _) = explain_sql(
        "CREATE ROLE x LOGIN PASSWORD 'hunter2'",
        "policies/default.toml",
        "",
    );
    assert_eq!(code, EXIT_HOLD, "{out}");
    assert!(!out.contains("hunter2"), "{out}");

    // Another client encoding is refused whatever the policy, per statement and as a whole.
    let (code, out, _) = explain_sql("SET NAMES 'SJIS'", "policies/default.toml", "");
    assert_eq!(code, EXIT_DENY, "{out}");
    assert!(out.contains("-> deny (built-in.client-encoding)"), "{out}");
    assert!(out.contains("rule       built-in.client-encoding"), "{out}");
    assert!(out.contains("foreign_encoding"), "{out}");

    // A write copying PII says so.
    let (code, out, _) = explain_sql(
        "INSERT INTO products (name, price) SELECT email, 1 FROM customers",
        "policies/default.toml",
        "",
    );
    assert_eq!(code, EXIT_HOLD, "{out}");
    assert!(out.contains("write -> export (copies PII)"), "{out}");
    assert!(out.contains("copies     public.customers.email"), "{out}");
}

/// `explain` classifies as the gateway does a new session's first text: a FETCH of a cursor the
/// text did not declare, or an EXECUTE of a name it did not prepare, is held; declared or
/// prepared in the same text, it is read as what it runs.
#[test]
fn explain_judges_session_statements_as_a_new_session() {
    for sql in ["FETCH ALL FROM leak", "EXECUTE q"] {
        let (code, out, err) = explain_sql(sql, "policies/demo.toml", "");
        assert_eq!(code, EXIT_HOLD, "{sql}: {out}{err}");
        assert!(out.contains("kind       unknown"), "{out}");
    }
    let (code, out, err) = explain_sql(
        "BEGIN; DECLARE c CURSOR FOR SELECT id FROM orders; FETCH 10 FROM c; COMMIT",
        "policies/demo.toml",
        "",
    );
    assert_eq!(code, EXIT_ALLOW, "{out}{err}");
    assert!(!out.contains("kind       unknown"), "{out}");
}

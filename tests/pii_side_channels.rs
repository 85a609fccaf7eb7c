//! PII must not leave through the side doors of statements the policy lets through: the
//! server's error messages (which quote the value they failed on, or a constraint's whole
//! failing row) and session settings (which a later plain read returns).

mod common;

use common::*;
use tokio_postgres::NoTls;

/// Email, SSN and phone of customer 3, read directly.
fn secrets(db: &TestDb) -> Vec<String> {
    db.exec("SELECT email, ssn, phone FROM customers WHERE id = 3")
        .trim()
        .split('|')
        .map(str::to_string)
        .collect()
}

/// A gateway with the demo policy, where approver alice denies every held request at once.
fn demo_gw() -> Gw {
    let gw = Gw::start(|c| c.policy.path = shipped_policy("demo.toml"));
    gw.auto_deny("alice");
    gw
}

fn verbose(url: &str, sql: &str) -> (String, String) {
    let out = psql(url, &["-At", "-v", "VERBOSITY=verbose", "-c", sql], None);
    (stdout(&out), stderr(&out))
}

fn assert_free_of(text: &str, secrets: &[String], what: &str) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what}: {s:?} leaked in {text}");
    }
}

/// Each statement is allowed (PII only filters its rows, or it writes a PII table without
/// reading PII), and each makes the server quote PII in its error. Through the gateway the
/// error keeps its SQLSTATE and object names and loses the values.
#[test]
fn errors_of_statements_that_touch_pii_do_not_quote_it() {
    let db = TestDb::new("pii_errors");
    db.exec(airlock::demo::DEMO_SCHEMA);
    // Views a DBA made, whose filter reads PII the query never names.
    db.exec("CREATE VIEW dated AS SELECT id FROM customers WHERE id = 3 AND email::date > now(); CREATE VIEW dated_again AS SELECT id FROM dated");
    let gw = demo_gw();
    let secrets = secrets(&db);
    let cases = [
        ("SELECT count(*) FROM customers WHERE id = 3 AND email::date IS NULL", "22007"),
        ("SELECT 1 FROM customers WHERE id = 3 AND ssn::regclass IS NULL", "42P01"),
        ("SELECT 1 FROM customers c WHERE c.id = 3 AND c::text::int > 0", "22P02"),
        ("SELECT 1 FROM customer_contacts WHERE email = (SELECT email FROM customers WHERE id = 3) AND email::uuid IS NULL", "22P02"),
        ("SELECT 1 FROM customers WHERE id = 3 AND to_tsquery(ssn || ' &') IS NULL", "42601"),
        ("UPDATE customers SET name = NULL WHERE id = 3", "23502"),
        ("SELECT id FROM dated", "22007"),
        ("SELECT count(*) FROM dated_again", "22007"),
    ];
    for (sql, code) in cases {
        // The leak is real: directly, the error carries a secret.
        let direct = psql(
            &db.direct_url(),
            &["-At", "-v", "VERBOSITY=verbose", "-c", sql],
            None,
        );
        let direct_err = stderr(&direct);
        assert!(
            secrets.iter().any(|s| direct_err.contains(s.as_str())),
            "{sql}: the direct error quotes no secret, so this case tests nothing: {direct_err}"
        );
        let (out, err) = verbose(&gw.url(&db.name), sql);
        assert!(out.is_empty(), "{sql}: {out}");
        assert!(err.contains(code), "{sql}: SQLSTATE {code} kept: {err}");
        assert!(err.contains("withheld"), "{sql}: {err}");
        assert_free_of(&err, &secrets, sql);
    }
    // The failing row's names survive.
    let (_, err) = verbose(
        &gw.url(&db.name),
        "UPDATE customers SET name = NULL WHERE id = 3",
    );
    assert!(
        err.contains("column \"name\"") && err.contains("table \"public.customers\""),
        "{err}"
    );
    // The audit records what the client got.
    let audit = format!("{:?}", gw.audit_records());
    assert!(audit.contains("withheld"));
    assert_free_of(&audit, &secrets, "audit");
}

/// A secret in a statement (here a connection string's password) is redacted in the audited
/// SQL, and the server's error quoting it is withheld too: the audit keeps the code, never the
/// value. Directly, the error does quote it.
#[test]
fn errors_quoting_a_secret_are_withheld_from_the_audit() {
    let db = TestDb::new("secret_errors");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let gw = demo_gw();
    let secret = "S43ecret-value";
    for sql in [
        format!("SELECT 'host=h password={secret}'::int"),
        format!("SELECT 'postgresql://u:{secret}@h/db'::int"),
    ] {
        let (_, direct) = verbose(&db.direct_url(), &sql);
        assert!(
            direct.contains(secret),
            "directly, the error quotes it: {direct}"
        );
        // (psql prints the statement it sent next to the error, from its own copy.)
        let (_, err) = verbose(&gw.url(&db.name), &sql);
        assert!(err.contains("22P02") && err.contains("withheld"), "{err}");
    }
    let audit = format!("{:?}", gw.audit_records());
    assert!(audit.contains("22P02"), "the outcome is audited");
    assert!(!audit.contains(secret), "a secret in the audit: {audit}");
}

/// Errors of statements that touch no PII keep the server's full text, failing rows included.
#[test]
fn errors_without_pii_keep_their_text() {
    let db = TestDb::new("pii_errors_plain");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let gw = demo_gw();
    let url = gw.url(&db.name);
    let (_, err) = verbose(&url, "UPDATE products SET name = NULL WHERE id = 1");
    assert!(
        err.contains("23502") && err.contains("Failing row contains (1, null"),
        "{err}"
    );
    let (_, err) = verbose(&url, "SELECT nme FROM customers");
    assert!(err.contains("column \"nme\" does not exist"), "{err}");
    let (_, err) = verbose(&url, "SELECT 1 / 0 FROM customers WHERE city = 'Oslo'");
    assert!(
        err.contains("division by zero") && !err.contains("withheld"),
        "{err}"
    );
}

/// A deferred constraint fails at COMMIT, a statement that touches nothing: the transaction
/// that touched PII keeps its messages withheld to its end, and no further.
#[test]
fn a_transaction_that_touched_pii_withholds_its_commit_error() {
    let db = TestDb::new("pii_errors_tx");
    db.exec(airlock::demo::DEMO_SCHEMA);
    db.exec("ALTER TABLE customers ADD CONSTRAINT email_once UNIQUE (email) DEFERRABLE INITIALLY DEFERRED");
    let other = db
        .exec("SELECT email FROM customers WHERE id = 5")
        .trim()
        .to_string();
    let gw = demo_gw();
    let script = "BEGIN;
UPDATE customers SET email = (SELECT email FROM customers WHERE id = 5) WHERE id = 3;
COMMIT;
SELECT 1 / 0 FROM products;
";
    let direct = psql(&db.direct_url(), &["-At"], Some(script));
    assert!(stderr(&direct).contains(&other), "{}", stderr(&direct));
    let out = psql(
        &gw.url(&db.name),
        &["-At", "-v", "VERBOSITY=verbose"],
        Some(script),
    );
    let err = stderr(&out);
    assert!(err.contains("23505") && err.contains("withheld"), "{err}");
    assert!(!err.contains(&other), "{other} leaked at COMMIT: {err}");
    assert!(
        err.contains("division by zero"),
        "the next transaction is not withheld: {err}"
    );
    assert_eq!(
        db.exec("SELECT email FROM customers WHERE id = 3").trim(),
        secrets(&db)[0]
    );
}

/// The extended protocol (tokio-postgres, bound parameters) gets the same treatment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_errors_do_not_quote_pii() {
    let db = TestDb::new("pii_errors_ext");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let email = db
        .exec("SELECT email FROM customers WHERE id = 3")
        .trim()
        .to_string();
    let gw = tokio::task::spawn_blocking(demo_gw).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&gw.url(&db.name), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let err = client
        .query(
            "SELECT count(*) FROM customers WHERE id = $1 AND email::date IS NULL",
            &[&3i32],
        )
        .await
        .expect_err("the cast fails");
    let e = err.as_db_error().expect("a server error");
    assert_eq!(e.code().code(), "22007");
    let all = format!("{e:?}");
    assert!(!all.contains(&email), "{all}");
    assert!(e.message().contains("withheld"), "{all}");
    // The session goes on.
    let n: i64 = client
        .query_one("SELECT count(*) FROM products", &[])
        .await
        .unwrap()
        .get(0);
    assert!(n > 0);
}

/// A setting keeps what set_config stores for any later read: storing PII there copies it.
#[test]
fn pii_stored_in_a_setting_is_held() {
    let db = TestDb::new("pii_setting");
    db.exec(airlock::demo::DEMO_SCHEMA);
    let gw = demo_gw();
    let secrets = secrets(&db);
    let script = "SELECT 1 FROM customers c WHERE set_config('application_name', c.ssn, false) IS NOT NULL AND id = 3;
SELECT count(*) FROM customers WHERE id = 3 AND set_config('application_name', email, true) <> '';
SELECT current_setting('application_name');
";
    let out = psql(&gw.url(&db.name), &["-At"], Some(script));
    let (out_text, err) = (stdout(&out), stderr(&out));
    assert_eq!(err.matches("copying PII").count(), 2, "{err}");
    assert_free_of(&out_text, &secrets, "current_setting");
    assert_eq!(out_text.trim(), "psql", "application_name unchanged");
    // An allowlisted setting set from a literal, or from a column that is not PII, still runs.
    let (out, err) = verbose(
        &gw.url(&db.name),
        "SELECT count(*) FROM customers WHERE id = 3 AND set_config('application_name', city, false) <> ''",
    );
    assert_eq!(out.trim(), "1", "{err}");
}

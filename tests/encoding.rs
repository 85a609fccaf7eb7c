//! The gateway reads SQL as UTF-8, so the server must too. Under SJIS (and BIG5, GBK, …) a
//! backslash can be the second byte of a character: `SELECT E'Ã\'; DROP TABLE orders; --'`
//! is one string literal in UTF-8 and a SELECT followed by a DROP in SJIS. Every way into
//! another encoding is closed: startup parameters, SET, SET NAMES, set_config, and, should a
//! function do it anyway, the server's own report of the change ends the session.

mod common;

use common::*;

/// One harmless string literal in UTF-8; in SJIS the `\` belongs to the character before it,
/// the quote ends the string and `DROP TABLE orders` runs.
const SPLIT_IN_SJIS: &str = "SELECT E'\u{c3}\\'; DROP TABLE orders; --'";

fn demo_db(label: &str) -> TestDb {
    let db = TestDb::new(label);
    db.exec(airlock::demo::DEMO_SCHEMA);
    db
}

fn orders_exists(db: &TestDb) -> bool {
    db.exec("SELECT to_regclass('public.orders') IS NOT NULL")
        .trim()
        == "t"
}

/// A gateway with the demo policy (alice denies every hold) and `extra` policy text.
fn gw_with(extra: &str) -> (tempfile::TempDir, Gw) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let mut text = std::fs::read_to_string(shipped_policy("demo.toml")).unwrap();
    text.push_str(extra);
    std::fs::write(&path, text).unwrap();
    let gw = Gw::start(|c| c.policy.path = path.clone());
    gw.auto_deny("alice");
    (dir, gw)
}

#[test]
fn statements_that_switch_the_encoding_are_refused() {
    let db = demo_db("enc_set");
    // orders has dependants: make a DROP that reaches the server succeed.
    db.exec("DROP VIEW order_totals");
    let (_dir, gw) = gw_with("");
    let url = gw.url(&db.name);
    for switch in [
        "SET client_encoding = 'SJIS'",
        "SET client_encoding TO big5",
        "SET NAMES 'GBK'",
        "SELECT set_config('client_encoding', 'SJIS', false)",
        "SELECT set_config('client_encoding', current_setting('server_encoding'), false)",
        "BEGIN; SET LOCAL client_encoding = 'UHC'; COMMIT",
    ] {
        let out = psql(&url, &["-At", "-c", switch, "-c", SPLIT_IN_SJIS], None);
        let err = stderr(&out);
        assert!(
            err.contains("42501") || err.contains("airlock denied"),
            "{switch}: not refused: {err}"
        );
        assert!(err.contains("built-in.client-encoding"), "{switch}: {err}");
        // The second statement was read by both sides as the one string literal it is.
        assert!(
            stdout(&out).contains("'; DROP TABLE orders; --"),
            "{switch}: {}",
            stdout(&out)
        );
        assert!(orders_exists(&db), "{switch}: orders was dropped");
    }
    let (_, d) = gw
        .decisions()
        .into_iter()
        .rfind(|(_, d)| d.sql == "SET NAMES 'GBK'")
        .expect("audited");
    assert_eq!(d.decision.rule_id, "built-in.client-encoding");

    // UTF-8 under any of its names, and back to the start value, are ordinary settings.
    for fine in [
        "SET client_encoding = 'UTF8'",
        "SET client_encoding TO 'utf-8'",
        "SET NAMES 'UNICODE'",
        "RESET client_encoding",
        "SET client_encoding TO DEFAULT",
    ] {
        let out = psql(
            &url,
            &["-qAt", "-c", fine, "-c", "SHOW client_encoding"],
            None,
        );
        // PostgreSQL reports the name as given (`UNICODE` stays `UNICODE`).
        let shown = stdout(&out);
        assert!(
            airlock::sql::is_utf8_encoding(shown.trim()),
            "{fine}: {shown:?} {}",
            stderr(&out)
        );
    }
}

#[test]
fn sessions_start_in_utf8_whatever_the_client_or_database_says() {
    let db = demo_db("enc_start");
    let (_dir, gw) = gw_with("");
    let url = gw.url(&db.name);
    for bad in [
        "&client_encoding=SJIS",
        "&client_encoding=LATIN1",
        "&options=-c%20client_encoding%3DBIG5",
    ] {
        let out = psql(&format!("{url}{bad}"), &["-At", "-c", "SELECT 1"], None);
        let err = stderr(&out);
        assert!(
            !out.status.success() && err.contains("is not supported through airlock"),
            "{bad}: {err}"
        );
    }
    // psql in a C locale asks for SQL_ASCII, which declares no encoding: the session is UTF8.
    let out = psql(
        &format!("{url}&client_encoding=SQL_ASCII"),
        &["-At", "-c", "SHOW client_encoding"],
        None,
    );
    assert_eq!(stdout(&out).trim(), "UTF8", "{}", stderr(&out));

    // A LATIN1 database would make LATIN1 the default; the gateway asks for UTF8 explicitly.
    let latin = format!("{}_latin1", db.name);
    db.exec(&format!(
        "CREATE DATABASE {latin} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    ));
    let out = psql(
        &gw.url(&latin),
        &["-At", "-c", "SHOW client_encoding"],
        None,
    );
    db.exec(&format!("DROP DATABASE {latin} WITH (FORCE)"));
    assert_eq!(stdout(&out).trim(), "UTF8", "{}", stderr(&out));
}

#[test]
fn a_function_that_switches_the_encoding_ends_the_session() {
    let db = demo_db("enc_fn");
    db.exec(
        "CREATE FUNCTION public.sneaky() RETURNS text LANGUAGE sql \
         AS $$ SELECT set_config('client_encoding', 'SJIS', false) $$",
    );
    // Declared harmless, so the policy lets it run without a person looking.
    let (_dir, gw) = gw_with("\n[functions]\nsafe = [\"public.sneaky\"]\n");
    let out = psql(
        &gw.url(&db.name),
        &["-At", "-c", "SELECT sneaky()", "-c", "SELECT 42"],
        None,
    );
    let err = stderr(&out);
    assert!(
        err.contains("client_encoding became \"SJIS\""),
        "session not ended: {err}"
    );
    assert!(!stdout(&out).contains("42"), "{}", stdout(&out));
}

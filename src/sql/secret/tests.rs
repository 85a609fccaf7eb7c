//! Redaction checked as text, on the token rules, the raw-text rules and bound parameters.

use super::super::text::split_statements;
use super::*;

/// The quick exit of `secret_params` must not skip a key spelled with escapes.
#[test]
fn parameters_after_an_escaped_key_are_found() {
    for sql in [
        r"SELECT set_config(E'app.pass\x77ord', $1, false)",
        r"SELECT dblink_connect(U&'host=h pass\0077ord=' || $1)",
        "SELECT set_config('app.PassWord', $1, false)",
        "SELECT set_config(U&'app.pass!0077ord' UESCAPE '!', $1, false)",
        "SELECT dblink_connect(U&'host=h pass!0077ord=' UESCAPE '!' || $1)",
    ] {
        assert_eq!(secret_params(sql), [1], "{sql}");
    }
    assert!(secret_params("SELECT abalance FROM t WHERE aid = $1").is_empty());
}

/// A key inside the first value's quotes starts a second value; each is masked.
#[test]
fn a_value_inside_another_value_is_masked_too() {
    let sql = r"'ALTER ROLE x PASSWORD E'\'; ALTER ROLE agent WITH PASSWORD 'S3AAa0aAAA'; '";
    let l = lex(sql, true);
    let all = 0..l.toks.len();
    let r = redact_statements(sql, &l.toks, false, std::slice::from_ref(&all));
    assert!(!r.text.contains("S3AAa0aAAA"), "{}", r.text);
}

#[test]
fn redacts_passwords_even_when_unparsable() {
    let r = |t: &str| {
        let l = lex(t, true);
        redact(t, &l.toks, l.unterminated).0
    };
    assert_eq!(
        r("CREATE ROLE bob LOGIN PASSWORD 'hunter2'"),
        "CREATE ROLE bob LOGIN PASSWORD '***'"
    );
    assert_eq!(
        r("alter user bob with encrypted password $p$s3cr'et$p$ valid until 'x'"),
        "alter user bob with encrypted password '***' valid until 'x'"
    );
    assert_eq!(
        r("CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'pw')"),
        "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '***')"
    );
    // A connection string keeps all but the password.
    assert_eq!(
        r("SELECT dblink_connect('host=db password=pw user=x')"),
        "SELECT dblink_connect('host=db password=''***'' user=x')"
    );
    assert_eq!(
        r("SELECT f('postgres://u:pw@h/db')"),
        "SELECT f('postgres://u:''***''@h/db')"
    );
    assert_eq!(
        r("ALTER ROLE x PASSWORD 'unterminated"),
        "ALTER ROLE x PASSWORD '***'"
    );
    assert_eq!(r("SELECT 'password'"), "SELECT 'password'");
    assert_eq!(
        r("UPDATE t SET hint = 'Reset password'"),
        "UPDATE t SET hint = 'Reset password'"
    );
    assert_eq!(
        r("SELECT dblink_exec('ALTER ROLE x PASSWORD ''pw''')"),
        "SELECT dblink_exec('ALTER ROLE x PASSWORD ''***''')"
    );
    assert_eq!(r("SELECT 1 AS \"password 'pw'\""), "SELECT 1 AS \"***\"");
    assert_eq!(
        r("ALTER ROLE r PASSWORD NULL"),
        "ALTER ROLE r PASSWORD NULL"
    );
}

/// A comment is redacted within itself: it keeps its end, and the code after it stays.
#[test]
fn comments_are_redacted_within_themselves() {
    let r = |t: &str| {
        let l = lex(t, true);
        redact(t, &l.toks, l.unterminated).0
    };
    assert_eq!(
        r("SELECT 1 /*password'*/; DELETE FROM t"),
        "SELECT 1 /*password'***'*/; DELETE FROM t"
    );
    assert_eq!(
        r("/*password*/DELETE FROM t WHERE id = 1"),
        "/*password*/DELETE FROM t WHERE id = 1"
    );
    assert_eq!(
        r("SELECT 1 -- password 'x\nDELETE FROM t"),
        "SELECT 1 -- password '***'\nDELETE FROM t"
    );
    // Masking `/*` would close the comment early: the whole body goes instead.
    assert_eq!(
        r("SELECT 1 /* password /* x */ y */, 2"),
        "SELECT 1 /*'***'*/, 2"
    );
    assert_eq!(r("SELECT 1 /* password 'x"), "SELECT 1 /* password '***'");
}

#[test]
fn unparsed_statements_alone_get_the_raw_rules() {
    let t = "SELECT 'password '; BOGUS password hunter2 \"q\"; SELECT 'password ' || x";
    let l = lex(t, true);
    let stmts = split_statements(t, &l.toks);
    let r = redact_statements(t, &l.toks, false, &stmts[1..2]);
    assert_eq!(
        r.text,
        "SELECT 'password '; BOGUS password '***' \"q\"; SELECT 'password ' || x"
    );
    assert_eq!(r.hits.len(), 1);
    assert_eq!(r.masked_at, vec![l.toks[stmts[1].start].start]);
    // A value the raw rules find across token boundaries takes the tokens after the
    // constant it starts in whole; the constant, which holds the key, keeps its text.
    let t = "BOGUS 'x password '\"hunter2\"";
    let l = lex(t, true);
    let whole = split_statements(t, &l.toks);
    let r = redact_statements(t, &l.toks, false, &whole);
    assert_eq!(r.text, "BOGUS 'x password ''***'");
}

fn redacted(t: &str) -> String {
    let l = lex(t, true);
    redact(t, &l.toks, l.unterminated).0
}

/// Redacted as a statement sqlparser could not read (a DO block is one).
fn redacted_unparsed(t: &str) -> String {
    let l = lex(t, true);
    let stmts = split_statements(t, &l.toks);
    redact_statements(t, &l.toks, l.unterminated, &stmts).text
}

/// A secret inside a string constant that holds code costs the code nothing but the value,
/// at any depth and in any quoting; the word alone, in a message or a comment, hides no code.
#[test]
fn a_secret_in_code_inside_a_constant_hides_only_the_value() {
    for r in [redacted, redacted_unparsed] {
        assert_eq!(
            r("DO $$ BEGIN RAISE NOTICE 'no password= needed'; UPDATE payroll SET salary = salary * 10; EXECUTE 'GRANT ALL ON payroll TO PUBLIC'; END $$"),
            "DO $$ BEGIN RAISE NOTICE 'no password= ''***'''; UPDATE payroll SET salary = salary * 10; EXECUTE 'GRANT ALL ON payroll TO PUBLIC'; END $$"
        );
        assert_eq!(
            r("DO $$ BEGIN -- reset password later\n UPDATE payroll SET salary = 1; END $$"),
            "DO $$ BEGIN -- reset password '***'\n UPDATE payroll SET salary = 1; END $$"
        );
        assert_eq!(
            r("DO $$ BEGIN EXECUTE 'CREATE ROLE x PASSWORD ''s3cret'''; END $$"),
            "DO $$ BEGIN EXECUTE 'CREATE ROLE x PASSWORD ''***'''; END $$"
        );
        assert_eq!(
            r("DO $$ BEGIN PERFORM dblink_connect('host=h password=s3cret'); END $$"),
            "DO $$ BEGIN PERFORM dblink_connect('host=h password=''***'''); END $$"
        );
        assert_eq!(
            r("DO $a$ BEGIN EXECUTE $b$ALTER ROLE x PASSWORD 's3cret'$b$; DELETE FROM t; END $a$"),
            "DO $a$ BEGIN EXECUTE $b$ALTER ROLE x PASSWORD '***'$b$; DELETE FROM t; END $a$"
        );
        assert_eq!(
            r(r"DO E'BEGIN EXECUTE \'ALTER ROLE x PASSWORD \'\'s3cret\'\'\'; DELETE FROM t; END'"),
            r"DO E'BEGIN EXECUTE \'ALTER ROLE x PASSWORD \'\'***\'\'\'; DELETE FROM t; END'"
        );
        // Escapes spell the key: the decoded value is what is read.
        let u =
            r(r"DO U&'BEGIN PERFORM dblink_connect(''pass\0077ord=s3cret''); DELETE FROM t; END'");
        assert!(!u.contains("s3cret") && u.contains("DELETE FROM t"), "{u}");
        // A function body.
        assert_eq!(
            r("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN UPDATE t SET x = 1; -- password reset\n END $$"),
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN UPDATE t SET x = 1; -- password '***'\n END $$"
        );
        // A variable named after the key costs its neighbour, not the body.
        assert_eq!(
            r("DO $$ DECLARE password text; BEGIN UPDATE t SET a = password; END $$"),
            "DO $$ DECLARE password '***'; BEGIN UPDATE t SET a = password; END $$"
        );
    }
    // Nothing to redact: nothing changes.
    let t = "DO $$ BEGIN RAISE NOTICE 'Reset password'; UPDATE t SET a = 1; END $$";
    assert_eq!(redacted(t), t);
    assert_eq!(redacted_unparsed(t), t);
}

/// A value the raw rules find running into a string constant masks only the bytes it
/// covers: the constant keeps its quotes and the code after the value.
#[test]
fn a_raw_value_running_into_a_constant_keeps_the_constant() {
    assert_eq!(
        redacted_unparsed("BOGUS password||'GRANT ALL ON t TO PUBLIC'"),
        "BOGUS password'***''*** ALL ON t TO PUBLIC'"
    );
}

#[test]
fn other_spellings_of_a_password_are_redacted() {
    for r in [redacted, redacted_unparsed] {
        let cases = [
            (
                "CREATE USER MAPPING FOR bob SERVER s OPTIONS (\"user\" 'etl', \"password\" 'SECRET')",
                "CREATE USER MAPPING FOR bob SERVER s OPTIONS (\"user\" 'etl', \"password\" '***')",
            ),
            (
                "ALTER SERVER s OPTIONS (ADD \"password\" 'SECRET')",
                "ALTER SERVER s OPTIONS (ADD \"password\" '***')",
            ),
            (
                "ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET sslpassword 'SECRET')",
                "ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET sslpassword '***')",
            ),
            (
                "SELECT dblink_connect('b', concat('host=h password=', 'SECRET'))",
                "SELECT dblink_connect('b', concat('host=h password=', '***'))",
            ),
            (
                "SELECT dblink_connect('host=h password = ' || 'SECRET')",
                "SELECT dblink_connect('host=h password = ' || '***')",
            ),
            (
                "SELECT dblink_connect('host=h pass' || 'word=SECRET')",
                "SELECT dblink_connect('host=h pass' || 'word=''***''')",
            ),
            (
                "SELECT set_config('app.password', 'SECRET', false)",
                "SELECT set_config('app.password', '***', false)",
            ),
            (
                "SELECT dblink_connect('host=h sslpassword=SECRET')",
                "SELECT dblink_connect('host=h sslpassword=''***''')",
            ),
            (
                "SELECT dblink_connect('host=h password=''SEC RET'' user=x')",
                "SELECT dblink_connect('host=h password=''***'' user=x')",
            ),
            (
                "SELECT set_config(U&'app.pass!0077ord' UESCAPE '!', 'SECRET', false)",
                "SELECT set_config(U&'app.pass!0077ord' UESCAPE '!', '***', false)",
            ),
            (
                "SELECT dblink_connect(U&'host=h pass!0077ord=' UESCAPE '!' || 'SECRET')",
                "SELECT dblink_connect(U&'host=h pass!0077ord=' UESCAPE '!' || '***')",
            ),
            ("SET app.password TO 'SECRET'", "SET app.password TO '***'"),
            ("SET app.db_password = 'SECRET'", "SET app.db_password = '***'"),
            // A setting's value may be written without quotes.
            ("SET app.password TO SECRET", "SET app.password TO '***'"),
            ("SET SESSION app.password = 12345", "SET SESSION app.password = '***'"),
            (
                "ALTER ROLE r SET app.password TO SECRET",
                "ALTER ROLE r SET app.password TO '***'",
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(r(sql), want, "{sql}");
        }
    }
    // Not secrets: a setting of another name, strings not joined, the word alone.
    for sql in [
        "SELECT set_config('app.user', 'SECRET', false)",
        "SELECT upper('host=h password='), 'SECRET'",
        "SELECT 'password' || name FROM t",
        "SELECT concat('Reset password', '')",
        "SELECT password_reset FROM users WHERE id = 5",
    ] {
        assert_eq!(redacted(sql), sql);
    }
}

#[test]
fn parameters_in_a_secrets_place_are_found() {
    let none: Vec<usize> = Vec::new();
    assert_eq!(secret_params("SELECT dblink_connect($1)"), none);
    assert_eq!(
        secret_params("SELECT dblink_connect('host=h password=' || $2), $1"),
        vec![2]
    );
    assert_eq!(
        secret_params("SELECT concat('host=h password=', $1), $2"),
        vec![1]
    );
    assert_eq!(
        secret_params(
            "SELECT set_config('app.password', $1, false), set_config('app.user', $2, false)"
        ),
        vec![1]
    );
    assert_eq!(
        secret_params("UPDATE accounts SET password = $3 WHERE id = $1"),
        vec![3]
    );
    assert_eq!(secret_params("SELECT $1 WHERE 'password' = $2"), none);
}

#[test]
fn a_parameter_loses_its_credentials_like_a_constant() {
    assert_eq!(
        redact_param("host=10.0.0.5 user=etl password=Tr0ub4dor-x", false).as_deref(),
        Some("host=10.0.0.5 user=etl password='***'")
    );
    assert_eq!(
        redact_param("host=h sslpassword='a b\\' c' user=x", false).as_deref(),
        Some("host=h sslpassword='***' user=x")
    );
    assert_eq!(
        redact_param("postgres://etl:Tr0ub4dor@db/x", false).as_deref(),
        Some("postgres://etl:'***'@db/x")
    );
    assert_eq!(redact_param("hello", false), None);
    assert_eq!(redact_param("Reset password", false), None);
    assert_eq!(redact_param("hello", true).as_deref(), Some("***"));
}

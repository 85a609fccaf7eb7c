//! The file format: what loads, what is rejected, and that every error names file:line.

use super::*;
use crate::policy::{Action, MaskMethod, ParamRedaction, PolicyError};
use sha2::Digest;

fn err(text: &str) -> String {
    match Policy::from_str(text, "p.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts the error names `p.toml:<line>` and mentions `needle`.
#[track_caller]
fn assert_err(text: &str, line: usize, needle: &str) {
    let e = err(text);
    assert!(
        e.starts_with(&format!("p.toml:{line}: ")),
        "wanted line {line}: {e}"
    );
    assert!(e.contains(needle), "wanted `{needle}` in: {e}");
}

const PRINCIPALS: &str = r#"
[agents.agent]
[agents.etl]
[approvers.alice]
display_name = "Alice"
email = "alice@example.com"
aad_object_id = "0f0e0d0c-0b0a-0908-0706-050403020100"
[approvers.bob]
[approvers.carol]
[groups]
dba = ["alice", "bob"]
bots = ["agent", "etl"]
"#;

#[test]
fn shipped_policies_load() {
    let d = default_policy();
    assert!(d.rules().is_empty());
    assert!(d.pii_pattern_count() >= 10);
    assert!(d.kinds_without_default().is_empty());
    assert_eq!(
        d.is_pii(&c("public.customers.email")),
        Some(MaskMethod::Partial)
    );
    assert_eq!(d.is_pii(&c("hr.staff.ssn")), Some(MaskMethod::Redact));
    assert_eq!(d.is_pii(&c("public.customers.name")), None);

    let demo = demo_policy();
    let ids: Vec<String> = demo.rules().into_iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [
            "reporting-masked",
            "ssn-two-approvals",
            "agent-no-drop",
            "roles-need-dba"
        ]
    );
    assert_eq!(demo.approvers().len(), 2);
    assert_eq!(demo.group("dba").unwrap().members, ["alice", "bob"]);
    assert_eq!(demo.agents()[0].name, "agent");
    // Rule locations point at the `id = …` line of the file.
    let src = &demo.rules()[0].source;
    let line: usize = src.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        DEMO_TOML
            .lines()
            .nth(line - 1)
            .unwrap()
            .contains("id = \"reporting-masked\""),
        "{src}"
    );
}

#[test]
fn principals_are_parsed_and_exposed() {
    let digest = hex::encode(sha2::Sha256::digest(b"s3cret"));
    let text = format!("{PRINCIPALS}\n[approvers.dave]\ntoken_sha256 = \"{digest}\"\n");
    let p = Policy::from_str(&text, "p.toml").unwrap();
    assert_eq!(
        p.approver_by_token("s3cret").map(|a| a.name.as_str()),
        Some("dave")
    );
    assert!(p.approver_by_token("s3cret ").is_none());
    assert!(p.approver_by_token("").is_none());
    let alice = p.approver("alice").unwrap();
    assert_eq!(alice.display_name, "Alice");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(
        p.approver_by_aad_object_id("0F0E0D0C-0B0A-0908-0706-050403020100")
            .map(|a| a.name.as_str()),
        Some("alice")
    );
    // Display name defaults to the name.
    assert_eq!(p.approver("bob").unwrap().display_name, "bob");
    // The database users an approver also connects as, matched as the registry compares
    // requesters (ignoring case).
    let text = format!("{text}\n[approvers.erin]\ndatabase_users = [\"erin_rw\", \"ETL\"]\n");
    let p2 = Policy::from_str(&text, "p.toml").unwrap();
    assert_eq!(p2.approvers_connecting_as("etl"), ["erin"]);
    assert_eq!(p2.approvers_connecting_as("ERIN_RW"), ["erin"]);
    assert!(p2.approvers_connecting_as("agent").is_empty());
    assert_err(
        "[approvers.a]\ndatabase_users = [\" \"]\n",
        2,
        "must not be empty",
    );
    assert_eq!(p.groups_of("alice"), ["dba"]);
    assert_eq!(p.groups_of("agent"), ["bots"]);
    assert!(p.groups_of("nobody").is_empty());
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    assert_err(
        "[defaults]\nread = \"allow\"\nreed = \"allow\"\n",
        3,
        "reed",
    );
    assert_err(
        "[[rule]]\nid = \"x\"\naction = \"deny\"\nuser = [\"a\"]\n",
        4,
        "user",
    );
    assert_err("\n\nbogus = 1\n", 3, "bogus");
    assert_err(
        "[[pii]]\ncolumns = [\"a.b.c\"]\nmask = \"redact\"\nmethod = 1\n",
        4,
        "method",
    );
    assert_err("[approvers.a]\nname = \"x\"\n", 2, "name");
}

#[test]
fn bad_values_name_their_line() {
    assert_err("[defaults]\n\nread = \"permit\"\n", 3, "permit");
    assert_err(
        "[[rule]]\nid = \"x\"\naction = \"deny\"\nkinds = [\"reads\"]\n",
        4,
        "reads",
    );
    assert_err(
        "[[pii]]\ncolumns = [\"a.b.c\"]\nmask = \"blur\"\n",
        3,
        "blur",
    );
    assert_err("[[pii]]\ncolumns = [\n  \"public.customers.email\",\n  \"customers.ssn\",\n]\nmask = \"hash\"\n", 4, "schema.table.column");
    assert_err(
        "[[rule]]\nid = \"x\"\naction = \"deny\"\ntables = [\"orders\"]\n",
        4,
        "*.orders",
    );
    assert_err(
        "[[rule]]\nid = \"x\"\naction = \"deny\"\nflags = [\"truncate\", \"drop\"]\n",
        4,
        "unknown flag `drop`",
    );
    assert_err("[defaults]\nquorum = 0\n", 2, "at least 1");
    assert_err("[defaults]\nhold_timeout_secs = 0\n", 2, "at least 1");
    assert_err(
        "[[rule]]\nid = \"has space\"\naction = \"deny\"\n",
        2,
        "rule id",
    );
    assert_err(
        "[[rule]]\nid = \"default.read\"\naction = \"deny\"\n",
        2,
        "reserved",
    );
    assert_err("[[rule]]\naction = \"deny\"\n", 1, "id");
    assert_err("[approvers.a]\ntoken_sha256 = \"abc\"\n", 2, "64 hex");
    assert_err("[approvers.a]\naad_object_id = \"alice\"\n", 2, "GUID");
    // One person, two approver names: they would count twice towards a quorum.
    assert_err(
        "[approvers.a]\naad_object_id = \"0f0e0d0c-0b0a-0908-0706-050403020100\"\n\
         [approvers.b]\naad_object_id = \"0F0E0D0C-0B0A-0908-0706-050403020100\"\n",
        4,
        "same aad_object_id",
    );
    let hash = "ab".repeat(32);
    assert_err(
        &format!(
            "[approvers.a]\ntoken_sha256 = \"{hash}\"\n[approvers.b]\ntoken_sha256 = \"{hash}\"\n"
        ),
        4,
        "same token_sha256",
    );
    assert_err(
        "[[rule]]\nid = \"x\"\naction = \"hold\"\nredact_params = [0]\n",
        4,
        "start at 1",
    );
    assert_err(
        "[[pii]]\ncolumns = []\nmask = \"hash\"\n",
        2,
        "at least one column",
    );
}

#[test]
fn inconsistent_rules_are_rejected() {
    let p = |rest: &str| format!("{PRINCIPALS}{rest}");
    let base = PRINCIPALS.lines().count();
    // Hold-only settings on other actions.
    assert_err(
        &p("[[rule]]\nid = \"x\"\naction = \"allow\"\nquorum = 2\n"),
        base + 4,
        "only apply to `hold`",
    );
    assert_err(
        &p("[[rule]]\nid = \"x\"\naction = \"deny\"\napprovers = [\"dba\"]\n"),
        base + 4,
        "only apply to `hold`",
    );
    // mask is about reads.
    assert_err(
        &p("[[rule]]\nid = \"x\"\naction = \"mask\"\nkinds = [\"read\", \"ddl\"]\n"),
        base + 4,
        "mask",
    );
    assert_err("[defaults]\nwrite = \"mask\"\n", 2, "mask");
    // References.
    assert_err(
        &p("[[rule]]\nid = \"x\"\naction = \"hold\"\napprovers = [\"dba\", \"zed\"]\n"),
        base + 4,
        "`zed`",
    );
    assert_err(
        &p("[[rule]]\nid = \"x\"\naction = \"hold\"\napprovers = [\"bots\"]\n"),
        base + 4,
        "not an approver",
    );
    assert_err(
        &p("[[rule]]\nid = \"x\"\naction = \"deny\"\ngroups = [\"admins\"]\n"),
        base + 4,
        "unknown group",
    );
    assert_err(
        &p("[[rule]]\nid = \"x\"\naction = \"deny\"\nusers = [\"agnet\"]\n"),
        base + 4,
        "agnet",
    );
    assert_err(
        &p("[[rule]]\nid = \"x\"\naction = \"hold\"\napprovers = [\"alice\"]\nquorum = 2\n"),
        base + 5,
        "quorum 2 but only 1",
    );
    assert_err(
        "[agents.a]\n[groups]\ng = [\"a\", \"b\"]\n",
        3,
        "`b` is not a declared",
    );
    assert_err(
        &p("[defaults]\napprovers = [\"alice\"]\nquorum = 3\n"),
        base + 3,
        "quorum 3",
    );
    // Names are unique across agents, approvers and groups.
    assert_err("[agents.x]\n[approvers.x]\n", 2, "already declared");
    assert_err("[agents.x]\n[groups]\nx = [\"x\"]\n", 3, "already declared");
    // Risky flags are never lifted.
    assert_err("[flags]\nexplain_analyze = \"allow\"\n", 2, "hold or deny");
    assert_err("[flags]\ntruncate = \"mask\"\n", 2, "allow, hold or deny");
    // Duplicate rule ids.
    assert_err(
        "[[rule]]\nid = \"x\"\naction = \"deny\"\n\n[[rule]]\nid = \"x\"\naction = \"hold\"\n",
        6,
        "p.toml:2",
    );
}

#[test]
fn glob_user_names_need_no_declaration() {
    let p = Policy::from_str(
        "[[rule]]\nid = \"bots\"\naction = \"deny\"\nusers = [\"*-bot\"]\n",
        "p.toml",
    )
    .unwrap();
    assert_eq!(p.rules()[0].source, "p.toml:2");
}

#[test]
fn missing_defaults_are_held_by_built_in() {
    let p = Policy::from_str("[defaults]\nread = \"allow\"\n", "p.toml").unwrap();
    assert_eq!(p.kinds_without_default().len(), 9);
    assert!(!p.kinds_without_default().contains(&Kind::Read));
    let d = p.evaluate(
        &classified(vec![F::new(Kind::Txn, "BEGIN")]),
        "BEGIN",
        &ctx("a", "", "db"),
        &Catalog::default(),
    );
    assert_eq!(d.action, Action::Hold);
    assert_eq!(d.rule_id, "built-in.default.txn");
    assert_eq!(d.rule_source, "built-in");
}

#[test]
fn empty_policy_holds_everything_it_can() {
    let p = Policy::from_str("", "empty.toml").unwrap();
    for kind in crate::policy::model::KINDS {
        let d = p.evaluate(
            &classified(vec![F::new(kind, "X")]),
            "X",
            &ctx("a", "", "db"),
            &Catalog::default(),
        );
        assert_eq!(d.action, Action::Hold, "{kind:?}");
    }
}

#[test]
fn directory_merges_in_name_order_and_rejects_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("20-rules.toml"),
        "[[rule]]\nid = \"b\"\naction = \"deny\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("10-base.toml"),
        "[defaults]\nread = \"allow\"\n\n[[rule]]\nid = \"a\"\naction = \"deny\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a policy").unwrap();
    let p = Policy::load(dir.path()).unwrap();
    let ids: Vec<String> = p.rules().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(p.sources().len(), 2);
    assert!(
        p.rules()[0].source.ends_with("10-base.toml:5"),
        "{}",
        p.rules()[0].source
    );

    // The same default in two files: an error naming both places.
    std::fs::write(
        dir.path().join("30-more.toml"),
        "[defaults]\n\nread = \"hold\"\n",
    )
    .unwrap();
    let e = Policy::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("30-more.toml:3"), "{e}");
    assert!(e.contains("10-base.toml:2"), "{e}");
    std::fs::remove_file(dir.path().join("30-more.toml")).unwrap();

    // The same rule id in two files.
    std::fs::write(
        dir.path().join("30-more.toml"),
        "[[rule]]\nid = \"a\"\naction = \"hold\"\n",
    )
    .unwrap();
    let e = Policy::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("30-more.toml:2") && e.contains("10-base.toml:5"),
        "{e}"
    );

    // Groups may be declared in a later file than the rules using them.
    std::fs::write(
        dir.path().join("30-more.toml"),
        "[agents.x]\n[groups]\ng = [\"x\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20-rules.toml"),
        "[[rule]]\nid = \"b\"\naction = \"deny\"\ngroups = [\"g\"]\n",
    )
    .unwrap();
    assert!(Policy::load(dir.path()).is_ok());

    let empty = tempfile::tempdir().unwrap();
    let e = Policy::load(empty.path()).unwrap_err().to_string();
    assert!(e.contains("no *.toml"), "{e}");
    match Policy::load(&empty.path().join("nope.toml")) {
        Err(PolicyError::Read { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn classifier_options_come_from_the_policy() {
    let p = Policy::from_str(
        "[functions]\nsafe = [\"app.slugify\", \"initcap\"]\n[session]\nallowed_settings = [\"Statement_Timeout\"]\n",
        "p.toml",
    )
    .unwrap();
    let o = p.classifier_options();
    assert_eq!(o.safe_functions, ["app.slugify", "initcap"]);
    assert_eq!(o.allowed_settings, ["statement_timeout"]);
    // Without [session], the built-in list applies.
    let o = default_policy().classifier_options();
    assert!(o
        .allowed_settings
        .contains(&"statement_timeout".to_string()));
    assert!(!o.allowed_settings.contains(&"search_path".to_string()));
}

#[test]
fn param_redaction_by_rule_and_globally() {
    let p = Policy::from_str(
        "redact_params = \"pii\"\n[[rule]]\nid = \"login\"\naction = \"allow\"\nlabels = [\"SELECT\"]\nredact_params = [2]\n[[pii]]\ncolumns = [\"public.customers.ssn\"]\nmask = \"redact\"\n",
        "p.toml",
    )
    .unwrap();
    let cat = Catalog::default();
    let select = p.evaluate(
        &classified(vec![F::new(Kind::Read, "SELECT")]),
        "",
        &ctx("a", "", ""),
        &cat,
    );
    assert_eq!(select.rule_id, "login");
    let r = p.param_redaction(&select);
    assert_eq!(r, ParamRedaction::Positions(vec![2]));
    let mut params = vec![Some("bob".to_string()), Some("pw".to_string()), None];
    r.apply(&mut params);
    assert_eq!(
        params,
        [
            Some("bob".into()),
            Some(crate::policy::REDACTED_PARAM.into()),
            None
        ]
    );

    let upd = F::new(Kind::Write, "UPDATE")
        .writes(&["public.customers"])
        .cols(&["public.customers.ssn"]);
    let d = p.evaluate(&classified(vec![upd]), "", &ctx("a", "", ""), &cat);
    assert_eq!(d.pii_columns, ["public.customers.ssn"]);
    assert_eq!(p.param_redaction(&d), ParamRedaction::All);

    let ins = F::new(Kind::Write, "INSERT").writes(&["public.orders"]);
    let d = p.evaluate(&classified(vec![ins]), "", &ctx("a", "", ""), &cat);
    assert_eq!(p.param_redaction(&d), ParamRedaction::None);

    let all = Policy::from_str("redact_params = \"all\"\n", "p.toml").unwrap();
    let d = all.evaluate(
        &classified(vec![F::new(Kind::Txn, "BEGIN")]),
        "",
        &ctx("a", "", ""),
        &cat,
    );
    assert_eq!(all.param_redaction(&d), ParamRedaction::All);
}

//! Evaluation semantics: precedence, matching, groups, multi-statement strings, holds, masks.

use std::time::Duration;

use super::*;
use crate::policy::{Action, Decision};

fn eval(p: &Policy, stmts: Vec<F>, who: &RequestContext) -> Decision {
    p.evaluate(&classified(stmts), "", who, &Catalog::default())
}

fn select_orders() -> F {
    F::new(Kind::Read, "SELECT")
        .reads(&["public.orders"])
        .out(&["public.orders.id", "public.orders.total"])
}

fn perms<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let head = rest.remove(i);
        for mut p in perms(&rest) {
            p.insert(0, head.clone());
            out.push(p);
        }
    }
    out
}

#[test]
fn precedence_is_deny_hold_mask_allow_in_any_order() {
    let rules = [
        ("r-allow", "allow"),
        ("r-mask", "mask"),
        ("r-hold", "hold"),
        ("r-deny", "deny"),
    ];
    let pii = "[[pii]]\ncolumns = [\"public.customers.email\"]\nmask = \"hash\"\n";
    let read = F::new(Kind::Read, "SELECT")
        .reads(&["public.customers"])
        .out(&["public.customers.email"]);
    for order in perms(&rules) {
        for drop_n in 0..4 {
            // Remove the strictest `drop_n` actions to test each level of the ladder.
            let present: Vec<_> = order
                .iter()
                .filter(|(id, _)| {
                    let rank = ["r-deny", "r-hold", "r-mask", "r-allow"]
                        .iter()
                        .position(|x| x == id)
                        .unwrap();
                    rank >= drop_n
                })
                .cloned()
                .collect();
            let text: String = present
                .iter()
                .map(|(id, a)| format!("[[rule]]\nid = \"{id}\"\naction = \"{a}\"\n"))
                .collect::<String>()
                + pii;
            let p = Policy::from_str(&text, "p.toml").unwrap();
            let d = p.evaluate(
                &classified(vec![read.clone()]),
                "SELECT email FROM customers",
                &ctx("u", "", "db"),
                &demo_catalog(),
            );
            let want = ["r-deny", "r-hold", "r-mask", "r-allow"][drop_n];
            assert_eq!(d.rule_id, want, "order {order:?} minus {drop_n}");
            let want_action = [Action::Deny, Action::Hold, Action::Mask, Action::Allow][drop_n];
            assert_eq!(d.action, want_action, "order {order:?}");
        }
    }
}

#[test]
fn first_rule_in_file_order_names_equal_actions() {
    let p = Policy::from_str(
        "[[rule]]\nid = \"first\"\naction = \"hold\"\nkinds = [\"ddl\"]\n\n[[rule]]\nid = \"second\"\naction = \"hold\"\nlabels = [\"DROP*\"]\n",
        "p.toml",
    )
    .unwrap();
    let d = eval(&p, vec![F::new(Kind::Ddl, "DROP TABLE")], &ctx("u", "", ""));
    assert_eq!(
        (d.rule_id.as_str(), d.rule_source.as_str()),
        ("first", "p.toml:2")
    );
    let d = eval(
        &p,
        vec![F::new(Kind::Utility, "DROP OWNED")],
        &ctx("u", "", ""),
    );
    assert_eq!(d.rule_id, "second");
}

#[test]
fn rules_match_on_identity_application_database_and_label() {
    let p = Policy::from_str(
        r#"
[agents.agent]
[agents.etl]
[approvers.alice]
[groups]
bots = ["agent", "etl"]

[defaults]
ddl = "hold"
read = "allow"

[[rule]]
id = "etl-ddl-staging"
action = "allow"
users = ["etl"]
databases = ["staging*"]
kinds = ["ddl"]

[[rule]]
id = "bots-no-reporting-db"
action = "deny"
groups = ["bots"]
databases = ["reporting"]
except_users = ["etl"]

[[rule]]
id = "notebooks"
action = "hold"
applications = ["jupyter*", "*notebook"]
kinds = ["read"]
"#,
        "p.toml",
    )
    .unwrap();
    let ddl = || vec![F::new(Kind::Ddl, "CREATE INDEX")];
    assert_eq!(
        eval(&p, ddl(), &ctx("etl", "", "staging_eu")).action,
        Action::Allow
    );
    assert_eq!(
        eval(&p, ddl(), &ctx("etl", "", "prod")).rule_id,
        "default.ddl"
    );
    assert_eq!(
        eval(&p, ddl(), &ctx("agent", "", "staging")).rule_id,
        "default.ddl"
    );

    let read = || vec![select_orders()];
    assert_eq!(
        eval(&p, read(), &ctx("agent", "", "reporting")).action,
        Action::Deny
    );
    assert_eq!(
        eval(&p, read(), &ctx("etl", "", "reporting")).action,
        Action::Allow,
        "except_users"
    );
    assert_eq!(
        eval(&p, read(), &ctx("someone", "", "reporting")).action,
        Action::Allow,
        "not in group"
    );
    assert_eq!(
        eval(&p, read(), &ctx("x", "jupyter-lab", "db")).rule_id,
        "notebooks"
    );
    assert_eq!(
        eval(&p, read(), &ctx("x", "my notebook", "db")).rule_id,
        "notebooks"
    );
    assert_eq!(
        eval(&p, read(), &ctx("x", "psql", "db")).rule_id,
        "default.read"
    );
}

#[test]
fn tables_and_columns_any_for_restrictive_all_for_permissive() {
    let p = Policy::from_str(
        r#"
[defaults]
ddl = "hold"
write = "allow"

[[rule]]
id = "staging-ddl"
action = "allow"
kinds = ["ddl"]
tables = ["staging.*"]

[[rule]]
id = "no-audit-writes"
action = "deny"
kinds = ["write"]
tables = ["*.audit_*"]

[[rule]]
id = "salary"
action = "hold"
columns = ["hr.*.salary"]
"#,
        "p.toml",
    )
    .unwrap();
    let u = ctx("u", "", "");
    let ddl = |tables: &[&str]| vec![F::new(Kind::Ddl, "ALTER TABLE").writes(tables)];
    assert_eq!(eval(&p, ddl(&["staging.t"]), &u).action, Action::Allow);
    assert_eq!(
        eval(&p, ddl(&["staging.t", "staging.u"]), &u).action,
        Action::Allow
    );
    // One table outside staging: the permissive rule does not cover the statement.
    assert_eq!(
        eval(&p, ddl(&["staging.t", "public.customers"]), &u).action,
        Action::Hold
    );
    // No table at all: a permissive table rule does not apply.
    assert_eq!(eval(&p, ddl(&[]), &u).action, Action::Hold);

    let w = |tables: &[&str]| vec![F::new(Kind::Write, "INSERT").writes(tables)];
    assert_eq!(eval(&p, w(&["public.orders"]), &u).action, Action::Allow);
    // Any audit table in the statement is enough for the deny.
    assert_eq!(
        eval(&p, w(&["public.orders", "ops.audit_log"]), &u).action,
        Action::Deny
    );

    let sal = F::new(Kind::Read, "SELECT")
        .reads(&["hr.staff"])
        .cols(&["hr.staff.salary"])
        .out(&["hr.staff.name"]);
    let d = eval(&p, vec![sal], &u);
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Hold, "salary"),
        "a WHERE on salary counts"
    );
}

#[test]
fn group_expansion_for_approvers_and_hold_settings() {
    let p = Policy::from_str(
        r#"
[agents.agent]
[approvers.alice]
[approvers.bob]
[approvers.carol]
[groups]
dba = ["alice", "bob"]
security = ["carol", "alice"]

[defaults]
ddl = "hold"
role = "hold"
approvers = ["security"]
quorum = 1
hold_timeout_secs = 120

[[rule]]
id = "role-changes"
action = "hold"
kinds = ["role"]
approvers = ["dba", "carol", "alice"]
quorum = 2
hold_timeout_secs = 60
"#,
        "p.toml",
    )
    .unwrap();
    let u = ctx("agent", "", "");
    let d = eval(&p, vec![F::new(Kind::Role, "GRANT")], &u);
    assert_eq!(d.rule_id, "role-changes");
    assert_eq!(
        d.approvers,
        ["alice", "bob", "carol"],
        "groups expanded, deduplicated, in order"
    );
    assert_eq!(d.quorum, 2);
    assert_eq!(d.hold_timeout, Some(Duration::from_secs(60)));
    let names: Vec<&str> = p
        .approvers_for(&d)
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert!(p.may_approve(&d, "bob", "agent"));
    assert!(
        !p.may_approve(&d, "bob", "bob"),
        "nobody approves their own statement"
    );
    assert!(!p.may_approve(&d, "agent", "bob"));

    let d = eval(&p, vec![F::new(Kind::Ddl, "CREATE TABLE")], &u);
    assert_eq!(d.rule_id, "default.ddl");
    assert_eq!(d.approvers, ["carol", "alice"]);
    assert_eq!(d.quorum, 1);
    assert_eq!(d.hold_timeout, Some(Duration::from_secs(120)));

    // Both in one string: approvers must be allowed for both, strictest quorum and timeout.
    let d = eval(
        &p,
        vec![
            F::new(Kind::Ddl, "CREATE TABLE"),
            F::new(Kind::Role, "GRANT"),
        ],
        &u,
    );
    assert_eq!(
        d.rule_id, "default.ddl",
        "first held statement names the decision"
    );
    assert_eq!(d.approvers, ["carol", "alice"]);
    assert_eq!(d.quorum, 2);
    assert_eq!(d.hold_timeout, Some(Duration::from_secs(60)));
    assert!(d.reason.starts_with("statement 1 of 2: "), "{}", d.reason);

    // Non-hold decisions carry no hold settings.
    let d = eval(&p, vec![F::new(Kind::Read, "SELECT")], &u);
    assert_eq!(
        d.action,
        Action::Hold,
        "read has no default here: built-in hold"
    );
    let allow = Policy::from_str("[defaults]\nread = \"allow\"\n", "p.toml").unwrap();
    let d = eval(&allow, vec![F::new(Kind::Read, "SELECT")], &u);
    assert_eq!((d.quorum, d.hold_timeout, d.approvers.len()), (0, None, 0));
}

#[test]
fn approvers_default_to_everyone_declared() {
    let p = Policy::from_str(
        "[approvers.x]\n[approvers.y]\n[defaults]\nddl = \"hold\"\n",
        "p.toml",
    )
    .unwrap();
    let d = eval(&p, vec![F::new(Kind::Ddl, "DROP TABLE")], &ctx("u", "", ""));
    assert_eq!(d.approvers, ["x", "y"]);
    assert_eq!(d.quorum, 1);
    assert_eq!(
        d.hold_timeout, None,
        "the gateway's [approval] timeout applies"
    );
}

#[test]
fn multi_statement_strictest_wins_and_empty_is_allowed() {
    let p = default_policy();
    let u = ctx("u", "", "");
    let d = eval(
        &p,
        vec![
            F::new(Kind::Txn, "BEGIN"),
            select_orders(),
            F::new(Kind::Ddl, "DROP TABLE"),
            F::new(Kind::Txn, "COMMIT"),
        ],
        &u,
    );
    assert_eq!(d.action, Action::Hold);
    assert_eq!(d.rule_id, "default.ddl");
    assert!(
        d.reason.starts_with("statement 3 of 4: DROP TABLE"),
        "{}",
        d.reason
    );

    let d = eval(&p, vec![], &u);
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Allow, "built-in.empty")
    );

    let deny = Policy::from_str(
        "[defaults]\nread = \"allow\"\ntxn = \"allow\"\n[[rule]]\nid = \"no\"\naction = \"deny\"\nlabels = [\"VACUUM\"]\n",
        "p.toml",
    )
    .unwrap();
    let d = eval(
        &deny,
        vec![
            F::new(Kind::Unknown, "DO block"),
            F::new(Kind::Utility, "VACUUM"),
        ],
        &u,
    );
    assert_eq!((d.action, d.rule_id.as_str()), (Action::Deny, "no"));
}

#[test]
fn flags_put_a_floor_under_rules() {
    let p = Policy::from_str(
        "[defaults]\nwrite = \"allow\"\n[flags]\ntruncate = \"allow\"\nunbounded_write = \"deny\"\n[[rule]]\nid = \"ok\"\naction = \"allow\"\n",
        "p.toml",
    )
    .unwrap();
    let u = ctx("u", "", "");
    let upd = F::new(Kind::Write, "UPDATE")
        .writes(&["public.t"])
        .flag(|f| f.unbounded_write = true);
    let d = eval(&p, vec![upd], &u);
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Deny, "flags.unbounded_write")
    );
    assert_eq!(d.rule_source, "p.toml:5");
    let tr = F::new(Kind::Ddl, "TRUNCATE")
        .writes(&["public.t"])
        .flag(|f| f.truncate = true);
    assert_eq!(
        eval(&p, vec![tr], &u).rule_id,
        "ok",
        "truncate floor lifted, rule allows"
    );
    // Flags not mentioned are held by the built-in floor even under an allow-all rule.
    let cte = F::new(Kind::Read, "SELECT").flag(|f| f.data_modifying_cte = true);
    let d = eval(&p, vec![cte], &u);
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Hold, "built-in.flags.data_modifying_cte")
    );
}

#[test]
fn rules_can_match_flags_with_exceptions() {
    let p = Policy::from_str(
        r#"
[agents.ops]
[defaults]
write = "allow"
[flags]
truncate = "allow"
[[rule]]
id = "truncate-needs-approval"
action = "hold"
flags = ["truncate"]
except_users = ["ops"]
"#,
        "p.toml",
    )
    .unwrap();
    let tr = || {
        vec![F::new(Kind::Write, "TRUNCATE")
            .writes(&["public.t"])
            .flag(|f| f.truncate = true)]
    };
    assert_eq!(
        eval(&p, tr(), &ctx("agent", "", "")).rule_id,
        "truncate-needs-approval"
    );
    assert_eq!(eval(&p, tr(), &ctx("ops", "", "")).action, Action::Allow);
}

#[test]
fn pii_output_makes_an_export_and_lists_columns() {
    let p = default_policy();
    let f = F::new(Kind::Read, "SELECT")
        .reads(&["public.customers"])
        .cols(&["public.customers.ssn"])
        .out(&["public.customers.name", "public.customers.email"]);
    assert_eq!(p.effective_kind(&f.0), Kind::Export);
    let d = eval(&p, vec![f], &ctx("u", "", ""));
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Hold, "default.export")
    );
    assert_eq!(
        d.pii_columns,
        ["public.customers.ssn", "public.customers.email"]
    );
    assert!(
        d.reason.contains("returning PII (public.customers.email)"),
        "{}",
        d.reason
    );
    // A PII column only in WHERE is not an export.
    let f = F::new(Kind::Read, "SELECT")
        .reads(&["public.customers"])
        .cols(&["public.customers.ssn"])
        .out(&["public.customers.id"]);
    assert_eq!(p.effective_kind(&f.0), Kind::Read);
    let d = eval(&p, vec![f], &ctx("u", "", ""));
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.pii_columns, ["public.customers.ssn"]);
}

#[test]
fn mask_rules_never_apply_to_writes_or_ddl() {
    let p = Policy::from_str(
        "[defaults]\nwrite = \"hold\"\nddl = \"hold\"\nread = \"hold\"\n[[rule]]\nid = \"m\"\naction = \"mask\"\napplications = [\"reporting\"]\n",
        "p.toml",
    )
    .unwrap();
    let r = ctx("u", "reporting", "");
    assert_eq!(
        eval(&p, vec![F::new(Kind::Write, "DELETE")], &r).rule_id,
        "default.write"
    );
    assert_eq!(
        eval(&p, vec![F::new(Kind::Ddl, "DROP TABLE")], &r).rule_id,
        "default.ddl"
    );
    // A read without PII under a mask rule has nothing to mask: allowed, named by the rule.
    let d = eval(&p, vec![select_orders()], &r);
    assert_eq!((d.action, d.rule_id.as_str()), (Action::Allow, "m"));
    assert!(d.reason.contains("nothing to mask"), "{}", d.reason);
}

#[test]
fn demo_policy_masks_reports_and_holds_ssn() {
    let p = demo_policy();
    let cat = demo_catalog();
    let report = ctx("agent", "reporting", "demo");
    let f = F::new(Kind::Read, "SELECT")
        .reads(&["public.customers"])
        .out(&[
            "public.customers.name",
            "public.customers.email",
            "public.customers.phone",
        ]);
    let sql = "SELECT name, email, phone FROM customers";
    let d = p.evaluate(&classified(vec![f.clone()]), sql, &report, &cat);
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Mask, "reporting-masked")
    );
    let rw = d.rewritten.expect("rewritten");
    assert!(
        rw.starts_with("SELECT name, CASE WHEN (email) IS NULL"),
        "{rw}"
    );
    assert!(rw.contains("AS email") && rw.contains("AS phone"), "{rw}");
    assert_eq!(d.reason, "SELECT on public.customers returning PII (public.customers.email, public.customers.phone): reports see customers with email and phone masked");

    // Not the reporting app: held as an export.
    let d = p.evaluate(
        &classified(vec![f]),
        sql,
        &ctx("agent", "psql", "demo"),
        &cat,
    );
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Hold, "default.export")
    );
    assert_eq!(d.approvers, ["alice", "bob"]);

    // ssn: never masked for reports, two approvals.
    let f = F::new(Kind::Read, "SELECT")
        .reads(&["public.customers"])
        .out(&["public.customers.name", "public.customers.ssn"]);
    let d = p.evaluate(
        &classified(vec![f]),
        "SELECT name, ssn FROM customers",
        &report,
        &cat,
    );
    assert_eq!(
        (d.action, d.rule_id.as_str(), d.quorum),
        (Action::Hold, "ssn-two-approvals", 2)
    );
    assert!(d.rewritten.is_none());

    // The agent may not drop; a DBA-only rule for roles.
    let d = p.evaluate(
        &classified(vec![
            F::new(Kind::Ddl, "DROP TABLE").writes(&["public.orders"])
        ]),
        "",
        &report,
        &cat,
    );
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Deny, "agent-no-drop")
    );
    let d = p.evaluate(
        &classified(vec![F::new(Kind::Role, "GRANT")]),
        "",
        &report,
        &cat,
    );
    assert_eq!(
        (d.rule_id.as_str(), d.hold_timeout),
        ("roles-need-dba", Some(Duration::from_secs(600)))
    );
}

#[test]
fn mask_that_cannot_be_proven_safe_is_held() {
    let p = demo_policy();
    let cat = demo_catalog();
    let report = ctx("agent", "reporting", "demo");
    let f = F::new(Kind::Read, "SELECT")
        .reads(&["public.customers"])
        .out(&["public.customers.email"]);
    let d = p.evaluate(
        &classified(vec![f.clone()]),
        "SELECT upper(email) FROM customers",
        &report,
        &cat,
    );
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Hold, "reporting-masked")
    );
    assert!(d.reason.contains("cannot mask safely"), "{}", d.reason);
    assert!(d.reason.contains("upper(email)"), "{}", d.reason);
    assert_eq!(d.approvers, ["alice", "bob"]);
    assert_eq!(d.quorum, 1);
    assert!(d.rewritten.is_none());

    // The classification says email comes back, the text does not show it: the rewrite does
    // not cover what the classifier saw, so hold.
    let d = p.evaluate(
        &classified(vec![f.clone()]),
        "SELECT name FROM customers",
        &report,
        &cat,
    );
    assert_eq!(d.action, Action::Hold);
    assert!(
        d.reason.contains("does not cover public.customers.email"),
        "{}",
        d.reason
    );

    // Text that does not parse, or a different number of statements.
    let d = p.evaluate(
        &classified(vec![f.clone()]),
        "SELEKT email FROM customers",
        &report,
        &cat,
    );
    assert_eq!(d.action, Action::Hold);
    let d = p.evaluate(
        &classified(vec![f]),
        "SELECT email FROM customers; SELECT 1",
        &report,
        &cat,
    );
    assert_eq!(d.action, Action::Hold);
}

#[test]
fn mask_in_a_multi_statement_string_rewrites_only_masked_statements() {
    let p = demo_policy();
    let cat = demo_catalog();
    let report = ctx("agent", "reporting", "demo");
    let stmts = vec![
        F::new(Kind::Txn, "BEGIN"),
        F::new(Kind::Read, "SELECT")
            .reads(&["public.customers"])
            .out(&["public.customers.email"]),
        F::new(Kind::Txn, "COMMIT"),
    ];
    let d = p.evaluate(
        &classified(stmts),
        "begin; select email from customers; commit",
        &report,
        &cat,
    );
    assert_eq!(d.action, Action::Mask);
    let rw = d.rewritten.unwrap();
    assert!(
        rw.starts_with("BEGIN; SELECT CASE WHEN (email) IS NULL"),
        "{rw}"
    );
    assert!(rw.ends_with("END AS email FROM customers; COMMIT"), "{rw}");
}

#[test]
fn unknown_columns_of_an_unknown_relation_count_as_pii_when_they_could_be() {
    // The classifier reports `t.*` for a relation missing from the catalog.
    let p = Policy::from_str(
        "[defaults]\nread = \"allow\"\nexport = \"hold\"\n[[pii]]\ncolumns = [\"crm.*.email\", \"public.customers.ssn\"]\nmask = \"hash\"\n",
        "p.toml",
    )
    .unwrap();
    let star = |t: &str| {
        F::new(Kind::Read, "SELECT")
            .reads(&[t])
            .out(&[&format!("{t}.*")])
    };
    let u = ctx("u", "", "");
    assert_eq!(
        p.is_pii(&c("crm.new_leads.*")),
        Some(crate::policy::MaskMethod::Hash)
    );
    assert_eq!(
        eval(&p, vec![star("crm.new_leads")], &u).action,
        Action::Hold
    );
    assert_eq!(
        eval(&p, vec![star("public.customers")], &u).action,
        Action::Hold
    );
    assert_eq!(
        eval(&p, vec![star("public.orders")], &u).action,
        Action::Allow
    );
    // Under the shipped policy, `*.*.email` can be in any table: unknown columns are held.
    let d = eval(&default_policy(), vec![star("public.brand_new")], &u);
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Action::Hold, "default.export")
    );
}

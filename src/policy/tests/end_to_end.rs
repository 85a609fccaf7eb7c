//! SQL text → the real classifier → the shipped policies. The facts-level table
//! (`defaults_table`) pins the policy; this pins the two together on the demo schema.

use std::sync::Arc;

use super::*;
use crate::policy::Action::{self, Allow, Deny, Hold, Mask};
use crate::sql::Classifier;

fn decide(p: &Policy, sql: &str, app: &str) -> crate::policy::Decision {
    let cat = Arc::new(demo_catalog());
    let classified = Classifier::new(cat.clone(), p.classifier_options()).classify(sql);
    p.evaluate(&classified, sql, &ctx("agent", app, "demo"), &cat)
}

#[test]
fn default_policy_on_real_classifications() {
    let p = default_policy();
    let cases: &[(&str, Action, &str)] = &[
        (
            "SELECT id, total FROM orders WHERE status = 'open'",
            Allow,
            "default.read",
        ),
        (
            "SELECT id FROM customers WHERE email = 'a@b.c'",
            Allow,
            "default.read",
        ),
        ("SELECT * FROM customers", Hold, "default.export"),
        // Not in the catalog: its columns are unknown and could be PII.
        ("SELECT * FROM brand_new_table", Hold, "default.export"),
        ("SELECT id FROM brand_new_table", Allow, "default.read"),
        ("select c from customers c", Hold, "default.export"),
        (
            "SELECT contact FROM customer_contacts",
            Hold,
            "default.export",
        ),
        ("SELECT version()", Allow, "default.catalog"),
        ("BEGIN", Allow, "default.txn"),
        (
            "INSERT INTO orders (id, total) VALUES (1, 2)",
            Allow,
            "default.write",
        ),
        (
            "UPDATE orders SET status = 'x'",
            Hold,
            "flags.unbounded_write",
        ),
        (
            "DELETE FROM orders WHERE id = 3 RETURNING id",
            Allow,
            "default.write",
        ),
        (
            "UPDATE customers SET name = 'x' WHERE id = 1 RETURNING email",
            Hold,
            "default.export",
        ),
        // A copy of PII into a column the policy does not declare is an export.
        (
            "INSERT INTO products (name, price) SELECT email, 1 FROM customers",
            Hold,
            "default.export",
        ),
        (
            "UPDATE customers SET name = ssn WHERE id = 1",
            Hold,
            "default.export",
        ),
        (
            "UPDATE customers SET email = lower(email) WHERE id = 1",
            Allow,
            "default.write",
        ),
        ("DROP TABLE orders", Hold, "default.ddl"),
        ("GRANT SELECT ON customers TO bob", Hold, "default.role"),
        ("DO $$ BEGIN PERFORM 1; END $$", Hold, "default.unknown"),
        (
            "WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d",
            Hold,
            "flags.data_modifying_cte",
        ),
        ("SELECT 1; DROP TABLE orders", Hold, "default.ddl"),
        ("", Allow, "built-in.empty"),
    ];
    let mut bad = Vec::new();
    for (sql, action, rule) in cases {
        let d = decide(&p, sql, "psql");
        if d.action != *action || d.rule_id != *rule {
            bad.push(format!(
                "{sql}: want {action:?} {rule}, got {:?} {} ({})",
                d.action, d.rule_id, d.reason
            ));
        }
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

#[test]
fn demo_policy_masks_real_classifications() {
    let p = demo_policy();
    let d = decide(
        &p,
        "SELECT c.name, c.email, o.total FROM customers c JOIN orders o ON o.customer_id = c.id",
        "reporting",
    );
    assert_eq!(d.action, Mask, "{}", d.reason);
    let rw = d.rewritten.unwrap();
    assert!(
        rw.contains("END AS email, o.total FROM customers c JOIN orders o"),
        "{rw}"
    );

    let d = decide(&p, "SELECT * FROM customers WHERE id = $1", "reporting");
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Hold, "ssn-two-approvals"),
        "{}",
        d.reason
    );

    // ssn only in WHERE: nothing PII comes back, so it is a plain read (the mask rule, which
    // does not cover ssn, does not apply).
    let d = decide(
        &p,
        "SELECT name FROM customers WHERE ssn = '123-45-6789'",
        "reporting",
    );
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Allow, "default.read"),
        "{}",
        d.reason
    );

    let d = decide(&p, "SELECT lower(email) FROM customers", "reporting");
    assert_eq!(d.action, Hold, "{}", d.reason);
    assert!(d.reason.contains("cannot mask safely"), "{}", d.reason);

    let d = decide(&p, "DROP TABLE orders", "reporting");
    assert_eq!(d.action, Deny);

    // The mask rule covers every column this copy touches, but a mask cannot be applied to
    // what a write stores: held, never passed unmasked.
    let d = decide(
        &p,
        "INSERT INTO products (name) SELECT email FROM customers",
        "reporting",
    );
    assert_eq!(d.action, Hold, "{}", d.reason);
    assert!(d.reason.contains("cannot mask safely"), "{}", d.reason);

    let d = decide(
        &p,
        "UPDATE orders SET quantity = 1 WHERE customer_id IN (SELECT id FROM customers WHERE ssn = '1')",
        "psql",
    );
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Allow, "default.write"),
        "{}",
        d.reason
    );
    let d = decide(&p, "UPDATE customers SET city = ssn WHERE id = 1", "psql");
    assert_eq!(
        (d.action, d.rule_id.as_str()),
        (Hold, "ssn-two-approvals"),
        "{}",
        d.reason
    );
    assert!(
        d.reason.contains("copying PII (public.customers.ssn)"),
        "{}",
        d.reason
    );
}

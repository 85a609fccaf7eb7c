//! Which statements need their tables compared with the live catalog before they are decided:
//! those whose results would carry a column added after the snapshot in a form the relay's
//! row-description check cannot see (whole-row values, set operations, COPY, unknown names).

use super::{classifier, one, sorted, tables};

fn live(sql: &str) -> Vec<String> {
    sorted(&one(&classifier(), sql).live_check)
}

#[test]
fn whole_row_values_are_checked_live() {
    for sql in [
        "SELECT to_json(o) FROM orders o",
        "SELECT o FROM orders o",
        "SELECT o::text FROM orders o WHERE id = 1",
        "SELECT row_to_json(orders) FROM orders",
        "SELECT json_agg(o.*) FROM orders o",
        "SELECT to_jsonb(public.orders) FROM public.orders",
        "SELECT ROW(o.*) FROM orders o",
        "SELECT (SELECT array_agg(o) FROM orders o)",
        "SELECT x FROM (SELECT id, total FROM orders) x",
        "WITH c AS (SELECT * FROM orders) SELECT json_agg(c) FROM c",
        "SELECT * FROM unnest(ARRAY(SELECT o FROM orders o)) u",
        "DECLARE cur CURSOR FOR SELECT to_json(o) FROM orders o",
    ] {
        assert_eq!(live(sql), tables(&["orders"]), "{sql}");
    }
}

#[test]
fn set_operations_over_a_star_are_checked_live() {
    assert_eq!(
        live("SELECT * FROM orders UNION ALL SELECT * FROM orders"),
        tables(&["orders"])
    );
    assert_eq!(
        live("SELECT * FROM (SELECT id FROM products UNION SELECT o.* FROM orders o) u"),
        tables(&["orders", "products"])
    );
    // Named columns: a name the snapshot lacks is attributed to its table instead.
    assert!(live("SELECT id FROM orders UNION SELECT id FROM products").is_empty());
}

#[test]
fn copy_to_is_checked_live_unless_it_names_its_columns() {
    assert_eq!(live("COPY orders TO STDOUT"), tables(&["orders"]));
    assert_eq!(
        live("COPY (SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id) TO STDOUT"),
        tables(&["customers", "orders"])
    );
    assert!(live("COPY orders (id, total) TO STDOUT").is_empty());
    assert!(live("COPY orders FROM STDIN").is_empty());
}

#[test]
fn an_unknown_name_over_a_star_subquery_is_checked_live() {
    // `card_number` is not in the snapshot: if it exists now, it comes from `orders` via `*`.
    assert_eq!(
        live("SELECT upper(card_number) FROM (SELECT * FROM orders) x"),
        tables(&["orders"])
    );
    // Straight from a table, the unknown name is attributed to it (the policy sees it).
    let f = one(&classifier(), "SELECT upper(card_number) FROM orders");
    assert_eq!(sorted(&f.output_columns), vec!["public.orders.card_number"]);
}

/// What the relay already checks column by column, and ordinary statements, cost nothing.
#[test]
fn attributable_results_need_no_live_check() {
    for sql in [
        "SELECT * FROM orders",
        "SELECT o.* FROM orders o",
        "SELECT (o).* FROM orders o",
        "SELECT x.* FROM (SELECT * FROM orders) x",
        "WITH c AS (SELECT * FROM orders) SELECT * FROM c",
        "SELECT id, total FROM orders WHERE id = $1",
        "SELECT total AS t FROM orders ORDER BY t",
        "SELECT count(*) FROM orders",
        "UPDATE orders SET total = 0 WHERE id = 1 RETURNING *",
        "EXPLAIN SELECT to_json(o) FROM orders o",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
    ] {
        assert!(live(sql).is_empty(), "{sql}: {:?}", live(sql));
    }
}

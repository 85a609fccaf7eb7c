//! Shared by the classification and policy benches: a catalog snapshot with the pgbench tables
//! and the demo schema (`docs/demo-catalog.json`), so that every name in the corpora resolves.

use airlock::sql::Catalog;

pub fn catalog() -> Catalog {
    Catalog::builder()
        .search_path(&["public"])
        .table(
            "public",
            "pgbench_accounts",
            &["aid", "bid", "abalance", "filler"],
        )
        .table("public", "pgbench_branches", &["bid", "bbalance", "filler"])
        .table(
            "public",
            "pgbench_tellers",
            &["tid", "bid", "tbalance", "filler"],
        )
        .table(
            "public",
            "pgbench_history",
            &["tid", "bid", "aid", "delta", "mtime", "filler"],
        )
        .table(
            "public",
            "customers",
            &["id", "name", "email", "ssn", "phone", "created_at"],
        )
        .table(
            "public",
            "orders",
            &[
                "id",
                "customer_id",
                "product_id",
                "quantity",
                "total",
                "status",
                "created_at",
            ],
        )
        .table("public", "products", &["id", "name", "price"])
        .build()
}

//! Shared by the classification and policy benches: the shipped demo catalog
//! (`docs/demo-catalog.json`, the one `airlock explain --catalog-file` takes) plus the pgbench
//! tables, so that every name in the corpora resolves.

use std::path::Path;

use airlock::policy::cli::load_catalog_file;
use airlock::sql::Catalog;

pub fn catalog() -> Catalog {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/demo-catalog.json");
    let mut catalog = load_catalog_file(&demo).expect("docs/demo-catalog.json");
    let pgbench = Catalog::builder()
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
        .build();
    catalog.relations.extend(pgbench.relations);
    catalog
}

//! Watching a database's schema for changes made outside the gateway.
//!
//! Most staleness shows up on its own: a result naming a column the snapshot does not know is
//! refused and the catalog re-read, statements whose results cannot be checked compare their
//! tables first, and names the snapshot does not hold are looked up. A change that keeps every
//! name does not: a view redefined in place (`CREATE OR REPLACE VIEW` reading other columns or
//! calling a writing function) or a function made volatile still looks like the snapshot says.
//! So each database with a snapshot has one task that asks the server for a fingerprint of its
//! catalogs every `[upstream] catalog_poll_ms` and has the catalog read again when it differs
//! from the one read with the snapshot. The window it leaves is that interval.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::server::Gateway;
use crate::sql::Catalog;

/// Starts watching `database` unless it is watched already or polling is off. `params` are
/// the startup parameters its connections are opened with.
pub(super) fn ensure(gw: &Arc<Gateway>, database: &str, params: &[(String, String)]) {
    let every = gw.config.upstream.catalog_poll_ms;
    if every == 0 || !gw.inspector.begin_watch(database) {
        return;
    }
    let (weak, database, params) = (Arc::downgrade(gw), database.to_owned(), params.to_vec());
    tokio::spawn(async move {
        let every = Duration::from_millis(every);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // The watcher does not keep the gateway alive: it ends with it.
            let Some(gw) = weak.upgrade() else { return };
            if let Err(e) = check(&gw, &database, &params).await {
                warn!(database = %database, error = %e, "cannot compare the catalog with the server");
            }
        }
    });
}

/// One comparison: re-reads the catalog when the server's fingerprint is not the snapshot's.
async fn check(
    gw: &Arc<Gateway>,
    database: &str,
    params: &[(String, String)],
) -> Result<(), String> {
    // No snapshot (one is being read) or one without a fingerprint: nothing to compare.
    let Some(known) = gw
        .inspector
        .current(database)
        .and_then(|c| c.catalog().version.clone())
    else {
        return Ok(());
    };
    let mut conn = gw
        .upstream
        .connect(database, params)
        .await
        .map_err(|e| e.to_string())?;
    let now = Catalog::version_on(&mut conn).await;
    conn.terminate().await;
    let now = now.map_err(|e| e.to_string())?;
    if now != known {
        info!(database = %database, "the schema changed on the server; reading the catalog again");
        super::refresh_catalog(gw, database, params);
    }
    Ok(())
}

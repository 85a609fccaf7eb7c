//! pgbench through the gateway: initialisation, then select-only runs in every query mode.

mod common;

use std::process::Command;

use common::*;

fn pgbench(url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(tool(
        "pgbench",
        "postgresql-contrib-15 or postgresql-client-15",
    ))
    .args(args)
    .arg(url)
    .output()
    .expect("pgbench");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn init_then_select_only_in_every_mode() {
    let db = TestDb::new("pgbench");
    let gw = Gw::start(|_| {});
    let url = gw.url(&db.name);
    let (ok, text) = pgbench(&url, &["-i", "-s", "1", "-q"]);
    assert!(ok, "{text}");
    assert_eq!(
        db.exec("SELECT count(*) FROM pgbench_accounts").trim(),
        "100000"
    );
    for mode in ["simple", "extended", "prepared"] {
        let (ok, text) = pgbench(&url, &["-S", "-M", mode, "-c", "4", "-j", "2", "-t", "200"]);
        assert!(ok, "{mode}: {text}");
        assert!(
            text.contains("number of transactions actually processed: 800/800"),
            "{mode}: {text}"
        );
        assert!(
            text.contains("number of failed transactions: 0"),
            "{mode}: {text}"
        );
    }
    let (ok, text) = pgbench(&url, &["-M", "extended", "-c", "2", "-t", "100"]);
    assert!(ok, "{text}");
    assert!(text.contains("actually processed: 200/200"), "{text}");
    assert_eq!(
        db.exec("SELECT count(*) FROM pgbench_history").trim(),
        "200"
    );
}

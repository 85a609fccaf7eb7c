//! `scripts/bench.sh` end to end at a tiny size: it starts PostgreSQL, pgbouncer and the
//! gateway (this build's binary), runs every kind of cell against all three, and prints the
//! table, the one-client latency line and the idle-sessions cost. Figures are not judged here
//! (performance lives in the benchmark itself); that every cell measured something is.

use std::process::Command;

#[test]
fn the_bench_script_prints_a_full_table() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/bench.sh"))
        .env("AIRLOCK_BIN", env!("CARGO_BIN_EXE_airlock"))
        .env("DURATION", "1")
        .env("REPS", "1")
        .env("SCALE", "1")
        .env("CLIENTS", "1")
        .env("MODES", "simple")
        .env("IDLE_SESSIONS", "20")
        .output()
        .expect("bash runs scripts/bench.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/bench.sh failed (it installs pgbouncer with apt when missing):\n{stderr}\n{stdout}"
    );
    assert!(!stderr.contains("pgbench failed"), "{stderr}");
    for cell in [
        "S-simple-c1",
        "tpcb-extended-c8",
        "tpcb-extended-c32",
        "connect-S-c8",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {cell} |")))
            .unwrap_or_else(|| panic!("no row for {cell}:\n{stdout}"));
        let cols: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cols.len(), 13, "{row}");
        // direct, pgbouncer, airlock and airlock strict all ran transactions.
        for i in [1, 2, 3, 11] {
            let tps: f64 = cols[i].parse().unwrap_or(0.0);
            assert!(tps > 0.0, "column {i} of {cell} is {:?}: {row}", cols[i]);
        }
        // The gateway's CPU per transaction was measured from /proc.
        let cpu: f64 = cols[10].parse().unwrap_or(0.0);
        assert!(cpu > 0.0, "{row}");
    }
    assert!(
        stdout.contains("S-simple-c1 added latency per statement"),
        "{stdout}"
    );
    let idle = stdout
        .lines()
        .find(|l| l.starts_with("Idle sessions (20):"))
        .unwrap_or_else(|| panic!("no idle-sessions line:\n{stdout}"));
    assert!(!idle.contains("failed"), "{idle}");
}

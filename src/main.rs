//! The `airlock` binary: parse the command line and hand over to the library.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "A PostgreSQL gateway that puts a human in the loop of what AI agents do to databases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect the audit: grep, show, tail, verify, export.
    Audit(airlock::inspect::AuditArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Audit(args) => std::process::exit(airlock::inspect::run(args)),
    }
}

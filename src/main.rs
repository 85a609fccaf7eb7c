//! The `airlock` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use airlock::approval::cli::{self as approvals_cli, ApprovalsArgs, CliError};

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "A PostgreSQL gateway that puts a human in the loop of what AI agents do to databases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List, show, approve and deny held statements through the admin API.
    Approvals(ApprovalsArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Approvals(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let mut out = std::io::stdout();
            match runtime.block_on(approvals_cli::run(args, None, &mut out)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                // `airlock approvals ls | head` is not an error.
                Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("airlock approvals: {e}");
                    Ok(ExitCode::from(e.exit_code() as u8))
                }
            }
        }
    }
}

//! The `airlock` binary: parse the command line and hand over to the library.

use clap::{Parser, Subcommand};

use airlock::policy::cli::{ExplainArgs, PolicyArgs};

#[derive(Debug, Parser)]
#[command(name = "airlock", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Policy files: `airlock policy check PATH`.
    Policy(PolicyArgs),
    /// Show how the policy decides a statement: facts, decision, rule and rewrite.
    Explain(ExplainArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let code = match &cli.command {
        Command::Policy(args) => airlock::policy::cli::run_policy(args, &mut out, &mut err),
        Command::Explain(args) => airlock::policy::cli::run_explain(args, &mut out, &mut err),
    };
    drop((out, err));
    std::process::exit(code);
}

//! The `airlock` binary: parse the command line, set up logging, and hand over to the library.

/// mimalloc instead of the system allocator: the hot path allocates small, short-lived
/// buffers on every statement, and the audit store clones and frees tree nodes of a few KB;
/// glibc's malloc spent about 15% of the gateway's CPU on them (and returned memory to the
/// kernel only to fault it back in).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use airlock::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "A PostgreSQL gateway that puts a human in the loop of what AI agents do to databases",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The gateway config file.
        #[arg(short, long, env = "AIRLOCK_CONFIG", default_value = "airlock.toml")]
        config: PathBuf,
        /// Log format (overrides [log] format).
        #[arg(long, value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Start a throwaway PostgreSQL with a demo schema and the gateway in front of it.
    Demo {
        /// Address for PostgreSQL clients.
        #[arg(long, default_value = "127.0.0.1:6432")]
        listen: String,
        /// Address of the admin API and approval pages.
        #[arg(long, default_value = "127.0.0.1:6480")]
        admin_listen: String,
    },
    /// Print a SCRAM-SHA-256 verifier for `[auth.users]` (reads the password from stdin).
    Passwd {
        /// The user the verifier is for (printed as a config line).
        name: String,
    },
    /// Inspect the audit: grep, show, tail, verify, export.
    Audit(Box<airlock::inspect::AuditArgs>),
    /// Policy files: `airlock policy check PATH…`.
    Policy(airlock::policy::cli::PolicyArgs),
    /// Show how the policy decides a statement: facts, decision, rule and rewrite.
    Explain(airlock::policy::cli::ExplainArgs),
    /// List, show, approve and deny held statements through the admin API.
    Approvals(airlock::approval::cli::ApprovalsArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file (with environment overrides applied) and print the result.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("airlock: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config, log_format } => {
            let mut cfg = Config::load(&config, std::env::vars())?;
            if let Some(f) = log_format {
                cfg.log.format = if f == "json" {
                    LogFormat::Json
                } else {
                    LogFormat::Text
                };
            }
            init_tracing(&cfg);
            runtime()?.block_on(serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            listen,
            admin_listen,
        } => {
            init_tracing(&Config::default());
            runtime()?.block_on(async {
                let stop = CancellationToken::new();
                spawn_signal_handler(stop.clone());
                airlock::demo::run(
                    airlock::demo::DemoOptions {
                        listen,
                        admin_listen,
                    },
                    stop,
                    |banner| {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "{banner}");
                        let _ = out.flush();
                    },
                )
                .await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Passwd { name } => {
            let password = read_password()?;
            if password.is_empty() {
                anyhow::bail!("empty password");
            }
            let verifier = airlock::protocol::scram::Verifier::for_password(&password);
            println!("# paste under [auth.users] in airlock.toml");
            println!("{name} = \"{verifier}\"");
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(mut args) => {
            // Both commands take the same approver tokens: each also reads the other's variable.
            if args.source.token.is_none() {
                args.source.token = std::env::var("AIRLOCK_TOKEN").ok();
            }
            Ok(ExitCode::from(airlock::inspect::run(*args) as u8))
        }
        Command::Policy(args) => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            let code = airlock::policy::cli::run_policy(&args, &mut out, &mut err);
            Ok(ExitCode::from(code as u8))
        }
        Command::Explain(mut args) => {
            let live = match &args.config {
                None => None,
                Some(path) => match live_catalog(path, &args.db) {
                    Ok((catalog, policy)) => {
                        args.policy.get_or_insert(policy);
                        Some(catalog)
                    }
                    Err(e) => {
                        if !args.quiet {
                            eprintln!("error: {e:#}");
                        }
                        return Ok(ExitCode::from(airlock::policy::cli::EXIT_ERROR as u8));
                    }
                },
            };
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            let code = airlock::policy::cli::run_explain(&args, live, &mut out, &mut err);
            Ok(ExitCode::from(code as u8))
        }
        Command::Approvals(mut args) => {
            use airlock::approval::cli::{self as approvals, CliError};
            if args.token.is_none() {
                args.token = std::env::var("AIRLOCK_ADMIN_TOKEN").ok();
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match runtime.block_on(approvals::run(args, None, &mut std::io::stdout())) {
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
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match Config::load(&file, std::env::vars()) {
            Ok(cfg) => {
                println!("{}: OK", file.display());
                println!(
                    "  listen {}  upstream {}  auth {:?} ({} users)  audit {} ({:?})",
                    cfg.server.listen,
                    airlock::upstream::UpstreamTarget::parse(&cfg.upstream.url)
                        .map(|t| t.describe())
                        .unwrap_or_default(),
                    cfg.auth.method,
                    cfg.auth.users.len(),
                    cfg.audit.path.display(),
                    cfg.audit.durability
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        },
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    if cfg.auth.method == airlock::config::AuthMethod::Trust {
        tracing::warn!("auth.method = \"trust\": any client may connect as any listed user; use only for local development");
    }
    let gateway = Arc::new(
        airlock::server::Gateway::open(cfg)
            .await
            .context("starting the gateway")?,
    );
    let server = airlock::server::Server::bind(gateway.clone()).await?;
    let closing = CancellationToken::new();
    spawn_signal_handler(closing.clone());
    // SIGHUP re-reads the policy; an invalid one keeps the previous policy.
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            gateway.reload_policy().await;
        }
    });
    server.run(closing).await;
    Ok(())
}

fn spawn_signal_handler(closing: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested");
        closing.cancel();
    });
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Reads a password without echo from a terminal, or one line from piped stdin.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    eprint!("Password: ");
    let original = tcgetattr(&stdin)?;
    let mut silent = original.clone();
    silent.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &silent)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    tcsetattr(&stdin, SetArg::TCSANOW, &original)?;
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `explain --config`: the catalog the gateway would read from its upstream for `db` (the
/// upstream URL's database when empty), and the config's policy path.
fn live_catalog(
    config: &std::path::Path,
    db: &str,
) -> anyhow::Result<(airlock::sql::Catalog, PathBuf)> {
    let cfg = Config::load(config, std::env::vars())?;
    let upstream = airlock::upstream::Upstream::from_config(&cfg.upstream)?;
    let database = upstream
        .database_for((!db.is_empty()).then_some(db))
        .to_owned();
    let catalog = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut conn = upstream.connect(&database, &[]).await?;
            let catalog = airlock::sql::Catalog::load(&mut conn).await;
            conn.terminate().await;
            anyhow::Ok(catalog?)
        })
        .with_context(|| {
            format!(
                "reading the catalog of {database} from {}",
                upstream.describe()
            )
        })?;
    Ok((catalog, cfg.policy.path.clone()))
}

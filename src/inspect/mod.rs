//! The audit inspector: `airlock audit grep | show | tail | verify | export`.
//!
//! ```text
//! args (clap) ─► source (store directly, or the admin API) ─► filter ─► printer (text|json|csv)
//! ```
//!
//! Exit codes follow grep: 0 something matched (or the command succeeded), 1 nothing matched
//! (or `verify` found a break, or `show` found no such id), 2 error. A closed pipe (`| head`)
//! is success.

pub mod args;
mod client;
pub mod filter;
pub mod printer;
pub mod query;
pub mod source;
pub mod timespec;

use std::io::{self, IsTerminal, Write};

pub use args::AuditArgs;

use crate::audit::AuditError;
use args::{AuditCommand, ExportFormat, OutputFormat};
use filter::Filter;
use printer::{csv, json, text, Style};
use source::{RecordStart, Source};

pub const EXIT_MATCH: i32 = 0;
pub const EXIT_NONE: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0}")]
    BadFilter(String),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Source(String),
    #[error("admin API: {0}")]
    Admin(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What the inspector knows about where its output goes.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// stdout is a terminal: colour by default, and flush every line as it is found.
    pub terminal: bool,
    /// The `NO_COLOR` environment variable.
    pub no_color: Option<String>,
}

/// Runs `airlock audit …` on the real stdout/stderr and returns the exit code.
pub fn run(args: AuditArgs) -> i32 {
    let stdout = io::stdout();
    let opts = OutputOptions {
        terminal: stdout.is_terminal(),
        no_color: std::env::var("NO_COLOR").ok(),
    };
    let mut out = io::BufWriter::new(stdout.lock());
    execute(&args, &mut out, &mut io::stderr(), opts)
}

/// Runs a parsed command against any writers (tests use buffers).
pub fn execute(
    args: &AuditArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    opts: OutputOptions,
) -> i32 {
    let ctx = Ctx {
        style: Style {
            color: args.color.resolve(opts.terminal, opts.no_color.as_deref()),
        },
        flush_each: opts.terminal,
    };
    let result = dispatch(args, out, err, ctx).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): what it wanted, it got.
        Err(InspectError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_MATCH,
        Err(e) => {
            let _ = writeln!(err, "airlock audit: {e}");
            EXIT_ERROR
        }
    }
}

/// Resolved output settings.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    style: Style,
    flush_each: bool,
}

fn now_us() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    (nanos / 1_000) as i64
}

fn dispatch(
    args: &AuditArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    opts: Ctx,
) -> Result<i32, InspectError> {
    let now = now_us();
    let st = &opts.style;
    match &args.command {
        AuditCommand::Grep(g) => {
            let mut spec = g.spec();
            spec.resolve_times(now)?;
            // Compile before touching the source: a bad regex is an error either way.
            let filter = Filter::compile(&spec, now)?;
            let source = Source::select(&args.source, args.verbose, err)?;
            let mut matched = 0u64;
            for v in source.statements(&spec, &filter, !g.count)? {
                let v = v?;
                matched += 1;
                if g.count {
                    continue;
                }
                match g.output {
                    OutputFormat::Text => text::statement_line(out, &v, st, filter.highlight())?,
                    OutputFormat::Json => json::line(out, &v)?,
                }
                if opts.flush_each {
                    out.flush()?;
                }
            }
            if g.count {
                writeln!(out, "{matched}")?;
            }
            Ok(if matched > 0 { EXIT_MATCH } else { EXIT_NONE })
        }
        AuditCommand::Show(s) => {
            let source = Source::select(&args.source, args.verbose, err)?;
            match source.show(&s.id)? {
                Some(view) => {
                    match s.output {
                        OutputFormat::Text => text::show(out, &view, st)?,
                        OutputFormat::Json => json::line(out, &view)?,
                    }
                    Ok(EXIT_MATCH)
                }
                None => {
                    writeln!(err, "airlock audit: no record with id {}", s.id)?;
                    Ok(EXIT_NONE)
                }
            }
        }
        AuditCommand::Tail(t) => {
            let source = Source::select(&args.source, args.verbose, err)?;
            for r in source.records(RecordStart::Last(t.lines), None, t.follow)? {
                let r = r?;
                match t.output {
                    OutputFormat::Text => text::record_line(out, &r, st)?,
                    OutputFormat::Json => json::line(out, &r)?,
                }
                if t.follow || opts.flush_each {
                    out.flush()?;
                }
            }
            Ok(EXIT_MATCH)
        }
        AuditCommand::Verify(v) => {
            let source = Source::select(&args.source, args.verbose, err)?;
            let report = source.verify()?;
            match v.output {
                OutputFormat::Text => text::verify(out, &report, st)?,
                OutputFormat::Json => json::line(out, &report)?,
            }
            Ok(if report.ok() { EXIT_MATCH } else { EXIT_NONE })
        }
        AuditCommand::Export(e) => {
            let mut spec = e.spec();
            spec.resolve_times(now)?;
            let filter = Filter::compile(&spec, now)?;
            if e.raw {
                let only_times = filter::FilterSpec {
                    since: spec.since.clone(),
                    until: spec.until.clone(),
                    ..Default::default()
                };
                if e.format != ExportFormat::Jsonl || spec != only_times {
                    return Err(InspectError::BadFilter(
                        "--raw exports every record as stored: jsonl only, and only --since/--until apply"
                            .into(),
                    ));
                }
                let source = Source::select(&args.source, args.verbose, err)?;
                let start = match spec.since.as_deref().and_then(crate::audit::parse_time) {
                    Some(t) => RecordStart::Since(t),
                    None => RecordStart::Beginning,
                };
                let until = spec.until.as_deref().and_then(crate::audit::parse_time);
                for r in source.records(start, until, false)? {
                    json::line(out, &r?)?;
                }
                return Ok(EXIT_MATCH);
            }
            let source = Source::select(&args.source, args.verbose, err)?;
            if e.format == ExportFormat::Csv {
                csv::header(out)?;
            }
            for v in source.statements(&spec, &filter, true)? {
                let v = v?;
                match e.format {
                    ExportFormat::Jsonl => json::line(out, &v)?,
                    ExportFormat::Csv => csv::row(out, &v)?,
                }
            }
            Ok(EXIT_MATCH)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

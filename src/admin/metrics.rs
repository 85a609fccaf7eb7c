//! Gateway metrics: lock-free counters that sessions, the registry and the audit writer bump,
//! rendered in the Prometheus text format by `/metrics`.
//!
//! Every label value comes from a closed set (statement kind, action, channel, outcome…), so
//! no SQL text, user input or unbounded value can ever reach a label.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::approval::Channel;
use crate::policy::Action;
use crate::sql::Kind;

const KINDS: [Kind; 10] = [
    Kind::Read,
    Kind::Write,
    Kind::Ddl,
    Kind::Role,
    Kind::Export,
    Kind::Catalog,
    Kind::Txn,
    Kind::Session,
    Kind::Utility,
    Kind::Unknown,
];
const ACTIONS: [Action; 4] = [Action::Allow, Action::Mask, Action::Hold, Action::Deny];
const VERDICT_CHANNELS: [Channel; 4] = [Channel::Api, Channel::Web, Channel::Cli, Channel::Teams];
const HOLD_OUTCOMES: [&str; 6] = [
    "approved",
    "denied",
    "expired",
    "withdrawn",
    "abandoned",
    "aborted",
];
const REFUSALS: [&str; 7] = [
    "self_approval",
    "not_an_approver",
    "already_decided",
    "already_voted",
    "expired",
    "rationale_required",
    "not_found",
];

/// Hold waits are human-scale: seconds to an hour.
const HOLD_WAIT_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Audit flushes are disk-scale: sub-millisecond to a second.
const FLUSH_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Which part of talking to upstream failed (a closed set, for the label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorClass {
    /// TCP/TLS connect failed or timed out.
    Connect,
    /// Upstream refused the gateway's credentials.
    Auth,
    /// The connection broke mid-session.
    Io,
    /// Upstream sent something the gateway could not frame.
    Protocol,
}

impl UpstreamErrorClass {
    const ALL: [UpstreamErrorClass; 4] = [
        UpstreamErrorClass::Connect,
        UpstreamErrorClass::Auth,
        UpstreamErrorClass::Io,
        UpstreamErrorClass::Protocol,
    ];

    fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorClass::Connect => "connect",
            UpstreamErrorClass::Auth => "auth",
            UpstreamErrorClass::Io => "io",
            UpstreamErrorClass::Protocol => "protocol",
        }
    }
}

/// A fixed-bucket histogram; the sum is kept in microseconds to stay an integer.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// All gateway counters. Shared as `Arc<Metrics>`; every method takes `&self` and is a few
/// relaxed atomic operations.
pub struct Metrics {
    statements: Vec<AtomicU64>,
    holds_total: AtomicU64,
    hold_wait: Vec<Histogram>,
    verdicts: Vec<AtomicU64>,
    refusals: Vec<AtomicU64>,
    grants_issued: AtomicU64,
    grants_used: AtomicU64,
    audit_flush: Histogram,
    audit_errors: AtomicU64,
    upstream_errors: Vec<AtomicU64>,
    connections_active: AtomicI64,
    connections_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counters(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn kind_index(kind: Kind) -> usize {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1)
}

fn action_index(action: Action) -> usize {
    ACTIONS.iter().position(|a| *a == action).unwrap_or(3)
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            statements: counters(KINDS.len() * ACTIONS.len()),
            holds_total: AtomicU64::new(0),
            hold_wait: HOLD_OUTCOMES
                .iter()
                .map(|_| Histogram::new(HOLD_WAIT_BUCKETS))
                .collect(),
            verdicts: counters(2 * VERDICT_CHANNELS.len()),
            refusals: counters(REFUSALS.len()),
            grants_issued: AtomicU64::new(0),
            grants_used: AtomicU64::new(0),
            audit_flush: Histogram::new(FLUSH_BUCKETS),
            audit_errors: AtomicU64::new(0),
            upstream_errors: counters(UpstreamErrorClass::ALL.len()),
            connections_active: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
        }
    }

    // ---- called by sessions -------------------------------------------------------------

    /// One statement decided: by its kind and the action taken.
    pub fn statement(&self, kind: Kind, action: Action) {
        self.statements[kind_index(kind) * ACTIONS.len() + action_index(action)]
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_error(&self, class: UpstreamErrorClass) {
        let i = UpstreamErrorClass::ALL
            .iter()
            .position(|c| *c == class)
            .unwrap_or(0);
        self.upstream_errors[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_active.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_active.fetch_sub(1, Ordering::Relaxed);
    }

    // ---- called by the audit writer -----------------------------------------------------

    /// One flush (group commit) of the audit store took `d`.
    pub fn audit_flush(&self, d: Duration) {
        self.audit_flush.observe(d);
    }

    /// An audit append or flush failed.
    pub fn audit_error(&self) {
        self.audit_errors.fetch_add(1, Ordering::Relaxed);
    }

    // ---- called by the approval registry ------------------------------------------------

    pub(crate) fn hold_submitted(&self) {
        self.holds_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A waiting client was released; `outcome` is an [`Outcome::label`](crate::approval::Outcome::label).
    pub(crate) fn hold_resolved(&self, outcome: &str, waited: Duration) {
        let i = HOLD_OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(HOLD_OUTCOMES.len() - 1);
        self.hold_wait[i].observe(waited);
    }

    pub(crate) fn verdict(&self, approve: bool, channel: Channel) {
        if let Some(c) = VERDICT_CHANNELS.iter().position(|x| *x == channel) {
            let v = if approve { 0 } else { 1 };
            self.verdicts[v * VERDICT_CHANNELS.len() + c].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A refused verdict attempt; `code` is a [`VerdictResult::code`](crate::approval::VerdictResult::code).
    pub(crate) fn refusal(&self, code: &str) {
        if let Some(i) = REFUSALS.iter().position(|r| *r == code) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn grant_issued(&self) {
        self.grants_issued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn grant_used(&self) {
        self.grants_used.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition (format 0.0.4). `holds_pending` is read from the registry
    /// at scrape time, so it can never drift.
    pub fn render(&self, holds_pending: usize) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        header(
            &mut out,
            "airlock_statements_total",
            "counter",
            "Statements decided, by kind and action.",
        );
        for (ki, kind) in KINDS.iter().enumerate() {
            for (ai, action) in ACTIONS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "airlock_statements_total{{kind=\"{}\",action=\"{}\"}} {}",
                    kind.as_str(),
                    action.as_str(),
                    load(&self.statements[ki * ACTIONS.len() + ai])
                );
            }
        }

        header(
            &mut out,
            "airlock_holds_pending",
            "gauge",
            "Requests waiting for a verdict.",
        );
        let _ = writeln!(out, "airlock_holds_pending {holds_pending}");
        header(
            &mut out,
            "airlock_holds_total",
            "counter",
            "Statements held for approval.",
        );
        let _ = writeln!(out, "airlock_holds_total {}", load(&self.holds_total));

        header(
            &mut out,
            "airlock_hold_wait_seconds",
            "histogram",
            "How long held clients waited, by outcome.",
        );
        for (o, h) in HOLD_OUTCOMES.iter().zip(&self.hold_wait) {
            h.render(
                &mut out,
                "airlock_hold_wait_seconds",
                &format!("outcome=\"{o}\""),
            );
        }

        header(
            &mut out,
            "airlock_verdicts_total",
            "counter",
            "Verdicts recorded, by verdict and channel.",
        );
        for (vi, v) in ["approve", "deny"].iter().enumerate() {
            for (ci, c) in VERDICT_CHANNELS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "airlock_verdicts_total{{verdict=\"{v}\",channel=\"{}\"}} {}",
                    c.as_str(),
                    load(&self.verdicts[vi * VERDICT_CHANNELS.len() + ci])
                );
            }
        }
        header(
            &mut out,
            "airlock_verdicts_refused_total",
            "counter",
            "Verdict attempts refused, by reason.",
        );
        for (r, c) in REFUSALS.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "airlock_verdicts_refused_total{{reason=\"{r}\"}} {}",
                load(c)
            );
        }
        header(
            &mut out,
            "airlock_grants_total",
            "counter",
            "Grants left by late approvals, by event.",
        );
        let _ = writeln!(
            out,
            "airlock_grants_total{{event=\"issued\"}} {}",
            load(&self.grants_issued)
        );
        let _ = writeln!(
            out,
            "airlock_grants_total{{event=\"used\"}} {}",
            load(&self.grants_used)
        );

        header(
            &mut out,
            "airlock_audit_flush_seconds",
            "histogram",
            "Audit store flush latency.",
        );
        self.audit_flush
            .render(&mut out, "airlock_audit_flush_seconds", "");
        header(
            &mut out,
            "airlock_audit_errors_total",
            "counter",
            "Audit append or flush failures.",
        );
        let _ = writeln!(
            out,
            "airlock_audit_errors_total {}",
            load(&self.audit_errors)
        );

        header(
            &mut out,
            "airlock_upstream_errors_total",
            "counter",
            "Upstream failures, by class.",
        );
        for (c, n) in UpstreamErrorClass::ALL.iter().zip(&self.upstream_errors) {
            let _ = writeln!(
                out,
                "airlock_upstream_errors_total{{class=\"{}\"}} {}",
                c.as_str(),
                load(n)
            );
        }

        header(
            &mut out,
            "airlock_connections_active",
            "gauge",
            "Client connections open now.",
        );
        let _ = writeln!(
            out,
            "airlock_connections_active {}",
            self.connections_active.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "airlock_connections_total",
            "counter",
            "Client connections accepted.",
        );
        let _ = writeln!(
            out,
            "airlock_connections_total {}",
            load(&self.connections_total)
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_show_up_under_their_labels() {
        let m = Metrics::new();
        m.statement(Kind::Ddl, Action::Hold);
        m.statement(Kind::Ddl, Action::Hold);
        m.statement(Kind::Read, Action::Allow);
        m.upstream_error(UpstreamErrorClass::Io);
        m.verdict(true, Channel::Web);
        m.refusal("self_approval");
        let text = m.render(3);
        assert_eq!(
            value(
                &text,
                "airlock_statements_total{kind=\"ddl\",action=\"hold\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                "airlock_statements_total{kind=\"read\",action=\"allow\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "airlock_statements_total{kind=\"read\",action=\"deny\"}"
            ),
            Some(0.0)
        );
        assert_eq!(value(&text, "airlock_holds_pending"), Some(3.0));
        assert_eq!(
            value(&text, "airlock_upstream_errors_total{class=\"io\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "airlock_verdicts_total{verdict=\"approve\",channel=\"web\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "airlock_verdicts_refused_total{reason=\"self_approval\"}"
            ),
            Some(1.0)
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        m.audit_flush(Duration::from_micros(300)); // ≤ 0.0005
        m.audit_flush(Duration::from_millis(3)); // ≤ 0.005
        m.audit_flush(Duration::from_secs(5)); // only +Inf
        let text = m.render(0);
        assert_eq!(
            value(&text, "airlock_audit_flush_seconds_bucket{le=\"0.0001\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&text, "airlock_audit_flush_seconds_bucket{le=\"0.0005\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "airlock_audit_flush_seconds_bucket{le=\"0.005\"}"),
            Some(2.0)
        );
        assert_eq!(
            value(&text, "airlock_audit_flush_seconds_bucket{le=\"1\"}"),
            Some(2.0)
        );
        assert_eq!(
            value(&text, "airlock_audit_flush_seconds_bucket{le=\"+Inf\"}"),
            Some(3.0)
        );
        assert_eq!(value(&text, "airlock_audit_flush_seconds_count"), Some(3.0));
        let sum = value(&text, "airlock_audit_flush_seconds_sum").unwrap();
        assert!((sum - 5.0033).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let m = Metrics::new();
        m.hold_resolved("approved", Duration::from_secs(42));
        let text = m.render(0);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, v) = line.rsplit_once(' ').expect(line);
            assert!(v.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("airlock_"), "{line}");
            assert_eq!(
                series.matches('{').count(),
                series.matches('}').count(),
                "{line}"
            );
        }
        assert_eq!(
            value(
                &text,
                "airlock_hold_wait_seconds_bucket{outcome=\"approved\",le=\"60\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "airlock_hold_wait_seconds_bucket{outcome=\"approved\",le=\"30\"}"
            ),
            Some(0.0)
        );
    }
}

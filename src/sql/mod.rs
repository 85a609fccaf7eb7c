//! SQL facts: parse (sqlparser, PostgreSQL dialect), classify, fingerprint, catalog.
//!
//! Everything here is pure: text in, [`Facts`] out. The session asks the [`Classifier`] and
//! hands the result to the policy.
//!
//! ```text
//! text ─► lexer (PostgreSQL's rules) ─► split at top-level `;` ─► fingerprint, redaction
//!           │
//!           └─► per statement: sqlparser tokens (cross-checked) ─► Statement
//!                 ├─ parsed:   statement ─► query / dml / expr analysis over scopes ─► Facts
//!                 └─ unparsed: label and coarse kind from the leading keywords ─► Facts
//! ```
//!
//! Fail closed: text that does not parse, a construct the analysis does not handle, a function
//! it cannot prove harmless, or a disagreement between the two lexers all end up `unknown` or
//! flagged, never as a plain read.
//!
//! What the policy should know about the facts:
//! - A kind alone does not say everything: any [`Flags::needs_review`] flag makes a statement
//!   riskier than its kind (a `read` calling `nextval`, a `write` without WHERE, a COPY to a
//!   server file). `has_secret` only asks for redaction, which [`Classified::redacted`] did.
//! - `output_columns` are what flows back to the client (select list, RETURNING, COPY TO),
//!   `columns` everything referenced (filters, joins, written columns, an INSERT … SELECT's
//!   sources). A column named `*` means "every column of a relation the snapshot does not
//!   know" and should match any PII pattern for that relation.
//! - Reads of system relations that expose values or other sessions' SQL (`pg_stats`,
//!   `pg_stat_activity`, `pg_authid`, `pg_toast.*`, `pg_stat_statements`…) are `export`, not
//!   `catalog`.
//! - `RESET ALL` is `session` (the server exempts `role` and `session_authorization` from it);
//!   `DISCARD ALL` is `role` (it includes `SET SESSION AUTHORIZATION DEFAULT`). Both put
//!   settings back to their connection-start values, so protections the gateway wants to keep
//!   must be set in the upstream startup packet, not with SET.
//! - `pg_sleep` is harmless (it only holds the session's own connection); advisory lock
//!   acquisition is not (it can block other sessions); releasing one's own locks is.

mod analyze;
mod cache;
mod catalog;
mod catalog_live;
mod catalog_load;
mod catalog_runs;
mod classify;
mod colname;
mod commands;
mod coverage;
mod cursors;
mod depth;
mod dml;
mod expr;
mod facts;
mod flags;
mod from;
mod functions;
mod implied;
mod label;
mod lexer;
mod names;
mod query;
mod quoted;
mod scope;
mod secret;
mod session;
mod statement;
mod text;

#[cfg(test)]
mod tests;

pub use catalog::*;
pub use catalog_load::{CatalogBuilder, CatalogSource, SqlError};
pub use classify::Classifier;
pub use facts::*;
pub use names::{encoding_key, is_utf8_encoding};
pub use secret::{redact_param, secret_params};
pub use session::{Candidate, Deferred, SessionSqlState, UNVOUCHED_FETCH};

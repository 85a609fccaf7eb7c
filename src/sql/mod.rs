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

mod catalog;
mod catalog_load;
mod classify;
mod commands;
mod dml;
mod expr;
mod facts;
mod flags;
mod from;
mod functions;
mod lexer;
mod names;
mod query;
mod scope;
mod session;
mod statement;
mod text;

#[cfg(test)]
mod tests;

pub use catalog::*;
pub use catalog_load::{CatalogBuilder, CatalogSource, SqlError};
pub use classify::Classifier;
pub use facts::*;
pub use session::SessionSqlState;

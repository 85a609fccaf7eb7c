//! SQL facts: parse (sqlparser, PostgreSQL dialect), classify, fingerprint, catalog.
//!
//! Everything here is pure: text in, [`Facts`] out. The session asks the [`Classifier`] and
//! hands the result to the policy.

mod catalog;
mod facts;

pub use catalog::*;
pub use facts::*;

//! # airlock
//!
//! A PostgreSQL wire-protocol gateway that puts a human in the loop of what AI agents do to
//! databases. An agent points its connection string at airlock; airlock parses every statement,
//! lets reads of non-sensitive tables through untouched, and holds DDL, role changes and PII
//! exports until a person approves them. Every decision is written ahead to an embedded,
//! hash-chained audit store.
//!
//! ```text
//! client ─► TLS ─► startup + SCRAM (agent identity) ─► upstream connection (service credentials)
//!   │
//!   ▼ frames (protocol) ─► Query | Parse…Sync batch (session)
//!   ▼ sql::Classifier ─► Facts ─► policy::Policy::evaluate ─► Decision
//!   ▼ audit (write-ahead) ─► hold? approval ─► upstream relay ─► audit outcome
//! ```
//!
//! Modules follow that flow; everything up to the decision is pure and unit-testable.

pub mod admin;
pub mod approval;
pub mod audit;
pub mod config;
pub mod demo;
pub mod inspect;
pub mod notify;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod session;
pub mod sql;
pub mod tls;
pub mod untrusted;
pub mod upstream;
pub mod workers;

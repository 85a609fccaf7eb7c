//! The audit inspector.

//! The SQLSTATEs the gateway itself raises, named so call sites read like the PostgreSQL docs.

pub const PROTOCOL_VIOLATION: &str = "08P01";
pub const CONNECTION_FAILURE: &str = "08006";
pub const INVALID_AUTHORIZATION: &str = "28000";
pub const INVALID_PASSWORD: &str = "28P01";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const INVALID_PARAMETER_VALUE: &str = "22023";
pub const ADMIN_SHUTDOWN: &str = "57P01";
pub const QUERY_CANCELED: &str = "57014";
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
pub const INTERNAL_ERROR: &str = "XX000";
/// A held statement's approval window ran out: the agent may re-run it after approval.
pub const HOLD_EXPIRED: &str = "AL001";
/// A result has a column the gateway's catalog snapshot does not know (the schema changed
/// after the snapshot was read): it was not inspected, so it is not returned. Reconnecting
/// reads the current catalog.
pub const CATALOG_CHANGED: &str = "AL002";

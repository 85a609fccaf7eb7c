//! The PostgreSQL wire protocol as the gateway needs it: its own framing (raw bytes kept for
//! forwarding), startup negotiation, SCRAM, and the messages the gateway itself sends.

pub mod scram;

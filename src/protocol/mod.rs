//! The PostgreSQL wire protocol as the gateway needs it: its own framing (raw bytes kept for
//! forwarding), startup negotiation, SCRAM, and the messages the gateway itself sends.
//!
//! Frames are never re-encoded on the relay path: a [`frame::Frame`] is the exact bytes the peer
//! sent, and typed views decode a copy only when the gateway must look inside.

pub mod frame;
pub mod messages;
pub mod scram;
pub mod sqlstate;
pub mod startup;
pub mod stream;

pub use frame::{Frame, FrameError};

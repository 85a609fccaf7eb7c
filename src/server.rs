//! See the crate docs for where this sits in the flow.

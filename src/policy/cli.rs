//! `airlock policy check` and `airlock explain`.

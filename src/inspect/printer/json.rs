//! `-o json` and `export --format jsonl`: one JSON object per line, with the stable field names
//! of [`crate::audit::StatementView`], [`crate::audit::Record`], [`crate::audit::ShowView`] and
//! [`crate::audit::VerifyReport`].

use std::io::{self, Write};

use serde::Serialize;

/// Writes `value` as one line of JSON.
pub fn line<T: Serialize>(w: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *w, value).map_err(io::Error::from)?;
    w.write_all(b"\n")
}

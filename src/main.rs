//! The `airlock` binary: parse the command line and hand over to the library.

fn main() -> anyhow::Result<()> {
    Ok(())
}

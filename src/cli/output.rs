//! Command output on stdout. `println!` panics when the reader has gone away
//! (`rostergate sync runs | head -1`); these return the broken pipe as an error instead, which
//! `main` ends quietly.

use std::fmt::Display;
use std::io::{self, Write};

use super::error::CliError;

/// Prints `text` and a newline.
pub fn line(text: impl Display) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Prints `text` as it is (it brings its own newlines).
pub fn text(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

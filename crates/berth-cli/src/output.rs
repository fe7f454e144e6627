//! How berth prints: ctr's tables and JSON, reproduced from the Go
//! libraries ctr uses, and the `--format` switch of the list commands.
//!
//! Formatting is pure (values in, text out) so it can be tested without a
//! daemon; only [`print`] touches stdout.

pub mod gotime;
pub mod json;
pub mod tabwriter;
pub mod units;

use std::io::Write;

pub use json::{Json, Object};
pub use tabwriter::TabWriter;

/// The output of a list command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ctr's table.
    #[default]
    Table,
    /// A JSON array, for scripts.
    Json,
}

/// Writes `text` to stdout at once.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// A JSON document as printed, with the newline Go's `fmt.Println` adds.
pub fn json_document(json: &Json) -> String {
    format!("{}\n", json.to_pretty())
}

//! Turning redb's errors into berth's.
//!
//! A redb failure is never the caller's fault, so it becomes `Internal` —
//! except a database held by another process, which is `Unavailable`: the
//! caller can act on it by stopping the other daemon.

use berth_core::{Error, Result};

/// Converts a redb result into a berth result (`.db()?`).
pub(crate) trait DbResult<T> {
    /// The value, or the redb error as a berth [`Error`].
    fn db(self) -> Result<T>;
}

impl<T, E: Into<redb::Error>> DbResult<T> for std::result::Result<T, E> {
    fn db(self) -> Result<T> {
        self.map_err(|e| from_redb(e.into()))
    }
}

/// The berth error for a redb error.
pub(crate) fn from_redb(err: redb::Error) -> Error {
    match err {
        redb::Error::DatabaseAlreadyOpen => {
            Error::unavailable("metadata database is already open in another process")
        }
        other => Error::internal(format!("metadata database: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::ErrorKind;

    #[test]
    fn already_open_is_unavailable() {
        assert_eq!(
            from_redb(redb::Error::DatabaseAlreadyOpen).kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            from_redb(redb::Error::TransactionInProgress).kind(),
            ErrorKind::Internal
        );
    }
}

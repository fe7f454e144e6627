//! Error kinds, modelled on containerd's `errdefs`.
//!
//! The kind is the contract (it becomes a gRPC code at the wire boundary, and
//! back again in the client); the message is for people. Messages are
//! lowercase, name the object they are about and carry no trailing
//! punctuation, so they compose: `container "web" in namespace "default": not found`.

use std::fmt;

/// The class of an error, one per containerd `errdefs` class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An unclassified failure (gRPC `Unknown`).
    Unknown,
    /// The request was malformed (gRPC `InvalidArgument`).
    InvalidArgument,
    /// The object does not exist (gRPC `NotFound`).
    NotFound,
    /// The object exists already (gRPC `AlreadyExists`).
    AlreadyExists,
    /// The system is not in the state the call needs (gRPC `FailedPrecondition`).
    FailedPrecondition,
    /// A resource is busy or the service cannot answer now (gRPC `Unavailable`).
    Unavailable,
    /// The method or feature does not exist (gRPC `Unimplemented`).
    NotImplemented,
    /// The call was cancelled (gRPC `Cancelled`).
    Canceled,
    /// The call ran out of time (gRPC `DeadlineExceeded`).
    DeadlineExceeded,
    /// The caller may not do this (gRPC `PermissionDenied`).
    PermissionDenied,
    /// A limit was hit (gRPC `ResourceExhausted`).
    ResourceExhausted,
    /// The operation was aborted, e.g. by a conflict (gRPC `Aborted`).
    Aborted,
    /// A value is outside its range (gRPC `OutOfRange`).
    OutOfRange,
    /// Data was lost or corrupted (gRPC `DataLoss`).
    DataLoss,
    /// An internal invariant broke (gRPC `Internal`).
    Internal,
    /// The caller is not authenticated (gRPC `Unauthenticated`).
    Unauthenticated,
}

impl ErrorKind {
    /// The short phrase containerd appends for this class (`not found`, …).
    pub fn phrase(self) -> &'static str {
        match self {
            ErrorKind::Unknown => "unknown",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::FailedPrecondition => "failed precondition",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotImplemented => "not implemented",
            ErrorKind::Canceled => "context canceled",
            ErrorKind::DeadlineExceeded => "context deadline exceeded",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::ResourceExhausted => "resource exhausted",
            ErrorKind::Aborted => "aborted",
            ErrorKind::OutOfRange => "out of range",
            ErrorKind::DataLoss => "data loss",
            ErrorKind::Internal => "internal",
            ErrorKind::Unauthenticated => "unauthenticated",
        }
    }
}

/// A berth error: a kind and a message that says what to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// The result type used across berth's libraries.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` whose message is exactly `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without anything added.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with context, keeping the kind: `ctx: message`.
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{ctx}: {}", self.message),
        }
    }

    /// `{what}: not found`, e.g. `container "x" in namespace "default": not found`.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::classed(ErrorKind::NotFound, what)
    }

    /// `{what}: already exists`.
    pub fn already_exists(what: impl fmt::Display) -> Self {
        Self::classed(ErrorKind::AlreadyExists, what)
    }

    /// An invalid argument with a free-form message.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// A failed precondition with a free-form message.
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, message)
    }

    /// An unavailable resource with a free-form message.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// A feature or method that does not exist.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotImplemented, message)
    }

    /// An internal failure (I/O, database, broken invariant).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// `{what}: {kind phrase}`, containerd's way of wrapping a class.
    pub fn classed(kind: ErrorKind, what: impl fmt::Display) -> Self {
        Self::new(kind, format!("{what}: {}", kind.phrase()))
    }

    /// Whether this is a not-found error.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::InvalidInput => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classed_appends_phrase() {
        let err = Error::not_found(r#"container "x" in namespace "default""#);
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            r#"container "x" in namespace "default": not found"#
        );
    }

    #[test]
    fn context_keeps_kind() {
        let err = Error::invalid_argument("bad").context("create");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.message(), "create: bad");
    }
}

//! The one mapping between berth's error kinds and gRPC status codes.
//!
//! It follows containerd's `errgrpc`: each errdefs class has one code, and a
//! client turns the code back into the same class, so "is this not found?"
//! works across the wire.

use berth_core::{Error, ErrorKind};
use tonic::{Code, Status};

/// A gRPC status code's name as Go's `codes.Code.String` gives it
/// (`OK`, `Canceled`, `NotFound`, …); `None` for a number no code has.
pub fn code_name(code: i32) -> Option<&'static str> {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|c| NAMES.get(c))
        .copied()
}

/// The gRPC code for an error kind.
pub fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Unknown => Code::Unknown,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::NotImplemented => Code::Unimplemented,
        ErrorKind::Canceled => Code::Cancelled,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Aborted => Code::Aborted,
        ErrorKind::OutOfRange => Code::OutOfRange,
        ErrorKind::DataLoss => Code::DataLoss,
        ErrorKind::Internal => Code::Internal,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
    }
}

/// The error kind for a gRPC code.
pub fn kind_of(code: Code) -> ErrorKind {
    match code {
        Code::Ok | Code::Unknown => ErrorKind::Unknown,
        Code::InvalidArgument => ErrorKind::InvalidArgument,
        Code::NotFound => ErrorKind::NotFound,
        Code::AlreadyExists => ErrorKind::AlreadyExists,
        Code::FailedPrecondition => ErrorKind::FailedPrecondition,
        Code::Unavailable => ErrorKind::Unavailable,
        Code::Unimplemented => ErrorKind::NotImplemented,
        Code::Cancelled => ErrorKind::Canceled,
        Code::DeadlineExceeded => ErrorKind::DeadlineExceeded,
        Code::PermissionDenied => ErrorKind::PermissionDenied,
        Code::ResourceExhausted => ErrorKind::ResourceExhausted,
        Code::Aborted => ErrorKind::Aborted,
        Code::OutOfRange => ErrorKind::OutOfRange,
        Code::DataLoss => ErrorKind::DataLoss,
        Code::Internal => ErrorKind::Internal,
        Code::Unauthenticated => ErrorKind::Unauthenticated,
    }
}

/// Converts a berth error into the status a client sees.
pub fn to_status(err: Error) -> Status {
    Status::new(code_of(err.kind()), err.message())
}

/// Converts a status a server sent back into a berth error of the same kind.
pub fn from_status(status: &Status) -> Error {
    Error::new(kind_of(status.code()), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[ErrorKind] = &[
        ErrorKind::Unknown,
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::FailedPrecondition,
        ErrorKind::Unavailable,
        ErrorKind::NotImplemented,
        ErrorKind::Canceled,
        ErrorKind::DeadlineExceeded,
        ErrorKind::PermissionDenied,
        ErrorKind::ResourceExhausted,
        ErrorKind::Aborted,
        ErrorKind::OutOfRange,
        ErrorKind::DataLoss,
        ErrorKind::Internal,
        ErrorKind::Unauthenticated,
    ];

    #[test]
    fn every_kind_round_trips_through_a_status() {
        for &kind in KINDS {
            let err = Error::new(kind, "x");
            let back = from_status(&to_status(err.clone()));
            assert_eq!(back, err, "{kind:?}");
        }
    }
}

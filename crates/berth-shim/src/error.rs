//! Errors on the ttrpc boundary.
//!
//! The shim uses berth-core's error kinds and maps each to the ttrpc (gRPC)
//! code containerd's `errdefs` uses for it, so the daemon can tell "process
//! already finished" (NotFound) from "cannot delete a running task"
//! (FailedPrecondition) from a runc failure (Unknown).

use berth_core::{Error, ErrorKind};
use ttrpc::Code;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The ttrpc status for a berth error.
pub fn to_ttrpc(err: Error) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code(err.kind()), err.message()))
}

fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Unknown => Code::UNKNOWN,
        ErrorKind::InvalidArgument => Code::INVALID_ARGUMENT,
        ErrorKind::NotFound => Code::NOT_FOUND,
        ErrorKind::AlreadyExists => Code::ALREADY_EXISTS,
        ErrorKind::FailedPrecondition => Code::FAILED_PRECONDITION,
        ErrorKind::Unavailable => Code::UNAVAILABLE,
        ErrorKind::NotImplemented => Code::UNIMPLEMENTED,
        ErrorKind::Canceled => Code::CANCELLED,
        ErrorKind::DeadlineExceeded => Code::DEADLINE_EXCEEDED,
        ErrorKind::PermissionDenied => Code::PERMISSION_DENIED,
        ErrorKind::ResourceExhausted => Code::RESOURCE_EXHAUSTED,
        ErrorKind::Aborted => Code::ABORTED,
        ErrorKind::OutOfRange => Code::OUT_OF_RANGE,
        ErrorKind::DataLoss => Code::DATA_LOSS,
        ErrorKind::Internal => Code::INTERNAL,
        ErrorKind::Unauthenticated => Code::UNAUTHENTICATED,
    }
}

/// An unclassified failure (runc said no, a syscall failed).
pub fn unknown(err: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unknown, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_keeps_its_code_and_message() {
        let ttrpc::Error::RpcStatus(status) = to_ttrpc(Error::not_found("process p")) else {
            panic!("not a status");
        };
        assert_eq!(status.code(), Code::NOT_FOUND);
        assert!(status.message().contains("process p"));
    }
}

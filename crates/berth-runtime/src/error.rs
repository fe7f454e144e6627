//! ttrpc statuses to berth error kinds: a shim's `NotFound` ("process already
//! finished") must reach the client as `NotFound`, so the codes are kept.
//!
//! A call whose connection broke (the shim died) fails as containerd's do:
//! `Unknown`, "ttrpc: closed" — a waiting `ctr` then prints that error and
//! exits 1, while the daemon reports the task's exit by events.

use berth_core::{Error, ErrorKind};
use ttrpc::Code;

/// The message of a call to a shim whose connection is gone (containerd's
/// `ttrpc.ErrClosed`).
pub const SHIM_CLOSED: &str = "ttrpc: closed";

/// Converts a ttrpc error into a berth error, keeping the status code's class.
pub fn from_ttrpc(err: ttrpc::Error) -> Error {
    match err {
        ttrpc::Error::RpcStatus(status) => {
            Error::new(kind(status.code()), status.message().to_string())
        }
        other => {
            tracing::debug!(error = %other, "shim connection lost");
            Error::new(ErrorKind::Unknown, SHIM_CLOSED)
        }
    }
}

/// A State call to a shim that is gone answers `NotFound`, as containerd's
/// `shimTask.State` turns `ttrpc.ErrClosed` into `ErrNotFound`: the task is
/// on its way out (the monitor is cleaning up after its shim), and callers
/// such as CRI's status calls treat it as exited rather than fail.
pub fn gone_as_not_found(err: Error, id: &str) -> Error {
    if err.kind() == ErrorKind::Unknown && err.message() == SHIM_CLOSED {
        Error::not_found(format!("task {id:?}: its shim is gone ({SHIM_CLOSED})"))
    } else {
        err
    }
}

/// Whether a call failed because the shim's connection is gone, rather than
/// with the shim's own answer.
pub fn is_connection_lost(err: &ttrpc::Error) -> bool {
    !matches!(err, ttrpc::Error::RpcStatus(_))
}

fn kind(code: Code) -> ErrorKind {
    match code {
        Code::INVALID_ARGUMENT => ErrorKind::InvalidArgument,
        Code::NOT_FOUND => ErrorKind::NotFound,
        Code::ALREADY_EXISTS => ErrorKind::AlreadyExists,
        Code::FAILED_PRECONDITION => ErrorKind::FailedPrecondition,
        Code::UNAVAILABLE => ErrorKind::Unavailable,
        Code::UNIMPLEMENTED => ErrorKind::NotImplemented,
        Code::CANCELLED => ErrorKind::Canceled,
        Code::DEADLINE_EXCEEDED => ErrorKind::DeadlineExceeded,
        Code::PERMISSION_DENIED => ErrorKind::PermissionDenied,
        Code::RESOURCE_EXHAUSTED => ErrorKind::ResourceExhausted,
        Code::ABORTED => ErrorKind::Aborted,
        Code::OUT_OF_RANGE => ErrorKind::OutOfRange,
        Code::DATA_LOSS => ErrorKind::DataLoss,
        Code::INTERNAL => ErrorKind::Internal,
        Code::UNAUTHENTICATED => ErrorKind::Unauthenticated,
        _ => ErrorKind::Unknown,
    }
}

/// Whether a shim answered that it does not know a service or method, the
/// sign to try the other task API version.
pub(crate) fn is_unknown_service(err: &ttrpc::Error) -> bool {
    match err {
        ttrpc::Error::RpcStatus(s) => {
            s.code() == Code::UNIMPLEMENTED
                || (s.code() == Code::NOT_FOUND && s.message().contains("not supported"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_keep_their_class() {
        let err = ttrpc::Error::RpcStatus(ttrpc::get_status(
            Code::NOT_FOUND,
            "process already finished",
        ));
        let err = from_ttrpc(err);
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), "process already finished");
    }

    #[test]
    fn transport_errors_are_containerds_closed_connection() {
        let lost = ttrpc::Error::Socket("early eof".into());
        assert!(is_connection_lost(&lost));
        let err = from_ttrpc(lost);
        assert_eq!(err.kind(), ErrorKind::Unknown);
        assert_eq!(err.message(), SHIM_CLOSED);
        let answered = ttrpc::Error::RpcStatus(ttrpc::get_status(Code::NOT_FOUND, "x"));
        assert!(!is_connection_lost(&answered));
    }

    #[test]
    fn unknown_service_is_recognised_from_go_and_rust_servers() {
        let go = ttrpc::Error::RpcStatus(ttrpc::get_status(Code::UNIMPLEMENTED, "service x"));
        let rust = ttrpc::Error::RpcStatus(ttrpc::get_status(
            Code::NOT_FOUND,
            "/containerd.task.v3.Task/State is not supported",
        ));
        assert!(is_unknown_service(&go) && is_unknown_service(&rust));
    }
}

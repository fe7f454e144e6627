//! ttrpc statuses to berth error kinds: a shim's `NotFound` ("process already
//! finished") must reach the client as `NotFound`, so the codes are kept.

use berth_core::{Error, ErrorKind};
use ttrpc::Code;

/// Converts a ttrpc error into a berth error, keeping the status code's class.
pub fn from_ttrpc(err: ttrpc::Error) -> Error {
    match err {
        ttrpc::Error::RpcStatus(status) => {
            Error::new(kind(status.code()), status.message().to_string())
        }
        other => Error::unavailable(format!("shim: {other}")),
    }
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
    fn transport_errors_are_unavailable() {
        let err = from_ttrpc(ttrpc::Error::Socket("closed".into()));
        assert_eq!(err.kind(), ErrorKind::Unavailable);
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

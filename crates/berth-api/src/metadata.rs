//! Request headers: the namespace (`containerd-namespace`) and lease (`containerd-lease`).

use berth_core::{identifiers, namespaces, Error, Result};

/// The gRPC header naming the lease a call works under.
pub const LEASE_HEADER: &str = "containerd-lease";

/// The namespace a request names, if any.
pub fn namespace<T>(request: &tonic::Request<T>) -> Option<&str> {
    request
        .metadata()
        .get(namespaces::GRPC_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}

/// The namespace a request must name, validated as containerd's
/// `NamespaceRequired` does: a missing header is `FailedPrecondition`
/// ("namespace is required"), a malformed one `InvalidArgument`.
pub fn required_namespace<T>(request: &tonic::Request<T>) -> Result<String> {
    let ns = namespace(request)
        .ok_or_else(|| Error::failed_precondition("namespace is required: failed precondition"))?;
    identifiers::validate(ns).map_err(|e| e.context("namespace validation"))?;
    Ok(ns.to_string())
}

/// The lease a request works under, if any.
pub fn lease<T>(request: &tonic::Request<T>) -> Option<&str> {
    request
        .metadata()
        .get(LEASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::ErrorKind;

    fn request(ns: Option<&str>) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        if let Some(ns) = ns {
            let value = ns.parse().expect("ascii header");
            request
                .metadata_mut()
                .insert(namespaces::GRPC_HEADER, value);
        }
        request
    }

    #[test]
    fn missing_namespace_is_failed_precondition() {
        let err = required_namespace(&request(None)).expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(err.message(), "namespace is required: failed precondition");
    }

    #[test]
    fn malformed_namespace_is_invalid_argument() {
        let err = required_namespace(&request(Some("bad ns"))).expect_err("bad");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err
            .message()
            .starts_with("namespace validation: identifier"));
    }

    #[test]
    fn valid_namespace_is_returned() {
        assert_eq!(
            required_namespace(&request(Some("k8s.io"))).expect("ok"),
            "k8s.io"
        );
    }
}

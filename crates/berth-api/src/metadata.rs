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

/// The namespace a request must name, validated: containerd answers
/// `InvalidArgument` ("namespace is required") when it is missing.
pub fn required_namespace<T>(request: &tonic::Request<T>) -> Result<String> {
    let ns = namespace(request)
        .ok_or_else(|| Error::invalid_argument("namespace is required: invalid argument"))?;
    identifiers::validate(ns).map_err(|e| e.context(format!("namespace {ns:?}")))?;
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

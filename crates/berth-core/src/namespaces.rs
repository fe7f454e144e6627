//! Namespaces: how a request names the namespace it works in.

/// The gRPC metadata header carrying the namespace, as containerd's clients send it.
pub const GRPC_HEADER: &str = "containerd-namespace";

/// The ttrpc metadata header carrying the namespace (shims).
pub const TTRPC_HEADER: &str = "containerd-namespace-ttrpc";

/// The namespace `ctr` and containerd's clients use when none is given.
pub const DEFAULT: &str = "default";

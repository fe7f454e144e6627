//! Thin gRPC adapters: each method converts the request, calls one local
//! service or store function, converts the result and maps the error.

pub mod containers;
pub mod content;
pub mod diff;
pub mod events;
pub mod health;
pub mod images;
pub mod introspection;
pub mod leases;
pub mod namespaces;
pub mod snapshots;
pub mod streaming;
pub mod tasks;
pub mod transfer;
pub mod unbuilt;
pub mod version;

use berth_api::status::to_status;
use tonic::service::RoutesBuilder;
use tonic::Status;

/// A gRPC plugin's instance: how to add its service to the server.
pub struct GrpcService {
    name: &'static str,
    register: Box<dyn Fn(&mut RoutesBuilder) + Send + Sync>,
    serving: Option<Box<dyn Fn() + Send + Sync>>,
    stopping: Option<Box<dyn Fn() + Send + Sync>>,
}

impl GrpcService {
    /// Wraps a function that adds the tonic service `name` to the routes.
    pub fn new(
        name: &'static str,
        register: impl Fn(&mut RoutesBuilder) + Send + Sync + 'static,
    ) -> Self {
        GrpcService {
            name,
            register: Box::new(register),
            serving: None,
            stopping: None,
        }
    }

    /// Runs `hook` once the daemon serves, for a service whose start-up
    /// calls the daemon's own API (the CRI plugin's recovery).
    pub fn on_serving(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.serving = Some(Box::new(hook));
        self
    }

    /// Runs `hook` when the daemon starts to stop, before it waits for
    /// in-flight calls: a service that calls the daemon's own API ends
    /// those calls there.
    pub fn on_stopping(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.stopping = Some(Box::new(hook));
        self
    }

    /// Tells the service that the daemon stops.
    pub fn stopping(&self) {
        if let Some(hook) = &self.stopping {
            hook();
        }
    }

    /// Tells the service that the daemon serves.
    pub fn serving(&self) {
        if let Some(hook) = &self.serving {
            hook();
        }
    }

    /// The full gRPC service name, e.g. `containerd.services.tasks.v1.Tasks`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Adds this service to `routes`.
    pub fn register(&self, routes: &mut RoutesBuilder) {
        (self.register)(routes)
    }
}

/// Converts a domain result into a gRPC one.
pub fn grpc<T>(result: berth_core::Result<T>) -> Result<T, Status> {
    result.map_err(to_status)
}

/// The namespace a request must carry, as a gRPC error when it does not.
pub fn namespace<T>(request: &tonic::Request<T>) -> Result<String, Status> {
    grpc(berth_api::metadata::required_namespace(request))
}

/// Pulls a required message field out of a request.
pub fn required<T>(field: Option<T>, name: &str) -> Result<T, Status> {
    field.ok_or_else(|| Status::invalid_argument(format!("{name} must be set")))
}

/// The paths of an optional field mask.
pub fn mask_paths(mask: Option<prost_types::FieldMask>) -> Vec<String> {
    mask.map(|m| m.paths).unwrap_or_default()
}

//! `grpc.health.v1.Health`, as containerd's `io.containerd.grpc.v1.healthcheck`
//! plugin serves it. containerd's Go client (`IsServing`) and dockerd call
//! `Check` with service "" before anything else.

use tonic_health::pb::health_server::{Health, HealthServer};

/// The health server: every service, "" included, answers SERVING for as long
/// as berthd serves (tonic-health's default for an unregistered "").
pub fn server() -> HealthServer<impl Health> {
    let (_reporter, service) = tonic_health::server::health_reporter();
    service
}

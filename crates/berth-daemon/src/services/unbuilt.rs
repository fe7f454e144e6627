//! Services no plugin serves yet. Every containerd v1 service is routed, so a
//! call to a method berth has not built answers `Unimplemented` with a
//! message naming the route (the generated default bodies) instead of an
//! anonymous transport-level "unimplemented".

use berth_api::server::*;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;

/// A service with every method left at its default body.
#[derive(Debug, Clone, Copy)]
pub struct Unbuilt;

#[tonic::async_trait]
impl containers::containers_server::Containers for Unbuilt {}
#[tonic::async_trait]
impl content::content_server::Content for Unbuilt {}
#[tonic::async_trait]
impl diff::diff_server::Diff for Unbuilt {}
#[tonic::async_trait]
impl events::events_server::Events for Unbuilt {}
#[tonic::async_trait]
impl images::images_server::Images for Unbuilt {}
#[tonic::async_trait]
impl introspection::introspection_server::Introspection for Unbuilt {}
#[tonic::async_trait]
impl leases::leases_server::Leases for Unbuilt {}
#[tonic::async_trait]
impl namespaces::namespaces_server::Namespaces for Unbuilt {}
#[tonic::async_trait]
impl sandbox_store::store_server::Store for Unbuilt {}
#[tonic::async_trait]
impl sandbox_controller::controller_server::Controller for Unbuilt {}
#[tonic::async_trait]
impl snapshots::snapshots_server::Snapshots for Unbuilt {}
#[tonic::async_trait]
impl streaming::streaming_server::Streaming for Unbuilt {}
#[tonic::async_trait]
impl tasks::tasks_server::Tasks for Unbuilt {}
#[tonic::async_trait]
impl transfer::transfer_server::Transfer for Unbuilt {}
#[tonic::async_trait]
impl version::version_server::Version for Unbuilt {}

macro_rules! add_missing {
    ($routes:expr, $served:expr, $($server:expr),+ $(,)?) => {
        $(
            let server = $server;
            if !$served.contains(&service_name(&server)) {
                $routes.add_service(server);
            }
        )+
    };
}

/// The gRPC service name of a tonic server value.
pub fn service_name<S: NamedService>(_: &S) -> &'static str {
    S::NAME
}

/// Adds an [`Unbuilt`] service for every containerd service not in `served`.
pub fn add_missing(routes: &mut RoutesBuilder, served: &[&str]) {
    add_missing!(
        routes,
        served,
        containers::containers_server::ContainersServer::new(Unbuilt),
        content::content_server::ContentServer::new(Unbuilt),
        diff::diff_server::DiffServer::new(Unbuilt),
        events::events_server::EventsServer::new(Unbuilt),
        images::images_server::ImagesServer::new(Unbuilt),
        introspection::introspection_server::IntrospectionServer::new(Unbuilt),
        leases::leases_server::LeasesServer::new(Unbuilt),
        namespaces::namespaces_server::NamespacesServer::new(Unbuilt),
        sandbox_store::store_server::StoreServer::new(Unbuilt),
        sandbox_controller::controller_server::ControllerServer::new(Unbuilt),
        snapshots::snapshots_server::SnapshotsServer::new(Unbuilt),
        streaming::streaming_server::StreamingServer::new(Unbuilt),
        tasks::tasks_server::TasksServer::new(Unbuilt),
        transfer::transfer_server::TransferServer::new(Unbuilt),
        version::version_server::VersionServer::new(Unbuilt),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::pb::services::v1::ListTasksRequest;
    use tasks::tasks_server::Tasks;

    #[tokio::test]
    async fn unbuilt_method_names_its_route() {
        let status = Unbuilt
            .list(tonic::Request::new(ListTasksRequest::default()))
            .await
            .expect_err("unbuilt");
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(
            status.message(),
            "/containerd.services.tasks.v1.Tasks/List is not implemented"
        );
    }

    #[test]
    fn served_services_are_not_added_twice() {
        let mut routes = RoutesBuilder::default();
        // Would panic on a duplicate route if `served` were ignored.
        routes.add_service(version::version_server::VersionServer::new(Unbuilt));
        add_missing(&mut routes, &["containerd.services.version.v1.Version"]);
    }
}

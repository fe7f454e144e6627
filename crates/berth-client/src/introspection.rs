//! `containerd.services.introspection.v1.Introspection`: the daemon's
//! plugins and identity.

use berth_core::Result;

use crate::pb::services::v1::introspection_client::IntrospectionClient;
use crate::pb::services::v1::{Plugin, PluginsRequest, ServerResponse};
use crate::Client;

/// The introspection service; see [`Client::introspection`].
#[derive(Clone, Debug)]
pub struct Introspection {
    client: Client,
}

impl Client {
    /// The introspection service.
    pub fn introspection(&self) -> Introspection {
        Introspection {
            client: self.clone(),
        }
    }
}

impl Introspection {
    /// The daemon's plugins matching any of `filters` (containerd's filter
    /// syntax, e.g. `type==io.containerd.snapshotter.v1`; none: all).
    pub async fn plugins<S: AsRef<str>>(&self, filters: &[S]) -> Result<Vec<Plugin>> {
        let filters = filters.iter().map(|f| f.as_ref().to_string()).collect();
        let request = self.client.request(PluginsRequest { filters }, true)?;
        let response = self
            .client
            .call(IntrospectionClient::new(self.client.channel()).plugins(request))
            .await?;
        Ok(response.plugins)
    }

    /// The daemon's identity: its UUID (stable across restarts), pid and
    /// pid namespace.
    pub async fn server(&self) -> Result<ServerResponse> {
        let request = self.client.request((), true)?;
        self.client
            .call(IntrospectionClient::new(self.client.channel()).server(request))
            .await
    }
}

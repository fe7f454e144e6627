//! `containerd.services.version.v1.Version`.

use berth_core::Result;

use crate::pb::services::v1::version_client::VersionClient;
use crate::pb::services::v1::VersionResponse;
use crate::Client;

impl Client {
    /// The daemon's version and git revision.
    pub async fn version(&self) -> Result<VersionResponse> {
        let request = self.request((), true)?;
        self.call(VersionClient::new(self.channel()).version(request))
            .await
    }
}

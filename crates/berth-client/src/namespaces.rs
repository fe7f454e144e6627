//! `containerd.services.namespaces.v1.Namespaces`: creating, labelling and
//! removing namespaces.
//!
//! Namespaces are containerd's unit of isolation for metadata: every
//! container, image, lease and snapshot reference belongs to exactly one.

use std::collections::HashMap;

use berth_core::{Error, Result};
use prost_types::FieldMask;

use crate::pb::services::v1::namespaces_client::NamespacesClient;
use crate::pb::services::v1::{
    CreateNamespaceRequest, DeleteNamespaceRequest, GetNamespaceRequest, ListNamespacesRequest,
    Namespace, UpdateNamespaceRequest,
};
use crate::Client;

/// The namespaces service; see [`Client::namespaces`].
#[derive(Clone, Debug)]
pub struct Namespaces {
    client: Client,
}

impl Client {
    /// The namespaces service.
    pub fn namespaces(&self) -> Namespaces {
        Namespaces {
            client: self.clone(),
        }
    }
}

impl Namespaces {
    fn service(&self) -> NamespacesClient<tonic::transport::Channel> {
        NamespacesClient::new(self.client.channel())
    }

    /// Creates namespace `name` with `labels`; `AlreadyExists` if it exists.
    pub async fn create(&self, name: &str, labels: HashMap<String, String>) -> Result<Namespace> {
        let namespace = Namespace {
            name: name.to_string(),
            labels,
        };
        let request = self.client.request(
            CreateNamespaceRequest {
                namespace: Some(namespace),
            },
            true,
        )?;
        let response = self.client.call(self.service().create(request)).await?;
        expect(response.namespace, "create")
    }

    /// Namespace `name`; `NotFound` if it does not exist.
    pub async fn get(&self, name: &str) -> Result<Namespace> {
        let request = self.client.request(
            GetNamespaceRequest {
                name: name.to_string(),
            },
            true,
        )?;
        let response = self.client.call(self.service().get(request)).await?;
        expect(response.namespace, "get")
    }

    /// All namespaces, in the daemon's order (by name, for containerd).
    pub async fn list(&self) -> Result<Vec<Namespace>> {
        let request = self
            .client
            .request(ListNamespacesRequest::default(), true)?;
        let response = self.client.call(self.service().list(request)).await?;
        Ok(response.namespaces)
    }

    /// Updates the fields of `namespace` named by `field_paths` (`labels`,
    /// `labels.KEY`); no paths replaces every updatable field.
    pub async fn update<S: AsRef<str>>(
        &self,
        namespace: Namespace,
        field_paths: &[S],
    ) -> Result<Namespace> {
        let update_mask = (!field_paths.is_empty()).then(|| FieldMask {
            paths: field_paths.iter().map(|p| p.as_ref().to_string()).collect(),
        });
        let request = self.client.request(
            UpdateNamespaceRequest {
                namespace: Some(namespace),
                update_mask,
            },
            true,
        )?;
        let response = self.client.call(self.service().update(request)).await?;
        expect(response.namespace, "update")
    }

    /// Sets each of `labels` on namespace `name`, leaving the others alone;
    /// an empty value removes the label. With no labels, nothing changes
    /// and the namespace is returned as it is.
    pub async fn set_labels(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<Namespace> {
        if labels.is_empty() {
            return self.get(name).await;
        }
        let paths: Vec<String> = labels.keys().map(|k| format!("labels.{k}")).collect();
        let namespace = Namespace {
            name: name.to_string(),
            labels,
        };
        self.update(namespace, &paths).await
    }

    /// Removes namespace `name`; containerd refuses (`FailedPrecondition`)
    /// while it still holds objects.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let request = self.client.request(
            DeleteNamespaceRequest {
                name: name.to_string(),
            },
            true,
        )?;
        self.client.call(self.service().delete(request)).await
    }
}

/// The object a successful response must carry.
pub(crate) fn expect<T>(object: Option<T>, call: &str) -> Result<T> {
    object.ok_or_else(|| Error::internal(format!("{call}: the daemon's response is empty")))
}

//! berth's persistent state.
//!
//! [`MetadataStore`] is the metadata database (an embedded redb file) holding
//! containerd's namespaced model. Its API is synchronous: every call is one
//! redb transaction, so a crash leaves either the old or the new state. The
//! daemon calls it from `spawn_blocking`.
#![warn(missing_docs)]

pub mod model;

pub use model::{Any, Container, Namespace, Runtime};

use berth_core::{filters::Filter, Error, Result};
use std::path::Path;

/// The metadata database (STUB: the redb implementation lands with the store work).
#[derive(Clone, Debug)]
pub struct MetadataStore {}

fn todo_store() -> Error {
    Error::not_implemented("metadata store is not built yet")
}

impl MetadataStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(_path: &Path) -> Result<Self> {
        Ok(MetadataStore {})
    }

    /// Creates a namespace; AlreadyExists if it exists.
    pub fn create_namespace(&self, _ns: Namespace) -> Result<Namespace> {
        Err(todo_store())
    }
    /// Gets a namespace; NotFound if absent.
    pub fn get_namespace(&self, _name: &str) -> Result<Namespace> {
        Err(todo_store())
    }
    /// Lists all namespaces, sorted by name.
    pub fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        Err(todo_store())
    }
    /// Updates a namespace's labels by field paths (`labels`, `labels.KEY`;
    /// none means replace all labels).
    pub fn update_namespace(&self, _ns: Namespace, _paths: &[String]) -> Result<Namespace> {
        Err(todo_store())
    }
    /// Deletes an empty namespace; FailedPrecondition if it still holds objects.
    pub fn delete_namespace(&self, _name: &str) -> Result<()> {
        Err(todo_store())
    }

    /// Creates a container record (creating the namespace implicitly, as containerd does).
    pub fn create_container(&self, _ns: &str, _c: Container) -> Result<Container> {
        Err(todo_store())
    }
    /// Gets a container; NotFound if absent.
    pub fn get_container(&self, _ns: &str, _id: &str) -> Result<Container> {
        Err(todo_store())
    }
    /// Lists the containers of a namespace that pass `filter`, sorted by id.
    pub fn list_containers(&self, _ns: &str, _filter: &Filter) -> Result<Vec<Container>> {
        Err(todo_store())
    }
    /// Updates a container by field paths, with containerd's rules.
    pub fn update_container(
        &self,
        _ns: &str,
        _c: Container,
        _paths: &[String],
    ) -> Result<Container> {
        Err(todo_store())
    }
    /// Deletes a container record; NotFound if absent.
    pub fn delete_container(&self, _ns: &str, _id: &str) -> Result<()> {
        Err(todo_store())
    }
}

//! What the plugin keeps in memory: pod sandboxes and containers by id,
//! with containerd's truncated-id lookup (any unique prefix of an id
//! finds it) and the reserved-name index that makes a second pod or
//! container of the same name fail until the first is removed.
//!
//! The records themselves live in the daemon (container records and their
//! extensions) and in status files; these stores are rebuilt from them at
//! start-up (`recover`).

mod container;
mod names;
mod sandbox;

pub use container::{Container, ContainerMetadata, ContainerState, ContainerStatus};
pub use names::{container_name, sandbox_name, Names};
pub use sandbox::{Sandbox, SandboxMetadata, SandboxState, SandboxStatus};

use berth_core::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Something kept by id.
pub trait Keyed {
    /// The full id.
    fn id(&self) -> &str;
    /// What it is called in errors ("sandbox", "container").
    const KIND: &'static str;
}

/// Items by id, found by any unique prefix of it.
#[derive(Debug)]
pub struct Store<T> {
    items: RwLock<BTreeMap<String, Arc<T>>>,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            items: RwLock::new(BTreeMap::new()),
        }
    }
}

impl<T: Keyed> Store<T> {
    /// Adds `item`; `AlreadyExists` if its id is taken.
    pub fn add(&self, item: Arc<T>) -> Result<()> {
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        if items.contains_key(item.id()) {
            return Err(Error::already_exists(format!(
                "{} {:?}",
                T::KIND,
                item.id()
            )));
        }
        items.insert(item.id().to_string(), item);
        Ok(())
    }

    /// The item whose id is `id` or starts with it. An empty or ambiguous
    /// prefix, or none, is `NotFound` or `InvalidArgument`, as containerd's
    /// truncindex answers.
    pub fn get(&self, id: &str) -> Result<Arc<T>> {
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        if id.is_empty() {
            return Err(Error::invalid_argument(format!(
                "{} id must be set",
                T::KIND
            )));
        }
        if let Some(item) = items.get(id) {
            return Ok(item.clone());
        }
        let mut matches = items
            .range(id.to_string()..)
            .take_while(|(key, _)| key.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some((_, item)), None) => Ok(item.clone()),
            (Some(_), Some(_)) => Err(Error::invalid_argument(format!(
                "{} id prefix {id:?} is ambiguous",
                T::KIND
            ))),
            (None, _) => Err(Error::not_found(format!("{} {id:?}", T::KIND))),
        }
    }

    /// Every item, in id order.
    pub fn list(&self) -> Vec<Arc<T>> {
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        items.values().cloned().collect()
    }

    /// Removes the item with exactly this id, if there is one.
    pub fn remove(&self, id: &str) -> Option<Arc<T>> {
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        items.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Item(String);
    impl Keyed for Item {
        fn id(&self) -> &str {
            &self.0
        }
        const KIND: &'static str = "item";
    }

    #[test]
    fn prefixes_find_unique_ids_only() {
        let store = Store::default();
        for id in ["abc123", "abd456", "ff"] {
            store.add(Arc::new(Item(id.into()))).expect("must succeed");
        }
        assert_eq!(store.get("abc").expect("must succeed").0, "abc123");
        assert_eq!(store.get("ff").expect("must succeed").0, "ff");
        assert_eq!(
            store.get("ab").expect_err("must fail").kind(),
            berth_core::ErrorKind::InvalidArgument
        );
        assert!(store.get("zz").expect_err("must fail").is_not_found());
        assert_eq!(
            store.get("").expect_err("must fail").kind(),
            berth_core::ErrorKind::InvalidArgument
        );
        assert_eq!(
            store
                .add(Arc::new(Item("ff".into())))
                .expect_err("must fail")
                .kind(),
            berth_core::ErrorKind::AlreadyExists
        );
        assert!(store.remove("ff").is_some());
        assert!(store.get("ff").expect_err("must fail").is_not_found());
        assert_eq!(store.list().len(), 2);
    }
}

//! Reserved names: a pod or container name (built from its CRI metadata)
//! belongs to one id until released, as containerd's `registrar` keeps it.

use berth_core::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;

/// Names and the ids that hold them.
#[derive(Debug, Default)]
pub struct Names {
    held: Mutex<HashMap<String, String>>,
}

impl Names {
    /// Reserves `name` for `id`. Reserving it again for the same id is a
    /// no-op; for another id it fails with `AlreadyExists`
    /// (`name "x" is reserved for "id"`).
    pub fn reserve(&self, name: &str, id: &str) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get(name) {
            Some(owner) if owner == id => Ok(()),
            Some(owner) => Err(Error::new(
                berth_core::ErrorKind::AlreadyExists,
                format!("name {name:?} is reserved for {owner:?}"),
            )),
            None => {
                held.insert(name.to_string(), id.to_string());
                Ok(())
            }
        }
    }

    /// Releases `name` (whoever holds it).
    pub fn release(&self, name: &str) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(name);
    }
}

/// containerd's sandbox name: `<name>_<namespace>_<uid>_<attempt>`.
pub fn sandbox_name(meta: &k8s_cri::v1::PodSandboxMetadata) -> String {
    format!(
        "{}_{}_{}_{}",
        meta.name, meta.namespace, meta.uid, meta.attempt
    )
}

/// containerd's container name:
/// `<container>_<pod name>_<pod namespace>_<pod uid>_<attempt>`.
pub fn container_name(
    meta: &k8s_cri::v1::ContainerMetadata,
    pod: &k8s_cri::v1::PodSandboxMetadata,
) -> String {
    format!(
        "{}_{}_{}_{}_{}",
        meta.name, pod.name, pod.namespace, pod.uid, meta.attempt
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_belongs_to_one_id_until_released() {
        let names = Names::default();
        names.reserve("a", "1").expect("must succeed");
        names.reserve("a", "1").expect("must succeed");
        let err = names.reserve("a", "2").expect_err("must fail");
        assert!(err.to_string().contains("is reserved for \"1\""), "{err}");
        names.release("a");
        names.reserve("a", "2").expect("must succeed");
    }
}

//! Orders registrations so every plugin comes after the types it requires.
//!
//! As in containerd, a requirement names a plugin *type*: a plugin waits for
//! every registration of that type; `*` waits for all other plugins. Ties keep
//! registration order, so the result is deterministic.

use super::Registration;
use anyhow::{bail, Result};

/// Returns the registrations in init order, or an error naming a cycle.
pub fn order(registrations: &[Registration]) -> Result<Vec<Registration>> {
    let mut ordered: Vec<usize> = Vec::with_capacity(registrations.len());
    let mut visiting: Vec<usize> = Vec::new();
    for index in 0..registrations.len() {
        visit(registrations, index, &mut visiting, &mut ordered)?;
    }
    Ok(ordered.into_iter().map(|i| registrations[i]).collect())
}

fn visit(
    registrations: &[Registration],
    index: usize,
    visiting: &mut Vec<usize>,
    ordered: &mut Vec<usize>,
) -> Result<()> {
    if ordered.contains(&index) {
        return Ok(());
    }
    if visiting.contains(&index) {
        let cycle: Vec<String> = visiting.iter().map(|&i| registrations[i].uri()).collect();
        bail!("plugin dependency cycle: {}", cycle.join(" -> "));
    }
    visiting.push(index);
    let this = &registrations[index];
    for (dep, reg) in registrations.iter().enumerate() {
        let wanted = this
            .requires
            .iter()
            .any(|&r| (r == "*" && !reg.requires.contains(&"*")) || r == reg.plugin_type);
        if dep != index && wanted {
            visit(registrations, dep, visiting, ordered)?;
        }
    }
    visiting.pop();
    ordered.push(index);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{InitContext, Instance};
    use std::sync::Arc;

    fn noop(_: &mut InitContext<'_>) -> Result<Instance> {
        Ok(Arc::new(()))
    }

    fn reg(t: &'static str, id: &'static str, requires: &'static [&'static str]) -> Registration {
        Registration {
            plugin_type: t,
            id,
            requires,
            init: noop,
        }
    }

    #[test]
    fn requirements_come_first() {
        let regs = [
            reg("grpc", "containers", &["service"]),
            reg("service", "containers", &["metadata", "event"]),
            reg("metadata", "redb", &[]),
            reg("event", "exchange", &[]),
        ];
        let names: Vec<String> = order(&regs)
            .expect("order")
            .iter()
            .map(Registration::uri)
            .collect();
        assert_eq!(
            names,
            [
                "metadata.redb",
                "event.exchange",
                "service.containers",
                "grpc.containers"
            ]
        );
    }

    #[test]
    fn star_waits_for_everything_else() {
        let regs = [
            reg("grpc", "introspection", &["*"]),
            reg("metadata", "redb", &[]),
        ];
        let order = order(&regs).expect("order");
        assert_eq!(order[1].id, "introspection");
    }

    #[test]
    fn a_cycle_is_an_error() {
        let regs = [reg("a", "x", &["b"]), reg("b", "y", &["a"])];
        let err = order(&regs).expect_err("cycle");
        assert!(err.to_string().contains("cycle"), "{err}");
    }
}

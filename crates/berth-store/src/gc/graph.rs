//! The object graph one collection works on: every object the metadata
//! database holds (and every object a label names), with its edges.
//!
//! Nodes are interned to small integer ids so marking is a walk over
//! vectors; an edge to an object that has no row (a label naming a blob this
//! namespace never had) is a node without a row, which marking may reach but
//! sweeping never touches.

use std::collections::HashMap;

/// The kinds of object garbage collection knows (containerd's
/// `ResourceContent`, `ResourceSnapshot`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A blob a namespace holds; key = digest.
    Content,
    /// A snapshot; key = `<snapshotter>/<key>`.
    Snapshot,
    /// A container record; key = id. Always a root.
    Container,
    /// An image record; key = name.
    Image,
    /// A lease; key = id.
    Lease,
}

const KINDS: usize = 5;

/// A node's index in [`Graph::nodes`].
pub(crate) type Id = u32;

/// One object.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) namespace: String,
    pub(crate) key: String,
    /// Whether the database has a row for it that sweeping may remove.
    pub(crate) removable: bool,
    /// Edges a flat traversal follows too: a snapshot's parent, an image's
    /// target.
    pub(crate) structural: Vec<Id>,
    /// Edges only a full traversal follows: label references, back
    /// references, a container's snapshot.
    pub(crate) refs: Vec<Id>,
}

/// The graph: nodes, and the roots marking starts from.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    /// Roots, each with whether it is held flat (only it and its structural
    /// edges, as a `containerd.io/gc.flat` lease holds things).
    pub(crate) roots: Vec<(Id, bool)>,
    /// Ingests live leases hold, as (namespace, ref): ingests are files of
    /// the content store, not graph nodes.
    pub(crate) leased_ingests: Vec<(String, String)>,
    /// Per namespace, per kind: key → id.
    index: HashMap<String, [HashMap<String, Id>; KINDS]>,
}

impl Graph {
    /// The id of (kind, namespace, key), adding a row-less node if new.
    pub(crate) fn node(&mut self, kind: Kind, namespace: &str, key: &str) -> Id {
        let next = self.nodes.len() as Id;
        let by_kind = match self.index.get_mut(namespace) {
            Some(by_kind) => by_kind,
            None => self.index.entry(namespace.to_owned()).or_default(),
        };
        let keys = &mut by_kind[kind as usize];
        if let Some(&id) = keys.get(key) {
            return id;
        }
        keys.insert(key.to_owned(), next);
        self.nodes.push(Node {
            kind,
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            removable: false,
            structural: Vec::new(),
            refs: Vec::new(),
        });
        next
    }

    /// The id of an object that has a row sweeping may remove.
    pub(crate) fn row(&mut self, kind: Kind, namespace: &str, key: &str) -> Id {
        let id = self.node(kind, namespace, key);
        self.nodes[id as usize].removable = true;
        id
    }

    /// Adds a root; `flat` roots hold only themselves and their structural
    /// edges.
    pub(crate) fn root(&mut self, id: Id, flat: bool) {
        self.roots.push((id, flat));
    }

    /// `from` structurally references `to` (parent, target).
    pub(crate) fn structural(&mut self, from: Id, to: Id) {
        self.nodes[from as usize].structural.push(to);
    }

    /// `from` references `to` (a label, a container's snapshot).
    pub(crate) fn reference(&mut self, from: Id, to: Id) {
        self.nodes[from as usize].refs.push(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_interned_per_namespace_and_kind() {
        let mut g = Graph::default();
        let a = g.node(Kind::Content, "ns", "sha256:a");
        assert_eq!(g.node(Kind::Content, "ns", "sha256:a"), a);
        assert_ne!(g.node(Kind::Content, "other", "sha256:a"), a);
        assert_ne!(g.node(Kind::Image, "ns", "sha256:a"), a);
        assert!(!g.nodes[a as usize].removable);
        assert_eq!(g.row(Kind::Content, "ns", "sha256:a"), a);
        assert!(g.nodes[a as usize].removable);
    }
}

//! Marking: containerd's tricolour walk (`pkg/gc/gc.go` `Tricolor`) over
//! the interned graph.
//!
//! A node reached *fully* follows all its edges; a node reached *flat* (held
//! by a `containerd.io/gc.flat` lease) follows only its structural edges, and
//! those flat too — a flat lease on a manifest keeps the manifest, not its
//! layers; on a snapshot, the snapshot and its parents. A node reached both
//! ways is walked fully once. Either way it is marked.

use super::graph::{Graph, Id};

/// Which nodes are reachable from the roots, by id.
pub(crate) fn mark(graph: &Graph) -> Vec<bool> {
    let n = graph.nodes.len();
    let mut full = vec![false; n];
    let mut flat = vec![false; n];
    let mut grays: Vec<(Id, bool)> = graph.roots.clone();
    while let Some((id, is_flat)) = grays.pop() {
        let i = id as usize;
        let node = &graph.nodes[i];
        if is_flat {
            if full[i] || flat[i] {
                continue;
            }
            flat[i] = true;
            grays.extend(node.structural.iter().map(|&s| (s, true)));
        } else {
            if full[i] {
                continue;
            }
            full[i] = true;
            grays.extend(node.structural.iter().map(|&s| (s, false)));
            grays.extend(node.refs.iter().map(|&r| (r, false)));
        }
    }
    full.iter().zip(&flat).map(|(a, b)| *a || *b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::graph::Kind;

    #[test]
    fn flat_roots_follow_structure_only_and_full_wins() {
        let mut g = Graph::default();
        let image = g.row(Kind::Image, "ns", "img");
        let manifest = g.row(Kind::Content, "ns", "m");
        let layer = g.row(Kind::Content, "ns", "l");
        let orphan = g.row(Kind::Content, "ns", "o");
        g.structural(image, manifest);
        g.reference(manifest, layer);
        g.root(image, true);
        let marked = mark(&g);
        assert!(marked[image as usize] && marked[manifest as usize]);
        assert!(!marked[layer as usize] && !marked[orphan as usize]);

        // The same manifest reached fully as well: its layer now stays.
        g.root(manifest, false);
        let marked = mark(&g);
        assert!(marked[layer as usize]);
        assert!(!marked[orphan as usize]);
    }

    #[test]
    fn cycles_terminate() {
        let mut g = Graph::default();
        let a = g.row(Kind::Content, "ns", "a");
        let b = g.row(Kind::Content, "ns", "b");
        g.reference(a, b);
        g.reference(b, a);
        g.root(a, false);
        assert_eq!(mark(&g), vec![true, true]);
    }
}

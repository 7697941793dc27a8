//! The causal order of a log's operations: one deterministic topological
//! order, and every operation's ancestors as a bitset over positions in
//! that order (`protocol/SPEC.md` §4.3, step 1).

use std::collections::{BTreeSet, HashMap};

use crate::circle::OpId;
use crate::circle::op::Op;

/// Ancestor sets over positions: bit `j` of `Ancestors` is set when the
/// operation at position `j` is a strict ancestor.
pub(super) type Ancestors = Vec<u64>;

fn has_bit(bits: &Ancestors, j: usize) -> bool {
    bits.get(j / 64).is_some_and(|w| w & (1 << (j % 64)) != 0)
}

fn set_bit(bits: &mut Ancestors, j: usize) {
    if bits.len() <= j / 64 {
        bits.resize(j / 64 + 1, 0);
    }
    bits[j / 64] |= 1 << (j % 64);
}

#[derive(Clone, Default)]
pub(super) struct Dag {
    order: Vec<OpId>,
    index: HashMap<OpId, usize>,
    ancestors: Vec<Ancestors>,
    heads: BTreeSet<OpId>,
}

impl Dag {
    /// Kahn's topological sort; among operations whose parents are all
    /// placed, the smallest op id (bytewise) goes first.
    pub(super) fn build(ops: &HashMap<OpId, Op>) -> Dag {
        let mut indegree: HashMap<OpId, usize> = HashMap::with_capacity(ops.len());
        let mut children: HashMap<OpId, Vec<OpId>> = HashMap::with_capacity(ops.len());
        for (id, op) in ops {
            indegree.insert(*id, op.parents.len());
            for p in &op.parents {
                children.entry(*p).or_default().push(*id);
            }
        }
        let mut ready: BTreeSet<OpId> = indegree.iter().filter(|(_, d)| **d == 0).map(|(id, _)| *id).collect();
        let mut dag = Dag::default();
        while let Some(id) = ready.pop_first() {
            let parents = ops.get(&id).map(|o| o.parents.as_slice()).unwrap_or(&[]);
            let bits = dag.ancestors_of_new(parents);
            dag.push(id, parents, bits);
            for c in children.get(&id).into_iter().flatten() {
                if let Some(d) = indegree.get_mut(c) {
                    *d -= 1;
                    if *d == 0 {
                        ready.insert(*c);
                    }
                }
            }
        }
        dag
    }

    /// The ancestor set an operation with these parents would have.
    pub(super) fn ancestors_of_new(&self, parents: &[OpId]) -> Ancestors {
        let mut bits: Ancestors = Vec::new();
        for p in parents {
            if let Some(&pi) = self.index.get(p) {
                let pb = &self.ancestors[pi];
                if bits.len() < pb.len() {
                    bits.resize(pb.len(), 0);
                }
                for (w, x) in bits.iter_mut().zip(pb) {
                    *w |= x;
                }
                set_bit(&mut bits, pi);
            }
        }
        bits
    }

    /// Whether an operation with this ancestor set descends from every
    /// operation placed so far (then it goes last in the order, concurrent
    /// with nothing, and can be applied without resolving again).
    pub(super) fn covers_all(&self, bits: &Ancestors) -> bool {
        let n = self.order.len();
        let full = n / 64;
        bits.len() >= n.div_ceil(64)
            && bits[..full].iter().all(|w| *w == u64::MAX)
            && (n.is_multiple_of(64) || bits[full] & ((1u64 << (n % 64)) - 1) == (1u64 << (n % 64)) - 1)
    }

    /// Place an operation after all others (its parents are placed).
    pub(super) fn push(&mut self, id: OpId, parents: &[OpId], bits: Ancestors) {
        let pos = self.order.len();
        self.order.push(id);
        self.index.insert(id, pos);
        self.ancestors.push(bits);
        for p in parents {
            self.heads.remove(p);
        }
        self.heads.insert(id);
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// Everything at or before these operations (unknown ones add nothing).
    pub(super) fn closure(&self, heads: &[OpId]) -> Ancestors {
        let mut bits = self.ancestors_of_new(heads);
        for h in heads {
            if let Some(&p) = self.index.get(h) {
                set_bit(&mut bits, p);
            }
        }
        bits
    }

    pub(super) fn order(&self) -> &[OpId] {
        &self.order
    }

    /// Is the operation at `a` a strict ancestor of the one at `b`?
    pub(super) fn is_ancestor(&self, a: usize, b: usize) -> bool {
        self.ancestors.get(b).is_some_and(|bits| has_bit(bits, a))
    }

    /// Neither is an ancestor of the other.
    pub(super) fn concurrent(&self, a: usize, b: usize) -> bool {
        a != b && !self.is_ancestor(a, b) && !self.is_ancestor(b, a)
    }

    /// Operations without children, ascending.
    pub(super) fn heads(&self) -> Vec<OpId> {
        self.heads.iter().copied().collect()
    }
}

/// Is every operation in `small` also in `big`?
pub(super) fn is_subset(small: &Ancestors, big: &Ancestors) -> bool {
    small.iter().enumerate().all(|(i, w)| w & !big.get(i).copied().unwrap_or(0) == 0)
}

/// Operations in both sets.
pub(super) fn intersect(a: &Ancestors, b: &Ancestors) -> Ancestors {
    a.iter().zip(b).map(|(x, y)| x & y).collect()
}

/// Membership test in an ancestor set.
pub(super) fn in_set(bits: &Ancestors, j: usize) -> bool {
    has_bit(bits, j)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bitsets_cover_exactly_the_placed_operations() {
        let mut dag = Dag::default();
        for i in 0..130u8 {
            let parents: Vec<OpId> = if i == 0 { vec![] } else { vec![[i - 1; 32]] };
            let bits = dag.ancestors_of_new(&parents);
            assert!(dag.covers_all(&bits), "a chain covers everything before it ({i})");
            dag.push([i; 32], &parents, bits);
        }
        assert!(dag.is_ancestor(0, 129) && !dag.is_ancestor(129, 0));
        assert_eq!(dag.heads(), vec![[129; 32]]);
        // A second child of an old operation covers less.
        let bits = dag.ancestors_of_new(&[[5; 32]]);
        assert!(!dag.covers_all(&bits));
        dag.push([200; 32], &[[5; 32]], bits);
        assert!(dag.concurrent(130, 129));
        assert_eq!(dag.heads().len(), 2);
    }
}

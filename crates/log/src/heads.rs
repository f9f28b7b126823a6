//! The heads tree: the commitment a checkpoint makes to each target's newest seq,
//! and the proofs that a target has a given head ([`HeadProof::Present`]) or none
//! ([`HeadProof::Absent`]).
//!
//! The tree is an RFC 6962 tree (see [`crate::merkle`]) whose leaves are
//! [`head_leaf`]`(target, seq)`, one per target with entries, sorted by the target's
//! wire spelling as bytes. Sorted leaves make absence provable: the two adjacent
//! leaves around where the target would be.
//!
//! Byte order is not the order of [`Target`]'s `Ord` (clients, then `all`, then
//! groups), so nothing here relies on the `BTreeMap`'s order.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use fts_proto::{HeadLeafProof, HeadProof, LogHash, Seq, Target};

use crate::merkle::{ProofError, Tree, empty_root, leaf_hash, verify_inclusion};

/// The most withdrawn seqs one target's head may list.
pub const MAX_WITHDRAWN: usize = 256;

/// One target's head: its newest seq and its withdrawn seqs, ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// The seq of its newest entry.
    pub seq: u64,
    /// The seqs of its entries that a withdrawal withdrew, ascending.
    pub withdrawn: Vec<Seq>,
}

/// The bytes of the heads leaf of `target` at `seq` with `withdrawn` seqs. Without
/// a withdrawn seq it is the issue-18 leaf, which every earlier client verifies:
/// `fts-head-v1\n` + target + `\n` + seq in decimal + `\n`. With some:
/// `fts-head-v2\n` + target + `\n` + seq + `\nwithdrawn` + (` ` + seq) for each,
/// ascending, + `\n` (PROTOCOL.md section 8.1).
pub fn head_leaf(target: &Target, seq: u64, withdrawn: &[Seq]) -> Vec<u8> {
    if withdrawn.is_empty() {
        return format!("fts-head-v1\n{target}\n{seq}\n").into_bytes();
    }
    let mut leaf = format!("fts-head-v2\n{target}\n{seq}\nwithdrawn");
    for w in withdrawn {
        leaf.push(' ');
        leaf.push_str(&w.to_string());
    }
    leaf.push('\n');
    leaf.into_bytes()
}

/// Heads sorted by the bytes of the targets' wire spelling, as an RFC 6962 tree of
/// [`head_leaf`] hashes. (`Target`'s `Ord` is not byte order: it puts client ids
/// before `all` and groups, so the map's order is not used.)
#[derive(Debug, Clone)]
pub struct HeadsTree {
    /// The heads in byte order of their targets' spelling: (spelling, target, head).
    heads: Vec<(String, Target, Head)>,
    tree: Tree,
}

impl HeadsTree {
    /// The heads tree of `heads` (each target's newest seq and withdrawn seqs).
    pub fn new(heads: &BTreeMap<Target, Head>) -> HeadsTree {
        let mut sorted: Vec<(String, Target, Head)> =
            heads.iter().map(|(t, head)| (t.to_string(), t.clone(), head.clone())).collect();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut tree = Tree::new();
        for (_, target, head) in &sorted {
            tree.push(leaf_hash(&head_leaf(target, head.seq, &head.withdrawn)));
        }
        HeadsTree { heads: sorted, tree }
    }

    /// The heads tree of targets without withdrawals (each target's newest seq).
    pub fn from_seqs(seqs: &BTreeMap<Target, u64>) -> HeadsTree {
        HeadsTree::new(
            &seqs.iter().map(|(t, &seq)| (t.clone(), Head { seq, withdrawn: Vec::new() })).collect(),
        )
    }

    /// The number of heads (leaves).
    pub fn count(&self) -> u64 {
        self.tree.len()
    }

    /// The root; [`empty_root`] when there are no heads.
    pub fn root(&self) -> LogHash {
        self.tree.root(self.tree.len()).unwrap_or_else(|_| empty_root())
    }

    fn leaf_proof(&self, position: usize) -> Option<HeadLeafProof> {
        let (_, target, head) = self.heads.get(position)?;
        let index = position as u64;
        let proof = self.tree.inclusion_proof(index, self.count()).ok()?;
        Some(HeadLeafProof {
            target: target.clone(),
            seq: head.seq,
            index,
            proof,
            withdrawn: head.withdrawn.clone(),
        })
    }

    /// The proof of `target`'s head: its leaf with its inclusion proof, or the
    /// adjacent leaves around where it would be (one at an edge, none in an empty
    /// tree), each with its inclusion proof.
    pub fn prove(&self, target: &Target) -> HeadProof {
        let spelling = target.to_string();
        match self.heads.binary_search_by(|(s, _, _)| s.as_bytes().cmp(spelling.as_bytes())) {
            Ok(position) => match self.leaf_proof(position) {
                Some(leaf) => HeadProof::Present(leaf),
                None => HeadProof::Absent { before: None, after: None },
            },
            Err(position) => HeadProof::Absent {
                before: position.checked_sub(1).and_then(|p| self.leaf_proof(p)),
                after: self.leaf_proof(position),
            },
        }
    }
}

/// Why a head proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadProofError {
    /// A present proof's leaf is another target's.
    #[error("the proof is for target {got}, not {want}")]
    WrongTarget {
        /// The target asked about.
        want: String,
        /// The target of the proof's leaf.
        got: String,
    },
    /// An absence proof's `before` leaf is not below the target in byte order.
    #[error("the leaf before, {before}, is not below {target} in byte order")]
    BeforeNotBelow {
        /// The `before` leaf's target.
        before: String,
        /// The target asked about.
        target: String,
    },
    /// An absence proof's `after` leaf is not above the target in byte order.
    #[error("the leaf after, {after}, is not above {target} in byte order")]
    AfterNotAbove {
        /// The `after` leaf's target.
        after: String,
        /// The target asked about.
        target: String,
    },
    /// An absence proof's two leaves are not next to each other.
    #[error("the leaves around the target are at indexes {before} and {after}, not adjacent")]
    NotAdjacent {
        /// The `before` leaf's index.
        before: u64,
        /// The `after` leaf's index.
        after: u64,
    },
    /// An absence proof without a `before` leaf whose `after` leaf is not the first.
    #[error("no leaf before the target, but the leaf after is at index {after}, not 0")]
    AfterNotFirst {
        /// The `after` leaf's index.
        after: u64,
    },
    /// An absence proof without an `after` leaf whose `before` leaf is not the last.
    #[error("no leaf after the target, but the leaf before is at index {before}, not the last of {count}")]
    BeforeNotLast {
        /// The `before` leaf's index.
        before: u64,
        /// The number of heads.
        count: u64,
    },
    /// An absence proof with no leaf at all, for a tree that has leaves.
    #[error("an absence proof with no neighbour, but the heads tree has {count} leaves")]
    NoNeighbours {
        /// The number of heads.
        count: u64,
    },
    /// The heads tree has no leaves but its root is not the empty tree's root.
    #[error("the heads tree has no leaves but its root is not the empty tree's root")]
    EmptyRootMismatch,
    /// A leaf's withdrawn seqs are not ascending, above its head, or too many.
    #[error("the {which} leaf's withdrawn seqs {why}")]
    BadWithdrawn {
        /// Which leaf of the proof.
        which: &'static str,
        /// What is wrong with them.
        why: &'static str,
    },
    /// A leaf's inclusion proof does not verify.
    #[error("the inclusion proof of the {which} leaf does not verify: {source}")]
    Inclusion {
        /// Which leaf: "present", "before" or "after".
        which: &'static str,
        /// Why.
        source: ProofError,
    },
}

fn verify_leaf(
    count: u64,
    root: &LogHash,
    leaf: &HeadLeafProof,
    which: &'static str,
) -> Result<(), HeadProofError> {
    if leaf.withdrawn.len() > MAX_WITHDRAWN {
        return Err(HeadProofError::BadWithdrawn { which, why: "are more than 256" });
    }
    if !leaf.withdrawn.windows(2).all(|w| w[0] < w[1]) {
        return Err(HeadProofError::BadWithdrawn { which, why: "are not strictly ascending" });
    }
    if leaf.withdrawn.last().is_some_and(|w| w.get() > leaf.seq) {
        return Err(HeadProofError::BadWithdrawn { which, why: "go past the head" });
    }
    let hash = leaf_hash(&head_leaf(&leaf.target, leaf.seq, &leaf.withdrawn));
    verify_inclusion(leaf.index, count, &hash, &leaf.proof, root)
        .map_err(|source| HeadProofError::Inclusion { which, source })
}

/// Checks a head proof against the heads tree of (count, root) for `target`:
/// Ok(Some(seq)) if present, Ok(None) if proven absent. Absent rules: neighbours' targets
/// strictly bracket `target` in byte order, `after.index == before.index + 1`, `before` None
/// only if after.index == 0, `after` None only if before.index == count - 1, both None only if
/// count == 0 and root == empty_root(); Present: leaf.target == target, inclusion verifies.
pub fn verify_head(
    count: u64,
    root: &LogHash,
    target: &Target,
    proof: &HeadProof,
) -> Result<Option<u64>, HeadProofError> {
    let spelling = target.to_string();
    match proof {
        HeadProof::Present(leaf) => {
            if leaf.target != *target {
                return Err(HeadProofError::WrongTarget { want: spelling, got: leaf.target.to_string() });
            }
            verify_leaf(count, root, leaf, "present")?;
            Ok(Some(leaf.seq))
        }
        HeadProof::Absent { before, after } => {
            if let Some(b) = before {
                let name = b.target.to_string();
                if name.as_bytes().cmp(spelling.as_bytes()) != Ordering::Less {
                    return Err(HeadProofError::BeforeNotBelow { before: name, target: spelling });
                }
            }
            if let Some(a) = after {
                let name = a.target.to_string();
                if name.as_bytes().cmp(spelling.as_bytes()) != Ordering::Greater {
                    return Err(HeadProofError::AfterNotAbove { after: name, target: spelling });
                }
            }
            match (before, after) {
                (None, None) => {
                    if count != 0 {
                        return Err(HeadProofError::NoNeighbours { count });
                    }
                    if *root != empty_root() {
                        return Err(HeadProofError::EmptyRootMismatch);
                    }
                }
                (Some(b), Some(a)) => {
                    if b.index.checked_add(1) != Some(a.index) {
                        return Err(HeadProofError::NotAdjacent { before: b.index, after: a.index });
                    }
                }
                (None, Some(a)) => {
                    if a.index != 0 {
                        return Err(HeadProofError::AfterNotFirst { after: a.index });
                    }
                }
                (Some(b), None) => {
                    if count.checked_sub(1) != Some(b.index) {
                        return Err(HeadProofError::BeforeNotLast { before: b.index, count });
                    }
                }
            }
            if let Some(b) = before {
                verify_leaf(count, root, b, "before")?;
            }
            if let Some(a) = after {
                verify_leaf(count, root, a, "after")?;
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    #[test]
    fn head_leaf_bytes() {
        assert_eq!(head_leaf(&t("web-01"), 13, &[]), b"fts-head-v1\nweb-01\n13\n");
        assert_eq!(head_leaf(&t("group:web"), 0, &[]), b"fts-head-v1\ngroup:web\n0\n");
        assert_eq!(head_leaf(&t("all"), u64::MAX, &[]), b"fts-head-v1\nall\n18446744073709551615\n");
        let withdrawn = [Seq::new(3).unwrap(), Seq::new(12).unwrap()];
        assert_eq!(head_leaf(&t("web-01"), 13, &withdrawn), b"fts-head-v2\nweb-01\n13\nwithdrawn 3 12\n");
    }

    #[test]
    fn withdrawn_seqs_are_proven_with_the_head_and_cannot_be_hidden() {
        let seq = |n| Seq::new(n).unwrap();
        let mut heads = BTreeMap::new();
        heads.insert(t("web-01"), Head { seq: 13, withdrawn: vec![seq(3), seq(12)] });
        heads.insert(t("all"), Head { seq: 4, withdrawn: vec![] });
        let tree = HeadsTree::new(&heads);
        let proof = tree.prove(&t("web-01"));
        assert_eq!(verify_head(tree.count(), &tree.root(), &t("web-01"), &proof), Ok(Some(13)));
        let HeadProof::Present(mut leaf) = proof else { panic!("present") };
        assert_eq!(leaf.withdrawn, vec![seq(3), seq(12)]);
        for forged in [vec![seq(3)], vec![], vec![seq(12), seq(3)], vec![seq(3), seq(14)]] {
            leaf.withdrawn = forged.clone();
            let forged_proof = HeadProof::Present(leaf.clone());
            assert!(
                verify_head(tree.count(), &tree.root(), &t("web-01"), &forged_proof).is_err(),
                "withdrawn {forged:?} must not verify"
            );
        }
    }

    #[test]
    fn leaves_are_in_byte_order_not_target_order() {
        let heads: BTreeMap<Target, u64> = [("web-01", 1), ("all", 2), ("group:web", 3), ("aaa", 4)]
            .into_iter()
            .map(|(s, n)| (t(s), n))
            .collect();
        // Target's Ord puts clients first.
        assert_eq!(heads.keys().next(), Some(&t("aaa")));
        assert_eq!(heads.keys().nth(1), Some(&t("web-01")));
        let tree = HeadsTree::from_seqs(&heads);
        let order: Vec<&str> = ["aaa", "all", "group:web", "web-01"].to_vec();
        for (i, name) in order.iter().enumerate() {
            match tree.prove(&t(name)) {
                HeadProof::Present(leaf) => assert_eq!(leaf.index, i as u64),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_empty_tree_proves_every_absence() {
        let tree = HeadsTree::from_seqs(&BTreeMap::new());
        assert_eq!(tree.count(), 0);
        assert_eq!(tree.root(), empty_root());
        let proof = tree.prove(&t("web-01"));
        assert_eq!(proof, HeadProof::Absent { before: None, after: None });
        assert_eq!(verify_head(0, &empty_root(), &t("web-01"), &proof), Ok(None));
        assert_eq!(
            verify_head(0, &LogHash([0; 32]), &t("web-01"), &proof),
            Err(HeadProofError::EmptyRootMismatch)
        );
        assert_eq!(
            verify_head(1, &empty_root(), &t("web-01"), &proof),
            Err(HeadProofError::NoNeighbours { count: 1 })
        );
    }
}

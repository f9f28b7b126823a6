//! RFC 6962 Merkle trees (RFC 9162 section 2.1): the leaf and node hashes, the
//! verifiers of inclusion and consistency proofs, and [`Tree`], an append-only
//! in-memory tree that gives the root and the proofs at any of its sizes.
//!
//! The tree of `n` leaves `D[0..n]` is the RFC's: `MTH({}) = SHA-256()`,
//! `MTH({d}) = SHA-256(0x00 || d)`, and for `n > 1`, with `k` the largest power of two
//! below `n`, `MTH(D[0..n]) = SHA-256(0x01 || MTH(D[0..k]) || MTH(D[k..n]))`. Proofs
//! list hashes from the bottom up: the leaf's (or the old tree's) sibling first, the
//! root's child last.
//!
//! Every function here takes sizes and indexes straight from the wire (`u64`, any
//! value) and answers with a [`ProofError`] instead of panicking or overflowing.

use fts_proto::LogHash;
use sha2::{Digest, Sha256};

/// The leaf hash of `data`: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> LogHash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    LogHash(h.finalize().into())
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &LogHash, right: &LogHash) -> LogHash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    LogHash(h.finalize().into())
}

/// The root of the empty tree: `SHA-256()` of no bytes (not 32 zero bytes).
pub fn empty_root() -> LogHash {
    LogHash(Sha256::digest([]).into())
}

/// Why a proof was refused, or why a [`Tree`] cannot answer for the sizes asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexNotBelowSize {
        /// The index asked for.
        index: u64,
        /// The size of the tree.
        size: u64,
    },
    /// The proof has more or fewer hashes than the sizes and index call for.
    #[error("the proof has {got} hashes where {want} are needed")]
    WrongProofLength {
        /// How many hashes the proof has.
        got: u64,
        /// How many the sizes (and index) require.
        want: u64,
    },
    /// The proof's hashes lead to another root than the one given.
    #[error("the proof leads to another root than the one given")]
    RootMismatch,
    /// The proof's hashes lead to another old root than the one given (consistency).
    #[error("the consistency proof leads to another root for the old size than the one given")]
    OldRootMismatch,
    /// The old size is above the new one.
    #[error("the sizes are out of order: size1 {size1} is above size2 {size2}")]
    SizesOutOfOrder {
        /// The old size.
        size1: u64,
        /// The new size.
        size2: u64,
    },
    /// Consistency was asked from the empty tree to a larger one: every tree extends
    /// the empty tree, so there is nothing to check, and a verifier refuses to say yes
    /// to a proof that proves nothing (the caller should not ask).
    #[error("a consistency proof from the empty tree (size1 0) to size2 {size2} proves nothing")]
    ConsistencyFromEmpty {
        /// The new size.
        size2: u64,
    },
    /// Both sizes are 0 but a root is not the empty tree's root.
    #[error("the tree size is 0 but the root is not the empty tree's root")]
    NotEmptyRoot,
    /// A [`Tree`] was asked about a size it has not reached.
    #[error("size {size} is beyond the tree's {len} leaves")]
    SizeBeyondTree {
        /// The size asked for.
        size: u64,
        /// The number of leaves in the tree.
        len: u64,
    },
}

/// The number of low bits where `a` and `b` may differ: the bit length of `a ^ b`.
fn differing_bits(a: u64, b: u64) -> u32 {
    64 - (a ^ b).leading_zeros()
}

/// The shape of the path from the node `index` (at some level) to the root of a tree
/// whose last node at that level is `last`: `inner` levels where the sibling may be on
/// either side (below the point where the paths to `index` and `last` join), then the
/// `border` left siblings above it (one per set bit of `index` there).
fn path_shape(index: u64, last: u64) -> (u32, u32) {
    let inner = differing_bits(index, last);
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner, border)
}

fn check_length(proof: &[LogHash], want: u64) -> Result<(), ProofError> {
    let got = u64::try_from(proof.len()).unwrap_or(u64::MAX);
    if got == want { Ok(()) } else { Err(ProofError::WrongProofLength { got, want }) }
}

/// Checks that `proof` shows the leaf hash `leaf` at `index` in the tree of `size`
/// leaves with root `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &LogHash,
    proof: &[LogHash],
    root: &LogHash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexNotBelowSize { index, size });
    }
    // size >= 1 here.
    let (inner, border) = path_shape(index, size - 1);
    check_length(proof, u64::from(inner) + u64::from(border))?;
    let (inner_part, border_part) = proof.split_at(inner as usize);
    let mut r = *leaf;
    for (level, p) in inner_part.iter().enumerate() {
        r = if (index >> level) & 1 == 1 { node_hash(p, &r) } else { node_hash(&r, p) };
    }
    for p in border_part {
        r = node_hash(p, &r);
    }
    if r == *root { Ok(()) } else { Err(ProofError::RootMismatch) }
}

/// Checks that `proof` shows the tree of `size2` leaves with root `root2` extends the
/// tree of `size1` leaves with root `root1` (RFC 9162 section 2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots (and, at size 0, the empty root).
/// `size1 == 0 < size2` is always refused ([`ProofError::ConsistencyFromEmpty`]): a
/// client that has seen no tree has nothing to check, and must not call this.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &LogHash,
    root2: &LogHash,
    proof: &[LogHash],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == size2 {
        check_length(proof, 0)?;
        if root1 != root2 {
            return Err(ProofError::RootMismatch);
        }
        if size1 == 0 && *root1 != empty_root() {
            return Err(ProofError::NotEmptyRoot);
        }
        return Ok(());
    }
    if size1 == 0 {
        return Err(ProofError::ConsistencyFromEmpty { size2 });
    }
    // 0 < size1 < size2. The old tree's last complete subtree, of 2^k leaves, is also
    // a node of the new tree: node `index` at level k. The proof is the path from it
    // to the new root, preceded by its hash unless it is the whole old tree.
    let k = size1.trailing_zeros();
    let index = (size1 >> k) - 1;
    let last = (size2 - 1) >> k;
    let (inner, border) = path_shape(index, last);
    let seeded = index != 0; // size1 is not a power of two
    check_length(proof, u64::from(inner) + u64::from(border) + u64::from(seeded))?;
    let (seed, path) = if seeded { proof.split_at(1) } else { (&[][..], proof) };
    let start = seed.first().unwrap_or(root1);
    let (inner_part, border_part) = path.split_at(inner as usize);
    let (mut old, mut new) = (*start, *start);
    for (level, p) in inner_part.iter().enumerate() {
        if (index >> level) & 1 == 1 {
            old = node_hash(p, &old);
            new = node_hash(p, &new);
        } else {
            // A right sibling: leaves beyond size1, in the new tree only.
            new = node_hash(&new, p);
        }
    }
    for p in border_part {
        old = node_hash(p, &old);
        new = node_hash(p, &new);
    }
    if old != *root1 {
        return Err(ProofError::OldRootMismatch);
    }
    if new != *root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Append-only in-memory tree keeping every complete-subtree node (about 2 hashes per leaf),
/// so roots and proofs at ANY size <= len cost O(log n) hash operations.
///
/// `levels[h][i]` is the hash of the complete subtree of leaves `i * 2^h ..
/// (i + 1) * 2^h`; `levels[0]` holds the leaf hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    levels: Vec<Vec<LogHash>>,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Tree {
        Tree { levels: Vec::new() }
    }

    /// Appends a leaf, given as its leaf hash (see [`leaf_hash`]). Amortised O(1).
    pub fn push(&mut self, leaf: LogHash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut h = 0;
        while self.levels[h].len().is_multiple_of(2) {
            let n = self.levels[h].len();
            let parent = node_hash(&self.levels[h][n - 2], &self.levels[h][n - 1]);
            if self.levels.len() == h + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[h + 1].push(parent);
            h += 1;
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`, if the tree has it.
    pub fn leaf(&self, index: u64) -> Option<LogHash> {
        self.node(0, index)
    }

    /// The complete-subtree node `index` at `level`, if every leaf under it is in.
    fn node(&self, level: u32, index: u64) -> Option<LogHash> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        row.get(usize::try_from(index).ok()?).copied()
    }

    /// `MTH(D[start..start + count])` for `count >= 1` leaves all in the tree, where
    /// `start` is a multiple of a power of two at least `count` (every subtree of the
    /// RFC's recursion is): the complete subtrees of `count`'s set bits, largest first,
    /// folded from the right.
    fn range_hash(&self, start: u64, count: u64) -> Option<LogHash> {
        let mut acc: Option<LogHash> = None;
        let mut offset = count;
        // From the smallest piece (the right end) to the largest (the left end).
        let mut rest = count;
        while rest != 0 {
            let level = rest.trailing_zeros();
            let width = 1u64 << level;
            offset -= width;
            let node = self.node(level, (start + offset) >> level)?;
            acc = Some(match acc {
                None => node,
                Some(right) => node_hash(&node, &right),
            });
            rest &= rest - 1;
        }
        acc
    }

    /// The hashes from the node `index` at `level` up to the root of the tree of
    /// `size` leaves (`size >= 1`, the node inside it), sibling first.
    fn path(&self, level: u32, index: u64, size: u64) -> Option<Vec<LogHash>> {
        let last = (size - 1) >> level;
        let (inner, border) = path_shape(index, last);
        let mut proof = Vec::with_capacity((inner + border) as usize);
        for i in 0..inner {
            let at = level + i;
            let sibling = (index >> i) ^ 1;
            let first_leaf = sibling << at;
            let hash = match self.node(at, sibling) {
                Some(h) if first_leaf + (1u64 << at) <= size => h,
                // The right sibling holding the new tree's last leaf: partial.
                _ => self.range_hash(first_leaf, size - first_leaf)?,
            };
            proof.push(hash);
        }
        for i in inner..64 - level {
            if (index >> i) & 1 == 1 {
                proof.push(self.node(level + i, (index >> i) - 1)?);
            }
        }
        Some(proof)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let len = self.len();
        if size > len { Err(ProofError::SizeBeyondTree { size, len }) } else { Ok(()) }
    }

    /// The root of the tree of the first `size` leaves; `root(0)` is [`empty_root`].
    pub fn root(&self, size: u64) -> Result<LogHash, ProofError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        Ok(self.range_hash(0, size).unwrap_or_else(empty_root))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<LogHash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexNotBelowSize { index, size });
        }
        Ok(self.path(0, index, size).unwrap_or_default())
    }

    /// The consistency proof from the first `size1` leaves to the first `size2`;
    /// empty when `size1` is 0 or equal to `size2`.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<LogHash>, ProofError> {
        self.check_size(size2)?;
        if size1 > size2 {
            return Err(ProofError::SizesOutOfOrder { size1, size2 });
        }
        if size1 == 0 || size1 == size2 {
            return Ok(Vec::new());
        }
        let k = size1.trailing_zeros();
        let index = (size1 >> k) - 1;
        let mut proof = Vec::new();
        if index != 0 {
            proof.extend(self.node(k, index));
        }
        proof.extend(self.path(k, index, size2).unwrap_or_default());
        Ok(proof)
    }

    /// Drops the leaves at `size` and above (and every node over them); nothing when
    /// the tree is not longer than `size`.
    pub fn truncate(&mut self, size: u64) {
        for (h, row) in self.levels.iter_mut().enumerate() {
            let keep = size.checked_shr(h as u32).unwrap_or(0);
            row.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_have_the_rfc_prefixes() {
        // SHA-256 of nothing, and of the single byte 0x00.
        assert_eq!(
            fts_proto::base64::encode(&empty_root().0),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            fts_proto::base64::encode(&leaf_hash(b"").0),
            "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="
        );
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut h = Sha256::new();
        h.update([1]);
        h.update(a.0);
        h.update(b.0);
        assert_eq!(node_hash(&a, &b).0, <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn truncate_then_push_gives_the_same_tree() {
        let leaves: Vec<LogHash> = (0u32..37).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut full = Tree::new();
        leaves.iter().for_each(|l| full.push(*l));
        for cut in 0..=38 {
            let mut t = full.clone();
            t.truncate(cut);
            assert_eq!(t.len(), cut.min(37));
            for l in &leaves[t.len() as usize..] {
                t.push(*l);
            }
            assert_eq!(t, full, "cut at {cut}");
        }
        let mut t = full.clone();
        t.truncate(0);
        assert!(t.is_empty());
        assert_eq!(t, Tree::new());
    }

    #[test]
    fn huge_sizes_are_refused_without_panicking() {
        let h = leaf_hash(b"x");
        for size in [1u64 << 62, 1 << 63, u64::MAX - 1, u64::MAX] {
            for index in [0, 1, size / 2, size - 2, size - 1, size] {
                let _ = verify_inclusion(index, size, &h, &[h; 3], &h);
                let _ = verify_inclusion(index, size, &h, &vec![h; 64], &h);
                let _ = verify_inclusion(index, size, &h, &vec![h; 128], &h);
            }
            for size1 in [1, 2, 3, size / 2, size - 1, size] {
                let _ = verify_consistency(size1, size, &h, &h, &[h; 3]);
                let _ = verify_consistency(size1, size, &h, &h, &vec![h; 64]);
                let _ = verify_consistency(size1, size, &h, &h, &vec![h; 127]);
            }
        }
        let t = Tree::new();
        assert!(t.root(u64::MAX).is_err());
        assert!(t.inclusion_proof(u64::MAX, u64::MAX).is_err());
        assert!(t.consistency_proof(u64::MAX, u64::MAX).is_err());
        assert_eq!(t.leaf(u64::MAX), None);
    }
}

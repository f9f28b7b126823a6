//! Property tests of `fts_log::merkle` against references written in the test from
//! the RFCs' text: MTH, PATH and SUBPROOF by their recursive definitions (RFC 6962
//! section 2.1), and the RFC 9162 verification algorithms (sections 2.1.3.2 and
//! 2.1.4.2) step by step. The tree's roots and proofs must equal the references', its
//! proofs must verify, and every mutation must be refused exactly when the RFC's
//! algorithm refuses it (and always, for those that change the hashes).

use fts_log::merkle::{Tree, empty_root, leaf_hash, node_hash, verify_consistency, verify_inclusion};
use fts_proto::LogHash;
use proptest::prelude::*;

fn leaves(n: usize, seed: u64) -> Vec<LogHash> {
    (0..n as u64).map(|i| leaf_hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat())).collect()
}

fn tree_of(leaves: &[LogHash]) -> Tree {
    let mut t = Tree::new();
    for l in leaves {
        t.push(*l);
    }
    t
}

/// The largest power of two below `n` (`n >= 2`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH, by definition.
fn mth(d: &[LogHash]) -> LogHash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let k = split(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// PATH(m, D[n]), by definition.
fn path(m: usize, d: &[LogHash]) -> Vec<LogHash> {
    let n = d.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// SUBPROOF(m, D[n], b), by definition.
fn subproof(m: usize, d: &[LogHash], b: bool) -> Vec<LogHash> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

/// RFC 9162 section 2.1.3.2, step by step.
fn rfc_inclusion(index: u64, size: u64, leaf: &LogHash, proof: &[LogHash], root: &LogHash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// RFC 9162 section 2.1.4.2, step by step, for `0 < size1 < size2`.
fn rfc_consistency(size1: u64, size2: u64, root1: &LogHash, root2: &LogHash, proof: &[LogHash]) -> bool {
    assert!(0 < size1 && size1 < size2);
    if proof.is_empty() {
        return false;
    }
    let mut path = proof.to_vec();
    if size1.is_power_of_two() {
        path.insert(0, *root1);
    }
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *root1 && sr == *root2 && s == 0
}

/// What the project's consistency verifier must say, by the RFC for `0 < size1 <
/// size2` and by the vectors' rules otherwise.
fn reference_consistency(
    size1: u64,
    size2: u64,
    root1: &LogHash,
    root2: &LogHash,
    proof: &[LogHash],
) -> bool {
    if size1 > size2 || (size1 == 0 && size2 > 0) {
        false
    } else if size1 == size2 {
        proof.is_empty() && root1 == root2 && (size1 > 0 || *root1 == empty_root())
    } else {
        rfc_consistency(size1, size2, root1, root2, proof)
    }
}

fn flip(proof: &[LogHash], element: usize, bit: usize) -> Vec<LogHash> {
    let mut p = proof.to_vec();
    p[element].0[bit / 8] ^= 1 << (bit % 8);
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// Roots at every size of trees up to 2,000 leaves equal MTH.
    #[test]
    fn roots_at_every_size_are_mth(n in 0usize..=2000, seed: u64) {
        let d = leaves(n, seed);
        let t = tree_of(&d);
        prop_assert_eq!(t.len(), n as u64);
        for m in 0..=n {
            prop_assert_eq!(t.root(m as u64).unwrap(), mth(&d[..m]), "size {}", m);
        }
        prop_assert!(t.root(n as u64 + 1).is_err());
        for (i, l) in d.iter().enumerate() {
            prop_assert_eq!(t.leaf(i as u64), Some(*l));
        }
        prop_assert_eq!(t.leaf(n as u64), None);
    }

    /// Some proofs in large trees equal the RFC's and verify.
    #[test]
    fn proofs_in_large_trees(n in 1usize..=2000, seed: u64, picks in prop::collection::vec((any::<u64>(), any::<u64>()), 20)) {
        let d = leaves(n, seed);
        let t = tree_of(&d);
        for (a, b) in picks {
            let size = (a % n as u64) + 1;
            let index = b % size;
            let root = mth(&d[..size as usize]);
            let proof = t.inclusion_proof(index, size).unwrap();
            prop_assert_eq!(&proof, &path(index as usize, &d[..size as usize]));
            prop_assert_eq!(verify_inclusion(index, size, &d[index as usize], &proof, &root), Ok(()));
            let size1 = b % (size + 1);
            let root1 = mth(&d[..size1 as usize]);
            let proof = t.consistency_proof(size1, size).unwrap();
            if size1 > 0 && size1 < size {
                prop_assert_eq!(&proof, &subproof(size1 as usize, &d[..size as usize], true));
                prop_assert_eq!(verify_consistency(size1, size, &root1, &root, &proof), Ok(()));
            } else {
                prop_assert!(proof.is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Inclusion proofs: equal to PATH, verify, and every mutation is refused exactly
    /// when the RFC's algorithm refuses it; hash changes always are.
    #[test]
    fn inclusion_proofs_and_mutations(n in 1usize..=300, seed: u64, a: u64, b: u64, element: usize, bit in 0usize..256) {
        let d = leaves(n, seed);
        let t = tree_of(&d);
        let size = (a % n as u64) + 1;
        let index = b % size;
        let leaf = d[index as usize];
        let root = t.root(size).unwrap();
        let proof = t.inclusion_proof(index, size).unwrap();
        prop_assert_eq!(&proof, &path(index as usize, &d[..size as usize]));
        prop_assert_eq!(verify_inclusion(index, size, &leaf, &proof, &root), Ok(()));
        prop_assert!(rfc_inclusion(index, size, &leaf, &proof, &root));

        // Hash changes: always refused.
        if !proof.is_empty() {
            let e = element % proof.len();
            prop_assert!(verify_inclusion(index, size, &leaf, &flip(&proof, e, bit), &root).is_err());
            for e in 0..proof.len() {
                prop_assert!(verify_inclusion(index, size, &leaf, &flip(&proof, e, bit), &root).is_err());
            }
            prop_assert!(verify_inclusion(index, size, &leaf, &proof[..proof.len() - 1], &root).is_err());
            prop_assert!(verify_inclusion(index, size, &leaf, &proof[1..], &root).is_err());
        }
        let mut bad_leaf = leaf;
        bad_leaf.0[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(verify_inclusion(index, size, &bad_leaf, &proof, &root).is_err());
        let mut bad_root = root;
        bad_root.0[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &bad_root).is_err());
        prop_assert!(verify_inclusion(index, size, &root, &proof, &leaf).is_err() || size == 1);
        let mut longer = proof.clone();
        longer.push(leaf);
        prop_assert!(verify_inclusion(index, size, &leaf, &longer, &root).is_err());
        let mut longer = proof.clone();
        longer.insert(0, root);
        prop_assert!(verify_inclusion(index, size, &leaf, &longer, &root).is_err());
        // Another index: always refused (the leaf is not there).
        for other in [index.wrapping_sub(1), index + 1, index ^ 1] {
            if other != index {
                prop_assert!(verify_inclusion(other, size, &leaf, &proof, &root).is_err());
            }
        }
        // Another size: the same verdict as RFC 9162's algorithm. (When the path has
        // the same shape at size ± 1, both accept: the size is bound by the signed
        // checkpoint, not by the proof.)
        for other in [size - 1, size + 1, size * 2, size / 2] {
            let ours = verify_inclusion(index, other, &leaf, &proof, &root).is_ok();
            prop_assert_eq!(ours, rfc_inclusion(index, other, &leaf, &proof, &root), "size {}", other);
        }
    }

    /// Consistency proofs: equal to SUBPROOF, verify, and every mutation is refused
    /// exactly when the RFC's algorithm (or the vectors' rules at the edges) refuses it.
    #[test]
    fn consistency_proofs_and_mutations(n in 1usize..=300, seed: u64, a: u64, b: u64, element: usize, bit in 0usize..256) {
        let d = leaves(n, seed);
        let t = tree_of(&d);
        let size2 = (a % n as u64) + 1;
        let size1 = b % (size2 + 1);
        let root1 = t.root(size1).unwrap();
        let root2 = t.root(size2).unwrap();
        let proof = t.consistency_proof(size1, size2).unwrap();
        if size1 == 0 || size1 == size2 {
            prop_assert!(proof.is_empty());
        } else {
            prop_assert_eq!(&proof, &subproof(size1 as usize, &d[..size2 as usize], true));
        }
        let check = |s1: u64, s2: u64, r1: &LogHash, r2: &LogHash, p: &[LogHash]| {
            let ours = verify_consistency(s1, s2, r1, r2, p);
            assert_eq!(ours.is_ok(), reference_consistency(s1, s2, r1, r2, p), "{s1} {s2} {ours:?}");
            ours.is_ok()
        };
        prop_assert_eq!(check(size1, size2, &root1, &root2, &proof), size1 > 0);

        if size1 == 0 {
            // From the empty tree: refused, whatever the proof.
            prop_assert!(!check(0, size2, &root1, &root2, &[root2]));
            return Ok(());
        }
        // Hash changes: always refused.
        for e in 0..proof.len() {
            prop_assert!(!check(size1, size2, &root1, &root2, &flip(&proof, e, bit)));
        }
        if !proof.is_empty() {
            let e = element % proof.len();
            prop_assert!(!check(size1, size2, &root1, &root2, &flip(&proof, e, bit)));
            prop_assert!(!check(size1, size2, &root1, &root2, &proof[..proof.len() - 1]));
            prop_assert!(!check(size1, size2, &root1, &root2, &proof[1..]));
        }
        let mut longer = proof.clone();
        longer.push(root1);
        prop_assert!(!check(size1, size2, &root1, &root2, &longer));
        let mut longer = proof.clone();
        longer.insert(0, root1);
        prop_assert!(!check(size1, size2, &root1, &root2, &longer));
        let mut bad = root1;
        bad.0[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(!check(size1, size2, &bad, &root2, &proof));
        prop_assert!(!check(size1, size2, &root1, &bad, &proof));
        if root1 != root2 {
            prop_assert!(!check(size1, size2, &root2, &root1, &proof));
        }
        // Other sizes: the same verdict as the reference.
        for (s1, s2) in [
            (size1 - 1, size2), (size1 + 1, size2), (size1, size2 - 1), (size1, size2 + 1),
            (size1 ^ 2, size2), (size1, size2 * 2), (size1, size2 / 2), (size2, size1),
        ] {
            check(s1, s2, &root1, &root2, &proof);
        }
    }
}

/// Exhaustive on small trees: every (index, size) and (size1, size2) up to 40 leaves.
#[test]
fn every_proof_of_small_trees() {
    let d = leaves(40, 7);
    let t = tree_of(&d);
    for size in 0..=40u64 {
        let root = t.root(size).unwrap();
        assert_eq!(root, mth(&d[..size as usize]));
        for index in 0..size {
            let proof = t.inclusion_proof(index, size).unwrap();
            assert_eq!(proof, path(index as usize, &d[..size as usize]));
            assert_eq!(verify_inclusion(index, size, &d[index as usize], &proof, &root), Ok(()));
        }
        assert!(t.inclusion_proof(size, size).is_err());
        for size1 in 0..=size {
            let proof = t.consistency_proof(size1, size).unwrap();
            let root1 = t.root(size1).unwrap();
            let ok = verify_consistency(size1, size, &root1, &root, &proof);
            assert_eq!(ok.is_ok(), size1 > 0 || size == 0, "{size1} {size} {ok:?}");
            if size1 > 0 && size1 < size {
                assert_eq!(proof, subproof(size1 as usize, &d[..size as usize], true));
            }
        }
        assert!(t.consistency_proof(size + 1, size).is_err());
    }
    assert!(t.root(41).is_err());
    assert!(t.consistency_proof(1, 41).is_err());
}

/// A host verifies an inclusion proof and a consistency proof in a tree of 10^6
/// leaves; the server builds the tree and answers proofs. Timed loosely, so a
/// debug build on a busy machine passes; the release numbers are far lower.
#[test]
fn a_million_leaves() {
    let n = 1_000_000u64;
    let mut t = Tree::new();
    for i in 0..n {
        t.push(leaf_hash(&i.to_be_bytes()));
    }
    let root = t.root(n).unwrap();
    let old = 765_431;
    let old_root = t.root(old).unwrap();
    let start = std::time::Instant::now();
    let rounds = 200u64;
    for i in 0..rounds {
        let index = (i * 4_999) % old;
        let proof = t.inclusion_proof(index, n).unwrap();
        let leaf = t.leaf(index).unwrap();
        verify_inclusion(index, n, &leaf, &proof, &root).unwrap();
        let consistency = t.consistency_proof(old, n).unwrap();
        verify_consistency(old, n, &old_root, &root, &consistency).unwrap();
    }
    let per_round = start.elapsed() / rounds as u32;
    assert!(per_round < std::time::Duration::from_millis(20), "{per_round:?} per proof pair");
    let mut short = t.clone();
    short.truncate(old);
    assert_eq!(short.root(old).unwrap(), old_root);
    assert_eq!(short.len(), old);
}

// Shared by the fuzz target (fuzz_targets/proofs.rs) and the stable replay test
// (../tests/fuzz_corpus.rs) through `include!`, so both run exactly the same calls.

/// The fuzz input read from the front; past its end, zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn raw_u64(&mut self) -> u64 {
        (0..8).fold(0u64, |acc, _| (acc << 8) | u64::from(self.byte()))
    }

    /// A size or index: small, near 2^63, near 2^64, or any.
    fn number(&mut self) -> u64 {
        let mode = self.byte();
        let small = u64::from(self.byte());
        match mode % 5 {
            0 => small,
            1 => (1u64 << 63).wrapping_add(small).wrapping_sub(128),
            2 => u64::MAX - small,
            3 => (1u64 << (small % 64)).wrapping_add(u64::from(mode >> 4)).wrapping_sub(8),
            _ => self.raw_u64(),
        }
    }

    fn hash(&mut self, known: &[fts_proto::LogHash]) -> fts_proto::LogHash {
        let pick = self.byte();
        if pick < 128 && !known.is_empty() {
            return known[usize::from(pick) % known.len()];
        }
        let mut h = [0u8; 32];
        h.iter_mut().for_each(|b| *b = self.byte());
        fts_proto::LogHash(h)
    }

    fn hashes(&mut self, known: &[fts_proto::LogHash]) -> Vec<fts_proto::LogHash> {
        let len = usize::from(self.byte()) % 140;
        (0..len).map(|_| self.hash(known)).collect()
    }

    fn target(&mut self) -> fts_proto::Target {
        const NAMES: [&str; 8] = ["all", "aaa", "group:db", "group:web", "web-01", "web-02", "zzz", "0"];
        let pick = self.byte();
        let name = if pick < 200 {
            NAMES[usize::from(pick) % NAMES.len()].to_owned()
        } else {
            let len = usize::from(self.byte()) % 12;
            (0..len).map(|_| char::from(b"abcz09._-:group"[usize::from(self.byte()) % 15])).collect()
        };
        fts_proto::Target::parse(&name).unwrap_or(fts_proto::Target::All)
    }

    fn leaf(&mut self, known: &[fts_proto::LogHash]) -> Option<fts_proto::HeadLeafProof> {
        if self.byte().is_multiple_of(4) {
            return None;
        }
        Some(fts_proto::HeadLeafProof {
            target: self.target(),
            seq: self.number(),
            index: self.number(),
            proof: self.hashes(known),
            withdrawn: (0..self.byte() % 3).filter_map(|_| fts_proto::Seq::new(self.number())).collect(),
        })
    }
}

/// Arbitrary bytes through every verifier of fts-log, and round trips through its
/// trees. Must never panic.
pub fn proofs_all(data: &[u8]) {
    use fts_log::heads::{HeadsTree, verify_head};
    use fts_log::merkle::{Tree, empty_root, leaf_hash, verify_consistency, verify_inclusion};
    use fts_proto::{HeadProof, LogHash};

    let mut input = Bytes(data);

    // A small tree from the input, and its hashes as material for the forgeries.
    let n = u64::from(input.byte() % 70);
    let mut tree = Tree::new();
    for i in 0..n {
        tree.push(leaf_hash(&[i.to_be_bytes().as_slice(), &[input.byte()]].concat()));
    }
    let mut known: Vec<LogHash> = (0..n).filter_map(|i| tree.leaf(i)).collect();
    known.extend((0..=n).filter_map(|s| tree.root(s).ok()));
    known.push(empty_root());

    // Its proofs verify, and fail with one bit changed.
    if n > 0 {
        let size = u64::from(input.byte()) % n + 1;
        let index = u64::from(input.byte()) % size;
        let root = tree.root(size).unwrap();
        let leaf = tree.leaf(index).unwrap();
        let mut proof = tree.inclusion_proof(index, size).unwrap();
        assert_eq!(verify_inclusion(index, size, &leaf, &proof, &root), Ok(()));
        if !proof.is_empty() {
            let at = usize::from(input.byte()) % proof.len();
            proof[at].0[usize::from(input.byte()) % 32] ^= 1 << (input.byte() % 8);
            assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_err());
        }
        let size1 = u64::from(input.byte()) % size + 1;
        let root1 = tree.root(size1).unwrap();
        let mut proof = tree.consistency_proof(size1, size).unwrap();
        assert_eq!(verify_consistency(size1, size, &root1, &root, &proof), Ok(()));
        if !proof.is_empty() {
            let at = usize::from(input.byte()) % proof.len();
            proof[at].0[usize::from(input.byte()) % 32] ^= 1 << (input.byte() % 8);
            assert!(verify_consistency(size1, size, &root1, &root, &proof).is_err());
        }
    }

    // Arbitrary sizes, indexes and hashes.
    let (index, size) = (input.number(), input.number());
    let (leaf, root) = (input.hash(&known), input.hash(&known));
    let proof = input.hashes(&known);
    let _ = verify_inclusion(index, size, &leaf, &proof, &root);
    let _ = tree.inclusion_proof(index, size);
    let (size1, size2) = (input.number(), input.number());
    let (root1, root2) = (input.hash(&known), input.hash(&known));
    let proof = input.hashes(&known);
    let _ = verify_consistency(size1, size2, &root1, &root2, &proof);
    let _ = tree.consistency_proof(size1, size2);
    let _ = tree.root(size1);

    // A heads tree from the input: its proofs verify; arbitrary head proofs do not panic.
    let heads: std::collections::BTreeMap<_, _> =
        (0..input.byte() % 9).map(|_| (input.target(), input.number())).collect();
    let heads_tree = HeadsTree::from_seqs(&heads);
    let target = input.target();
    let proof = heads_tree.prove(&target);
    assert_eq!(
        verify_head(heads_tree.count(), &heads_tree.root(), &target, &proof),
        Ok(heads.get(&target).copied())
    );
    known.push(heads_tree.root());
    let proof = if input.byte().is_multiple_of(2) {
        match input.leaf(&known) {
            Some(leaf) => HeadProof::Present(leaf),
            None => proof,
        }
    } else {
        HeadProof::Absent { before: input.leaf(&known), after: input.leaf(&known) }
    };
    let count = if input.byte().is_multiple_of(2) { heads_tree.count() } else { input.number() };
    let root = input.hash(&known);
    let _ = verify_head(count, &root, &target, &proof);
    let _ = verify_head(count, &heads_tree.root(), &target, &proof);
}
